#!/usr/bin/env python3
"""The tables of docs/RESULTS.md, computed from `ticket imp` run folders (issue #10, item 4).

Layout read (OUT is the results folder, e.g. /work/exp):

    OUT/faster/w8/seed_S/{ticket,finetune,iterative,channel,layer_0.8,global_0.9,layer_0.9,early_bird}/

Each is a `ticket imp` run folder (run.json, summary.json, level_L/{metrics.json,log.jsonl}). A run folder without
summary.json is unfinished: it is skipped (and named on stderr). Level 0 of `ticket` is the dense model trained from
init; the other runs (except `early_bird`) start from it with `--trained`, so their level 0 is the same dense model,
scored, not trained.

Prints Markdown to stdout: one section per claim of the paper, each a table of mean ± std over the seeds found (n),
plus one computed line saying what the numbers say. Missing runs give rows marked "n/a (missing)", never a crash.
Python 3.11 standard library only.
"""
import argparse
import json
import math
import statistics
import sys
from pathlib import Path

RUNS = ["ticket", "finetune", "iterative", "channel", "layer_0.8", "global_0.9", "layer_0.9", "global_0.8_floor", "early_bird",
        "task_transfer"]
# tools/transfer_synth.sh's runs, under OUT/transfer/w8/seed_S/ (claims d and f).
TRANSFER_RUNS = ["cls_ticket", "direct", "late_reset", "transfer_ticket", "mask_transfer"]
MISSING = "n/a (missing)"
WINDOWS = [(1, 100), (101, 300), (301, 600), (601, 1200)]
MA = 50
TIDE = ["Cls", "Loc", "Both", "Dupe", "Bkg", "Miss", "FP", "FN"]


def warn(msg):
    print(msg, file=sys.stderr)


def read_json(path):
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError) as e:
        warn(f"warning: cannot read {path}: {e}")
        return None


def dig(obj, *keys):
    """obj[k0][k1]... or None where any step is missing."""
    for k in keys:
        if isinstance(obj, dict):
            obj = obj.get(k)
        elif isinstance(obj, list) and isinstance(k, int) and -len(obj) <= k < len(obj):
            obj = obj[k]
        else:
            return None
        if obj is None:
            return None
    return obj


def num(v):
    return v if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) else None


# ---------------------------------------------------------------------------------------------------------------
# Statistics (own code: no numpy / scipy)

def mean_std(vals):
    vals = [v for v in vals if num(v) is not None]
    if not vals:
        return None, None, 0
    m = statistics.fmean(vals)
    s = statistics.stdev(vals) if len(vals) > 1 else None
    return m, s, len(vals)


def fmt(vals, signed=False, why=MISSING, pct=False, dec=3, unit=None):
    """'mean ± std' over the finite values (3 decimals; percent: 1); one value alone; `why` when there is none."""
    m, s, n = mean_std(vals)
    if n == 0:
        return why
    k, u = (100.0, "%") if pct else (1.0, "")
    unit = u if unit is None else unit
    d = 1 if pct else dec
    body = (f"{k * m:+.{d}f}" if signed else f"{k * m:.{d}f}") + unit
    if s is None:
        return body
    return body + f" ± {k * s:.{d}f}{unit}"


def noise(vals):
    """' (within seed noise)' when |mean| < std, else ''."""
    m, s, n = mean_std(vals)
    return " (within seed noise: |mean| < std)" if s is not None and abs(m) < s else ""


def pearson(x, y):
    pairs = [(a, b) for a, b in zip(x, y) if num(a) is not None and num(b) is not None]
    if len(pairs) < 3:
        return None
    xs, ys = [p[0] for p in pairs], [p[1] for p in pairs]
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    sxy = sum((a - mx) * (b - my) for a, b in pairs)
    sxx = sum((a - mx) ** 2 for a in xs)
    syy = sum((b - my) ** 2 for b in ys)
    if sxx <= 0 or syy <= 0:
        return None
    return sxy / math.sqrt(sxx * syy)


def ranks(xs):
    """Ranks 1..n, ties given their average rank."""
    order = sorted(range(len(xs)), key=lambda i: xs[i])
    r = [0.0] * len(xs)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and xs[order[j + 1]] == xs[order[i]]:
            j += 1
        for k in range(i, j + 1):
            r[order[k]] = (i + j) / 2 + 1
        i = j + 1
    return r


def spearman(x, y):
    pairs = [(a, b) for a, b in zip(x, y) if num(a) is not None and num(b) is not None]
    if len(pairs) < 3:
        return None
    return pearson(ranks([p[0] for p in pairs]), ranks([p[1] for p in pairs]))


def paired(a, b):
    """Per-seed a − b for the seeds where both are numbers."""
    return [x - y for x, y in zip(a, b) if num(x) is not None and num(y) is not None]


# ---------------------------------------------------------------------------------------------------------------
# Run folders

