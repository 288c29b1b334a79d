"""The Pascal VOC devkit's evaluation (py-faster-rcnn's voc_eval.py: parse_rec, voc_ap, voc_eval), the reference
`ticket eval --voc` is checked against (tests/eval_metrics.rs).

    voc_reference.py VOC_DIR DETS.json

VOC_DIR holds the xml files (or an Annotations/ folder of them). DETS.json is the list `ticket eval --voc` reads:
{image_id: file stem, category: class name, bbox: [x, y, w, h], score}, the box in the COCO frame of the same
pixels (xmin = x + 1, xmax = x + w, as hotcoco's voc_to_coco converts ground truth); the devkit's +1-pixel
arithmetic below then sees the box the detector meant. Prints {"classes": {name: {"npos", "ap_voc07", "ap_area"}}}
with null where the devkit would divide by zero (no non-difficult object).
"""
import json
import os
import sys
import xml.etree.ElementTree as ET

import numpy as np


def parse_rec(filename):
    tree = ET.parse(filename)
    objects = []
    for obj in tree.findall("object"):
        d = obj.find("difficult")
        bbox = obj.find("bndbox")
        objects.append({
            "name": obj.find("name").text,
            "difficult": int(d.text) if d is not None else 0,
            "bbox": [float(bbox.find(t).text) for t in ("xmin", "ymin", "xmax", "ymax")],
        })
    return objects


def voc_ap(rec, prec, use_07_metric=False):
    if use_07_metric:
        ap = 0.0
        for t in np.arange(0.0, 1.1, 0.1):
            p = 0 if np.sum(rec >= t) == 0 else np.max(prec[rec >= t])
            ap = ap + p / 11.0
        return ap
    mrec = np.concatenate(([0.0], rec, [1.0]))
    mpre = np.concatenate(([0.0], prec, [0.0]))
    for i in range(mpre.size - 1, 0, -1):
        mpre[i - 1] = np.maximum(mpre[i - 1], mpre[i])
    i = np.where(mrec[1:] != mrec[:-1])[0]
    return np.sum((mrec[i + 1] - mrec[i]) * mpre[i + 1])


def voc_eval(recs, dets, classname, ovthresh=0.5):
    class_recs, npos = {}, 0
    for imagename, objs in recs.items():
        R = [o for o in objs if o["name"] == classname]
        difficult = np.array([o["difficult"] for o in R]).astype(bool)
        npos += int(np.sum(~difficult))
        class_recs[imagename] = {"bbox": np.array([o["bbox"] for o in R]), "difficult": difficult, "det": [False] * len(R)}
    mine = [d for d in dets if d["category"] == classname]
    image_ids = [d["image_id"] for d in mine]
    confidence = np.array([d["score"] for d in mine])
    BB = np.array([[d["bbox"][0] + 1, d["bbox"][1] + 1, d["bbox"][0] + d["bbox"][2], d["bbox"][1] + d["bbox"][3]] for d in mine]).reshape(-1, 4)
    # Stable order on ties (the devkit's argsort is quicksort: ties land where they land).
    sorted_ind = np.argsort(-confidence, kind="stable")
    BB = BB[sorted_ind, :]
    image_ids = [image_ids[x] for x in sorted_ind]
    nd = len(image_ids)
    tp, fp = np.zeros(nd), np.zeros(nd)
    for d in range(nd):
        R = class_recs[image_ids[d]]
        bb = BB[d, :].astype(float)
        ovmax = -np.inf
        BBGT = R["bbox"].astype(float)
        if BBGT.size > 0:
            ixmin = np.maximum(BBGT[:, 0], bb[0])
            iymin = np.maximum(BBGT[:, 1], bb[1])
            ixmax = np.minimum(BBGT[:, 2], bb[2])
            iymax = np.minimum(BBGT[:, 3], bb[3])
            iw = np.maximum(ixmax - ixmin + 1.0, 0.0)
            ih = np.maximum(iymax - iymin + 1.0, 0.0)
            inters = iw * ih
            uni = ((bb[2] - bb[0] + 1.0) * (bb[3] - bb[1] + 1.0)
                   + (BBGT[:, 2] - BBGT[:, 0] + 1.0) * (BBGT[:, 3] - BBGT[:, 1] + 1.0) - inters)
            overlaps = inters / uni
            ovmax = np.max(overlaps)
            jmax = np.argmax(overlaps)
        if ovmax > ovthresh:
            if not R["difficult"][jmax]:
                if not R["det"][jmax]:
                    tp[d] = 1.0
                    R["det"][jmax] = 1
                else:
                    fp[d] = 1.0
        else:
            fp[d] = 1.0
    if npos == 0:
        return npos, None, None
    fp, tp = np.cumsum(fp), np.cumsum(tp)
    rec = tp / float(npos)
    prec = tp / np.maximum(tp + fp, np.finfo(np.float64).eps)
    return npos, float(voc_ap(rec, prec, True)), float(voc_ap(rec, prec, False))


def main():
    voc_dir, dets_path = sys.argv[1], sys.argv[2]
    ann = os.path.join(voc_dir, "Annotations")
    ann = ann if os.path.isdir(ann) else voc_dir
    recs = {f[:-4]: parse_rec(os.path.join(ann, f)) for f in sorted(os.listdir(ann)) if f.endswith(".xml")}
    with open(dets_path) as f:
        dets = json.load(f)
    classes = sorted({o["name"] for objs in recs.values() for o in objs})
    out = {}
    for c in classes:
        npos, ap07, ap = voc_eval(recs, dets, c)
        out[c] = {"npos": npos, "ap_voc07": ap07, "ap_area": ap}
    json.dump({"classes": out}, sys.stdout)
    print()


if __name__ == "__main__":
    main()
