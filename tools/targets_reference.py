#!/usr/bin/env python3
"""Reference training targets (src/train/targets.rs): what torchvision 0.23's own target code chooses.

For a few hand-made images this script runs, on CPU in float32, exactly the torchvision functions that build
training targets and records their inputs and outputs in tests/fixtures/targets/CASE.safetensors:

- anchors from torchvision's `AnchorGenerator` (FPN sizes/ratios) for the case's canvas and feature sizes;
- `RegionProposalNetwork.assign_targets_to_anchors` (Matcher 0.7/0.3 with low-quality matches), the RPN's
  `BoxCoder(1,1,1,1).encode`, and `BalancedPositiveNegativeSampler(256, 0.5)`;
- `RoIHeads.select_training_samples` (add_gt_proposals, Matcher 0.5/0.5, sampler 512/0.25, BoxCoder
  (10,10,5,5)), then for the positive RoIs `project_masks_on_boxes` (28×28) and `keypoints_to_heatmap` (56).

`torch.randperm` is wrapped while the samplers run so that every permutation they draw is recorded, in call
order (RPN positives, RPN negatives, RoI positives, RoI negatives); the Rust test feeds them back to its sampler.
Tensor names: `perm{i}` for the i-th recorded permutation, `n_perms` their count.

It also writes tests/fixtures/targets/proposals.safetensors: the training-time RPN proposal filter. A
`RegionProposalNetwork` in `.train()` mode (pre/post_nms_top_n training=2000) runs `concat_box_prediction_layers`,
`box_coder.decode` and `filter_proposals` on random head outputs for a batch of two images (160×128 canvas, two
different resized sizes, so clipping differs). Tensors: `canvas_hw`, `feature_sizes`, `image_hw` [2, 2],
`objectness.{l}` [2, A, H, W] and `deltas.{l}` [2, 4A, H, W] (the head's output per level), and per image `i`
torchvision's `boxes.{i}` / `scores.{i}` (best first); `small.*` is the same with training pre/post 300/150, so
the post-NMS cut is exercised too (tests/train_targets.rs, `training_proposals_match_filter_proposals`).

Regenerate every fixture in the folder (the other cases come out byte-identical):

    /work/venvs/torch/bin/python tools/targets_reference.py [--out tests/fixtures/targets]

Deterministic: fixed seeds.
"""
import argparse
import os

import torch
from safetensors.torch import save_file
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.image_list import ImageList
from torchvision.models.detection.roi_heads import RoIHeads, keypoints_to_heatmap, project_masks_on_boxes
from torchvision.models.detection.rpn import RegionProposalNetwork, RPNHead, concat_box_prediction_layers

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NUM_KEYPOINTS = 5