class Run:
    """A finished `ticket imp` run folder (summary.json present)."""

    def __init__(self, path):
        self.path = path
        self.summary = read_json(path / "summary.json")
        self.config = read_json(path / "run.json")
        self.summary = self.summary if isinstance(self.summary, dict) else {}
        self.config = self.config if isinstance(self.config, dict) else {}
        self.levels = {}
        for row in self.summary.get("levels") or []:
            if isinstance(row, dict) and isinstance(row.get("level"), int):
                self.levels[row["level"]] = row
        self._metrics = {}
        self._logs = {}

    def final_level(self):
        rounds = self.config.get("rounds")
        if isinstance(rounds, int) and rounds in self.levels:
            return rounds
        return max(self.levels) if self.levels else None

    def row(self, level):
        return self.levels.get(level)

    def score(self, level, key="ap", iou="bbox"):
        return num(dig(self.row(level), "scores", iou, key))

    def metrics(self, level):
        if level not in self._metrics:
            p = self.path / f"level_{level}" / "metrics.json"
            self._metrics[level] = read_json(p) if p.exists() else None
        return self._metrics[level]

    def report(self, level, iou="bbox"):
        for r in dig(self.metrics(level), "reports") or []:
            if isinstance(r, dict) and r.get("iou_type") == iou:
                return r
        return None

    def losses(self, level):
        """{step: loss} from level_L/log.jsonl (the last record of a step wins, for resumed runs); None if absent."""
        if level not in self._logs:
            p = self.path / f"level_{level}" / "log.jsonl"
            out = None
            if p.exists():
                out = {}
                try:
                    with p.open() as f:
                        for line in f:
                            line = line.strip()
                            if not line:
                                continue
                            try:
                                rec = json.loads(line)
                            except ValueError:
                                continue  # a half-written last line
                            s, l = rec.get("step"), num(rec.get("loss"))
                            if isinstance(s, int) and l is not None:
                                out[s] = l
                except OSError as e:
                    warn(f"warning: cannot read {p}: {e}")
                    out = None
            self._logs[level] = out
        return self._logs[level]


def holder(path):
    """', running (pid N)' when the .lock names a live process (Linux /proc), else ''."""
    try:
        pid = (path / ".lock").read_text().strip()
    except OSError:
        return ""
    return f", running (pid {pid})" if pid.isdigit() and Path(f"/proc/{pid}").exists() else ""


def run_status(path):
    """(Run or None, status text) for one expected run folder."""
    if not path.is_dir():
        return None, "missing"
    if not (path / "summary.json").exists():
        scored = sorted(int(p.name[6:]) for p in path.glob("level_*")
                        if p.name[6:].isdigit() and (p / "metrics.json").exists())
        cfg = read_json(path / "run.json") if (path / "run.json").exists() else None
        rounds = dig(cfg, "rounds")
        total = f"/{rounds + 1}" if isinstance(rounds, int) else ""
        return None, f"unfinished ({len(scored)}{total} levels scored{holder(path)})"
    run = Run(path)
    if not run.levels:
        return None, "unreadable summary.json"
    return run, "ok"


class Seed:
    def __init__(self, path, known=RUNS):
        self.path = path
        self.name = path.name
        self.runs, self.status = {}, {}
        names = list(known) + sorted(p.name for p in path.iterdir() if p.is_dir() and p.name not in known
                                     and (p / "run.json").is_file() and (p / "level_0").is_dir())
        for name in names:
            try:
                run, st = run_status(path / name)
            except Exception as e:  # never let one odd folder stop the report
                run, st = None, f"unreadable ({type(e).__name__})"
            self.status[name] = st
            if run is not None:
                self.runs[name] = run
            elif st != "missing":
                warn(f"skipping {path / name}: {st}")

    def get(self, name):
        return self.runs.get(name)

    def dense(self):
        """(Run, level 0) holding the dense model: ticket's, else level 0 of a run that started from it."""
        if "ticket" in self.runs and 0 in self.runs["ticket"].levels:
            return self.runs["ticket"]
        for name in ["finetune", "iterative", "channel", "layer_0.8", "global_0.9", "layer_0.9"]:
            r = self.runs.get(name)
            if r is not None and 0 in r.levels and r.config.get("trained"):
                return r
        return None


def seed_key(p):
    tail = p.name.split("_", 1)[-1]
    return (0, int(tail), "") if tail.isdigit() else (1, 0, p.name)


def find_root(out, sub):
    out = Path(out)
    for cand in [out / sub, out]:
        if cand.is_dir() and any(p.is_dir() for p in cand.glob("seed_*")):
            return cand
    return None


# ---------------------------------------------------------------------------------------------------------------
# Table helpers

def table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


