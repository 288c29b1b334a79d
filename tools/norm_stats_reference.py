"""BatchNorm statistics of a classifier re-estimated on classification crops, in ONNX Runtime and numpy: the
reference `ticket transfer --norm-stats` is checked against (tests/norm_stats.rs).

    norm_stats_reference.py CLASSIFIER.onnx CROPS_DIR IMAGES

CLASSIFIER.onnx holds torchvision's BatchNormalization nodes (tools/export_models.py --synth); CROPS_DIR is a
classification set (labels.json, images/*.png, all of one square side). The first IMAGES crops, normalised with
ImageNet's mean and std as the detectors normalise, go through the classifier one at a time. For each
BatchNormalization in graph order, the mean and biased variance (at least 1e-2) of its input over every pixel of every crop
replace its running statistics before the next one is measured (so each sees its re-estimated predecessors).
Prints one JSON object: {module: {"scale": [...], "shift": [...]}}, FrozenBatchNorm's folded form
(scale = gamma / sqrt(var + eps), shift = beta - mean * scale).

The PNG reader below handles what `ticket data synth --classify` writes (8-bit RGB, not interlaced), so the
reference needs no imaging library.
"""
import json
import os
import struct
import sys
import zlib

import numpy as np
import onnx
import onnxruntime as ort
from onnx import numpy_helper

MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)


def read_png(path):
    with open(path, "rb") as f:
        data = f.read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", path
    pos, idat = 8, b""
    while pos < len(data):
        (n,) = struct.unpack(">I", data[pos:pos + 4])
        kind, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + n]
        if kind == b"IHDR":
            w, h, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", body)
            assert (depth, colour, interlace) == (8, 2, 0), f"{path}: only 8-bit RGB, not interlaced"
        elif kind == b"IDAT":
            idat += body
        pos += 12 + n
    raw = zlib.decompress(idat)
    stride, bpp = w * 3, 3
    out = np.zeros((h, stride), dtype=np.uint8)
    prev = np.zeros(stride, dtype=np.int32)
    for y in range(h):
        f = raw[y * (stride + 1)]
        line = np.frombuffer(raw, dtype=np.uint8, count=stride, offset=y * (stride + 1) + 1).astype(np.int32)
        cur = np.zeros(stride, dtype=np.int32)
        for x in range(stride):
            a = cur[x - bpp] if x >= bpp else 0
            b = prev[x]
            c = prev[x - bpp] if x >= bpp else 0
            if f == 0:
                p = 0
            elif f == 1:
                p = a
            elif f == 2:
                p = b
            elif f == 3:
                p = (a + b) // 2
            else:
                pa, pb, pc = abs(b - c), abs(a - c), abs(a + b - 2 * c)
                p = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
            cur[x] = (line[x] + p) & 0xFF
        out[y] = cur
        prev = cur
    return out.reshape(h, w, 3)


def crops(folder, count):
    with open(os.path.join(folder, "labels.json")) as f:
        labels = json.load(f)
    out = []
    for entry in labels["images"][:count]:
        rgb = read_png(os.path.join(folder, "images", entry["file_name"])).astype(np.float32) / 255.0
        out.append(((rgb - MEAN) / STD).transpose(2, 0, 1)[None].astype(np.float32))
    return out


def main():
    model_path, folder, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
    model = onnx.load(model_path)
    inits = {t.name: t for t in model.graph.initializer}
    norms = [n for n in model.graph.node if n.op_type == "BatchNormalization"]
    images = crops(folder, count)
    result = {}
    for node in norms:
        probe = onnx.ModelProto()
        probe.CopyFrom(model)
        del probe.graph.output[:]
        probe.graph.output.append(onnx.helper.make_tensor_value_info(node.input[0], onnx.TensorProto.FLOAT, None))
        session = ort.InferenceSession(probe.SerializeToString(), providers=["CPUExecutionProvider"])
        name = session.get_inputs()[0].name
        xs = np.concatenate([session.run(None, {name: x})[0] for x in images]).astype(np.float64)
        mean = xs.mean(axis=(0, 2, 3))
        var = np.maximum(xs.var(axis=(0, 2, 3)), 1e-2)  # ticket's NORM_VAR_FLOOR
        inits[node.input[3]].CopyFrom(numpy_helper.from_array(mean.astype(np.float32), node.input[3]))
        inits[node.input[4]].CopyFrom(numpy_helper.from_array(var.astype(np.float32), node.input[4]))
        eps = next((a.f for a in node.attribute if a.name == "epsilon"), 1e-5)
        gamma = numpy_helper.to_array(inits[node.input[1]]).astype(np.float64)
        beta = numpy_helper.to_array(inits[node.input[2]]).astype(np.float64)
        scale = gamma / np.sqrt(var.astype(np.float32).astype(np.float64) + eps)
        shift = beta - mean.astype(np.float32).astype(np.float64) * scale
        module = node.input[1][: -len(".weight")]
        result[module] = {"scale": scale.tolist(), "shift": shift.tolist()}
    print(json.dumps(result))


if __name__ == "__main__":
    main()
