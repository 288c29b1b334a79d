#!/usr/bin/env python3
"""Claim (g), small objects and rare categories suffer first: the tables of tools/claim_g.sh's runs
(DIR/faster/w8/seed_*/ticket: level 0 dense, level 1 the 80% ticket), per object size and per category, with every
paired difference's 95% t interval and verdict; then the paper's App. C on the same runs: the AP50 each TIDE error
type costs, dense against the ticket (on this set dense's AP50 is about 0.9, so the error types have room to show;
on the 128-px set it is 1.000 and every type costs nothing).

    python3 tools/claim_g_summary.py out/claim_g
    python3 tools/claim_g_summary.py docs/results/claim_g/runs.tar.gz   # the committed runs (tools/pack_runs.py)

Relative ΔAP = (ticket AP − dense AP) / dense AP, per seed. "Small suffers first" holds when the relative ΔAP of small
objects lies below that of medium and of large objects (the interval of the paired difference below 0); the rare
category is the one with the fewest boxes in the validation set (the set's `--rare-fraction` category). Python 3.11
standard library only.
"""
import json
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import pack_runs  # noqa: E402
from converged_summary import POINT, fmt_ci, level_row, mean_std, seed_dirs, verdict  # noqa: E402

SIZES = ["small", "medium", "large"]
# TIDE's six error types in its order, then its false-positive and false-negative oracles (which overlap them).
TIDE = ["Cls", "Loc", "Both", "Dupe", "Bkg", "Miss", "FP", "FN"]


def report(run, level):
    return json.loads((run / f"level_{level}" / "metrics.json").read_text())["reports"][0]


def load(root, arm="ticket"):
    """{seed: {level: (per-size AP, per-category (name, gt, AP))}} of the finished runs of ARM: level 0 is the
    seed's dense model (the ticket run's level 0, which the 90% arm starts from), level 1 ARM's ticket."""
    out = {}
    for s in seed_dirs(root / "faster" / "w8"):
        if not all((s / r / "summary.json").exists() for r in ("ticket", arm)):
            continue
        out[s.name] = {}
        for lv, run in ((0, s / "ticket"), (1, s / arm)):
            r = report(run, lv)
            size = {p["area"]: p["ap"] for p in r["per_size"]}
            size["all"] = r["summary"]["AP"]
            cats = {c["name"]: (c["gt"], c["ap"]) for c in r["per_category"]}
            out[s.name][lv] = (size, cats, r.get("tide") or {})
    return out


def scored(pairs):
    """The (ticket, dense) AP pairs both scored, with dense above 0 (a relative change needs it)."""
    return [(x, y) for x, y in pairs if x is not None and y is not None and x >= 0 and y > 0]


def rel(t, d):
    return (t - d) / d if d else None


def main(root, label=None):
    root = Path(root)
    runs = load(root)
    if not runs:
        sys.exit(f"{label or root}: no finished faster/w8/seed_*/ticket runs")
    tables(root, runs, "ticket", f"{label or root}: ", "the 80% ticket (level 1")
    runs90 = load(root, "ticket_90")
    if runs90:
        print()
        tables(root, runs90, "ticket_90", "90%: ", "the 90% ticket of the same dense model (ticket_90")