class Setting:
    """One (run, level) across seeds: per-seed rows aligned with the seed list (None where missing)."""

    def __init__(self, label, seeds, run, level=None):
        self.label, self.seeds, self.run_name = label, seeds, run
        self.per = []
        for s in seeds:
            r = s.dense() if run == "dense" else s.get(run)
            lv = 0 if run == "dense" else (r.final_level() if (r is not None and level == "final") else level)
            self.per.append((r, lv) if r is not None and lv in r.levels else None)
        self.n = sum(p is not None for p in self.per)

    def vals(self, fn):
        out = []
        for p in self.per:
            if p is None:
                out.append(None)
                continue
            try:
                out.append(fn(*p))
            except (KeyError, TypeError, ValueError, ZeroDivisionError):
                out.append(None)
        return out

    def score(self, key="ap", iou="bbox"):
        return self.vals(lambda r, lv: r.score(lv, key, iou))

    def rowval(self, key):
        return self.vals(lambda r, lv: num(dig(r.row(lv), key)))


def cell(setting, vals, **kw):
    return MISSING if setting.n == 0 else fmt(vals, **kw)


# ---------------------------------------------------------------------------------------------------------------
# Sections

def section_runs(root, seeds):
    print(f"# Results from `{root}`\n")
    print(f"Seeds found: {len(seeds)} ({', '.join(s.name for s in seeds) or 'none'}). "
          "Mean ± sample std over the seeds that have the run (n); AP is COCO bbox AP in [0, 1].\n")
    names = list(RUNS) + sorted({n for s in seeds for n in s.status if n not in RUNS})
    rows = [[n] + [s.status.get(n, "missing") for s in seeds] for n in names]
    print(table(["run"] + [s.name for s in seeds], rows))
    unf = [f"{s.name}/{n}" for s in seeds for n, st in s.status.items() if st not in ("ok", "missing")]
    mis = [f"{s.name}/{n}" for s in seeds for n, st in s.status.items() if st == "missing"]
    print(f"\nFinished runs: {sum(len(s.runs) for s in seeds)}. Left out below — unfinished or unreadable: "
          f"{', '.join(unf) if unf else 'none'}; missing: {', '.join(mis) if mis else 'none'}.\n")


def section_a(seeds):
    print("## (a) An 80% ticket matches the dense model\n")
    sets = [Setting("dense (ticket level 0)", seeds, "dense"),
            Setting("one-shot ticket 80% (ticket level 1)", seeds, "ticket", 1),
            Setting("iterative ticket 80% (iterative level 3)", seeds, "iterative", 3),
            Setting("one-shot ticket 80%, 5% floor per tensor (global_0.8_floor level 1)", seeds, "global_0.8_floor", 1),
            Setting("prune + fine-tune 80% (finetune level 1)", seeds, "finetune", 1),
            Setting("channel ticket (channel level 1)", seeds, "channel", 1)]
    dense = sets[0].score()
    rows, deltas = [], {}
    for st in sets:
        ap = st.score()
        d = paired(ap, dense) if st.run_name != "dense" else []
        deltas[st.label] = d
        per_seed = ", ".join("–" if a is None or b is None else f"{a - b:+.3f}" for a, b in zip(ap, dense))
        rows.append([st.label, cell(st, st.rowval("network_sparsity")), cell(st, st.rowval("flops_removed"), why="–"),
                     cell(st, ap), cell(st, st.score("ap50")), cell(st, st.score("ap75")),
                     "–" if st.run_name == "dense" else (fmt(d, signed=True) if d else MISSING),
                     "–" if st.run_name == "dense" or st.n == 0 else per_seed, st.n])
    print(table(["setting", "network sparsity", "FLOPs removed", "AP", "AP50", "AP75", "ΔAP vs dense",
                 "ΔAP per seed", "n"], rows))
    gate = None
    for s in seeds:
        gate = gate if gate is not None else num(dig(s.get("ticket").summary if s.get("ticket") else None,
                                                     "max_map_drop"))
    gate = 0.01 if gate is None else gate
    parts = []
    for st in sets[1:]:
        d = deltas[st.label]
        if not d:
            parts.append(f"{st.label.split(' (')[0]}: {MISSING}")
            continue
        m = statistics.fmean(d)
        verdict = "beats dense" if m > gate else ("matches dense" if m >= -gate else "below dense")
        ok = sum(x >= -gate for x in d)
        parts.append(f"{st.label.split(' (')[0]} − dense = {fmt(d, signed=True)} AP ({verdict}; "
                     f"within the gate or above in {ok}/{len(d)} seeds)")
    print(f"\n**Says:** {'; '.join(parts)}. Gate: ΔAP ≥ −{gate:g} (the runs' max_map_drop); "
          f"\"matches\" = mean ΔAP within ±{gate:g}.\n")


