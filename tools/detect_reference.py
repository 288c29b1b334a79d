#!/usr/bin/env python3
"""Reference data for src/detect: small inputs and what torchvision 0.23 (eval path, CPU, float32) makes of them.

Every piece of the Rust numerics between the tract stages is checked against this data by
tests/detect_numerics.rs. The inputs are drawn from fixed seeds, so running the script again writes the same
files (as long as torch / torchvision keep their CPU kernels).

    /work/venvs/torch/bin/python tools/detect_reference.py [--out tests/fixtures/detect]

Needs torch, torchvision and safetensors. Torch runs with 2 intra-op threads because one CPU kernel
(bilinear resize of 3-channel images) picks its code path by thread count.
"""
import argparse
import math
import os
from collections import OrderedDict

import torch
import torchvision
from safetensors.torch import save_file
from torch import nn
from torchvision.models.detection import _utils as det_utils
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.image_list import ImageList
from torchvision.models.detection.roi_heads import RoIHeads, heatmaps_to_keypoints, paste_masks_in_image
from torchvision.models.detection.rpn import RegionProposalNetwork, concat_box_prediction_layers
from torchvision.models.detection.transform import GeneralizedRCNNTransform, resize_boxes, resize_keypoints
from torchvision.ops import MultiScaleRoIAlign, batched_nms, boxes as box_ops, nms, roi_align

MEAN, STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
SIZES = ((32,), (64,), (128,), (256,), (512,))
RATIOS = ((0.5, 1.0, 2.0),) * 5


def c(t):
    return t.detach().contiguous().clone()


def i64(values):
    return torch.tensor(values, dtype=torch.int64)


def random_boxes(g, n, lo, hi, min_wh, max_wh):
    """Boxes with corners in [lo, hi] and sides in [min_wh, max_wh]."""
    x1 = torch.rand(n, generator=g) * (hi - lo) + lo
    y1 = torch.rand(n, generator=g) * (hi - lo) + lo
    w = torch.rand(n, generator=g) * (max_wh - min_wh) + min_wh
    h = torch.rand(n, generator=g) * (max_wh - min_wh) + min_wh
    return torch.stack([x1, y1, x1 + w, y1 + h], 1)


def transform_fixture():
    """GeneralizedRCNNTransform eval: normalise, resize (bilinear, recompute_scale_factor), pad to 32."""
    g = torch.Generator().manual_seed(1)
    out = {}
    # (h, w, min_size, max_size): a downscale (torch's generic kernel), an upscale (generic), and a small output
    # (h + w <= 128: torch's channels-last kernel, other rounding) from the first image.
    cases = [(100, 75, 64, 96), (30, 40, 60, 100), (100, 75, 32, 48)]
    first = None
    for k, (h, w, lo, hi) in enumerate(cases):
        img_u8 = torch.randint(0, 256, (3, h, w), generator=g, dtype=torch.uint8)
        if k == 2:
            img_u8 = first
        first = img_u8 if first is None else first
        t = GeneralizedRCNNTransform(lo, hi, MEAN, STD).eval()
        images, _ = t([img_u8.float() / 255])
        rh, rw = images.image_sizes[0]
        padded = images.tensors[0]
        assert padded[:, rh:, :].abs().sum() == 0 and padded[:, :, rw:].abs().sum() == 0
        if k != 2:
            out[f"case{k}.image_u8"] = c(img_u8)
        out[f"case{k}.params"] = i64([lo, hi])
        # Only the resized part is stored (the padding is zeros, checked above); the padded size is.
        out[f"case{k}.resized"] = c(padded[:, :rh, :rw])
        out[f"case{k}.resized_hw"] = i64([rh, rw])
        out[f"case{k}.padded_hw"] = i64(list(padded.shape[1:]))
    # transform.postprocess's box / keypoint rescale, resized (85, 64) -> original (100, 75).
    boxes = random_boxes(g, 20, 0, 60, 1, 30)
    kps = torch.cat([torch.rand(20, 5, 2, generator=g) * 80, torch.ones(20, 5, 1)], 2)
    out["rescale.boxes"] = c(boxes)
    out["rescale.keypoints"] = c(kps)
    out["rescale.boxes_out"] = c(resize_boxes(boxes, [85, 64], [100, 75]))
    out["rescale.keypoints_out"] = c(resize_keypoints(kps, [85, 64], [100, 75]))
    return out