def tables(root, runs, arm, lead, what):
    seeds = list(runs)
    sparsity = statistics.mean(level_row(root / "faster" / "w8" / s / arm, 1)["network_sparsity"] for s in seeds)
    print(f"{lead}{len(seeds)} seeds ({', '.join(seeds)}); bbox AP on the held-out images, dense (level 0) "
          f"against {what}, network sparsity {sparsity:.3f})\n")
    print("| size | dense AP | ticket AP | ΔAP [95% t interval] | relative ΔAP [95% t interval] |\n|---|---|---|---|---|")
    rels = {}
    for a in ["all"] + SIZES:
        d = [runs[s][0][0].get(a) for s in seeds]
        t = [runs[s][1][0].get(a) for s in seeds]
        ok = scored(zip(t, d))
        rels[a] = [rel(x, y) for x, y in ok]
        if not ok:
            print(f"| {a} | – | – | – | – |")
            continue
        print(f"| {a} | {mean_std([y for _, y in ok])} | {mean_std([x for x, _ in ok])} | "
              f"{fmt_ci([x - y for x, y in ok])} | {fmt_ci(rels[a])} |")
    if len(rels["all"]) > 1:
        d = [x - y for x, y in scored((runs[s][1][0]["all"], runs[s][0][0]["all"]) for s in seeds)]
        print(f"\nThe ticket matches dense (ΔAP over all sizes > −0.01): {verdict(d, -POINT)}")
    rows = []
    for other in ["medium", "large"]:
        # Paired by seed: only when every seed has both sizes scored (a size without objects scores null).
        if len(rels["small"]) == len(rels[other]) == len(seeds):
            d = [x - y for x, y in zip(rels["small"], rels[other])]
            rows.append(f"| small − {other} | {fmt_ci(d)} | {', '.join(f'{x:+.3f}' for x in d)} | small objects lose "
                        f"more than {other} ones (< 0) | {verdict([-x for x in d], 0.0)} |")
    if rows:
        print("\n| difference of relative ΔAP | value | per seed | claim | verdict |\n|---|---|---|---|---|")
        print("\n".join(rows))

    names = sorted({n for s in seeds for n in runs[s][0][1]})
    gt = {n: statistics.mean(runs[s][0][1][n][0] for s in seeds if n in runs[s][0][1]) for n in names}
    rare = min(names, key=lambda n: gt[n])
    print("\n| category | boxes (val) | dense AP | ΔAP [95% t interval] | relative ΔAP [95% t interval] |\n|---|---|---|---|---|")
    crel = {}
    for n in sorted(names, key=lambda n: gt[n]):
        pairs = scored((runs[s][1][1][n][1], runs[s][0][1][n][1]) for s in seeds
                       if n in runs[s][0][1] and n in runs[s][1][1])
        crel[n] = [rel(x, y) for x, y in pairs]
        if pairs:
            print(f"| {n}{' (rare)' if n == rare else ''} | {gt[n]:.0f} | {mean_std([y for _, y in pairs])} | "
                  f"{fmt_ci([x - y for x, y in pairs])} | {fmt_ci(crel[n])} |")
    others = [n for n in names if n != rare]
    if len(crel[rare]) == len(seeds) and all(len(crel[n]) == len(seeds) for n in others):
        d = [crel[rare][i] - statistics.mean(crel[n][i] for n in others) for i in range(len(seeds))]
        print(f"\nRare ({rare}) − the other categories' mean, relative ΔAP: {fmt_ci(d)} (per seed "
              f"{', '.join(f'{x:+.3f}' for x in d)}); the rare category loses more (< 0): {verdict([-x for x in d], 0.0)}")
    tide(runs, seeds)


def tide(runs, seeds):
    """App. C: AP50 gained by fixing each error type (tidecv's ΔAP), dense and ticket, paired by seed."""
    if not all(runs[s][lv][2].get("delta_ap") for s in seeds for lv in (0, 1)):
        return
    base = [[runs[s][lv][2]["ap_base"] for s in seeds] for lv in (0, 1)]
    print(f"\nTIDE (App. C): AP50 each error type costs (fixing it would give back), at IoU 0.5; the AP50 TIDE starts "
          f"from: dense {mean_std(base[0])}, ticket {mean_std(base[1])}\n")
    print("| error type | dense | ticket | ticket − dense [95% t interval] | verdict (≠ 0) |\n|---|---|---|---|---|")
    for e in TIDE:
        d = [runs[s][0][2]["delta_ap"][e] for s in seeds]
        t = [runs[s][1][2]["delta_ap"][e] for s in seeds]
        diff = [x - y for x, y in zip(t, d)]
        more, less = verdict(diff, 0.0), verdict([-x for x in diff], 0.0)
        said = "costs more in the ticket" if more == "holds" else "costs less in the ticket" if less == "holds" else "inside the noise"
        print(f"| {e} | {mean_std(d)} | {mean_std(t)} | {fmt_ci(diff)} | {said} |")


if __name__ == "__main__":
    pack_runs.on_runs(sys.argv[1] if len(sys.argv) > 1 else "out/claim_g", main)