def section_b(seeds):
    print("## (b) One-shot vs iterative pruning at the same sparsity\n")
    dense = Setting("dense", seeds, "dense")
    sets = [Setting("dense (level 0)", seeds, "dense")]
    levels = set()
    for s in seeds:
        r = s.get("iterative")
        if r:
            levels |= {lv for lv in r.levels if lv > 0}
    for lv in sorted(levels) or [1, 2, 3]:
        sets.append(Setting(f"iterative level {lv}", seeds, "iterative", lv))
    sets.append(Setting("one-shot level 1 (80%)", seeds, "ticket", 1))
    rows = []
    for st in sets:
        ap = st.score()
        rows.append([st.label, cell(st, st.rowval("selected_sparsity")), cell(st, st.rowval("network_sparsity")),
                     cell(st, ap), cell(st, st.score("ap50")),
                     "–" if st.run_name == "dense" else (fmt(paired(ap, dense.score()), signed=True)
                                                         if st.n else MISSING),
                     cell(st, st.rowval("steps"), dec=0), st.n])
    print(table(["setting", "selected sparsity", "network sparsity", "AP", "AP50", "ΔAP vs dense",
                 "training steps", "n"], rows))
    it = Setting("", seeds, "iterative", 3).score()
    one = Setting("", seeds, "ticket", 1).score()
    d = paired(it, one)
    d50 = paired(Setting("", seeds, "iterative", 3).score("ap50"), Setting("", seeds, "ticket", 1).score("ap50"))
    if d:
        wins = sum(x > 0 for x in d)
        print(f"\n**Says:** iterative − one-shot at 80% = {fmt(d, signed=True)} AP ({fmt(d50, signed=True)} AP50, "
              f"n={len(d)}), iterative better in {wins}/{len(d)} seeds{noise(d)}.\n")
    else:
        print(f"\n**Says:** iterative − one-shot at 80%: {MISSING} (needs both runs in a seed).\n")
    fl = paired(it, Setting("", seeds, "global_0.8_floor", 1).score())
    if fl:
        print(f"**And** against the one-shot ticket whose layers keep at least 5% (global_0.8_floor): iterative − one-shot = "
              f"{fmt(fl, signed=True)} AP (n={len(fl)}), iterative better in {sum(x > 0 for x in fl)}/{len(fl)} seeds{noise(fl)}.\n")


def section_c(seeds):
    print("## (c) Global vs layer-wise magnitude pruning\n")
    dense = Setting("dense", seeds, "dense").score()
    sets = [("80%", Setting("global 80% (ticket level 1)", seeds, "ticket", 1),
             Setting("layer-wise 80% (layer_0.8)", seeds, "layer_0.8", 1)),
            ("90%", Setting("global 90% (global_0.9)", seeds, "global_0.9", 1),
             Setting("layer-wise 90% (layer_0.9)", seeds, "layer_0.9", 1))]
    floor = Setting("global 80%, 5% floor per tensor (global_0.8_floor)", seeds, "global_0.8_floor", 1)
    rows = []
    for lab, g, l in sets:
        for st in (g, l) + ((floor,) if lab == "80%" else ()):
            coll = st.vals(lambda r, lv: len(r.row(lv).get("collapsed") or []))
            names = sorted({c for r, lv in (p for p in st.per if p) for c in (r.row(lv).get("collapsed") or [])})
            scope = {r.config.get("scope") for r, lv in (p for p in st.per if p)}
            rows.append([st.label, "/".join(sorted(str(x) for x in scope)) or "–",
                         cell(st, st.rowval("network_sparsity")), cell(st, st.score()),
                         fmt(paired(st.score(), dense), signed=True) if st.n else MISSING,
                         cell(st, coll, dec=1), ", ".join(names) if names else ("none" if st.n else "–"), st.n])
    print(table(["setting", "scope", "network sparsity", "AP", "ΔAP vs dense", "collapsed tensors",
                 "collapsed (union over seeds)", "n"], rows))
    parts = []
    for lab, g, l in sets:
        d = paired(g.score(), l.score())
        parts.append(f"global − layer-wise at {lab} = "
                     + (f"{fmt(d, signed=True)} AP (n={len(d)}, layer-wise better in {sum(x < 0 for x in d)}/{len(d)}"
                        f"){noise(d)}" if d else MISSING))
        cg = g.vals(lambda r, lv: len(r.row(lv).get("collapsed") or []))
        cl = l.vals(lambda r, lv: len(r.row(lv).get("collapsed") or []))
        if g.n and l.n:
            parts[-1] += f", collapsed tensors global {fmt(cg, dec=1)} vs layer-wise {fmt(cl, dec=1)}"
    d = paired(floor.score(), sets[0][2].score())
    if d:
        parts.append(f"global with a 5% floor − layer-wise at 80% = {fmt(d, signed=True)} AP (n={len(d)}, global better in "
                     f"{sum(x > 0 for x in d)}/{len(d)}){noise(d)}")
    print(f"\n**Says:** {'; '.join(parts)}.\n")


