"""pycocotools' COCO evaluation, the reference `ticket eval` is checked against (tests/eval_metrics.rs).

    coco_reference.py GT.json DETS.json --iou-type bbox|segm|keypoints [--renumber-gt-ids] [--time]

Prints one JSON object: the summary numbers in pycocotools' order ("stats"), their names, and per-category AP
(mean of precision[:, :, k, area=all, maxDets=last] over entries > -1, as pycocotools' summarize reads it).

Conventions that are the reference's, not ours, and that the caller must know about:
- keypoint evaluation is restricted to the categories that declare keypoints (pycocotools reads
  `num_keypoints` of every ground truth in the evaluated categories and raises KeyError on a box-only class);
- pycocotools' loadRes raises IndexError on an empty result list, so an empty list is loaded by hand;
- --renumber-gt-ids gives the ground-truth annotations ids 1..N (same data, no id 0): pycocotools stores matches
  as annotation ids with 0 meaning "unmatched", so a ground truth with id 0 is matched and then counted as
  unmatched. Renumbering is how the reference gives the right answer for such a file.
- summarize's np.mean adds in numpy's order, which changed: numpy 2.2 sums a contiguous array pairwise within
  blocks of 8192 values and adds the blocks left to right; numpy 2.4 sums it pairwise as a whole. A summary over
  more than 8192 precision values (10 IoUs x 101 recalls x 9+ categories) can differ by an ulp between the two.
  --whole-pairwise also reports the stats summed in numpy 2.4's order ("stats_whole_pairwise"), whatever numpy
  is installed.
"""
import argparse
import contextlib
import io
import json
import sys
import time

import numpy as np
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

NAMES = {
    "bbox": ["AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl"],
    "keypoints": ["AP", "AP50", "AP75", "APm", "APl", "AR", "AR50", "AR75", "ARm", "ARl"],
}
NAMES["segm"] = NAMES["bbox"]


def load_gt(path, renumber):
    with open(path) as f:
        data = json.load(f)
    if renumber:
        for i, a in enumerate(data["annotations"]):
            a["id"] = i + 1
    gt = COCO()
    gt.dataset = data
    with contextlib.redirect_stdout(io.StringIO()):
        gt.createIndex()
    return gt


def load_dets(gt, path):
    with open(path) as f:
        dets = json.load(f)
    if dets:
        with contextlib.redirect_stdout(io.StringIO()):
            return gt.loadRes(dets)
    dt = COCO()
    dt.dataset = {"images": list(gt.dataset["images"]), "categories": list(gt.dataset["categories"]), "annotations": []}
    with contextlib.redirect_stdout(io.StringIO()):
        dt.createIndex()
    return dt


def pairwise_sum(a):
    """numpy's pairwise_sum (loops_utils.h.src) over a whole list: serial below 8, 8 lanes up to 128, else halves."""
    n = len(a)
    if n < 8:
        s = 0.0
        for v in a:
            s += v
        return s
    if n <= 128:
        r = list(a[:8])
        end = n - n % 8
        for i in range(8, end, 8):
            for j in range(8):
                r[j] += a[i + j]
        s = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]))
        for i in range(end, n):
            s += a[i]
        return s
    half = n // 2
    half -= half % 8
    return pairwise_sum(a[:half]) + pairwise_sum(a[half:])


def stats_whole_pairwise(ev):
    """pycocotools' summarize, slice for slice, with the mean taken in numpy 2.4's order."""
    p = ev.params
    kp = p.iouType == "keypoints"
    rows = ([(1, None, "all"), (1, 0.5, "all"), (1, 0.75, "all"), (1, None, "medium"), (1, None, "large"),
             (0, None, "all"), (0, 0.5, "all"), (0, 0.75, "all"), (0, None, "medium"), (0, None, "large")] if kp else
            [(1, None, "all"), (1, 0.5, "all"), (1, 0.75, "all"), (1, None, "small"), (1, None, "medium"), (1, None, "large")])
    max_dets = [p.maxDets[0]] * 10 if kp else [100] * 6 + [1, 10, 100, 100, 100, 100]
    if not kp:
        rows += [(0, None, "all")] * 3 + [(0, None, "small"), (0, None, "medium"), (0, None, "large")]
    out = []
    for (ap, thr, area), md in zip(rows, max_dets):
        a = p.areaRngLbl.index(area)
        m = p.maxDets.index(md)
        s = ev.eval["precision"] if ap else ev.eval["recall"]
        if thr is not None:
            s = s[np.where(np.abs(thr - p.iouThrs) < 1e-12)[0]]
        s = s[:, :, :, a, m] if ap else s[:, :, a, m]
        v = [float(x) for x in s[s > -1]]
        out.append(pairwise_sum(v) / len(v) if v else -1.0)
    return out


def evaluate(gt, dt, iou_type):
    ev = COCOeval(gt, dt, iou_type)
    if iou_type == "keypoints":
        ev.params.catIds = sorted(c["id"] for c in gt.dataset["categories"] if c.get("keypoints"))
    with contextlib.redirect_stdout(io.StringIO()):
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return ev


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("gt")
    ap.add_argument("dets")
    ap.add_argument("--iou-type", default="bbox", choices=["bbox", "segm", "keypoints"])
    ap.add_argument("--renumber-gt-ids", action="store_true")
    ap.add_argument("--time", action="store_true", help="also report the wall time of load + evaluate")
    ap.add_argument("--whole-pairwise", action="store_true", help="also report the stats summed in numpy 2.4's order")
    a = ap.parse_args()
    t0 = time.perf_counter()
    gt = load_gt(a.gt, a.renumber_gt_ids)
    dt = load_dets(gt, a.dets)
    ev = evaluate(gt, dt, a.iou_type)
    seconds = time.perf_counter() - t0
    prec = ev.eval["precision"]
    per_cat = {}
    for k, cat_id in enumerate(ev.params.catIds):
        p = prec[:, :, k, 0, -1]
        p = p[p > -1]
        per_cat[str(cat_id)] = float(np.mean(p)) if p.size else -1.0
    out = {"iou_type": a.iou_type, "names": NAMES[a.iou_type], "stats": [float(s) for s in ev.stats], "per_category_ap": per_cat}
    if a.time:
        out["seconds"] = seconds
    if a.whole_pairwise:
        out["stats_whole_pairwise"] = stats_whole_pairwise(ev)
    json.dump(out, sys.stdout)
    print()


if __name__ == "__main__":
    main()
