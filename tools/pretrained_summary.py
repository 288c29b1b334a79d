#!/usr/bin/env python3
"""Claims (d) and (f) with a backbone pretrained here: the tables of tools/transfer_synth.sh's runs
(DIR/transfer/w8/seed_*/{cls_ticket,direct,late_reset,transfer_ticket,mask_transfer,random_init}), bbox AP on the
held-out images, mean ± std over the seeds, and every paired difference with its 95% t interval and verdict.

    python3 tools/pretrained_summary.py out/pretrained                       # tools/transfer_synth.sh's OUT
    python3 tools/pretrained_summary.py docs/results/pretrained/runs.tar.gz   # the committed runs (tools/pack_runs.py)

A verdict says "holds" only when the interval excludes the contrary, "fails" when it excludes the claim, and
"inside the noise" otherwise (converged_summary.py's rule). Python 3.11 standard library only.
"""
import json
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import pack_runs  # noqa: E402
from converged_summary import KEYS, POINT, cell, fmt_ci, level_row, seed_dirs, verdict  # noqa: E402

# (run, level, what it is)
ARMS = [("random_init", 0, "dense from random init (no pretraining)"),
        ("direct", 0, "dense from the pretrained body"),
        ("random_init", 1, "backbone-80% ticket from random init, rewound to it"),
        ("direct", 1, "direct ticket: backbone 80%, rewound to the pretrained weights"),
        ("late_reset", 1, "late resetting: the same mask, rewound to the end of the warm-up"),
        ("transfer_ticket", 1, "transfer ticket: the classifier ticket's weights and mask"),
        ("mask_transfer", 1, "mask transfer: the classifier ticket's mask on the pretrained weights")]
NAMES = {(r, lv): f"{r} L{lv}" for r, lv, _ in ARMS}
# (a, b, claim, the bound a − b must clear)
DIFFS = [(("direct", 0), ("random_init", 0), "the pretrained body helps the dense detector (> 0)", 0.0),
         (("direct", 1), ("random_init", 1), "the pretrained body helps the ticket (> 0)", 0.0),
         (("direct", 1), ("direct", 0), f"the direct ticket matches its dense model (> −{POINT})", -POINT),
         (("direct", 1), ("late_reset", 1), f"(d) rewinding to the pretrained weights matches late resetting (> −{POINT})",
          -POINT),
         (("late_reset", 1), ("direct", 1), "late resetting improves on rewinding to the pretrained weights (> 0)", 0.0),
         (("direct", 1), ("transfer_ticket", 1), "(f) direct pruning beats the transfer ticket (> 0)", 0.0),
         (("direct", 1), ("mask_transfer", 1), "(f) direct pruning beats the mask transfer (> 0)", 0.0)]


def load(root):
    """{(run, level): {seed: level row}} and the classifier's rows, for the seeds whose runs finished."""
    tdir = root / "transfer" / "w8"
    rows, cls = {}, {}
    for s in seed_dirs(tdir):
        # late_reset trains its own dense model (it rewinds to a step of that training): the direct run's, repeated.
        for run, level, _ in ARMS + [("late_reset", 0, "")]:
            if (s / run / "summary.json").exists():
                rows.setdefault((run, level), {})[s.name] = level_row(s / run, level)
        if (s / "cls_ticket" / "summary.json").exists():
            for lv in (0, 1):
                cls.setdefault(lv, {})[s.name] = level_row(s / "cls_ticket", lv)
    return rows, cls


def main(root, label=None):
    root = Path(root)
    rows, cls = load(root)
    if not rows:
        sys.exit(f"{label or root}: no finished transfer/w8/seed_*/ runs")
    seeds = sorted({s for per in rows.values() for s in per}, key=lambda n: int(n.split("_")[1]))
    print(f"{label or root}: {len(seeds)} seeds ({', '.join(seeds)}); bbox AP on the held-out images\n")
    if cls:
        print("| classifier | network sparsity | top-1 (held-out crops) | n |\n|---|---|---|---|")
        for lv, what in [(0, "pretrained (cls_ticket L0)"), (1, "its 80% ticket, fine-tuned (cls_ticket L1)")]:
            per = cls.get(lv, {}).values()
            print(f"| {what} | {cell([r['network_sparsity'] for r in per])} | "
                  f"{cell([r['scores']['top1']['ap'] for r in per])} | {len(per)} |")
        print()
    print("| detector | run | steps | network sparsity | " + " | ".join(k[1] for k in KEYS) + " | n |")
    print("|---|---|---|---|" + "---|" * len(KEYS) + "---|")
    for run, level, what in ARMS:
        per = rows.get((run, level), {})
        if not per:
            continue
        steps = sorted({r["steps"] for r in per.values()})
        sc = [r["scores"]["bbox"] for r in per.values()]
        print(f"| {what} | {NAMES[(run, level)]} | {'/'.join(map(str, steps))} | "
              f"{cell([r['network_sparsity'] for r in per.values()])} | "
              + " | ".join(cell([s.get(k) for s in sc]) for k, _ in KEYS) + f" | {len(per)} |")

    print("\nPaired by seed: mean ± std [95% t interval] of the AP difference, and the verdict on the claim\n")
    print("| difference | value | per seed | claim | verdict |\n|---|---|---|---|---|")
    for a, b, claim, bound in DIFFS:
        pa, pb = rows.get(a, {}), rows.get(b, {})
        d = [pa[s]["scores"]["bbox"]["ap"] - pb[s]["scores"]["bbox"]["ap"] for s in seeds if s in pa and s in pb]
        if d:
            print(f"| {NAMES[a]} − {NAMES[b]} | {fmt_ci(d)} | {', '.join(f'{x:+.3f}' for x in d)} | {claim} | "
                  f"{verdict(d, bound)} |")
    late, direct = rows.get(("late_reset", 0), {}), rows.get(("direct", 0), {})
    same = [abs(late[s]["scores"]["bbox"]["ap"] - direct[s]["scores"]["bbox"]["ap"]) for s in late if s in direct]
    if same:
        print(f"\nlate_reset's dense model (level 0) against direct's: largest |difference| {max(same):.2e} AP over "
              f"{len(same)} seeds")


if __name__ == "__main__":
    pack_runs.on_runs(sys.argv[1] if len(sys.argv) > 1 else "out/results", main)
