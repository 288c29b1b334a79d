#!/usr/bin/env python3
"""Export random-init torchvision detectors and classifiers to ONNX for ticket.

Default: narrow variants (same module classes, parameter names and block counts as torchvision,
small channel widths) that are committed as test fixtures under tests/fixtures.
--full: torchvision-width models for benchmarks and by-hand import checks (not committed).

Each NAME.onnx gets a NAME.counts.json with torch-side parameter counts the Rust importer is
tested against. No pretrained weights are used anywhere.

    python tools/export_models.py --out tests/fixtures
    python tools/export_models.py --out /work/full_models --full
    python tools/export_models.py --out DIR --synth 16   # starting points for `ticket train` on `ticket data synth`
"""
import argparse
import json
import os
import warnings

import numpy as np
import onnx
import onnxruntime as ort
import torch
import torch.nn as nn
from torchvision.models import resnet as tvr
from torchvision.models.detection import FasterRCNN, KeypointRCNN, MaskRCNN
from torchvision.models.detection.backbone_utils import BackboneWithFPN
from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead
from torchvision.models.detection.keypoint_rcnn import KeypointRCNNHeads, KeypointRCNNPredictor
from torchvision.models.detection.mask_rcnn import MaskRCNNHeads, MaskRCNNPredictor
from torchvision.ops import misc as misc_nn_ops
from torchvision.ops.feature_pyramid_network import LastLevelMaxPool

RESNETS = {"resnet18": (tvr.BasicBlock, [2, 2, 2, 2]), "resnet50": (tvr.Bottleneck, [3, 4, 6, 3])}

# name -> (kind, backbone, narrow classes, full classes)
MODELS = {
    "fasterrcnn_r18_fpn_voc": ("faster_rcnn", "resnet18", 21, 21),
    "maskrcnn_r18_fpn": ("mask_rcnn", "resnet18", 5, 91),
    "maskrcnn_r50_fpn": ("mask_rcnn", "resnet50", 5, 91),
    "keypointrcnn_r50_fpn": ("keypoint_rcnn", "resnet50", 2, 2),
    "resnet18": ("classifier", "resnet18", 10, 1000),
    "resnet50": ("classifier", "resnet50", 10, 1000),
}

# Channel widths. Narrow ResNets use base width 4 (not 8): each detector graph alone is ~0.3 MB of
# nodes, and at width 8 the fixture dir exceeds its 6 MB budget.
NARROW = {"resnet18": 4, "resnet50": 4, "fpn": 16, "box_rep": 32, "mask": 16, "keypoint": 16}
FULL = {"resnet18": 64, "resnet50": 64, "fpn": 256, "box_rep": 1024, "mask": 256, "keypoint": 512}

DETECTOR_GROUPS = [
    ("base", "backbone.body."),
    ("fpn", "backbone.fpn."),
    ("rpn", "rpn."),
    ("box_head", "roi_heads.box_head."),
    ("box_predictor", "roi_heads.box_predictor."),
    ("mask_head", "roi_heads.mask_head."),
    ("mask_head", "roi_heads.mask_predictor."),
    ("keypoint_head", "roi_heads.keypoint_head."),
    ("keypoint_head", "roi_heads.keypoint_predictor."),
]
OUTPUTS = {
    "faster_rcnn": ["boxes", "labels", "scores"],
    "mask_rcnn": ["boxes", "labels", "scores", "masks"],
    "keypoint_rcnn": ["boxes", "labels", "scores", "keypoints", "keypoints_scores"],
    "classifier": ["logits"],
}


def make_resnet(arch, width, num_classes, norm_layer):
    block, layers = RESNETS[arch]
    m = tvr.ResNet(block, layers, num_classes=num_classes, norm_layer=norm_layer)
    if width != 64:
        # Rebuild the stem and stages at a smaller base width; _make_layer keeps torchvision's naming.
        m.inplanes = width
        m.conv1 = nn.Conv2d(3, width, kernel_size=7, stride=2, padding=3, bias=False)
        m.bn1 = norm_layer(width)
        for i, n in enumerate(layers):
            setattr(m, f"layer{i + 1}", m._make_layer(block, width << i, n, stride=1 if i == 0 else 2))
        m.fc = nn.Linear(8 * width * block.expansion, num_classes)
        for mod in m.modules():
            if isinstance(mod, nn.Conv2d):
                nn.init.kaiming_normal_(mod.weight, mode="fan_out", nonlinearity="relu")
    return m


