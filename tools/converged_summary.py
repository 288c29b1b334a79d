#!/usr/bin/env python3
"""Claim (a) against dense models trained 1× to 64× as long (the plateau checks), with the lottery controls: the tables of
tools/converged_study.sh's runs (DIR/seed_*/{ticket,dense_2x,dense_4x,dense_8x,dense_16x,dense_32x,dense_64x,random_reinit,random_mask,ticket_2x,ticket_4x,ticket_8x,ticket_16x,
random_reinit_8x,random_mask_8x,random_reinit_16x,random_mask_16x,
layer_80,global_90,layer_90,iterative,early_bird,modules_*,mask_ticket,task_transfer}, dense_16x_clip (dense_32x_clip, dense_64x_clip): a diverged
dense_16x (dense_32x, dense_64x) run resumed with its gradients clipped (or a collapsed one trained again clipped), and dense_2x_rerun/dense_4x_rerun: those runs trained again at one
thread, the repeatability check), bbox AP on the
held-out images, mean ± std over the seeds, and every paired difference with its 95% t interval and verdict; claim (e)
from the early_bird runs' masks.

    python3 tools/converged_summary.py out/converged
    python3 tools/converged_summary.py docs/results/converged/runs.tar.gz   # the committed runs (tools/pack_runs.py)
    python3 tools/converged_summary.py --test docs/results/converged/runs.tar.gz

With --test, the same tables from the scores on the larger held-out test set (tools/test_scores.sh: eval_test.json
beside each model) in place of the validation scores; a run not scored there yet is left out, and the sections that
only the validation set has (the curves over training, the early-bird masks, App. B's Mask R-CNN) are not printed.

A verdict says "holds" only when the interval excludes the contrary, "fails" when it excludes the claim, and
"inside the noise" otherwise. Python 3.11 standard library only.
"""
import json
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import pack_runs  # noqa: E402
from distill_summary import ci, test_size  # noqa: E402

KEYS = [("ap", "AP"), ("ap50", "AP50"), ("ap75", "AP75"), ("ap_small", "AP small"), ("ap_medium", "AP medium")]
# One AP point: the paper's "matches", and the plateau rule (doubling the steps gains less than this).
POINT = 0.01


# Which scores the tables read: "val" (the study's validation set, in summary.json and eval.json) or "test" (the
# larger held-out set of tools/test_scores.sh, in eval_test.json).
SET = "val"


def level_row(run, level):
    rows = json.loads((run / "summary.json").read_text())["levels"]
    return next(r for r in rows if r["level"] == level)


def imp_scores(run, level):
    return level_row(run, level)["scores"]["bbox"]


def eval_scores(path):
    """`ticket eval --json`'s summary with the names summary.json uses."""
    s = json.loads(path.read_text())["summary"]
    names = {"AP": "ap", "AP50": "ap50", "AP75": "ap75", "APs": "ap_small", "APm": "ap_medium", "APl": "ap_large"}
    return {names.get(k, k): v for k, v in s.items()}


def run_scores(run, level=None):
    """The scores of a finished run on the tables' set: a dense run's (level None) or an imp run's level; None where
    the test set has not scored it yet."""
    if SET == "val":
        return eval_scores(run / "eval.json") if level is None else imp_scores(run, level)
    path = run / "eval_test.json" if level is None else run / f"level_{level}" / "eval_test.json"
    return eval_scores(path) if path.exists() else None


def curve(run, level):
    path = run / f"level_{level}" / "val_curve.jsonl"
    if not path.exists():
        return {}
    points = (json.loads(line) for line in path.read_text().splitlines() if line.strip())
    return {p["step"]: p["scores"]["bbox"]["ap"] for p in points}


def seed_dirs(parent):
    """PARENT/seed_* in seed order (seed_10 after seed_9)."""
    return sorted(parent.glob("seed_*"), key=lambda p: int(p.name.split("_")[1]))


def mean_std(v):
    return "–" if not v else f"{statistics.mean(v):.3f}" + (f" ± {statistics.stdev(v):.3f}" if len(v) > 1 else "")


def cell(vals):
    """Mean ± std of the numbers present (a missing AP is −1 or null in the run files)."""
    return mean_std([x for x in vals if isinstance(x, (int, float)) and x >= 0])


def verdict(d, above):
    """The claim `difference > above`: holds when the interval lies above, fails when it lies below."""
    m, h = ci(d)
    if h is None:
        return "one seed: no verdict"
    return "holds" if m - h > above else "fails" if m + h < above else "inside the noise"