def section_transfer(root):
    """Claims (d) and (f): tools/transfer_synth.sh's runs under OUT/transfer/w8/seed_S/."""
    troot = root.parent.parent / "transfer" / root.name
    tseeds = [Seed(p, TRANSFER_RUNS) for p in sorted((p for p in troot.glob("seed_*") if p.is_dir()), key=seed_key)] \
        if troot.is_dir() else []
    print("## (d) Late resetting and (f) transfer from a classifier pretrained here\n")
    if not tseeds:
        print(f"No runs under {troot} (tools/transfer_synth.sh): {MISSING}.\n")
        return
    print(f"Runs from `{troot}`, seeds: {', '.join(s.name for s in tseeds)}.\n")
    cls = [Setting("classifier, pretrained (cls_ticket level 0)", tseeds, "cls_ticket", 0),
           Setting("classifier ticket 80% (cls_ticket level 1)", tseeds, "cls_ticket", 1)]
    rows = [[st.label, cell(st, st.rowval("network_sparsity")), cell(st, st.score(iou="top1")), st.n] for st in cls]
    print(table(["classifier", "network sparsity", "top-1 (held-out crops)", "n"], rows) + "\n")
    sets = [Setting("dense, pretrained backbone (direct level 0)", tseeds, "direct", 0),
            Setting("direct ticket: backbone 80%, rewound to the pretrained weights (direct level 1)", tseeds, "direct", 1),
            Setting("late resetting: the same, rewound to 5% of dense training (late_reset level 1)", tseeds, "late_reset", 1),
            Setting("transfer ticket: the classifier ticket's weights and mask (transfer_ticket level 1)", tseeds, "transfer_ticket", 1),
            Setting("mask transfer: its mask on the pretrained weights (mask_transfer level 1)", tseeds, "mask_transfer", 1)]
    direct = sets[1].score()
    rows = []
    for st in sets:
        ap = st.score()
        rows.append([st.label, cell(st, st.rowval("network_sparsity")), cell(st, ap), cell(st, st.score("ap50")),
                     "–" if st is sets[1] or st is sets[0] else (fmt(paired(ap, direct), signed=True) if st.n else MISSING), st.n])
    print(table(["setting", "network sparsity", "AP", "AP50", "ΔAP vs direct ticket", "n"], rows))
    parts = []
    for st, what in [(sets[2], "late resetting − rewinding to the pretrained weights"),
                     (sets[3], "transfer ticket − direct ticket"), (sets[4], "mask transfer − direct ticket")]:
        d = paired(st.score(), direct)
        parts.append(f"{what} = " + (f"{fmt(d, signed=True)} AP (n={len(d)}){noise(d)}" if d else MISSING))
    print(f"\n**Says:** {'; '.join(parts)}.\n")


def section_task_transfer(seeds):
    print("## App. B: task transfer (a Mask R-CNN ticket's mask on the Faster R-CNN)\n")
    sets = [Setting("dense Faster R-CNN (ticket level 0)", seeds, "dense"),
            Setting("direct: the Faster R-CNN's own 80% ticket (ticket level 1)", seeds, "ticket", 1),
            Setting("task transfer: the Mask R-CNN 80% ticket's mask up to the box head (task_transfer level 1)", seeds, "task_transfer", 1)]
    dense = sets[0].score()
    rows = [[st.label, cell(st, st.rowval("network_sparsity")), cell(st, st.score()), cell(st, st.score("ap50")),
             "–" if st is sets[0] else (fmt(paired(st.score(), dense), signed=True) if st.n else MISSING), st.n] for st in sets]
    print(table(["setting", "network sparsity", "AP", "AP50", "ΔAP vs dense", "n"], rows))
    d = paired(sets[2].score(), sets[1].score())
    print(f"\n**Says:** task transfer − direct = " + (f"{fmt(d, signed=True)} AP (n={len(d)}){noise(d)}" if d else MISSING) + ".\n")


def early_bird_report(run):
    eb = dig(run.metrics(0), "early_bird")
    if not eb or not eb.get("masks"):
        eb = run.summary.get("early_bird")
    return eb if isinstance(eb, dict) else None