def make_detector(kind, arch, num_classes, w, size):
    body = make_resnet(arch, w[arch], 1000, misc_nn_ops.FrozenBatchNorm2d)
    # torchvision's _resnet_fpn_extractor with its default trainable_layers=3, but FPN width is fixed
    # at 256 there, so the same steps are spelled out here.
    for name, p in body.named_parameters():
        if not name.startswith(("layer4", "layer3", "layer2")):
            p.requires_grad_(False)
    stage2 = body.inplanes // 8
    backbone = BackboneWithFPN(
        body,
        {f"layer{k}": str(k - 1) for k in range(1, 5)},
        [stage2 * 2 ** i for i in range(4)],
        w["fpn"],
        extra_blocks=LastLevelMaxPool(),
    )
    heads = dict(
        box_head=TwoMLPHead(w["fpn"] * 7 * 7, w["box_rep"]),
        box_predictor=FastRCNNPredictor(w["box_rep"], num_classes),
    )
    common = dict(min_size=size, max_size=size, box_score_thresh=0.0)
    if kind == "faster_rcnn":
        return FasterRCNN(backbone, None, **heads, **common)
    if kind == "mask_rcnn":
        heads["mask_head"] = MaskRCNNHeads(w["fpn"], (w["mask"],) * 4, 1)
        heads["mask_predictor"] = MaskRCNNPredictor(w["mask"], w["mask"], num_classes)
        return MaskRCNN(backbone, None, **heads, **common)
    heads["keypoint_head"] = KeypointRCNNHeads(w["fpn"], (w["keypoint"],) * 8)
    heads["keypoint_predictor"] = KeypointRCNNPredictor(w["keypoint"], 17)
    return KeypointRCNN(backbone, None, **heads, **common)


def make_trained_like(model, run):
    """Give norm layers and biases values like a trained network's.

    torchvision initialises biases to 0 and norm layers to identity. The legacy exporter merges
    initializers with equal values (losing their names), identity norms would hide BN bugs on the
    Rust side, and with identity norms a random ResNet-50's features grow to ~500 std so that scores
    saturate to exact ties. So: distinct random affine params and biases, and running statistics
    measured on one random input (`run`), layer by layer in forward order.
    """
    norms = [m for m in model.modules() if isinstance(m, (nn.BatchNorm2d, misc_nn_ops.FrozenBatchNorm2d))]

    def set_stats(mod, inputs):
        x = inputs[0]
        mod.running_mean.copy_(x.mean(dim=(0, 2, 3)))
        mod.running_var.copy_(x.var(dim=(0, 2, 3)).clamp_min(1e-2))

    with torch.no_grad():
        for mod in norms:
            mod.weight.uniform_(0.5, 1.5)
            mod.bias.uniform_(-0.1, 0.1)
        for name, p in model.named_parameters():
            if name.endswith(".bias"):
                p.uniform_(-0.01, 0.01)
        hooks = [m.register_forward_pre_hook(set_stats) for m in norms]
        run()
        for h in hooks:
            h.remove()


def counts_json(model, name, kind, arch, num_classes, input_shape):
    params = {n: p.numel() for n, p in model.named_parameters()}
    prunable = {
        f"{mn}.weight"
        for mn, mod in model.named_modules()
        if isinstance(mod, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear))
    }

    def group(n):
        if kind == "classifier":
            return "fc" if n.startswith("fc.") else "base"
        for g, prefix in DETECTOR_GROUPS:
            if n.startswith(prefix):
                return g
        raise ValueError(f"parameter {n} has no group")

    groups, prun = {}, {}
    for n, c in params.items():
        g = group(n)
        groups[g] = groups.get(g, 0) + c
        if n in prunable:
            prun[g] = prun.get(g, 0) + c
    return {
        "model": name,
        "kind": kind,
        "backbone": arch,
        "num_classes": num_classes,
        "input_shape": list(input_shape),
        "total_params": sum(params.values()),
        "groups": groups,
        "prunable": prun,
        "params": params,
    }