def fmt_ci(d):
    m, h = ci(d)
    return f"{m:+.3f}" if h is None else f"{m:+.3f} ± {statistics.stdev(d):.3f} [{m - h:+.3f}, {m + h:+.3f}]"


def load(root):
    arms = {}  # arm -> {seed: scores}
    curves = {}  # arm -> {seed: {step: ap}}
    steps = {}
    scored = {}  # dense_kx -> {seed: its AP as imp scored it (the kx ticket's level 0) − as ticket eval did}

    def put(arm, seed, scores):
        if scores is not None:
            arms.setdefault(arm, {})[seed] = scores
    for s in seed_dirs(root):
        t = s / "ticket"
        if not (t / "summary.json").exists():
            continue
        put("dense", s.name, run_scores(t, 0))
        put("ticket", s.name, run_scores(t, 1))
        curves.setdefault("dense", {})[s.name] = curve(t, 0)
        curves.setdefault("ticket", {})[s.name] = curve(t, 1)
        steps["dense"] = steps["ticket"] = json.loads((t / "run.json").read_text())["dense_steps"]
        dense_val = imp_scores(t, 0)["ap"]
        for k, arm in [(2, "dense_2x"), (4, "dense_4x"), (8, "dense_8x"), (16, "dense_16x"), (16, "dense_16x_clip"),
                       (32, "dense_32x"), (32, "dense_32x_clip"), (64, "dense_64x"), (64, "dense_64x_clip"),
                       (2, "dense_2x_rerun"), (4, "dense_4x_rerun")]:
            if (s / arm / "eval.json").exists():
                val = eval_scores(s / arm / "eval.json")
                # A longer dense run scoring below the seed's 4000-step dense model on the validation set has
                # collapsed (a finite loss spike it never came back from, so no clipped run took over): a row of its
                # own, out of the statistics of its length, on either set.
                row = f"{arm}_collapsed" if val["ap"] < dense_val else arm
                put(row, s.name, val if SET == "val" else run_scores(s / arm))
                steps[row] = k * steps["dense"]
        # Every seed's 16× (32×, 64×) dense model: the unclipped run, else the clipped one that took over from it.
        for k in [16, 32, 64]:
            for arm in [f"dense_{k}x", f"dense_{k}x_clip"]:
                if arm in arms and s.name in arms[arm]:
                    arms.setdefault(f"dense_{k}x_any", {})[s.name] = arms[arm][s.name]
                    break
        for k in [2, 4, 8, 16]:
            arm = f"ticket_{k}x"
            # Pruned from dense_kx, or from dense_kx_clip where that run diverged or collapsed and a clipped one took
            # over (as tools/converged_study.sh chooses).
            src = next((a for a in [f"dense_{k}x_clip", f"dense_{k}x"] if (s / a / "eval.json").exists()), None)
            if (s / arm / "summary.json").exists() and src and s.name in arms.get(src, {}):
                put(arm, s.name, run_scores(s / arm, 1))
                arms.setdefault(f"{arm}_source", {})[s.name] = arms[src][s.name]
                steps[arm] = k * steps["dense"]
                # Its level 0 is that dense model scored by imp: the number ticket eval gave, or the scoring differs.
                if SET == "val":
                    scored.setdefault(src, {})[s.name] = imp_scores(s / arm, 0)["ap"] - arms[src][s.name]["ap"]
        # The lottery controls of the longer tickets, drawn from the same dense model and trained as long.
        for k in [8, 16]:
            for arm in [f"random_reinit_{k}x", f"random_mask_{k}x"]:
                if (s / arm / "summary.json").exists():
                    put(arm, s.name, run_scores(s / arm, 1))
                    steps[arm] = k * steps["dense"]
        # The lottery controls, and claim (c): global against layer-wise magnitude pruning at 80 and 90%, all from
        # the seed's dense model, rewound to init and trained as long as it.
        for arm in ["random_reinit", "random_mask", "layer_80", "global_90", "layer_90"] + MODULES + ["task_transfer"]:
            if (s / arm / "summary.json").exists():
                put(arm, s.name, run_scores(s / arm, 1))
                steps[arm] = steps["dense"]
        # Claim (b): the iterative ticket's last level (3 levels of STEPS each after dense: dense_4x's compute).
        if (s / "iterative" / "summary.json").exists():
            last = json.loads((s / "iterative" / "summary.json").read_text())["levels"][-1]
            put("iterative", s.name, run_scores(s / "iterative", last["level"]))
            steps["iterative"] = f"{last['level']} × {steps['dense']}"
    return arms, curves, steps, scored


