"""Benchmark (not a test): `ticket eval` (hotcoco) against pycocotools on the same synthetic files, same run.

    .venv/bin/python tools/bench_eval.py [--images 2000] [--categories 20] [--iou-type bbox segm] [--repeat 3]
                                        [--ticket target/release/ticket]

Writes a COCO ground truth (boxes + polygons, some crowds) and detections (boxes + compressed RLE masks) for
--images images, then times, as wall-clock medians over --repeat runs: `ticket eval --json` as a process
(everything: JSON load, matching, accumulate, per-category rows, TIDE unless --no-tide), the same with
--no-tide, pycocotools as a process (tools/coco_reference.py) and pycocotools in-process (load + evaluate +
accumulate + summarize, no interpreter start). Checks the summaries agree and prints the ratios.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np
from pycocotools import mask as mask_utils

HERE = os.path.dirname(os.path.abspath(__file__))


def polygon(box, rng, n=8):
    x, y, w, h = box
    a = np.sort(rng.uniform(0, 2 * np.pi, n))
    r = rng.uniform(0.7, 1.0, n)
    return [float(round(v, 2)) for xy in zip(x + w / 2 + np.cos(a) * r * w / 2, y + h / 2 + np.sin(a) * r * h / 2) for v in xy]


def make(n_images, n_cats, seed, masks):
    rng = np.random.default_rng(seed)
    images, anns, dets = [], [], []
    for i in range(1, n_images + 1):
        w, h = int(rng.integers(320, 641)), int(rng.integers(240, 481))
        images.append({"id": i, "file_name": f"{i:06d}.jpg", "width": w, "height": h})
        for _ in range(int(rng.integers(0, 16))):
            bw, bh = rng.uniform(8, w / 2), rng.uniform(8, h / 2)
            box = [float(rng.uniform(0, w - bw)), float(rng.uniform(0, h - bh)), float(bw), float(bh)]
            cat = int(rng.integers(1, n_cats + 1))
            crowd = int(rng.uniform() < 0.02)
            poly = polygon(box, rng)
            area = float(mask_utils.area(mask_utils.merge(mask_utils.frPyObjects([poly], h, w)))) if masks else bw * bh
            anns.append({"id": len(anns) + 1, "image_id": i, "category_id": cat, "bbox": box, "area": area, "iscrowd": crowd,
                         "segmentation": [poly]})
            for _ in range(int(rng.integers(0, 3))):
                j = [box[0] + rng.normal(0, 0.1 * bw), box[1] + rng.normal(0, 0.1 * bh), bw * np.exp(rng.normal(0, 0.1)), bh * np.exp(rng.normal(0, 0.1))]
                dets.append(det(i, cat if rng.uniform() < 0.9 else int(rng.integers(1, n_cats + 1)), j, rng, w, h, masks))
        for _ in range(int(rng.integers(0, 20))):
            bw, bh = rng.uniform(8, w / 3), rng.uniform(8, h / 3)
            dets.append(det(i, int(rng.integers(1, n_cats + 1)), [rng.uniform(0, w - bw), rng.uniform(0, h - bh), bw, bh], rng, w, h, masks))
    cats = [{"id": c, "name": f"class{c}"} for c in range(1, n_cats + 1)]
    return {"images": images, "annotations": anns, "categories": cats}, dets


def det(img, cat, box, rng, w, h, masks):
    x, y = max(0.0, float(box[0])), max(0.0, float(box[1]))
    bw, bh = max(1.0, min(float(box[2]), w - x)), max(1.0, min(float(box[3]), h - y))
    d = {"image_id": img, "category_id": cat, "bbox": [round(x, 2), round(y, 2), round(bw, 2), round(bh, 2)], "score": round(float(rng.uniform()), 6)}
    if masks:
        rle = mask_utils.merge(mask_utils.frPyObjects([polygon([x, y, bw, bh], rng)], h, w))
        d["segmentation"] = {"size": [h, w], "counts": rle["counts"].decode("ascii")}
    return d


def timed(cmd, repeat):
    """Median wall time of `cmd` over `repeat` runs, and each run's JSON output."""
    times, outs = [], []
    for _ in range(repeat):
        t = time.perf_counter()
        p = subprocess.run(cmd, capture_output=True, text=True)
        times.append(time.perf_counter() - t)
        if p.returncode != 0:
            sys.exit(f"{' '.join(cmd)} failed: {p.stderr}")
        outs.append(json.loads(p.stdout))
    return statistics.median(times), outs


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", type=int, default=2000)
    ap.add_argument("--categories", type=int, default=20)
    ap.add_argument("--iou-type", nargs="+", default=["bbox", "segm"], choices=["bbox", "segm"])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--ticket", default=os.path.join(HERE, "..", "target", "release", "ticket"))
    ap.add_argument("--write", metavar="DIR", help="only write DIR/gt.json and DIR/dets.json (any size), for tests")
    a = ap.parse_args()
    if a.write:
        gt, dets = make(a.images, a.categories, a.seed, "segm" in a.iou_type)
        for name, obj in [("gt.json", gt), ("dets.json", dets)]:
            with open(os.path.join(a.write, name), "w") as f:
                json.dump(obj, f)
        return
    if a.images < 1000:
        sys.exit("use at least 1000 images: smaller runs measure process start-up, not evaluation")
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        gt, dets = make(a.images, a.categories, a.seed, "segm" in a.iou_type)
        gt_path, dt_path = os.path.join(tmp, "gt.json"), os.path.join(tmp, "dets.json")
        with open(gt_path, "w") as f:
            json.dump(gt, f)
        with open(dt_path, "w") as f:
            json.dump(dets, f)
        print(f"{a.images} images, {len(gt['annotations'])} ground truths, {len(dets)} detections, {a.categories} categories "
              f"(generated in {time.perf_counter() - t:.1f} s); medians of {a.repeat} runs, cpus={os.cpu_count()}")
        rows = []
        for iou in a.iou_type:
            ticket_s, (ours, *_) = timed([a.ticket, "eval", "--coco", gt_path, "--dets", dt_path, "--iou-type", iou, "--json"], a.repeat)
            notide_s, _ = timed([a.ticket, "eval", "--coco", gt_path, "--dets", dt_path, "--iou-type", iou, "--no-tide", "--json"], a.repeat)
            ref_cmd = [sys.executable, os.path.join(HERE, "coco_reference.py"), gt_path, dt_path, "--iou-type", iou, "--time"]
            py_s, refs = timed(ref_cmd, a.repeat)
            ref = refs[-1]
            py_in = statistics.median(r["seconds"] for r in refs)
            got = [m["value"] if m["value"] is not None else -1.0 for m in ours["metrics"]]
            worst = max(abs(x - y) for x, y in zip(got, ref["stats"]))
            rows.append((iou, ticket_s, notide_s, py_s, py_in, worst))
        print(f"{'type':<6} {'ticket s':>9} {'no TIDE s':>10} {'pycocotools s':>14} {'(in-process)':>13} {'speed-up':>9} {'no TIDE':>8} {'max |diff|':>11}")
        for iou, ts, ns, ps, pi, worst in rows:
            print(f"{iou:<6} {ts:>9.3f} {ns:>10.3f} {ps:>14.3f} {pi:>13.3f} {ps / ts:>8.1f}x {ps / ns:>7.1f}x {worst:>11.1e}")


if __name__ == "__main__":
    main()