def anchors_fixture():
    """AnchorGenerator over five FPN levels, including a pool level whose stride is not a power of two."""
    out = {}
    for k, (ch, cw) in enumerate([(128, 96), (64, 96)]):
        sizes = []
        h, w = ch // 4, cw // 4
        for _ in range(4):
            sizes.append((h, w))
            h, w = h // 2, w // 2
        ph, pw = sizes[-1]
        sizes.append(((ph - 1) // 2 + 1, (pw - 1) // 2 + 1))  # LastLevelMaxPool: max_pool2d(k=1, s=2)
        ag = AnchorGenerator(SIZES, RATIOS)
        images = ImageList(torch.zeros(1, 3, ch, cw), [(ch - 5, cw - 7)])
        anchors = ag(images, [torch.zeros(1, 4, a, b) for a, b in sizes])[0]
        out[f"case{k}.canvas"] = i64([ch, cw])
        out[f"case{k}.feature_sizes"] = i64(sizes)
        out[f"case{k}.anchors"] = c(anchors)
    return out


def box_coder_fixture():
    g = torch.Generator().manual_seed(3)
    out = {}
    anchors = random_boxes(g, 200, -20, 100, 0.5, 60)
    deltas = torch.randn(200, 4, generator=g)
    deltas[::7, 2:] = 9.0  # beyond bbox_xform_clip
    deltas[3::11, 2:] = -9.0
    rpn_coder = det_utils.BoxCoder((1.0, 1.0, 1.0, 1.0))
    dec = rpn_coder.decode(deltas, [anchors]).reshape(-1, 4)
    out["rpn.anchors"] = c(anchors)
    out["rpn.deltas"] = c(deltas)
    out["rpn.decoded"] = c(dec)
    gt = random_boxes(g, 200, 0, 100, 1, 50)
    out["rpn.gt"] = c(gt)
    out["rpn.encoded"] = c(rpn_coder.encode_single(gt, anchors))

    head_coder = det_utils.BoxCoder((10.0, 10.0, 5.0, 5.0))
    props = random_boxes(g, 100, 0, 100, 1, 60)
    codes = torch.randn(100, 5 * 4, generator=g) * 2
    out["head.proposals"] = c(props)
    out["head.codes"] = c(codes)
    out["head.decoded"] = c(head_coder.decode(codes, [props]))  # [100, 5, 4]
    out["head.gt"] = c(gt[:100])
    out["head.encoded"] = c(head_coder.encode_single(gt[:100], props))

    out["clip.size"] = i64([70, 90])
    out["clip.out"] = c(box_ops.clip_boxes_to_image(dec, (70, 90)))
    small = random_boxes(g, 100, 0, 50, 0.0, 2.0)
    out["small.boxes"] = c(small)
    out["small.keep_1"] = c(box_ops.remove_small_boxes(small, 1.0))
    out["small.keep_1e-3"] = c(box_ops.remove_small_boxes(small, 1e-3))
    return out


def nms_fixture():
    g = torch.Generator().manual_seed(4)
    out = {}
    # Ties: clustered boxes, scores on 6 levels, some identical boxes, a few zero-area boxes (IoU 0/0 = NaN).
    centres = torch.rand(30, 2, generator=g) * 200
    idx = torch.randint(0, 30, (300,), generator=g)
    ctr = centres[idx] + torch.randn(300, 2, generator=g) * 4
    wh = torch.rand(300, 2, generator=g) * 30 + 10
    tb = torch.cat([ctr - wh / 2, ctr + wh / 2], 1)
    tb[10:20] = tb[0]
    tb[40:45, 2:] = tb[40:45, :2]
    ts = torch.randint(0, 6, (300,), generator=g).float() / 5
    tl = torch.randint(0, 4, (300,), generator=g, dtype=torch.uint8)
    out["ties.boxes"], out["ties.scores"], out["ties.labels"] = c(tb), c(ts), c(tl)
    tl = tl.long()
    for thr in (0.3, 0.5, 0.7):
        out[f"ties.keep_{thr}"] = c(nms(tb, ts, thr))
        # 300 boxes: batched_nms uses the coordinate-offset trick (numel <= 4000).
        out[f"ties.batched_keep_{thr}"] = c(batched_nms(tb, ts, tl, thr))

    b = random_boxes(g, 5000, 0, 600, 5, 120)
    s = torch.rand(5000, generator=g)
    lab = torch.randint(0, 10, (5000,), generator=g, dtype=torch.uint8)
    out["big.boxes"], out["big.scores"], out["big.labels"] = c(b), c(s), c(lab)
    lab = lab.long()
    out["big.keep_0.5"] = c(nms(b, s, 0.5))
    out["big.batched_keep_0.5"] = c(batched_nms(b, s, lab, 0.5))  # 5000 boxes: one nms per class
    sq = (s * 20).floor() / 20  # ties again, through the per-class path
    out["big.quantised_scores"] = c(sq)
    out["big.quantised_batched_keep_0.6"] = c(batched_nms(b, sq, lab, 0.6))
    return out


class FixedHead(nn.Module):
    """An RPN head that returns given outputs, so RegionProposalNetwork runs its own eval path on them."""

    def __init__(self, objectness, deltas):
        super().__init__()
        self.objectness, self.deltas = objectness, deltas

    def forward(self, x):
        return self.objectness, self.deltas


def rpn_fixture():
    g = torch.Generator().manual_seed(5)
    out = {}
    canvas, image_hw = (128, 128), (120, 100)
    sizes = [(32, 32), (16, 16), (8, 8), (4, 4), (2, 2)]
    obj = [torch.randn(1, 3, h, w, generator=g) * 2 for h, w in sizes]
    deltas = [torch.randn(1, 12, h, w, generator=g) * 0.3 for h, w in sizes]
    for lvl in range(5):
        out[f"objectness.{lvl}"] = c(obj[lvl][0])
        out[f"deltas.{lvl}"] = c(deltas[lvl][0])
    out["image_hw"] = i64(image_hw)
    out["canvas"] = i64(canvas)
    features = OrderedDict((str(i), torch.zeros(1, 1, h, w)) for i, (h, w) in enumerate(sizes))
    images = ImageList(torch.zeros(1, 3, *canvas), [image_hw])
    for name, pre, post in [("default", 1000, 1000), ("small", 300, 200)]:
        ag = AnchorGenerator(SIZES, RATIOS)
        rpn = RegionProposalNetwork(
            ag, FixedHead(obj, deltas), 0.7, 0.3, 256, 0.5, dict(training=2000, testing=pre), dict(training=2000, testing=post), 0.7
        ).eval()
        with torch.no_grad():
            boxes, _ = rpn(images, features)
            # forward drops the scores; recompute them the way forward does, through the same functions.
            anchors = ag(images, list(features.values()))
            o, d = concat_box_prediction_layers(obj, deltas)
            proposals = rpn.box_coder.decode(d, anchors).view(1, -1, 4)
            nper = [o_[0].numel() for o_ in obj]
            b2, s2 = rpn.filter_proposals(proposals, o, images.image_sizes, nper)
        assert torch.equal(b2[0], boxes[0])
        out[f"{name}.params"] = i64([pre, post])
        out[f"{name}.proposals"] = c(boxes[0])
        out[f"{name}.scores"] = c(s2[0])
    return out


def roi_align_fixture():
    g = torch.Generator().manual_seed(6)
    out = {}
    image_hw = (120, 100)
    feats = OrderedDict()
    for lvl, s in enumerate([32, 16, 8, 4]):
        feats[str(lvl)] = torch.randn(1, 8, s, s, generator=g)
        out[f"features.{lvl}"] = c(feats[str(lvl)][0])
    feats["pool"] = torch.randn(1, 8, 2, 2, generator=g)  # present in a real FPN, ignored by the pooler
    out["image_hw"] = i64(image_hw)
    # Boxes of every level: tiny, medium, large, partly or wholly outside the canvas, degenerate.
    boxes = torch.cat(
        [
            random_boxes(g, 20, 0, 100, 1, 20),
            random_boxes(g, 15, -10, 110, 20, 80),
            random_boxes(g, 10, -30, 60, 80, 250),
            torch.tensor(
                [
                    [-20.0, -20.0, 5.0, 5.0],
                    [110.0, 100.0, 140.0, 135.0],
                    [126.0, 0.0, 160.0, 40.0],
                    [50.0, 50.0, 50.0, 50.0],
                    [60.0, 60.0, 60.2, 61.0],
                    [0.0, 0.0, 128.0, 128.0],
                    [-140.0, -140.0, -130.0, -120.0],
                    [10.0, 10.0, 9.0, 30.0],
                    [0.0, 0.0, 224.0, 224.0],
                    [0.0, 0.0, 112.0, 112.0],
                    [3.0, 3.0, 59.0, 59.0],
                    [1.0, 2.0, 200.0, 130.0],
                    [127.0, 127.0, 131.0, 129.0],
                    [-1.5, 40.0, 0.5, 44.0],
                    [40.0, -3.9, 48.0, -0.5],
                ]
            ),
        ]
    )
    assert boxes.shape[0] == 60
    out["boxes"] = c(boxes)
    box_pool = MultiScaleRoIAlign(["0", "1", "2", "3"], 7, 2)
    mask_pool = MultiScaleRoIAlign(["0", "1", "2", "3"], 14, 2)
    out["pooled7"] = c(box_pool(feats, [boxes], [image_hw]))
    out["pooled14"] = c(mask_pool(feats, [boxes[33:45]], [image_hw]))
    out["levels"] = c(box_pool.map_levels([boxes]))
    out["scales"] = torch.tensor(box_pool.scales, dtype=torch.float32)
    rois = torch.cat([torch.zeros(20, 1), boxes[40:60]], 1)
    out["single.p2"] = c(roi_align(feats["0"], rois, 7, spatial_scale=0.25, sampling_ratio=2))
    return out


def postprocess_fixture():
    g = torch.Generator().manual_seed(7)
    out = {}
    cases = [
        # name, rois, classes, logit scale, score_thresh, nms_thresh, detections_per_img
        ("few", 60, 5, 3.0, 0.05, 0.5, 100),
        ("many", 400, 11, 1.0, 0.05, 0.5, 100),  # > 1000 candidates: batched_nms runs once per class
        ("capped", 60, 5, 3.0, 0.2, 0.4, 10),
        ("sparse", 60, 5, 3.0, 0.6, 0.5, 100),  # fewer survivors than detections_per_img
    ]
    image_hw = (120, 100)
    out["image_hw"] = i64(image_hw)
    for name, n, k, scale, st, nt, dpi in cases:
        props = random_boxes(g, n, -5, 110, 2, 40)
        logits = torch.randn(n, k, generator=g) * scale
        codes = torch.randn(n, 4 * k, generator=g) * 0.5
        heads = RoIHeads(None, None, None, 0.5, 0.5, 512, 0.25, (10.0, 10.0, 5.0, 5.0), st, nt, dpi).eval()
        boxes, scores, labels = heads.postprocess_detections(logits, codes, [props], [image_hw])
        out[f"{name}.proposals"] = c(props)
        out[f"{name}.logits"] = c(logits)
        out[f"{name}.codes"] = c(codes)
        # The thresholds are repeated in tests/detect_numerics.rs (score_thresh is compared in float32 there
        # as here; nms_thresh is a double in torchvision's kernel).
        out[f"{name}.detections_per_img"] = i64([dpi])
        out[f"{name}.boxes"] = c(boxes[0])
        out[f"{name}.scores"] = c(scores[0])
        out[f"{name}.labels"] = c(labels[0])
    return out


def paste_fixture():
    g = torch.Generator().manual_seed(8)
    out = {}
    im_h, im_w = 64, 48
    masks = torch.sigmoid(torch.randn(12, 1, 28, 28, generator=g) * 3)
    boxes = torch.cat(
        [
            random_boxes(g, 6, 0, 30, 3, 30),
            torch.tensor(
                [
                    [0.0, 0.0, 48.0, 64.0],  # the whole image
                    [0.0, 0.0, 6.3, 4.1],  # at the top-left corner: expanded box is negative
                    [40.2, 55.7, 48.0, 64.0],  # at the bottom-right corner
                    [20.0, 20.0, 20.4, 20.3],  # smaller than a pixel
                    [10.5, 30.0, 10.5, 45.0],  # zero width
                    [3.0, 5.0, 47.9, 12.0],  # wide and flat
                ]
            ),
        ]
    )
    out["masks"] = c(masks)
    out["boxes"] = c(boxes)
    out["image_hw"] = i64([im_h, im_w])
    out["pasted"] = c(paste_masks_in_image(masks, boxes, (im_h, im_w), padding=1))
    # A large box whose resized mask has h + w > 128, so torch takes its generic (channels-first) kernel.
    big_boxes = torch.tensor([[-10.0, -20.0, 90.0, 70.0], [5.0, 7.0, 77.5, 69.25]])
    out["big.boxes"] = c(big_boxes)
    out["big.pasted"] = c(paste_masks_in_image(masks[:2], big_boxes, (im_h, im_w), padding=1))
    return out


def keypoints_fixture():
    g = torch.Generator().manual_seed(9)
    out = {}
    n, k, m = 12, 2, 56
    yy, xx = torch.meshgrid(torch.arange(m, dtype=torch.float32), torch.arange(m, dtype=torch.float32), indexing="ij")
    maps = torch.randn(n, k, m, m, generator=g) * 0.5
    centres = torch.rand(n, k, 2, generator=g) * (m - 1)
    for i in range(n):
        for j in range(k):
            cy, cx = centres[i, j]
            maps[i, j] += 8 * torch.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / 30)
    # Stored as u8 codes (a quarter of the size); map = code / 16 - 2 is exact in float32 on both sides.
    codes = ((maps + 2) * 16).round().clamp(0, 255).to(torch.uint8)
    maps = codes.float() / 16 - 2
    rois = torch.cat(
        [
            random_boxes(g, 8, 0, 60, 3, 90),
            torch.tensor([[10.0, 10.0, 10.4, 10.2], [5.5, 6.25, 61.5, 62.25], [0.0, 0.0, 1.0, 1.0], [20.0, 30.0, 120.3, 31.7]]),
        ]
    )
    xy, scores = heatmaps_to_keypoints(maps, rois)
    out["map_codes"] = c(codes)
    out["rois"] = c(rois)
    out["keypoints"] = c(xy)  # [n, k, 3]: x, y, 1
    out["scores"] = c(scores)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures", "detect"))
    args = ap.parse_args()
    torch.set_num_threads(2)
    os.makedirs(args.out, exist_ok=True)
    pieces = {
        "transform": transform_fixture,
        "anchors": anchors_fixture,
        "box_coder": box_coder_fixture,
        "nms": nms_fixture,
        "rpn": rpn_fixture,
        "roi_align": roi_align_fixture,
        "postprocess": postprocess_fixture,
        "paste": paste_fixture,
        "keypoints": keypoints_fixture,
    }
    # One metadata key: safetensors writes a map's keys in hash order, and regenerated files should be identical.
    meta = {"reference": f"torch {torch.__version__}, torchvision {torchvision.__version__}"}
    total = 0
    for name, make in pieces.items():
        path = os.path.join(args.out, f"{name}.safetensors")
        save_file(make(), path, metadata=meta)
        size = os.path.getsize(path)
        total += size
        print(f"{path}: {size} bytes")
    print(f"total {total} bytes")


if __name__ == "__main__":
    main()