# The paper's Table 3: 80% of the weights of these modules pruned, cumulatively; the ticket prunes them all.
MODULES = ["modules_base", "modules_fpn", "modules_rpn"]
MODULE_SETS = {"modules_base": "base", "modules_fpn": "base, FPN", "modules_rpn": "base, FPN, RPN",
               "ticket": "base, FPN, RPN, box head and predictor (the ticket)"}

# Every arm's row name, in the order of the table's rows: the dense lengths together, then the longer tickets, the
# controls and the other pruning methods (a seed missing an arm must not move its row).
NAMES = {"dense": "dense", "ticket": "80% ticket (one-shot global, 5% floor, rewound to init)",
         "dense_2x": "dense, twice the steps (the ticket lineage's compute)",
         "dense_4x": "dense, four times the steps (the plateau check)",
         "dense_8x": "dense, eight times the steps (the plateau check of 4×)",
         "dense_16x": "dense, sixteen times the steps (the plateau check of 8×)",
         "dense_16x_clip": "dense, sixteen times the steps, resumed at step 37000 with the gradients clipped to norm 5 "
                           "(the seed whose unclipped run diverged)",
         "dense_32x": "dense, thirty-two times the steps (the plateau check of 16×)",
         "dense_32x_clip": "dense, thirty-two times the steps, trained again from init with the gradients clipped to norm "
                           "5 (a seed whose unclipped run collapsed)",
         "dense_32x_collapsed": "dense, thirty-two times the steps, collapsed (a seed whose loss jumped and never came back "
                                "down: it scores below its 4000-step dense model)",
         "dense_64x": "dense, sixty-four times the steps (the plateau check of 32×)",
         "dense_64x_clip": "dense, sixty-four times the steps, with the gradients clipped to norm 5 (a seed whose unclipped "
                           "run diverged or collapsed)",
         "dense_64x_collapsed": "dense, sixty-four times the steps, collapsed (a seed whose loss jumped and never came back "
                                "down: it scores below its 4000-step dense model)",
         "dense_2x_rerun": "dense, twice the steps, trained again at one thread (the repeatability check)",
         "dense_4x_rerun": "dense, four times the steps, trained again at one thread (the repeatability check)",
         "ticket_2x": "80% ticket of the 2× dense model, trained as long as it",
         "ticket_4x": "80% ticket of the 4× dense model, trained as long as it",
         "ticket_8x": "80% ticket of the 8× dense model, trained as long as it",
         "ticket_16x": "80% ticket of the 16× dense model (the clipped one where that diverged), trained as long as it",
         "random_reinit": "random re-init (ticket's mask)", "random_mask": "random mask (ticket's per-tensor densities)",
         "random_reinit_8x": "random re-init (the 8× ticket's mask)",
         "random_mask_8x": "random mask (the 8× ticket's per-tensor densities)",
         "random_reinit_16x": "random re-init (the 16× ticket's mask)",
         "random_mask_16x": "random mask (the 16× ticket's per-tensor densities)",
         "layer_80": "80% layer-wise (every tensor to 20%)", "global_90": "90% one-shot global, 5% floor",
         "layer_90": "90% layer-wise (every tensor to 10%)",
         **{m: f"80% of {MODULE_SETS[m]} pruned" for m in MODULES},
         "iterative": "80% iterative ticket (41, 66, 80%; 5% floor; each level rewound to init)",
         "task_transfer": "App. B: the Mask R-CNN 80% ticket's mask up to the box head, rewound to init"}
ROW_ORDER = list(NAMES)
# Arms paired in the differences only, as a difference names them.
LABELS = {"dense_16x_any": "dense_16x (clipped where it diverged)",
          "dense_32x_any": "dense_32x (clipped where it collapsed)",
          "dense_64x_any": "dense_64x (clipped where it diverged or collapsed)"}


