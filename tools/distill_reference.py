#!/usr/bin/env python3
"""Reference values of the distillation terms (src/graph/distill.rs), computed independently in float64 numpy.

    python3 tools/distill_reference.py DIR

DIR holds meta.json ({"weight", "temperature", "terms": [...], "tensors": {name: {"shape", "elem"}}}) and one raw
little-endian file NAME.bin per tensor (f32 or i64): the student's and the teacher's signals (`s_fpn_{l}` /
`t_fpn_{l}`, `s_objectness` / `t_objectness`, `s_cls` / `t_cls`, `s_deltas` / `t_deltas`, `s_mask` / `t_mask`)
and the step's labels and weights (`rpn_labels`, `roi_labels`, `roi_weights`, `mask_labels`, `mask_weights`).
Prints {"loss_distill_…": value} as JSON.
"""
import json
import os
import sys

import numpy as np

EPS = 1e-6
BETA = 1.0 / 9.0


def load(d, meta, name):
    t = meta["tensors"][name]
    dtype = np.float32 if t["elem"] == "f32" else np.int64
    return np.fromfile(os.path.join(d, name + ".bin"), dtype=dtype).reshape(t["shape"]).astype(
        np.float64 if t["elem"] == "f32" else np.int64)


def norm(x):
    """Per channel over batch and space: (x - mean) / sqrt(unbiased var + eps)."""
    c = x.shape[1]
    flat = x.transpose(1, 0, 2, 3).reshape(c, -1)
    n = flat.shape[1]
    mean = flat.mean(axis=1, keepdims=True)
    var = ((flat - mean) ** 2).sum(axis=1, keepdims=True) / max(n - 1, 1)
    return ((flat - mean) / np.sqrt(var + EPS)).reshape(c, x.shape[0], x.shape[2], x.shape[3]).transpose(1, 0, 2, 3)


def pkd(s, t):
    if s.shape[1] != t.shape[1]:
        s, t = (s ** 2).mean(axis=1, keepdims=True), (t ** 2).mean(axis=1, keepdims=True)
    return ((norm(s) - norm(t)) ** 2).mean() / 2


def log_softmax(x):
    m = x.max(axis=1, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(axis=1, keepdims=True))


def bce(x, z):
    return np.maximum(x, 0) - x * z + np.log1p(np.exp(-np.abs(x)))


def sigmoid(x):
    return 1 / (1 + np.exp(-x))


def smooth_l1(d):
    n = np.abs(d)
    return np.where(n < BETA, 0.5 * n * n / BETA, n - 0.5 * BETA)


def terms(d, meta):
    g = lambda n: load(d, meta, n)  # noqa: E731
    out = {}
    w = meta["weight"]
    if "features" in meta["terms"]:
        levels = sorted(int(n.split("_")[-1]) for n in meta["tensors"] if n.startswith("s_fpn_"))
        out["loss_distill_features"] = w * sum(pkd(g(f"s_fpn_{l}"), g(f"t_fpn_{l}")) for l in levels)
    if "objectness" in meta["terms"]:
        sampled = (g("rpn_labels").reshape(-1) >= 0).astype(np.float64)
        b = bce(g("s_objectness"), sigmoid(g("t_objectness")))
        out["loss_distill_objectness"] = w * (b * sampled).sum() / max(sampled.sum(), 1)
    if "logits" in meta["terms"]:
        tt = meta["temperature"]
        rw, labels = g("roi_weights"), g("roi_labels")
        n = max(rw.sum(), 1)
        ls, lt = log_softmax(g("s_cls") / tt), log_softmax(g("t_cls") / tt)
        kl = (np.exp(lt) * (lt - ls)).sum(axis=1)
        out["loss_distill_logits"] = w * tt * tt * (kl * rw).sum() / n
        rows = labels.shape[0]
        sd, td = g("s_deltas").reshape(rows, -1, 4), g("t_deltas").reshape(rows, -1, 4)
        own = np.arange(rows)
        l1 = smooth_l1(sd[own, labels] - td[own, labels]).sum(axis=1)
        out["loss_distill_box"] = w * (l1 * rw * (labels > 0)).sum() / n
        if "s_mask" in meta["tensors"]:
            mw, ml = g("mask_weights"), g("mask_labels")
            r = ml.shape[0]
            sm, tm = g("s_mask")[np.arange(r), ml].reshape(r, -1), g("t_mask")[np.arange(r), ml].reshape(r, -1)
            per = bce(sm, sigmoid(tm)).sum(axis=1)
            out["loss_distill_mask"] = w * (per * mw).sum() / (max(mw.sum(), 1) * sm.shape[1])
    return out


def main():
    d = sys.argv[1]
    meta = json.load(open(os.path.join(d, "meta.json")))
    print(json.dumps(terms(d, meta)))


if __name__ == "__main__":
    main()