def section_e(seeds):
    print("## (e) Early-bird masks\n")
    by_frac, steps, ham, stopped, found = {}, {}, {}, [], []
    for s in seeds:
        r = s.get("early_bird")
        eb = early_bird_report(r) if r else None
        if not eb:
            continue
        found.append(s.name)
        for m in eb.get("masks") or []:
            f = num(m.get("fraction"))
            if f is None:
                continue
            f = round(f, 6)
            by_frac.setdefault(f, {})[s.name] = num(m.get("iou_with_final"))
            ham.setdefault(f, {})[s.name] = num(m.get("hamming_to_final"))
            steps.setdefault(f, set()).add(m.get("step"))
        if eb.get("stopped_at") is not None:
            stopped.append(eb["stopped_at"])
    if not by_frac:
        print(f"IoU with the final mask: {MISSING} (no finished early_bird run with masks; "
              f"status: {', '.join(s.name + ' ' + s.status.get('early_bird', 'missing') for s in seeds)}).\n")
        return
    rows = []
    for f in sorted(by_frac):
        iou = list(by_frac[f].values())
        rows.append([f"{f:g}", "/".join(str(x) for x in sorted(steps[f], key=str)), fmt(iou),
                     fmt(list(ham[f].values())), ", ".join(f"{v:.3f}" if v is not None else "–"
                                                           for v in iou), len([v for v in iou if v is not None])])
    print(table(["fraction of dense training", "step", "IoU with final mask", "Hamming to final",
                 "IoU per seed", "n"], rows))

    def first(th):
        for f in sorted(by_frac):
            m, _, n = mean_std(list(by_frac[f].values()))
            if n and m >= th:
                return f
        return None

    def first_per_seed(th):
        out = []
        for name in found:
            hit = next((f for f in sorted(by_frac) if (by_frac[f].get(name) or -1) >= th), None)
            out.append(f"{name}: {hit:g}" if hit is not None else f"{name}: never")
        return ", ".join(out)

    parts = []
    for th in (0.9, 0.96):
        f = first(th)
        parts.append(f"first fraction with mean IoU ≥ {th:g}: " + (f"{f:g}" if f is not None else "none")
                     + f" (per seed: {first_per_seed(th)})")
    if stopped:
        parts.append(f"stop rule fired at step {fmt(stopped)}")
    print(f"\n**Says:** {'; '.join(parts)}; n={len(found)} seeds.\n")


def size_ap(run, level, area):
    v = run.score(level, f"ap_{area}")
    if v is None:
        for p in dig(run.report(level), "per_size") or []:
            if p.get("area") == area:
                v = num(p.get("ap"))
    return v


def section_g(seeds):
    print("## (g) Small objects and rare categories\n")
    dense = Setting("dense", seeds, "dense")
    tickets = [Setting("one-shot ticket (ticket L1)", seeds, "ticket", 1),
               Setting("one-shot ticket, 5% floor (global_0.8_floor L1)", seeds, "global_0.8_floor", 1),
               Setting("iterative ticket (iterative L3)", seeds, "iterative", 3)]
    rows, rel_by = [], {}
    dsz = {a: dense.vals(lambda r, lv, a=a: size_ap(r, lv, a)) for a in ("small", "medium", "large")}
    for a in ("small", "medium", "large"):
        rows.append(["dense", a, cell(dense, dsz[a], why="n/a (null)"), "–", "–", dense.n])
    for t in tickets:
        for a in ("small", "medium", "large"):
            ap = t.vals(lambda r, lv, a=a: size_ap(r, lv, a))
            d = paired(ap, dsz[a])
            rel_by[(t.label, a)] = [(x - y) / y if num(x) is not None and num(y) is not None and y else None
                                    for x, y in zip(ap, dsz[a])]
            rel = rel_by[(t.label, a)]
            why = MISSING if t.n == 0 else "n/a (null)"
            rows.append([t.label, a, fmt(ap, why=why), fmt(d, signed=True, why=why), fmt(rel, signed=True, pct=True,
                                                                                         why=why), t.n])
    print(table(["setting", "size", "AP", "ΔAP vs dense", "relative ΔAP (ΔAP / dense AP)", "n"], rows))
    parts = []
    for t in tickets:
        rs, rm = rel_by[(t.label, "small")], rel_by[(t.label, "medium")]
        diff = paired(rs, rm)
        if diff:
            m = statistics.fmean(diff)
            ds = paired(*[t.vals(lambda r, lv: size_ap(r, lv, "small")), dsz["small"]])
            dm = paired(*[t.vals(lambda r, lv: size_ap(r, lv, "medium")), dsz["medium"]])
            parts.append(f"{t.label.split(' (')[0]}: ΔAP small {fmt(ds, signed=True)} vs medium {fmt(dm, signed=True)};"
                         f" relative ΔAP small − medium = {fmt(diff, signed=True, pct=True, unit=' pp')}"
                         f" ({'small objects fare worse, as the paper claims' if m < 0 else 'small objects do not fare worse'}"
                         f"; small worse in {sum(x < 0 for x in diff)}/{len(diff)} seeds){noise(diff)}")
        else:
            parts.append(f"{t.label.split(' (')[0]}: {MISSING}")
    print(f"\n**Says:** {'; '.join(parts)}.\n")

    # Per category.
    cats = {}  # id -> (name, gt)

    def cat_ap(r, lv):
        out = {}
        for c in dig(r.report(lv), "per_category") or []:
            cid = c.get("id")
            if cid is None:
                continue
            cats.setdefault(cid, (c.get("name", str(cid)), c.get("gt")))
            out[cid] = num(c.get("ap"))
        return out

    dcat = dense.vals(cat_ap)
    tcat = [t.vals(cat_ap) for t in tickets]
    if not cats:
        print(f"Per-category AP: {MISSING} (no level metrics.json with per_category).\n")
        return
    ids = sorted(cats, key=lambda i: (cats[i][1] if isinstance(cats[i][1], int) else 0, str(i)))
    header = ["category", "gt boxes (val)", "dense AP"]
    for t in tickets:
        header += [f"{t.label.split(' (')[0]} ΔAP", "relative"]
    rows = []
    per_cat_delta = {t.label: {} for t in tickets}  # label -> cid -> [per-seed Δ]
    for cid in ids:
        name, gt = cats[cid]
        dv = [(d or {}).get(cid) if d is not None else None for d in dcat]
        row = [name, gt if gt is not None else "–", fmt(dv, why="n/a")]
        for t, tc in zip(tickets, tcat):
            tv = [(x or {}).get(cid) if x is not None else None for x in tc]
            d = paired(tv, dv)
            rel = [(a - b) / b for a, b in zip(tv, dv) if num(a) is not None and num(b) is not None and b]
            per_cat_delta[t.label][cid] = [a - b if num(a) is not None and num(b) is not None else None
                                           for a, b in zip(tv, dv)]
            row += [fmt(d, signed=True), fmt(rel, signed=True, pct=True)]
        rows.append(row)
    print(table(header, rows))
    print()
    crow, parts = [], []
    gts = [cats[c][1] if num(cats[c][1]) is not None else None for c in ids]
    for t in tickets:
        per_seed_s, per_seed_p = [], []
        for i in range(len(seeds)):
            ds = [per_cat_delta[t.label][c][i] for c in ids]
            per_seed_s.append(spearman(gts, ds))
            per_seed_p.append(pearson(gts, ds))
        means = [mean_std(per_cat_delta[t.label][c])[0] for c in ids]
        s_m, p_m = spearman(gts, means), pearson(gts, means)
        k = sum(1 for g, m in zip(gts, means) if g is not None and m is not None)
        crow.append([t.label, fmt(per_seed_s, signed=True, why="n/a"), fmt(per_seed_p, signed=True, why="n/a"),
                     f"{s_m:+.3f}" if s_m is not None else "n/a", f"{p_m:+.3f}" if p_m is not None else "n/a", k])
        if s_m is not None:
            parts.append(f"{t.label.split(' (')[0]}: Spearman {s_m:+.3f}, Pearson {p_m:+.3f} over {k} categories "
                         f"({'categories with fewer boxes fare worse' if s_m > 0 else 'categories with fewer boxes do not fare worse'})")
        else:
            parts.append(f"{t.label.split(' (')[0]}: correlation n/a")
    print(table(["setting", "Spearman(ΔAP, gt) per seed", "Pearson(ΔAP, gt) per seed",
                 "Spearman on seed-mean ΔAP", "Pearson on seed-mean ΔAP", "categories"], crow))
    print(f"\n**Says:** {'; '.join(parts)}. A positive correlation means categories with fewer boxes lose more AP; "
          f"with this few categories (and gt counts this close) it is weak evidence either way.\n")


