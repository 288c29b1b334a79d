#!/usr/bin/env python3
"""Baseline for `ticket bench train`: one torchvision training step in PyTorch eager on the same model.

Rebuilds the torchvision detector of the ONNX model's construction (tools/export_models.py: kind, backbone and
widths read from the initializers), loads the ONNX weights into it (tools/train_reference.py), and times
forward + backward + SGD step on one image of --size² with a few ground-truth objects, torchvision sampling
--rois RoIs per image. Prints JSON with the median step time over --repeat steps (after one warm-up).

With --profile, also where a step's time goes (`ticket bench train --profile` prints it beside ONNX Runtime's):
per operator (torch.profiler's self CPU time, forward and backward ops alike), per part of the network (forward
only, timed by module hooks: eager autograd does not record which module a backward op belongs to), and the
forward / backward / optimizer split. All in ms per step, averaged over the --repeat timed steps.

    .venv-torch/bin/python tools/bench_train_torch.py --model M.onnx --size 320 --rois 128 --repeat 5 --json
"""
import argparse
import json
import os
import statistics
import sys
import time

import onnx
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import export_models  # noqa: E402
import train_reference  # noqa: E402


def construction(path):
    """(kind, backbone, classes, widths) of a torchvision detector export, from its initializer shapes."""
    shapes = {t.name: list(t.dims) for t in onnx.load(path, load_external_data=False).graph.initializer}
    kind = "keypoint_rcnn" if any(k.startswith("roi_heads.keypoint_predictor.") for k in shapes) else (
        "mask_rcnn" if any(k.startswith("roi_heads.mask_predictor.") for k in shapes) else "faster_rcnn")
    arch = "resnet50" if "backbone.body.layer1.0.conv3.weight" in shapes else "resnet18"
    w = dict(export_models.NARROW)
    w[arch] = shapes["backbone.body.conv1.weight"][0]
    w["fpn"] = shapes["backbone.fpn.inner_blocks.0.0.weight"][0]
    w["box_rep"] = shapes["roi_heads.box_head.fc6.weight"][0]
    if kind == "mask_rcnn":
        w["mask"] = shapes["roi_heads.mask_head.0.0.weight"][0]
    if kind == "keypoint_rcnn":
        w["keypoint"] = shapes["roi_heads.keypoint_head.0.weight"][0]
    return kind, arch, shapes["roi_heads.box_predictor.cls_score.weight"][0], w


def targets(kind, classes, size, g):
    n = 3
    xy = torch.rand(n, 2, generator=g) * size * 0.5
    wh = torch.rand(n, 2, generator=g) * size * 0.3 + size * 0.1
    boxes = torch.cat([xy, (xy + wh).clamp(max=size - 1)], 1)
    t = {"boxes": boxes, "labels": torch.randint(1, classes, (n,), generator=g)}
    if kind == "mask_rcnn":
        m = torch.zeros(n, size, size, dtype=torch.uint8)
        for i, b in enumerate(boxes.int().tolist()):
            m[i, b[1]:b[3], b[0]:b[2]] = 1
        t["masks"] = m
    if kind == "keypoint_rcnn":
        u = torch.rand(n, 17, 2, generator=g)
        kx = boxes[:, None, 0] + u[..., 0] * (boxes[:, None, 2] - boxes[:, None, 0])
        ky = boxes[:, None, 1] + u[..., 1] * (boxes[:, None, 3] - boxes[:, None, 1])
        t["keypoints"] = torch.stack([kx, ky, torch.full_like(kx, 2.0)], 2)
    return [t]


