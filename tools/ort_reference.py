#!/usr/bin/env python3
"""Independent reference outputs for ticket's tests: run an ONNX model in python onnxruntime.

Optionally multiplies initializers by 0/1 masks first (what a pruned export must equal).
Runs on CPU with 1 thread and graph optimisations disabled (ORT_DISABLE_ALL; --optimize for the
default level), so the reference depends on ORT's kernels only, not its graph rewrites.
Works with onnxruntime 1.19 and newer.

    python tools/ort_reference.py --model DENSE.onnx [--masks MASKS.safetensors]
        [--input IN.safetensors] --out OUT.safetensors

Without --input the input is numpy RandomState(0) uniform [0, 1) float32 of each graph input's
shape (dynamic dims = 128), generated in graph-input order and also written to OUT.
"""
import argparse
import os
import sys
import tempfile

import numpy as np
import onnx
import onnxruntime as ort
from onnx import numpy_helper
from safetensors.numpy import load_file, save_file

DYNAMIC_DIM = 128


def apply_masks(model, masks):
    inits = {i.name: i for i in model.graph.initializer}
    for name, mask in masks.items():
        if name not in inits:
            sys.exit(f"error: mask {name!r} names no initializer")
        w = numpy_helper.to_array(inits[name])
        if w.shape != mask.shape:
            sys.exit(f"error: mask {name!r} has shape {list(mask.shape)}, initializer {list(w.shape)}")
        if not np.isin(mask, (0, 1)).all():
            sys.exit(f"error: mask {name!r} has values other than 0 and 1")
        inits[name].CopyFrom(numpy_helper.from_array((w * mask).astype(w.dtype), name))


def make_inputs(sess):
    rng = np.random.RandomState(0)
    feeds = {}
    for i in sess.get_inputs():
        if i.type != "tensor(float)":
            sys.exit(f"error: input {i.name!r} is {i.type}; pass --input")
        shape = [d if isinstance(d, int) and d >= 0 else DYNAMIC_DIM for d in i.shape]
        feeds[i.name] = rng.uniform(0.0, 1.0, size=shape).astype(np.float32)
    return feeds


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--masks")
    ap.add_argument("--input")
    ap.add_argument("--out", required=True)
    ap.add_argument("--optimize", action="store_true", help="ORT default graph optimisations")
    args = ap.parse_args()

    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    so.log_severity_level = 3
    if not args.optimize:
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL

    with tempfile.TemporaryDirectory() as tmp:
        path = args.model
        if args.masks:
            model = onnx.load(args.model)  # pulls in external data from beside the model
            apply_masks(model, load_file(args.masks))
            path = os.path.join(tmp, "model.onnx")
            # External data keeps models over the 2 GB protobuf limit saveable.
            onnx.save_model(model, path, save_as_external_data=True, all_tensors_to_one_file=True,
                            location="weights.bin", size_threshold=1024)
            del model
        sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])

        if args.input:
            given = load_file(args.input)
            missing = [i.name for i in sess.get_inputs() if i.name not in given]
            if missing:
                sys.exit(f"error: {args.input} lacks graph inputs {missing}")
            feeds = {i.name: given[i.name] for i in sess.get_inputs()}
            result = {}
        else:
            feeds = make_inputs(sess)
            result = dict(feeds)

        names = [o.name for o in sess.get_outputs()]
        for name, value in zip(names, sess.run(names, feeds)):
            if name in result:
                sys.exit(f"error: output {name!r} has the same name as an input")
            result[name] = np.ascontiguousarray(value)
    save_file(result, args.out)


if __name__ == "__main__":
    main()