def loss_stats(losses, ref_final):
    """Window means, final 50-step mean and the first step whose 50-step moving average < ref_final."""
    if not losses:
        return None
    out = {}
    for a, b in WINDOWS:
        v = [l for s, l in losses.items() if a <= s <= b]
        out[(a, b)] = statistics.fmean(v) if v else None
    steps = sorted(losses)
    tail = [losses[s] for s in steps[-MA:]]
    out["final"] = statistics.fmean(tail) if len(tail) >= 1 else None
    first = None
    if ref_final is not None and len(steps) >= MA:
        vals = [losses[s] for s in steps]
        acc = sum(vals[:MA])
        for i in range(MA - 1, len(vals)):
            if i >= MA:
                acc += vals[i] - vals[i - MA]
            if acc / MA < ref_final:
                first = steps[i]
                break
    out["first"] = first
    out["last_step"] = steps[-1]
    return out


def section_h(seeds):
    print("## (h) Convergence (training loss from log.jsonl)\n")
    specs = [("dense (ticket L0)", "ticket", 0), ("one-shot ticket (ticket L1)", "ticket", 1),
             ("one-shot ticket, 5% floor (global_0.8_floor L1)", "global_0.8_floor", 1),
             ("iterative ticket (iterative L3)", "iterative", 3)]
    res = {lab: [] for lab, _, _ in specs}
    for s in seeds:
        t = s.get("ticket")
        dl = t.losses(0) if t else None
        ref = loss_stats(dl, None)["final"] if dl else None
        for lab, run, lv in specs:
            r = s.get(run)
            res[lab].append(loss_stats(r.losses(lv), ref) if r and lv in r.levels else None)
    rows = []
    for lab, _, _ in specs:
        st = res[lab]
        n = sum(x is not None for x in st)
        row = [lab]
        for w in WINDOWS:
            row.append(fmt([x[w] if x else None for x in st], why=MISSING if n == 0 else "n/a (no steps)"))
        row.append(fmt([x["final"] if x else None for x in st]))
        firsts = [x["first"] for x in st if x and x["first"] is not None]
        never = sum(1 for x in st if x and x["first"] is None)
        if n == 0:
            row.append(MISSING)
        else:
            row.append((fmt(firsts, dec=0) if firsts else f"never ({never}/{n})")
                       + (f" ({never}/{n} never)" if never and firsts else ""))
        row.append(", ".join("–" if x is None else ("never" if x["first"] is None else str(x["first"])) for x in st))
        row.append(n)
        rows.append(row)
    print(table(["run"] + [f"loss {a}-{b}" for a, b in WINDOWS] + [f"final {MA}-step mean",
                f"first step {MA}-MA < dense final", "per seed", "n"], rows))
    parts = []
    base = res[specs[0][0]]
    for lab, _, _ in specs[1:]:
        f = [x["first"] for x in res[lab] if x and x["first"] is not None]
        never = sum(1 for x in res[lab] if x and x["first"] is None)
        n = sum(x is not None for x in res[lab])
        if n == 0:
            parts.append(f"{lab.split(' (')[0]}: {MISSING}")
            continue
        e = paired([x[WINDOWS[0]] if x else None for x in res[lab]], [x[WINDOWS[0]] if x else None for x in base])
        fin = paired([x["final"] if x else None for x in res[lab]], [x["final"] if x else None for x in base])
        parts.append(f"{lab.split(' (')[0]}: "
                     + (f"50-step mean loss reaches the dense final at step {fmt(f, dec=0)}" if f else
                        "50-step mean loss never reaches the dense final")
                     + (f" ({never}/{n} never)" if never and f else f" (n={n})")
                     + (f", loss − dense over steps 1-100 = {fmt(e, signed=True)}" if e else "")
                     + (f", final − dense = {fmt(fin, signed=True)}" if fin else ""))
    print(f"\n**Says:** {'; '.join(parts)}.\n")


