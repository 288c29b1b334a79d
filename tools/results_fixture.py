#!/usr/bin/env python3
"""Writes tests/fixtures/results_runs: a small run set in the layout tools/results.py reads (two seeds of the
Faster R-CNN runs under faster/w8/, two of the transfer runs under transfer/w8/), with the files and fields
`ticket imp` writes that results.py uses — summary.json, run.json, level_L/metrics.json, level_L/log.jsonl — and
made-up but plausible numbers, so that every section of results.py has something to compute. tests/results.rs
runs results.py on it and compares its output with tests/fixtures/results_runs.md.

    python3 tools/results_fixture.py tests/fixtures/results_runs

Deterministic (no randomness): the same files every time. Python 3 standard library only.
"""
import json
import sys
from pathlib import Path

CATEGORIES = [(1, "square", 52), (2, "disc", 47), (3, "triangle", 9), (4, "bar", 41), (5, "person", 38)]
TIDE = ["Cls", "Loc", "Both", "Dupe", "Bkg", "Miss", "FP", "FN"]


def write(path, obj):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, sort_keys=True) + "\n")


def scores(ap, small_drop=0.0):
    return {"bbox": {"ap": round(ap, 4), "ap50": round(min(ap + 0.25, 1.0), 4), "ap75": round(ap * 0.9, 4),
                     "ap_small": round(ap * 0.6 - small_drop, 4), "ap_medium": round(ap * 1.1, 4),
                     "ap_large": round(ap * 1.2, 4)}}


def metrics(ap, seed, level, top1=None):
    if top1 is not None:
        return {"reports": []}
    per_cat = [{"id": i, "name": n, "gt": gt, "ap": round(ap + 0.01 * ((i * 7 + seed * 3 + level) % 5) - 0.02, 4)}
               for i, n, gt in CATEGORIES]
    tide = {e: round(0.01 * ((k + seed + level) % 6) + 0.005, 4) for k, e in enumerate(TIDE)}
    return {"reports": [{"iou_type": "bbox", "per_category": per_cat,
                         "per_size": [{"area": a, "ap": round(ap * f, 4)} for a, f in
                                      (("small", 0.6), ("medium", 1.1), ("large", 1.2))],
                         "tide": {"delta_ap": tide}}]}


def log(steps, start, end, seed):
    lines = []
    for s in range(1, steps + 1):
        loss = end + (start - end) * (1 - s / steps) ** 2 + 0.01 * ((s * 13 + seed) % 7) / 7
        lines.append(json.dumps({"loss": round(loss, 5), "step": s}))
    return "\n".join(lines) + "\n"


def run(path, levels, rounds, seed, trained=None, scope="global", top1=False, early_bird=None, steps=60, logged=()):
    """levels: [(level, ap, network_sparsity, selected_sparsity, collapsed)]; log.jsonl only for the levels
    `logged` (the ones results.py's (h) reads), to keep the set small."""
    rows = []
    for lv, ap, net, sel, collapsed in levels:
        row = {"level": lv, "network_sparsity": net, "selected_sparsity": sel, "flops_removed": round(net * 0.7, 4),
               "steps": steps, "collapsed": collapsed,
               "scores": {"top1": {"ap": ap}} if top1 else scores(ap, 0.01 * lv)}
        rows.append(row)
        d = path / f"level_{lv}"
        m = metrics(ap, seed, lv, ap if top1 else None)
        if lv == 0 and early_bird:
            m["early_bird"] = early_bird
        write(d / "metrics.json", m)
        if lv in logged:
            (d / "log.jsonl").write_text(log(steps, 3.0 - 0.2 * lv, 0.8 - 0.05 * lv + 0.02 * seed, seed))
    config = {"rounds": rounds, "scope": scope, "seed": seed}
    if trained:
        config["trained"] = trained
    write(path / "run.json", config)
    write(path / "summary.json", {"levels": rows, "max_map_drop": 0.01})


def faster(root, seed):
    d = root / "faster" / "w8" / f"seed_{seed}"
    dense = 0.40 + 0.02 * seed
    trained = "ticket/level_0/model.onnx"
    run(d / "ticket", [(0, dense, 0.0, 0.0, []), (1, dense - 0.19, 0.79, 0.8, ["rpn.head.conv.0.0.weight"])], 1, seed,
        logged=(0, 1))
    run(d / "finetune", [(0, dense, 0.0, 0.0, []), (1, dense - 0.15, 0.79, 0.8, [])], 1, seed, trained)
    run(d / "iterative", [(0, dense, 0.0, 0.0, []), (1, dense + 0.03, 0.41, 0.42, []),
                          (2, dense + 0.05, 0.66, 0.66, []), (3, dense + 0.09 - 0.01 * seed, 0.79, 0.8, [])], 3, seed, trained,
        logged=(3,))
    run(d / "global_0.8_floor", [(0, dense, 0.0, 0.0, []), (1, dense + 0.06, 0.79, 0.8, [])], 1, seed, trained, logged=(1,))
    run(d / "layer_0.8", [(0, dense, 0.0, 0.0, []), (1, dense - 0.03, 0.79, 0.8, [])], 1, seed, trained, scope="layer")
    run(d / "global_0.9", [(0, dense, 0.0, 0.0, []), (1, dense - 0.25, 0.89, 0.9, ["backbone.body.layer4.1.conv2.weight"])],
        1, seed, trained)
    run(d / "layer_0.9", [(0, dense, 0.0, 0.0, []), (1, dense - 0.12, 0.89, 0.9, [])], 1, seed, trained, scope="layer")
    eb = {"masks": [{"fraction": f, "step": int(120 * f), "file": f"eb_{f}.safetensors",
                     "iou_with_final": round(0.85 + 0.15 * f - 0.003 * seed, 4),
                     "hamming_to_final": round(0.03 * (1 - f), 4)} for f in (0.1, 0.5, 0.9)],
          "checks": [], "stopped_at": None}
    run(d / "early_bird", [(0, dense, 0.0, 0.0, []), (1, dense - 0.1, 0.79, 0.8, [])], 1, seed, early_bird=eb)
    # An unfinished run: results.py names it and leaves it out.
    (d / "channel" / "level_0").mkdir(parents=True, exist_ok=True)
    write(d / "channel" / "run.json", {"rounds": 1, "seed": seed})


def transfer(root, seed):
    d = root / "transfer" / "w8" / f"seed_{seed}"
    run(d / "cls_ticket", [(0, 0.97 + 0.002 * seed, 0.0, 0.0, []), (1, 0.96 + 0.003 * seed, 0.79, 0.8, [])], 1, seed,
        top1=True)
    pre = 0.30 + 0.03 * seed
    run(d / "direct", [(0, pre, 0.0, 0.0, []), (1, pre - 0.02, 0.31, 0.8, [])], 1, seed)
    run(d / "late_reset", [(0, pre, 0.0, 0.0, []), (1, pre - 0.015 + 0.004 * seed, 0.31, 0.8, [])], 1, seed)
    run(d / "transfer_ticket", [(0, 0.05, 0.31, 0.0, []), (1, pre - 0.06, 0.31, 0.0, [])], 1, seed)
    run(d / "mask_transfer", [(0, 0.06, 0.31, 0.0, []), (1, pre - 0.03 - 0.005 * seed, 0.31, 0.0, [])], 1, seed)


def main():
    root = Path(sys.argv[1])
    for seed in (1, 2):
        faster(root, seed)
        transfer(root, seed)


if __name__ == "__main__":
    main()
