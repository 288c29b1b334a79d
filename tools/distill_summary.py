"""Mean ± std over the seeds of tools/distill_synth.sh's runs (DIR/seed_*/{labelled,unlabeled,channel,
channel_distill[_TERMS],channel[_distill[_TERMS]]_lN,channel_mixed_lN,channel_unlabeled,oneshot,dense_half,dense_lineage}), per IoU type,
and the paired differences the distillation goals are stated in, with 95% t intervals: (a) channel ticket − dense,
distilled and not (with every label, with N labels, with none; against the compute-matched dense model too);
(b) unlabeled recovery / labelled recovery; (c) the one-shot floor.

    python3 tools/distill_summary.py out/distill_synth/mask/w8
    python3 tools/distill_summary.py docs/results/distill/runs.tar.gz   # the committed runs (tools/pack_runs.py)
    python3 tools/distill_summary.py --test docs/results/distill/channel52_w16_16k/runs.tar.gz

With --test, the same tables from the scores on the larger held-out test set (tools/test_scores.sh: eval_test.json
beside each model; the teacher's in seed_*/dense/) in place of the validation scores; a model not scored there is
left out.
"""
import json
import re
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import pack_runs  # noqa: E402

LINEAGE = "dense, as long as the ticket's lineage"
# Which scores the tables read: "val" (summary.json and eval.json) or "test" (eval_test.json, tools/test_scores.sh).
SET = "val"
# Two-sided 95% t quantiles by degrees of freedom (n − 1).
T95 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262}


def level_scores(run, level):
    rows = json.loads((run / "summary.json").read_text())["levels"]
    return {t: s["ap"] for t, s in rows[level]["scores"].items()}, rows[level]


def recovered(run):
    """A recovery's scores (its level 1) on the tables' set; None where the test set has not scored it."""
    if SET == "val":
        return level_scores(run, 1)[0]
    path = run / "level_1" / "eval_test.json"
    return eval_scores(path) if path.exists() else None


def scored(folder):
    """A dense run's or a model's `ticket eval` scores on the tables' set (eval.json or eval_test.json), or None."""
    path = folder / ("eval.json" if SET == "val" else "eval_test.json")
    return eval_scores(path) if path.exists() else None


def eval_scores(path):
    """`ticket eval --json` of a model with several IoU types: {iou_type: report}; with one: the report."""
    v = json.loads(path.read_text())
    reports = [v] if "summary" in v else list(v.values())
    return {r["iou_type"]: r["summary"]["AP"] for r in reports}


def ci(d):
    """(mean, half-width of the two-sided 95% t interval); the half-width is None for one value."""
    m = statistics.mean(d)
    if len(d) < 2:
        return m, None
    return m, T95.get(len(d) - 1, 1.96) * statistics.stdev(d) / len(d) ** 0.5


def interval(d):
    m, h = ci(d)
    return f"{m:+.3f} (n = 1)" if h is None else f"{m:+.3f} [{m - h:+.3f}, {m + h:+.3f}]"


def arm_name(folder):
    """A channel arm's row: channel_distill_features_objectness → 'channel ticket, distilled (features, objectness)',
    channel_distill_l100 → 'channel ticket, 100 labels, distilled', channel_mixed_l20 → 'channel ticket, 20 labels
    + unlabeled images'."""
    stem, labels = re.fullmatch(r"(channel(?:_distill.*?|_mixed)?)(?:_l(\d+))?", folder).groups()
    name = "channel ticket" + (f", {labels} labels" if labels else "")
    if stem == "channel_mixed":
        return name + MIXED
    if stem == "channel_distill":
        return name + ", distilled"
    if stem.startswith("channel_distill_"):
        return name + f", distilled ({', '.join(stem.removeprefix('channel_distill_').split('_'))})"
    return name


# The suffix of a recovery from N labelled images beside the unlabeled ones (part m).
MIXED = " + unlabeled images"