def main(root, label=None):
    """The tables of the runs under `root`, headed by `label` (the archive they came from) or the folder."""
    root = Path(root)
    label = label or str(root)
    arms, curves, steps, scored = load(root)
    if not arms:
        sys.exit(f"{label}: no finished seed_*/ticket runs")
    seeds = [s.name for s in seed_dirs(root) if (s / "ticket" / "summary.json").exists()]
    if SET == "val":
        print(f"{label}: {len(seeds)} seeds ({', '.join(seeds)}); bbox AP on the held-out images\n")
    else:
        print(f"{label}: {len(seeds)} seeds ({', '.join(seeds)}); bbox AP on the test set ({test_size(root)}), the "
              f"models scored there so far\n")
    print("| model | training steps | " + " | ".join(k[1] for k in KEYS) + " | n |")
    print("|---|---|" + "---|" * len(KEYS) + "---|")
    # A longer ticket's *_source arm repeats the rows of the dense models it is pruned from: paired, not printed.
    for arm, per in sorted(((a, p) for a, p in arms.items() if a in NAMES), key=lambda kv: ROW_ORDER.index(kv[0])):
        cells = []
        for key, _ in KEYS:
            cells.append(cell([sc.get(key) for sc in per.values()]))
        print(f"| {NAMES[arm]} | {steps[arm]} | " + " | ".join(cells) + f" | {len(per)} |")

    def diff(a, b):
        return [arms[a][s]["ap"] - arms[b][s]["ap"] for s in seeds if s in arms.get(a, {}) and s in arms.get(b, {})]

    print("\nPaired by seed: mean ± std [95% t interval] of the AP difference, and the verdict on the claim\n")
    print("| difference | value | per seed | claim | verdict |\n|---|---|---|---|---|")
    rows = [("dense_2x", "dense", f"plateau: doubling the steps gains < {POINT}", lambda d: verdict([-x for x in d], -POINT)),
            ("dense_4x", "dense_2x", f"plateau: doubling again gains < {POINT}", lambda d: verdict([-x for x in d], -POINT)),
            ("dense_8x", "dense_4x", f"plateau: doubling a third time gains < {POINT}", lambda d: verdict([-x for x in d], -POINT)),
            ("dense_16x", "dense_8x", f"plateau: doubling a fourth time gains < {POINT}", lambda d: verdict([-x for x in d], -POINT)),
            ("dense_16x_any", "dense_8x", f"plateau, every seed: doubling a fourth time gains < {POINT}",
             lambda d: verdict([-x for x in d], -POINT)),
            ("dense_32x", "dense_16x", f"plateau: doubling a fifth time gains < {POINT}", lambda d: verdict([-x for x in d], -POINT)),
            ("dense_32x_any", "dense_16x_any", f"plateau, every seed: doubling a fifth time gains < {POINT}",
             lambda d: verdict([-x for x in d], -POINT)),
            ("dense_64x", "dense_32x", f"plateau: doubling a sixth time gains < {POINT}", lambda d: verdict([-x for x in d], -POINT)),
            ("dense_64x_any", "dense_32x_any", f"plateau, every seed: doubling a sixth time gains < {POINT}",
             lambda d: verdict([-x for x in d], -POINT)),
            ("dense_4x_rerun", "dense_2x_rerun", f"plateau, on the runs trained again: doubling again gains < {POINT}",
             lambda d: verdict([-x for x in d], -POINT)),
            ("dense_8x", "dense_4x_rerun", f"plateau, on the runs trained again: doubling a third time gains < {POINT}",
             lambda d: verdict([-x for x in d], -POINT)),
            ("ticket", "dense_2x", f"the ticket matches the compute-matched dense model (> −{POINT})", lambda d: verdict(d, -POINT)),
            ("ticket", "dense_4x", f"the ticket matches the longest-trained dense model (> −{POINT})", lambda d: verdict(d, -POINT)),
            ("ticket_2x", "dense_2x", f"the 2× ticket matches its dense model (> −{POINT})", lambda d: verdict(d, -POINT)),
            ("ticket_2x", "dense_4x", f"the 2× ticket matches the 4× dense model (> −{POINT})", lambda d: verdict(d, -POINT)),
            ("ticket_4x", "dense_4x", f"the 4× ticket matches its dense model (> −{POINT})", lambda d: verdict(d, -POINT)),
            ("ticket_4x", "dense_8x", f"the 4× ticket matches the 8× dense model (> −{POINT})", lambda d: verdict(d, -POINT)),
            ("ticket_8x", "dense_8x", f"the 8× ticket matches its dense model (> −{POINT})", lambda d: verdict(d, -POINT)),
            ("ticket_4x", "dense_16x", f"the 4× ticket matches the 16× dense model (> −{POINT})", lambda d: verdict(d, -POINT)),
            ("ticket_8x", "dense_16x", f"the 8× ticket matches the 16× dense model (> −{POINT})", lambda d: verdict(d, -POINT)),
            ("ticket_16x", "ticket_16x_source", f"the 16× ticket matches the dense model it is pruned from (> −{POINT})",
             lambda d: verdict(d, -POINT)),
            ("ticket_16x", "dense_16x", f"the 16× ticket matches the unclipped 16× dense model (> −{POINT})",
             lambda d: verdict(d, -POINT)),
            ("ticket_16x", "dense_32x", f"the 16× ticket matches the 32× dense model (> −{POINT})", lambda d: verdict(d, -POINT)),
            ("ticket_16x", "dense_32x_any", f"the 16× ticket matches the 32× dense model, every seed (> −{POINT})",
             lambda d: verdict(d, -POINT)),
            ("ticket_16x", "dense_64x_any", f"the 16× ticket matches the 64× dense model, every seed (> −{POINT})",
             lambda d: verdict(d, -POINT)),
            ("ticket", "dense", f"the ticket matches dense at equal steps (> −{POINT})", lambda d: verdict(d, -POINT)),
            ("ticket", "random_reinit", "the ticket beats random re-initialisation (> 0)", lambda d: verdict(d, 0.0)),
            ("ticket", "random_mask", "the ticket beats the random mask (> 0)", lambda d: verdict(d, 0.0)),
            ("ticket_8x", "random_reinit_8x", "the 8× ticket beats random re-initialisation (> 0)", lambda d: verdict(d, 0.0)),
            ("ticket_8x", "random_mask_8x", "the 8× ticket beats the random mask (> 0)", lambda d: verdict(d, 0.0)),
            ("random_reinit_8x", "dense_8x", f"random re-init at 8× matches dense_8x (> −{POINT})", lambda d: verdict(d, -POINT)),
            ("random_mask_8x", "dense_8x", f"the random mask at 8× matches dense_8x (> −{POINT})", lambda d: verdict(d, -POINT)),
            ("ticket_16x", "random_reinit_16x", "the 16× ticket beats random re-initialisation (> 0)", lambda d: verdict(d, 0.0)),
            ("ticket_16x", "random_mask_16x", "the 16× ticket beats the random mask (> 0)", lambda d: verdict(d, 0.0)),
            ("ticket", "layer_80", "(c) at 80%, global beats layer-wise (> 0)", lambda d: verdict(d, 0.0)),
            ("global_90", "layer_90", "(c) at 90%, global beats layer-wise (> 0)", lambda d: verdict(d, 0.0)),
            ("global_90", "dense", f"the 90% global ticket matches dense at equal steps (> −{POINT})", lambda d: verdict(d, -POINT)),
            ("layer_80", "dense", f"the 80% layer-wise ticket matches dense at equal steps (> −{POINT})",
             lambda d: verdict(d, -POINT)),
            ("ticket", "iterative", f"(b) one-shot matches or beats iterative (> −{POINT})", lambda d: verdict(d, -POINT)),
            ("ticket_2x", "iterative", f"(b) at equal lineage compute (4×), one-shot matches or beats iterative (> −{POINT})",
             lambda d: verdict(d, -POINT)),
            ("iterative", "dense", f"the iterative ticket matches dense at equal steps per level (> −{POINT})",
             lambda d: verdict(d, -POINT)),
            ("iterative", "dense_4x", f"the iterative ticket matches the compute-matched (4×) dense model (> −{POINT})",
             lambda d: verdict(d, -POINT)),
            ("task_transfer", "ticket", f"App. B: the task-transferred ticket matches the direct one (> −{POINT})",
             lambda d: verdict(d, -POINT)),
            ("task_transfer", "dense", f"App. B: the task-transferred ticket matches dense at equal steps (> −{POINT})",
             lambda d: verdict(d, -POINT))]
    for a, b, claim, judge in rows:
        d = diff(a, b)
        if d:
            # A *_source arm is, per seed, the dense model that seed's ticket is pruned from.
            b_name = "its dense model" if b.endswith("_source") else LABELS.get(b, b)
            print(f"| {LABELS.get(a, a)} − {b_name} | {fmt_ci(d)} | {', '.join(f'{x:+.3f}' for x in d)} | {claim} | {judge(d)} |")

    # The runs trained again at one thread from the same initialisation and data order: the same AP, or not repeatable.
    for arm in ["dense_2x", "dense_4x"]:
        again = arms.get(f"{arm}_rerun", {})
        if again:
            same = [s for s in again if again[s]["ap"] == arms[arm][s]["ap"]]
            moved = ", ".join(f"{s} {again[s]['ap'] - arms[arm][s]['ap']:+.4f}" for s in again if s not in same)
            print(f"\n{arm} trained again at one thread: the same AP bit for bit in {len(same)} of {len(again)} seeds"
                  + (f"; moved in {moved}" if moved else ""))

    for dense, per in scored.items():
        worst = max(abs(v) for v in per.values())
        print(f"\n{dense} scored by imp (the longer ticket's level 0) against ticket eval: largest |difference| {worst:.2e} AP "
              f"over {len(per)} seeds")

    if SET == "test":  # the curves over training, the early-bird masks and App. B's Mask R-CNN: validation only
        modules(root, seeds, arms)
        return
    # (h): validation AP over training, dense and ticket, mean over the seeds with the point.
    pts = sorted({st for arm in curves.values() for c in arm.values() for st in c})
    if pts:
        print("\nValidation AP over training (mean over seeds; the last point is the end of training)\n")
        print("| step | dense | ticket | ticket − dense [95% t interval] |\n|---|---|---|---|")
        for st in pts:
            d = [curves["dense"][s][st] for s in seeds if st in curves["dense"].get(s, {})]
            t = [curves["ticket"][s][st] for s in seeds if st in curves["ticket"].get(s, {})]
            p = [curves["ticket"][s][st] - curves["dense"][s][st] for s in seeds
                 if st in curves["dense"].get(s, {}) and st in curves["ticket"].get(s, {})]
            m, h = ci(p) if p else (None, None)
            pd = "–" if m is None else f"{m:+.3f}" + ("" if h is None else f" [{m - h:+.3f}, {m + h:+.3f}]")
            print(f"| {st} | {statistics.mean(d):.3f} | {statistics.mean(t):.3f} | {pd} |" if d and t else f"| {st} | – | – | – |")
        # The first curve point at which each run reaches 90% of its own seed's final dense AP.
        reach = {}
        for arm in ["dense", "ticket"]:
            reach[arm] = []
            for s in seeds:
                goal = 0.9 * arms["dense"][s]["ap"]
                c = curves[arm].get(s, {})
                hit = [st for st in sorted(c) if c[st] >= goal]
                if hit:
                    reach[arm].append(hit[0])
        if reach["dense"] and reach["ticket"]:
            print(f"\nFirst validated step at ≥ 90% of the seed's final dense AP: dense {statistics.mean(reach['dense']):.0f} "
                  f"(per seed {reach['dense']}), ticket {statistics.mean(reach['ticket']):.0f} (per seed {reach['ticket']})")
    early_bird(root, seeds)
    modules(root, seeds, arms)
    task_source(root, seeds)