def section_tide(seeds):
    print("## TIDE error breakdown (App. C, bbox, ΔAP50 from fixing each error type)\n")
    sets = [Setting("dense", seeds, "dense"), Setting("one-shot", seeds, "ticket", 1),
            Setting("iterative", seeds, "iterative", 3)]
    vals = {st.label: {e: st.vals(lambda r, lv, e=e: num(dig(r.report(lv), "tide", "delta_ap", e))) for e in TIDE}
            for st in sets}
    have = {st.label: sum(1 for v in vals[st.label]["Cls"] if v is not None) for st in sets}
    rows = []
    for e in TIDE:
        row = [e]
        for st in sets:
            row.append(fmt(vals[st.label][e], why=MISSING))
        for st in sets[1:]:
            row.append(fmt(paired(vals[st.label][e], vals["dense"][e]), signed=True, why=MISSING))
        rows.append(row)
    print(table(["error type"] + [f"{st.label} (n={have[st.label]})" for st in sets]
                + [f"{st.label} − dense" for st in sets[1:]], rows))
    parts = []
    for st in sets[1:]:
        ch = []
        for e in ["Cls", "Loc", "Both", "Dupe", "Bkg", "Miss"]:
            d = paired(vals[st.label][e], vals["dense"][e])
            if d:
                ch.append((abs(statistics.fmean(d)), e, d))
        fp = paired(vals[st.label]["FP"], vals["dense"]["FP"])
        fn = paired(vals[st.label]["FN"], vals["dense"]["FN"])
        if ch:
            ch.sort(reverse=True)
            top = ", ".join(f"{e} {fmt(d, signed=True)}" for _, e, d in ch[:2])
            parts.append(f"{st.label} − dense: FP {fmt(fp, signed=True)}, FN {fmt(fn, signed=True)}; "
                         f"largest changes among the main types: {top}")
        else:
            parts.append(f"{st.label}: {MISSING}")
    print(f"\n**Says:** {'; '.join(parts)}. Positive = that error type costs more AP50 than in the dense model.\n")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", help="results folder holding faster/w8/seed_*/ (or a folder of seed_* itself)")
    ap.add_argument("--sub", default="faster/w8", help="sub-folder of OUT with the seed_* folders (default faster/w8)")
    a = ap.parse_args(argv)
    root = find_root(a.out, a.sub)
    if root is None:
        print(f"# Results from `{a.out}`\n\nNo seed_* folders under {Path(a.out) / a.sub} or {a.out}: "
              f"{MISSING}.")
        warn(f"{a.out}: no seed_* folders found")
        return 0
    seeds = [Seed(p) for p in sorted((p for p in root.glob("seed_*") if p.is_dir()), key=seed_key)]
    section_runs(root, seeds)
    for sec in (section_a, section_b, section_c, section_e, section_g, section_h, section_tide, section_transfer, section_task_transfer):
        try:
            sec(root) if sec is section_transfer else sec(seeds)
        except Exception as e:  # a malformed file must not cost the other sections
            print(f"\n(section {sec.__name__} failed: {type(e).__name__}: {e})\n")
            warn(f"error in {sec.__name__}: {type(e).__name__}: {e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