def main(root, label=None):
    """The tables of the runs under `root`, headed by `label` (the archive they came from) or the folder."""
    root = Path(root)
    label = label or str(root)
    # A seed counts once its labelled recovery (parts b, c), its plain channel ticket (part a alone, with every label
    # or N) or its label-free channel ticket (part u) has finished.
    def first(p):
        done = [p / f for f in ["labelled", "channel"] if (p / f / "summary.json").exists()]
        done += sorted(f.parent for f in p.glob("channel_*/summary.json"))
        return next(iter(done), None)

    seeds = sorted(p for p in root.glob("seed_*") if first(p))
    if not seeds:
        sys.exit(f"{label}: no finished seed_*/labelled or seed_*/channel runs")
    runs = {}
    for s in seeds:
        # Every imp run's level 0 is the dense model (`--trained`), scored on the same validation set.
        # On the test set the teacher is scored where it lies, seed_*/dense/.
        r = {"dense": level_scores(first(s), 0)[0] if SET == "val" else scored(s / "dense")}
        arms = [("80% labelled fine-tune", "labelled"), ("80% from unlabeled images", "unlabeled"),
                ("channel ticket", "channel"), ("channel ticket, distilled", "channel_distill")]
        # EXTRA_DISTILL arms (channel_distill_TERM_TERM…, the terms of `--distill`), then the LABELS=N ones.
        arms += [(arm_name(f.name), f.name) for f in sorted(s.glob("channel_distill_*")) if not re.search(r"_l\d+$", f.name)]
        # Most labels first; at each count the plain recovery, then the distilled ones, then with unlabeled images.
        scarce = [f.name for f in s.glob("channel*_l*") if re.search(r"_l\d+$", f.name)]
        scarce.sort(key=lambda f: (-int(f.rsplit("_l", 1)[1]), "_mixed" in f, len(f), f))
        arms += [(arm_name(f), f) for f in scarce]
        arms += [("channel ticket, unlabeled images only", "channel_unlabeled")]
        for name, folder in arms:
            if (s / folder / "summary.json").exists():
                r[name] = recovered(s / folder)
        for name, folder in [("dense, half the steps", "dense_half"), (LINEAGE, "dense_lineage"),
                             ("80% one-shot, no retraining", "oneshot")]:
            r[name] = scored(s / folder)
        runs[s.name] = {name: v for name, v in r.items() if v is not None}
    flops = [level_scores(s / "channel", 1)[1].get("flops_removed") for s in seeds if (s / "channel" / "summary.json").exists()]
    print(f"{label}: {len(seeds)} seeds ({', '.join(runs)})" + ("" if SET == "val" else f"; on the test set ({test_size(root)})"))
    if flops:
        print(f"channel tickets remove {100 * statistics.mean(flops):.0f}% of the FLOPs")
    types = list(runs[seeds[0].name]["dense"])
    for t in types:
        print(f"\n| {t} AP | mean ± std | n |\n|---|---|---|")
        names = list(dict.fromkeys(n for r in runs.values() for n in r))
        for n in names:
            v = [r[n][t] for r in runs.values() if n in r and t in r[n]]
            sd = f" ± {statistics.stdev(v):.3f}" if len(v) > 1 else ""
            print(f"| {n} | {statistics.mean(v):.3f}{sd} | {len(v)} |")
        paired = lambda a, b: [r[a][t] - r[b][t] for r in runs.values() if a in r and b in r]  # noqa: E731
        print(f"\n{t}, paired by seed, mean [95% CI]:")
        for n in ["channel ticket, distilled", "channel ticket"]:
            if paired(n, "dense"):
                print(f"- (a) {n} − dense: {interval(paired(n, 'dense'))} (goal: within 1 AP point, > −0.010)")
        if paired("channel ticket, distilled", "channel ticket"):
            print(f"- (a) distilled − not distilled: {interval(paired('channel ticket, distilled', 'channel ticket'))}")
        for n in [n for n in names if n.startswith("channel ticket, distilled (")]:
            print(f"- (a) {n} − dense: {interval(paired(n, 'dense'))}")
            print(f"- (a) {n} − not distilled: {interval(paired(n, 'channel ticket'))}")
        # Scarce labels: each N-label arm against dense and against its plain N-label recovery; no labels at all.
        for n in [n for n in names if re.match(r"channel ticket, \d+ labels", n) and not n.endswith(MIXED)]:
            plain = ", ".join(n.split(", ")[:2])
            print(f"- {n} − dense: {interval(paired(n, 'dense'))}")
            if n != plain and paired(n, plain):
                print(f"- {n} − not distilled: {interval(paired(n, plain))}")
            if n == plain and paired(n, "channel ticket"):
                print(f"- {n} − every label: {interval(paired(n, 'channel ticket'))}")
        free = "channel ticket, unlabeled images only"
        # N labels beside the unlabeled images: against dense, every label, the N labels distilled alone, and no label.
        for n in [n for n in names if n.endswith(MIXED)]:
            for ref in ["dense", "channel ticket", n.removesuffix(MIXED) + ", distilled", free]:
                if paired(n, ref):
                    print(f"- {n} − {ref}: {interval(paired(n, ref))}")
        for ref in ["dense", "channel ticket"] + [m for m in names if re.fullmatch(r"channel ticket, \d+ labels", m)]:
            if paired(free, ref):
                print(f"- {free} − {ref}: {interval(paired(free, ref))}")
        ratio = [r["80% from unlabeled images"][t] / r["80% labelled fine-tune"][t] for r in runs.values()
                 if "80% from unlabeled images" in r and r["80% labelled fine-tune"][t] > 0]
        if ratio:
            print(f"- (b) unlabeled / labelled recovery: {interval(ratio)} (goal ≥ 0.90)")
        # The compute-matched reference (LINEAGE=1): every recovered channel ticket against it, and what doubling
        # dense's training gained (a plateau check too).
        for n in [n for n in names if n.startswith("channel ticket")]:
            if paired(n, LINEAGE):
                print(f"- {n} − {LINEAGE}: {interval(paired(n, LINEAGE))}")
        if paired(LINEAGE, "dense"):
            print(f"- {LINEAGE} − dense: {interval(paired(LINEAGE, 'dense'))} (converged: < 0.010)")
        if paired("dense", "dense, half the steps"):
            print(f"- dense − dense at half the steps: {interval(paired('dense', 'dense, half the steps'))} (converged: < 0.010)")
        if paired("80% one-shot, no retraining", "dense"):
            print(f"- (c) one-shot floor − dense: {interval(paired('80% one-shot, no retraining', 'dense'))}")


def test_size(root):
    """The test set's size as the first test score found records it."""
    e = json.loads(next(root.glob("seed_*/**/eval_test.json")).read_text())
    return f"{e['images']} images, {e['gt_annotations']} boxes"


if __name__ == "__main__":
    args = sys.argv[1:]
    if args[:1] == ["--test"]:
        SET = "test"
        args = args[1:]
    pack_runs.on_runs(args[0] if args else "out/distill_synth/mask/w8", main)