def task_source(root, seeds):
    """App. B's source: each seed's Mask R-CNN, dense and its 80% ticket (bbox and segm AP), and how much of the
    Faster R-CNN the moved mask prunes against its own ticket."""
    have = [n for n in seeds if (root / n / "mask_ticket" / "summary.json").exists()]
    if not have:
        return
    print(f"\nApp. B's source: the Mask R-CNN of the same init seed, dense and its 80% ticket ({len(have)} seeds)\n")
    print("| | bbox AP | segm AP |\n|---|---|---|")
    for lv, what in [(0, "Mask R-CNN dense"), (1, "Mask R-CNN 80% ticket")]:
        rows = [level_row(root / n / "mask_ticket", lv)["scores"] for n in have]
        print(f"| {what} | {cell([r['bbox']['ap'] for r in rows])} | {cell([r['segm']['ap'] for r in rows])} |")
    d = [level_row(root / n / "mask_ticket", 1)["scores"]["segm"]["ap"] - level_row(root / n / "mask_ticket", 0)["scores"]["segm"]["ap"]
         for n in have]
    print(f"\nThe Mask R-CNN ticket − its dense model, segm AP: {fmt_ci(d)}")
    moved = [n for n in have if (root / n / "task_transfer" / "summary.json").exists()]
    if moved:
        sp = [level_row(root / n / "task_transfer", 1)["network_sparsity"] for n in moved]
        own = [level_row(root / n / "ticket", 1)["network_sparsity"] for n in moved]
        print(f"Network sparsity of the Faster R-CNN under the moved mask {statistics.mean(sp):.3f}, under its own ticket's "
              f"{statistics.mean(own):.3f}")


