"""Mean ± std over replicates of imp runs laid out by tools/imp_synth.sh: DIR/seed_*/{ticket,finetune}/.

Dense is level 0 of the ticket run, the ticket its level 1 (rewound to init), prune + fine-tune level 1 of the
finetune run. Prints a Markdown table per IoU type and whether the ticket wins (AP ≥ dense − one std of dense).
"""
import json
import statistics
import sys
from pathlib import Path


def rows(run):
    return json.loads((run / "summary.json").read_text())["levels"]


def main(root):
    root = Path(root)
    seeds = sorted(p for p in root.glob("seed_*") if (p / "ticket" / "summary.json").exists())
    if not seeds:
        sys.exit(f"{root}: no finished seed_*/ticket runs")
    methods = {"dense": [], "ticket (80%, rewound to init)": [], "prune + fine-tune (80%)": [], "iterative ticket (3 levels to 80%)": [], "channel ticket (55% of channels, rewound to init)": []}
    for s in seeds:
        t = rows(s / "ticket")
        methods["dense"].append(t[0])
        methods["ticket (80%, rewound to init)"].append(t[1])
        if (s / "finetune" / "summary.json").exists():
            methods["prune + fine-tune (80%)"].append(rows(s / "finetune")[1])
        if (s / "channel" / "summary.json").exists():
            methods["channel ticket (55% of channels, rewound to init)"].append(rows(s / "channel")[1])
        if (s / "iterative" / "summary.json").exists():
            methods["iterative ticket (3 levels to 80%)"].append(rows(s / "iterative")[-1])
    types = list(methods["dense"][0]["scores"])
    fmt = lambda v: f"{statistics.mean(v):.3f} ± {statistics.stdev(v):.3f}" if len(v) > 1 else (f"{v[0]:.3f}" if v else "-")
    print(f"{root}: {len(seeds)} seeds ({', '.join(s.name for s in seeds)})\n")
    for t in types:
        print(f"| {t} | sparsity | FLOPs cut | AP | AP50 | APs | training s | n |")
        print("|---|---|---|---|---|---|---|---|")
        for name, rs in methods.items():
            if not rs:
                continue
            ap = [r["scores"][t]["ap"] for r in rs]
            ap50 = [r["scores"][t]["ap50"] for r in rs]
            aps = [r["scores"][t]["ap_small"] for r in rs if r["scores"][t]["ap_small"] is not None]
            sp = statistics.mean(r["selected_sparsity"] for r in rs) if rs else 0
            secs = statistics.mean(r["train_s"] for r in rs) if rs else 0
            flops = [r.get("flops_removed") for r in rs if r.get("flops_removed") is not None]
            cut = f"{100 * statistics.mean(flops):.0f}%" if flops else "-"
            print(f"| {name} | {100 * sp:.0f}% | {cut} | {fmt(ap)} | {fmt(ap50)} | {fmt(aps)} | {secs:.0f} | {len(rs)} |")
        dense = [r["scores"][t]["ap"] for r in methods["dense"]]
        if len(dense) > 1:
            bar = statistics.mean(dense) - statistics.stdev(dense)
            print(f"\n{t}: dense − 1 std = {bar:.3f}; a method wins when its mean AP reaches that")
        for name, rs in methods.items():
            if name != "dense" and len(rs) > 1 and len(dense) > 1:
                m = statistics.mean(r["scores"][t]["ap"] for r in rs)
                print(f"{t}: {name}: {'wins' if m >= bar else 'does not win'} (mean AP {m:.3f}); "
                      f"layers > 99% pruned: {', '.join(sorted({c for r in rs for c in r['collapsed']})) or 'none'}")
        print()


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "out/imp_synth/faster/w8")