def feature_sizes(h, w):
    """P2..P5 at strides 4..32, then the pool level (max_pool k1 s2 of P5)."""
    sizes = [(h // s, w // s) for s in (4, 8, 16, 32)]
    p5 = sizes[-1]
    sizes.append(((p5[0] - 1) // 2 + 1, (p5[1] - 1) // 2 + 1))
    return sizes


def anchors_for(h, w):
    gen = AnchorGenerator(((32,), (64,), (128,), (256,), (512,)), ((0.5, 1.0, 2.0),) * 5)
    fs = feature_sizes(h, w)
    images = ImageList(torch.zeros(1, 3, h, w), [(h, w)])
    feats = [torch.zeros(1, 1, fh, fw) for fh, fw in fs]
    return gen(images, feats)[0], fs


def box_mask(h, w, b, g):
    """A GT mask: an ellipse-ish blob inside the box, rough edges from the generator."""
    m = torch.zeros(h, w, dtype=torch.uint8)
    x1, y1, x2, y2 = [float(v) for v in b]
    ys = torch.arange(h, dtype=torch.float32)[:, None] + 0.5
    xs = torch.arange(w, dtype=torch.float32)[None, :] + 0.5
    cx, cy, rx, ry = (x1 + x2) / 2, (y1 + y2) / 2, (x2 - x1) / 2, (y2 - y1) / 2
    inside = ((xs - cx) / rx) ** 2 + ((ys - cy) / ry) ** 2 <= 1.0
    noise = torch.rand(h, w, generator=g) < 0.1
    m[inside ^ noise] = 1
    return m


def keypoints_for(boxes, g):
    """Keypoints mostly inside their box, some on its right/bottom edge, some outside, some invisible."""
    kps = []
    for b in boxes:
        x1, y1, x2, y2 = [float(v) for v in b]
        k = torch.zeros(NUM_KEYPOINTS, 3)
        k[:, 0] = x1 + torch.rand(NUM_KEYPOINTS, generator=g) * (x2 - x1)
        k[:, 1] = y1 + torch.rand(NUM_KEYPOINTS, generator=g) * (y2 - y1)
        k[:, 2] = 2.0
        k[1, 0] = x2  # on the right edge: torchvision maps it to the last column
        k[2, 1] = y2  # on the bottom edge
        k[3, 0] = x1 - 15.0  # outside most RoIs
        k[4, 2] = 0.0  # invisible
        kps.append(k)
    return torch.stack(kps) if kps else torch.zeros(0, NUM_KEYPOINTS, 3)


def jitter(boxes, n, scale, g, h, w):
    """`n` proposals around the GT boxes (some positive, some between, some background)."""
    if len(boxes) == 0:
        return torch.zeros(0, 4)
    idx = torch.randint(0, len(boxes), (n,), generator=g)
    b = boxes[idx]
    wh = torch.cat([b[:, 2:] - b[:, :2]] * 2, dim=1)
    p = b + (torch.rand(n, 4, generator=g) - 0.5) * scale * wh
    p[:, 0::2] = p[:, 0::2].clamp(0, w)
    p[:, 1::2] = p[:, 1::2].clamp(0, h)
    p[:, 2:] = torch.maximum(p[:, 2:], p[:, :2] + 1.0)
    return p


def random_boxes(n, g, h, w):
    xy = torch.rand(n, 2, generator=g) * torch.tensor([w - 4.0, h - 4.0])
    wh = 2.0 + torch.rand(n, 2, generator=g) * torch.tensor([w / 2.0, h / 2.0])
    p = torch.cat([xy, xy + wh], dim=1)
    p[:, 2] = p[:, 2].clamp(max=w)
    p[:, 3] = p[:, 3].clamp(max=h)
    return p


def run_case(name, h, w, gt_boxes, gt_labels, proposals, seed, g):
    anchors, fs = anchors_for(h, w)
    masks = torch.stack([box_mask(h, w, b, g) for b in gt_boxes]) if len(gt_boxes) else torch.zeros(0, h, w, dtype=torch.uint8)
    keypoints = keypoints_for(gt_boxes, g)
    target = {"boxes": gt_boxes, "labels": gt_labels, "masks": masks, "keypoints": keypoints}

    rpn = RegionProposalNetwork(AnchorGenerator(), RPNHead(1, 3), 0.7, 0.3, 256, 0.5, dict(training=1, testing=1), dict(training=1, testing=1), 0.7)
    heads = RoIHeads(None, None, None, 0.5, 0.5, 512, 0.25, None, 0.05, 0.5, 100)

    perms = []
    original = torch.randperm

    def recording_randperm(n, *args, **kwargs):
        p = original(n, *args, **kwargs)
        perms.append(p.clone())
        return p

    torch.manual_seed(seed)
    torch.randperm = recording_randperm
    try:
        labels, matched_gt = rpn.assign_targets_to_anchors([anchors], [target])
        rpn_targets = rpn.box_coder.encode(matched_gt, [anchors])[0]
        pos, neg = rpn.fg_bg_sampler(labels)
        rpn_sampled = labels[0].clone()
        rpn_sampled[(pos[0] == 0) & (neg[0] == 0)] = -1.0
        # the Matcher's raw output too (−1/−2 kept), for the matcher test
        if len(gt_boxes):
            from torchvision.ops import boxes as box_ops

            rpn_matches = rpn.proposal_matcher(box_ops.box_iou(gt_boxes, anchors))
        else:
            rpn_matches = torch.full((anchors.shape[0],), -1, dtype=torch.int64)
        rois, matched_idxs, roi_labels, roi_targets = heads.select_training_samples([proposals.clone()], [target])
    finally:
        torch.randperm = original
    rois, matched_idxs, roi_labels, roi_targets = rois[0], matched_idxs[0], roi_labels[0], roi_targets[0]

    positive = torch.where(roi_labels > 0)[0]
    pos_rois, pos_matched = rois[positive], matched_idxs[positive]
    if len(positive):
        mask_targets = project_masks_on_boxes(masks, pos_rois, pos_matched, 28)
        kp_targets, kp_valid = keypoints_to_heatmap(keypoints[pos_matched], pos_rois, 56)
    else:
        mask_targets = torch.zeros(0, 28, 28)
        kp_targets = torch.zeros(0, NUM_KEYPOINTS, dtype=torch.int64)
        kp_valid = torch.zeros(0, NUM_KEYPOINTS, dtype=torch.int64)

    out = {
        "canvas_hw": torch.tensor([h, w], dtype=torch.int64),
        "feature_sizes": torch.tensor(fs, dtype=torch.int64),
        "anchors": anchors.contiguous(),
        "gt_boxes": gt_boxes.reshape(-1, 4).contiguous(),
        "gt_labels": gt_labels.to(torch.int64),
        "gt_masks": masks.contiguous(),
        "gt_keypoints": keypoints.contiguous(),
        "proposals": proposals.contiguous(),
        "n_perms": torch.tensor([len(perms)], dtype=torch.int64),
        "rpn_matches": rpn_matches,
        "rpn_labels": rpn_sampled.contiguous(),
        "rpn_bbox_targets": rpn_targets.contiguous(),
        "roi_boxes": rois.contiguous(),
        "roi_matched_idxs": matched_idxs.contiguous(),
        "roi_labels": roi_labels.contiguous(),
        "roi_bbox_targets": roi_targets.contiguous(),
        "mask_targets": mask_targets.contiguous(),
        "kp_targets": kp_targets.to(torch.int64).contiguous(),
        "kp_valid": kp_valid.to(torch.int64).contiguous(),
    }
    for i, p in enumerate(perms):
        out[f"perm{i}"] = p.to(torch.int64)
    n_pos = int((rpn_sampled == 1).sum())
    ties = 0
    if len(gt_boxes):
        from torchvision.ops import boxes as box_ops

        iou = box_ops.box_iou(gt_boxes, anchors)
        ties = int((iou == iou.max(dim=1).values[:, None]).sum()) - len(gt_boxes)
    print(f"{name}: A={anchors.shape[0]} rpn pos={n_pos} neg={int((rpn_sampled == 0).sum())} "
          f"rois={rois.shape[0]} roi pos={len(positive)} perms={[len(p) for p in perms]} extra best-anchor ties={ties} "
          f"kp valid={int(kp_valid.sum())}")
    return out


def proposals_case():
    """The training-mode RPN proposal filter on random head outputs for a batch of two images."""
    g = torch.Generator().manual_seed(11)
    h, w = 160, 128
    image_shapes = [(153, 118), (137, 101)]
    fs = feature_sizes(h, w)
    n, a = len(image_shapes), 3
    # Logits with a spread (sigmoid far from saturation for most), deltas small.
    obj = [torch.randn(n, a, fh, fw, generator=g) * 2.0 for fh, fw in fs]
    deltas = [torch.randn(n, 4 * a, fh, fw, generator=g) * 0.3 for fh, fw in fs]
    # Near ties, well above float rounding (so the order is determined): some level-1..4 logits copy a level-0
    # logit ± 1e-3 (the final cross-level sort decides), and in level 0 some neighbouring anchors (which overlap
    # > 0.7, so NMS decides which survives) get logits 2e-3 apart.
    for i in range(n):
        src = obj[0][i].flatten()
        for lvl in range(1, 5):
            dst = obj[lvl][i].view(-1)
            k = min(6, dst.numel())
            pick = torch.randperm(dst.numel(), generator=g)[:k]
            take = torch.randperm(src.numel(), generator=g)[:k]
            sign = torch.where(torch.arange(k) % 2 == 0, 1.0, -1.0)
            dst[pick] = src[take] + sign * 1e-3
        o0 = obj[0][i]
        for _ in range(30):
            y = int(torch.randint(0, fs[0][0], (1,), generator=g))
            x = int(torch.randint(0, fs[0][1] - 1, (1,), generator=g))
            r = int(torch.randint(0, a, (1,), generator=g))
            o0[r, y, x + 1] = o0[r, y, x] + 2e-3
    out = {
        "canvas_hw": torch.tensor([h, w], dtype=torch.int64),
        "feature_sizes": torch.tensor(fs, dtype=torch.int64),
        "image_hw": torch.tensor(image_shapes, dtype=torch.int64),
    }
    for lvl in range(len(fs)):
        out[f"objectness.{lvl}"] = obj[lvl].contiguous()
        out[f"deltas.{lvl}"] = deltas[lvl].contiguous()

    images = ImageList(torch.zeros(n, 3, h, w), image_shapes)
    feats = [torch.zeros(n, 1, fh, fw) for fh, fw in fs]
    for prefix, pre, post in [("", 2000, 2000), ("small.", 300, 150)]:
        gen = AnchorGenerator(((32,), (64,), (128,), (256,), (512,)), ((0.5, 1.0, 2.0),) * 5)
        rpn = RegionProposalNetwork(
            gen, RPNHead(1, a), 0.7, 0.3, 256, 0.5, dict(training=pre, testing=1000), dict(training=post, testing=1000), 0.7
        ).train()
        assert rpn.training and rpn.pre_nms_top_n() == pre and rpn.post_nms_top_n() == post
        anchors = gen(images, feats)
        num_anchors_per_level = [o[0].numel() for o in obj]
        objectness, pred_bbox_deltas = concat_box_prediction_layers(obj, deltas)
        proposals = rpn.box_coder.decode(pred_bbox_deltas.detach(), anchors).view(n, -1, 4)
        boxes, scores = rpn.filter_proposals(proposals, objectness, images.image_sizes, num_anchors_per_level)
        for i in range(n):
            out[f"{prefix}boxes.{i}"] = boxes[i].contiguous()
            out[f"{prefix}scores.{i}"] = scores[i].contiguous()
            s = scores[i]
            gaps = (s[:-1] - s[1:]).abs()
            print(f"proposals {prefix or 'train.'}{i}: image {image_shapes[i]} pre-NMS {min(pre, num_anchors_per_level[0])}+"
                  f"{sum(min(pre, m) for m in num_anchors_per_level[1:])} -> {len(s)} kept, exact score ties "
                  f"{int((gaps == 0).sum())}, adjacent gaps < 1e-4: {int(((gaps > 0) & (gaps < 1e-4)).sum())}")
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(ROOT, "tests", "fixtures", "targets"))
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    g = torch.Generator().manual_seed(7)

    # 1. An ordinary image (non-square canvas): three objects, proposals around them and at random.
    h, w = 96, 128
    gt = torch.tensor([[10.0, 12.0, 60.5, 70.0], [70.0, 20.0, 120.0, 50.0], [30.0, 50.0, 90.0, 94.0]])
    props = torch.cat([jitter(gt, 30, 0.5, g, h, w), jitter(gt, 30, 1.5, g, h, w), random_boxes(500, g, h, w)])
    cases = {"ordinary": run_case("ordinary", h, w, gt, torch.tensor([3, 1, 2]), props, 1, g)}

    # 2. No ground truth: every anchor and proposal is background.
    h, w = 64, 64
    cases["no_gt"] = run_case("no_gt", h, w, torch.zeros(0, 4), torch.zeros(0, dtype=torch.int64), random_boxes(700, g, h, w), 2, g)

    # 3. Low-quality matches with ties: small boxes whose best anchors tie (grid-symmetric positions), a box
    #    duplicated (argmax over GT ties), and a box whose best IoU lies between the thresholds.
    h, w = 64, 64
    gt = torch.tensor([[6.0, 6.0, 14.0, 14.0], [6.0, 6.0, 14.0, 14.0], [36.0, 30.0, 46.0, 50.0], [20.0, 40.0, 44.0, 62.0]])
    props = torch.cat([jitter(gt, 30, 0.4, g, h, w), random_boxes(200, g, h, w), gt[:1].clone()])
    cases["low_quality_ties"] = run_case("low_quality_ties", h, w, gt, torch.tensor([1, 2, 1, 4]), props, 3, g)

    # 4. The training-time RPN proposal filter (its own generator: the cases above are unaffected).
    cases["proposals"] = proposals_case()

    for name, t in cases.items():
        save_file(t, os.path.join(args.out, f"{name}.safetensors"))


if __name__ == "__main__":
    main()