def modules(root, seeds, arms):
    """The paper's Table 3: which modules can lose 80% of their weights, each set against dense at equal steps."""
    have = [m for m in MODULES if m in arms]
    if not have:
        return
    print("\nModules (Table 3): 80% of the named modules' weights pruned (global, 5% floor), rewound to init, trained as long "
          "as dense; paired against dense\n")
    print("| pruned modules | network sparsity | AP | AP − dense [95% t interval] | per seed | matches dense (> −0.01) | "
          "beats dense (> 0) |")
    print("|---|---|---|---|---|---|---|")
    for arm in have + ["ticket"]:
        per = arms[arm]
        sp = [level_row(root / name / arm, 1)["network_sparsity"] for name in per]
        d = [per[name]["ap"] - arms["dense"][name]["ap"] for name in seeds if name in per]
        ap = [sc["ap"] for sc in per.values()]
        print(f"| {MODULE_SETS[arm]} | {statistics.mean(sp):.3f} | {mean_std(ap)} | "
              f"{fmt_ci(d)} | {', '.join(f'{x:+.3f}' for x in d)} | {verdict(d, -POINT)} | {verdict(d, 0.0)} |")


def early_bird(root, seeds):
    """Claim (e): each early_bird run's masks drawn during dense training against its final mask, and the check
    that the run repeats the ticket run (same settings, one ORT thread) bit for bit."""
    iou, ham, step, same, chance, dense = {}, {}, {}, [], [], None
    for name in seeds:
        run, ticket = root / name / "early_bird", root / name / "ticket"
        if not (run / "summary.json").exists():
            continue
        dense = json.loads((run / "run.json").read_text())["dense_steps"]
        for m in json.loads((run / "summary.json").read_text())["early_bird"]["masks"]:
            f = m["fraction"]
            iou.setdefault(f, {})[name] = m["iou_with_final"]
            ham.setdefault(f, {})[name] = m["hamming_to_final"]
            step[f] = m["step"]
        same += [abs(imp_scores(run, lv)["ap"] - imp_scores(ticket, lv)["ap"]) for lv in (0, 1)]
        # For scale: the IoU a random mask with the final mask's per-tensor densities p has with it, in expectation
        # (Σ p²n / Σ (2p − p²)n over the tensors of n weights).
        tensors = json.loads((run / "level_1" / "metrics.json").read_text())["prune"]["tensors"]
        dens = [(t["kept"] / t["numel"], t["numel"]) for t in tensors]
        chance.append(sum(p * p * n for p, n in dens) / sum((2 * p - p * p) * n for p, n in dens))
    if not iou:
        return
    n = len(next(iter(iou.values())))
    print(f"\n(e) Early-bird masks: the 80% mask (5% floor) drawn from the dense weights at each fraction of its "
          f"{dense} training steps, against the one drawn at the end ({n} seeds)\n")
    print("| fraction of dense training | step | IoU with the final mask [95% t interval] | Hamming to final | IoU per seed |")
    print("|---|---|---|---|---|")
    for f in sorted(iou):
        v = list(iou[f].values())
        m, h = ci(v)
        cell = f"{m:.3f}" if h is None else f"{m:.3f} ± {statistics.stdev(v):.3f} [{m - h:.3f}, {m + h:.3f}]"
        hm = statistics.mean(ham[f].values())
        print(f"| {f:g} | {step[f]} | {cell} | {hm:.3f} | {', '.join(f'{x:.3f}' for x in v)} |")
    for th in (0.9, 0.96):
        hit = next((f for f in sorted(iou) if statistics.mean(iou[f].values()) >= th), None)
        print(f"\nFirst fraction with mean IoU ≥ {th:g}: " + ("none" if hit is None else f"{hit:g}"))
    print(f"\nA random mask with the final mask's per-tensor densities: IoU {statistics.mean(chance):.3f} with it in "
          f"expectation (mean over seeds)")
    print(f"\nearly_bird against the ticket run (levels 0 and 1): largest |difference| {max(same):.2e} AP over {n} seeds")


if __name__ == "__main__":
    args = sys.argv[1:]
    if args[:1] == ["--test"]:
        SET = "test"
        args = args[1:]
    pack_runs.on_runs(args[0] if args else "out/converged", main)
