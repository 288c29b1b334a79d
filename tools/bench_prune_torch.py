#!/usr/bin/env python3
"""Baseline for ticket's pruning benchmark: torch global magnitude pruning of an ONNX model's weights.

The prunable set is every float initializer used as the weight (input 1) of a Conv,
ConvTranspose, Gemm or MatMul node. Times torch.nn.utils.prune.global_unstructured with
L1Unstructured (median of --repeat runs, each on fresh dense parameters) and, for scale, one
plain clone of all those weights.

    python tools/bench_prune_torch.py --model MODEL.onnx --sparsity 0.8 --repeat 5 --json
"""
import argparse
import json
import os
import statistics
import time

import onnx
import torch
import torch.nn as nn
from onnx import TensorProto, numpy_helper
from torch.nn.utils import prune

WEIGHT_OPS = {"Conv", "ConvTranspose", "Gemm", "MatMul"}
FLOATS = {TensorProto.FLOAT, TensorProto.DOUBLE, TensorProto.FLOAT16, TensorProto.BFLOAT16}


def prunable_weights(path):
    graph = onnx.load(path).graph
    inits = {i.name: i for i in graph.initializer}
    names = []
    for node in graph.node:
        if node.op_type in WEIGHT_OPS and len(node.input) > 1:
            w = inits.get(node.input[1])
            if w is not None and w.data_type in FLOATS and w.name not in names:
                names.append(w.name)
    return [torch.from_numpy(numpy_helper.to_array(inits[n]).copy()) for n in names]


class Holder(nn.Module):
    def __init__(self, w):
        super().__init__()
        self.weight = nn.Parameter(w, requires_grad=False)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--sparsity", type=float, default=0.8)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    threads = len(os.sched_getaffinity(0))
    torch.set_num_threads(threads)
    weights = prunable_weights(args.model)
    if not weights:
        raise SystemExit(f"error: no prunable weights in {args.model}")

    prune_ms, copy_ms = [], []
    for _ in range(args.repeat):
        # Fresh dense modules each run, built outside the timed region.
        holders = [Holder(w.clone()) for w in weights]
        params = [(h, "weight") for h in holders]
        t = time.perf_counter()
        prune.global_unstructured(params, pruning_method=prune.L1Unstructured, amount=args.sparsity)
        prune_ms.append((time.perf_counter() - t) * 1e3)

        t = time.perf_counter()
        copies = [w.clone() for w in weights]
        copy_ms.append((time.perf_counter() - t) * 1e3)
        del copies

    total = sum(w.numel() for w in weights)
    zeros = sum(int((h.weight_mask == 0).sum()) for h in holders)
    result = {
        "torch_global_unstructured_ms": statistics.median(prune_ms),
        "torch_copy_ms": statistics.median(copy_ms),
        "num_weights": total,
        "num_tensors": len(weights),
        "threads": torch.get_num_threads(),
        "achieved_sparsity": zeros / total,
    }
    if args.json:
        print(json.dumps(result))
    else:
        for k, v in result.items():
            print(f"{k}: {v}")


if __name__ == "__main__":
    main()
