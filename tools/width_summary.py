#!/usr/bin/env python3
"""The width study's tables (tools/width_study.sh's runs, DIR/w{W}/seed_*/s{50,80,90,95}): per base width, dense
and the one-shot tickets at 50, 80, 90 (and 95)% bbox AP on the held-out images, each ticket paired with its dense
model (level 0 of the s80 run) by seed, with the 95% t interval and the paper's "matches" (the interval's lower end
above −0.01); then the highest sparsity that matches and the sparsities run, per width.

    python3 tools/width_summary.py out/width
    python3 tools/width_summary.py docs/results/width/runs.tar.gz   # the committed runs (tools/pack_runs.py)

Python 3.11 standard library only.
"""
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import pack_runs  # noqa: E402
from converged_summary import POINT, fmt_ci, imp_scores, level_row, mean_std, seed_dirs, verdict  # noqa: E402

SPARSITIES = [50, 80, 90, 95]


def load(root):
    """{width: {seed: {"dense": ap, 50: (ap, network sparsity), …}}} of the finished runs."""
    out = {}
    for wdir in sorted(root.glob("w*"), key=lambda p: int(p.name[1:]) if p.name[1:].isdigit() else -1):
        if not wdir.name[1:].isdigit():
            continue
        per = {}
        for s in seed_dirs(wdir):
            if not (s / "s80" / "summary.json").exists():
                continue
            row = {"dense": imp_scores(s / "s80", 0)["ap"]}
            for p in SPARSITIES:
                run = s / f"s{p}"
                if (run / "summary.json").exists():
                    row[p] = (imp_scores(run, 1)["ap"], level_row(run, 1)["network_sparsity"])
            per[s.name] = row
        if per:
            out[int(wdir.name[1:])] = per
    return out


def main(root, label=None):
    root = Path(root)
    widths = load(root)
    if not widths:
        sys.exit(f"{label or root}: no finished w*/seed_*/s80 runs")
    print(f"{label or root}: bbox AP on the held-out images; every ticket one-shot global magnitude (5% floor per "
          "tensor), rewound to init, trained as long as its dense model; paired by seed\n")
    print("| width | sparsity | network sparsity | AP | ticket − dense [95% t interval] | per seed | matches dense "
          "(> −0.01) | n |")
    print("|---|---|---|---|---|---|---|---|")
    tolerated = {}
    for w, per in widths.items():
        dense = [r["dense"] for r in per.values()]
        print(f"| {w} | dense | 0 | {mean_std(dense)} | – | – | – | {len(dense)} |")
        for p in SPARSITIES:
            have = [r for r in per.values() if p in r]
            if not have:
                continue
            d = [r[p][0] - r["dense"] for r in have]
            v = verdict(d, -POINT)
            if v == "holds":
                tolerated[w] = p
            print(f"| {w} | {p}% | {statistics.mean(r[p][1] for r in have):.3f} | {mean_std([r[p][0] for r in have])} | "
                  f"{fmt_ci(d)} | {', '.join(f'{x:+.3f}' for x in d)} | {v} | {len(have)} |")
    print("\n| width | highest sparsity whose ticket matches dense | sparsities run |\n|---|---|---|")
    for w, per in widths.items():
        # Only the sparsities that were run at this width can be named (a study cut short runs 80% first).
        ran = ", ".join(f"{p}%" for p in SPARSITIES if any(p in r for r in per.values()))
        print(f"| {w} | {f'{tolerated[w]}%' if w in tolerated else 'none'} | {ran} |")


if __name__ == "__main__":
    pack_runs.on_runs(sys.argv[1] if len(sys.argv) > 1 else "out/width", main)