# The parts of torchvision's detector timed by forward hooks: (part, module path). A part whose module holds
# others (rpn, roi_heads) is given without them, as "… rest".
PARTS = [
    ("backbone", "backbone.body"),
    ("FPN", "backbone.fpn"),
    ("RPN head", "rpn.head"),
    ("RPN anchors, proposals, losses", "rpn"),
    ("box RoIAlign", "roi_heads.box_roi_pool"),
    ("box head", "roi_heads.box_head"),
    ("box head", "roi_heads.box_predictor"),
    ("mask RoIAlign", "roi_heads.mask_roi_pool"),
    ("mask head", "roi_heads.mask_head"),
    ("mask head", "roi_heads.mask_predictor"),
    ("keypoint RoIAlign", "roi_heads.keypoint_roi_pool"),
    ("keypoint head", "roi_heads.keypoint_head"),
    ("keypoint head", "roi_heads.keypoint_predictor"),
    ("RoI sampling, targets, losses", "roi_heads"),
]


class PartTimer:
    """Forward wall time per part, from pre/post hooks; enclosing parts net of their inner ones."""

    def __init__(self, model):
        self.total = {}
        self.stack = []
        mods = dict(model.named_modules())
        for part, path in PARTS:
            if mods.get(path) is not None:
                mods[path].register_forward_pre_hook(self.pre(part))
                mods[path].register_forward_hook(self.post())

    def pre(self, part):
        def hook(_module, _inputs):
            self.stack.append([part, time.perf_counter(), 0.0])
        return hook

    def post(self):
        def hook(_module, _inputs, _outputs):
            part, start, inner = self.stack.pop()
            spent = time.perf_counter() - start
            self.total[part] = self.total.get(part, 0.0) + spent - inner
            if self.stack:
                self.stack[-1][2] += spent
        return hook


def step(model, opt, images, tgt, split):
    t0 = time.perf_counter()
    losses = model(images, tgt)
    loss = sum(losses.values())
    opt.zero_grad()
    t1 = time.perf_counter()
    loss.backward()
    t2 = time.perf_counter()
    opt.step()
    t3 = time.perf_counter()
    for k, v in (("forward", t1 - t0), ("backward", t2 - t1), ("optimizer", t3 - t2)):
        split[k] = split.get(k, 0.0) + v


def profile(model, opt, images, tgt, repeat):
    """Where a step's time goes, over `repeat` steps after the timed ones (ms per step)."""
    timer = PartTimer(model)
    split = {}
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        for _ in range(repeat):
            step(model, opt, images, tgt, split)
    ops = sorted(((e.key, e.self_cpu_time_total / 1e3 / repeat) for e in prof.key_averages()), key=lambda kv: -kv[1])
    return {
        "ops": [{"op": k, "ms": v} for k, v in ops if v > 0],
        "parts_forward": [{"part": k, "ms": v * 1e3 / repeat} for k, v in timer.total.items()],
        "split": {k: v * 1e3 / repeat for k, v in split.items()},
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--size", type=int, default=320)
    ap.add_argument("--rois", type=int, default=128)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--profile", action=argparse.BooleanOptionalAction, default=False, help="also print where a step's time goes")
    args = ap.parse_args()
    torch.set_num_threads(len(os.sched_getaffinity(0)))
    torch.manual_seed(0)
    kind, arch, classes, w = construction(args.model)
    model = export_models.make_detector(kind, arch, classes, w, args.size)
    train_reference.load_onnx_weights(model, args.model)
    model.roi_heads.fg_bg_sampler.batch_size_per_image = args.rois
    model.train()
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=1e-3, momentum=0.9, weight_decay=1e-4)
    g = torch.Generator().manual_seed(0)
    images = [torch.rand(3, args.size, args.size, generator=g)]
    tgt = targets(kind, classes, args.size, g)
    times = []
    for i in range(args.repeat + 1):
        t = time.perf_counter()
        losses = model(images, tgt)
        loss = sum(losses.values())
        opt.zero_grad()
        loss.backward()
        opt.step()
        if i > 0:
            times.append((time.perf_counter() - t) * 1e3)
    out = {"torch_step_ms": statistics.median(times), "threads": torch.get_num_threads(), "kind": kind, "backbone": arch}
    if args.profile:
        out["profile"] = profile(model, opt, images, tgt, max(args.repeat, 1))
    print(json.dumps(out) if args.json else out)


if __name__ == "__main__":
    main()