def export(model, kind, path, x, **flags):
    outputs = OUTPUTS[kind]
    if kind == "classifier":
        args, dyn = (x,), None
    else:
        # One 3-D image in a list, as torchvision detectors take it; the number of detections is
        # data dependent, so declare it dynamic rather than freezing the traced count.
        args = ([x],)
        dyn = {"image": {1: "height", 2: "width"}}
        dyn.update({o: {0: "detections"} for o in outputs})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model, args, path, dynamo=False, opset_version=17,
            input_names=["input" if kind == "classifier" else "image"],
            output_names=outputs, dynamic_axes=dyn, **flags,
        )


def missing_names(model, path):
    inits = {i.name for i in onnx.load(path, load_external_data=False).graph.initializer}
    return [n for n, _ in model.named_parameters() if n not in inits]


def run_ort(path, kind, x):
    so = ort.SessionOptions()
    so.log_severity_level = 3
    sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
    outs = sess.run(None, {sess.get_inputs()[0].name: x.numpy()})
    assert all(np.isfinite(o).all() for o in outs if o.dtype.kind == "f"), f"{path}: non-finite output"
    return outs


def describe(path):
    m = onnx.load(path, load_external_data=False)

    def dims(v):
        return [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim]

    ins = [(v.name, dims(v)) for v in m.graph.input]
    outs = [(v.name, dims(v)) for v in m.graph.output]
    return f"ir={m.ir_version} opset={m.opset_import[0].version} inputs={ins} outputs={outs}"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--full", action="store_true")
    ap.add_argument("--synth", type=int, metavar="WIDTH",
                    help="only the Faster and Mask R-CNN R18-FPN starting points for the synthetic dataset "
                         "(5 classes + background, 128 px) and the matching ResNet-18 classifier (5 classes) "
                         "at ResNet base width WIDTH")
    ap.add_argument("--synth-size", type=int, default=128, metavar="SIDE",
                    help="the --synth detectors' input side (torchvision's min_size and max_size; default 128, the "
                         "default synthetic set; 320 for `ticket data synth --size 256..320 --scales coco`)")
    ap.add_argument("--init-seed", type=int, default=0,
                    help="torch seed of the --synth models' random initialisation (replicates of an experiment)")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    if args.synth:
        return export_synth(args.out, args.synth, args.init_seed, args.synth_size)
    widths = FULL if args.full else NARROW
    size = 320 if args.full else 128
    cls_size = 224 if args.full else 64

    for name, (kind, arch, n_narrow, n_full) in MODELS.items():
        num_classes = n_full if args.full else n_narrow
        torch.manual_seed(0)
        if kind == "classifier":
            model = make_resnet(arch, widths[arch], num_classes, nn.BatchNorm2d)
            x = torch.rand(1, 3, cls_size, cls_size)
        else:
            model = make_detector(kind, arch, num_classes, widths, size)
            x = torch.rand(3, size, size)
        model.eval()
        calib = torch.rand(x.shape, generator=torch.Generator().manual_seed(1))
        make_trained_like(model, lambda: model(calib if kind == "classifier" else [calib]))
        path = os.path.join(args.out, f"{name}.onnx")
        counts = counts_json(model, name, kind, arch, num_classes, x.shape)

        if kind == "classifier":
            # With the default flags (EVAL, constant folding) the exporter fuses BatchNorm into Conv
            # and renames the weights. In torch 2.8 either flag below alone keeps every name; both
            # are set in case one stops sufficing.
            export(model, kind, path, x, training=torch.onnx.TrainingMode.PRESERVE,
                   do_constant_folding=False)
        else:
            export(model, kind, path, x)
        lost = missing_names(model, path)
        print(f"{name}: {counts['total_params']} params; missing in ONNX: {lost or 'none'}")
        outs = run_ort(path, kind, x)
        with torch.no_grad():
            ref = [model(x)] if kind == "classifier" else list(model([x])[0].values())
        diffs = [float(np.abs(o - r.numpy()).max()) if o.shape == r.shape else None for o, r in zip(outs, ref)]
        print(f"  ort vs torch max abs diff per output: {diffs}")
        if kind != "classifier":
            print(f"  detections: {len(outs[0])}, distinct scores: {len(np.unique(outs[2]))}")
            assert args.full or len(outs[0]) > 0, f"{name}: no detections"
        print(f"  {describe(path)}")
        with open(os.path.join(args.out, f"{name}.counts.json"), "w") as f:
            json.dump(counts, f, indent=1)

        if args.full:
            continue
        if name == "resnet18":
            # Default flags: Conv+BN fused, weights renamed; for the importer's error/fallback path.
            fpath = os.path.join(args.out, "resnet18_folded.onnx")
            export(model, kind, fpath, x)
            print(f"resnet18_folded: missing in ONNX: {len(missing_names(model, fpath))} names")
            run_ort(fpath, kind, x)
            with open(os.path.join(args.out, "resnet18_folded.counts.json"), "w") as f:
                json.dump(dict(counts, model="resnet18_folded"), f, indent=1)
        if name == "maskrcnn_r18_fpn":
            ext_dir = os.path.join(args.out, "maskrcnn_r18_fpn_ext")
            os.makedirs(ext_dir, exist_ok=True)
            onnx.save_model(onnx.load(path), os.path.join(ext_dir, "model.onnx"),
                            save_as_external_data=True, all_tensors_to_one_file=True,
                            location="weights.bin", size_threshold=0)
            run_ort(os.path.join(ext_dir, "model.onnx"), kind, x)
            with open(os.path.join(ext_dir, "model.counts.json"), "w") as f:
                json.dump(counts, f, indent=1)


def export_synth(out, width, init_seed=0, size=128):
    """Random-init R18-FPN detectors for `ticket data synth` (CATEGORIES in src/train/synth.rs): FPN 4·width,
    box representation 16·width, mask head 4·width channels, min/max size `size` (128: the default set; a larger
    side keeps the small, medium and large objects of `--size 256..320 --scales coco` at their sizes)."""
    widths = {"resnet18": width, "fpn": 4 * width, "box_rep": 16 * width, "mask": 4 * width}
    for name, kind in (("fasterrcnn_r18_fpn_synth", "faster_rcnn"), ("maskrcnn_r18_fpn_synth", "mask_rcnn")):
        torch.manual_seed(init_seed)
        model = make_detector(kind, "resnet18", 6, widths, size).eval()
        calib = torch.rand(3, size, size, generator=torch.Generator().manual_seed(1))
        make_trained_like(model, lambda: model([calib]))
        path = os.path.join(out, f"{name}.onnx")
        export(model, kind, path, calib)
        lost = missing_names(model, path)
        assert not lost, f"{name}: names lost in export: {lost[:5]}"
        run_ort(path, kind, calib)
        print(f"{name}: {sum(p.numel() for p in model.parameters())} params, {describe(path)}")
    # The classifier whose body is these detectors' backbone (same block counts and widths), for the synthetic
    # classification set (`ticket data synth --classify`, 5 categories, no background): `ticket train
    # --classify` pretrains it and `ticket transfer` moves its body onto a detector. BatchNorm names are kept
    # (no constant folding) so training and transfer find them.
    torch.manual_seed(init_seed)
    model = make_resnet("resnet18", width, 5, nn.BatchNorm2d).eval()
    calib = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    make_trained_like(model, lambda: model(calib))
    path = os.path.join(out, "resnet18_synth.onnx")
    export(model, "classifier", path, calib, training=torch.onnx.TrainingMode.PRESERVE, do_constant_folding=False)
    lost = missing_names(model, path)
    assert not lost, f"resnet18_synth: names lost in export: {lost[:5]}"
    run_ort(path, "classifier", calib)
    print(f"resnet18_synth: {sum(p.numel() for p in model.parameters())} params, {describe(path)}")


if __name__ == "__main__":
    main()
