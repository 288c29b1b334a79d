#!/usr/bin/env python3
"""Reference losses for the training core (src/graph/train_core.rs): what torchvision 0.23 computes in training mode.

For each narrow fixture detector (tests/fixtures/NAME.onnx) this script rebuilds the torchvision model of the
same construction (tools/export_models.py), loads the ONNX weights into it, runs ONE training forward
`model(images, targets)` on a fixed batch, and records what torchvision's samplers chose: the RPN's sampled
anchors with their labels and box targets, the box head's sampled RoIs with labels and targets, the positive
RoIs of the mask/keypoint heads with their mask targets (`project_masks_on_boxes`) and keypoint heatmap targets
(`keypoints_to_heatmap`). With those choices fixed it recomputes the losses with torchvision's own modules and
loss functions (`rpn.compute_loss`, `fastrcnn_loss`, `maskrcnn_loss`, `keypointrcnn_loss`) for the dense
weights (checked equal to the training forward's loss dict) and for the weights times a 50% mask that
tests/train_graph.rs regenerates from the same hash (`keep_mask`).

tests/fixtures/train/NAME.safetensors holds the graph inputs of the training core in its interface except the
RoIAlign taps: the Rust test computes those from the written RoI boxes with `MultiScaleRoIAlign::taps`. Images
are stored as u8; the graph input is `(u8 / 255 - mean) / std` in float32, as torchvision normalises.
For the masked weights it also records, per trainable parameter (torchvision's trainable_layers=3, as the
fixtures were built), the norm of the loss gradient and its dot product with a ±1 probe, which the Rust test
compares with ONNX Runtime training's gradients when the training venv is there. RoI rows are image-major and padded to a fixed count per image with rows of weight 0 whose boxes, labels and
targets are random (they must not change any loss).

    /work/venvs/torch/bin/python tools/train_reference.py [--out tests/fixtures/train]

Deterministic: fixed seeds, CPU, float32.
"""
import argparse
import copy
import os
import sys

import numpy as np
import onnx
import onnxruntime as ort
import torch
from safetensors.torch import save_file
from torch import nn
from torchvision.models.detection import roi_heads as tv_roi_heads
from torchvision.models.detection.roi_heads import fastrcnn_loss, keypoints_to_heatmap, project_masks_on_boxes
from torchvision.models.detection.rpn import concat_box_prediction_layers
from torchvision.ops import misc as misc_nn_ops

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import export_models  # noqa: E402  (the fixtures' construction)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MEAN, STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
SIZE = 128
# name -> (batch, box RoIs sampled per image by torchvision, padded box rows per image, padded mask/keypoint
# rows per image)
CASES = {
    "fasterrcnn_r18_fpn_voc": (2, 16, 20, 0),
    "maskrcnn_r18_fpn": (1, 16, 20, 6),
    "keypointrcnn_r50_fpn": (1, 16, 20, 6),
}


def keep_mask(name, shape):
    """A deterministic ~50% 0/1 mask per parameter: splitmix64 of (FNV-1a(name) ^ index·golden), top bit.
    tests/train_graph.rs has the same function."""
    h = 0xCBF29CE484222325
    for byte in name.encode():
        h = ((h ^ byte) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    n = int(np.prod(shape))
    z = np.uint64(h) ^ (np.arange(n, dtype=np.uint64) * np.uint64(0x9E3779B97F4A7C15))
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    z = z ^ (z >> np.uint64(31))
    return (z >> np.uint64(63)).astype(np.float32).reshape(shape)


def module_path(node_name):
    """`/backbone/body/layer2/layer2.0/bn1/Mul` -> `backbone.body.layer2.0.bn1` (as src/model/names.rs)."""
    path = []
    for seg in node_name.strip("/").split("/")[:-1]:
        if path and seg.startswith(path[-1] + "."):
            path.pop()
        path.append(seg)
    return ".".join(path)


def load_onnx_weights(model, path):
    """Parameters by name; FrozenBatchNorm from the folded Mul/Add constants (weight = scale, bias = shift,
    running_mean = 0, running_var = 1 - eps, so that the module computes x · scale + shift again)."""
    m = onnx.load(path)
    inits = {t.name: torch.from_numpy(onnx.numpy_helper.to_array(t).copy()) for t in m.graph.initializer}
    state = model.state_dict()
    params = dict(model.named_parameters())
    with torch.no_grad():
        for name, p in params.items():
            p.copy_(inits[name].reshape(p.shape))
        folded = {}
        for node in m.graph.node:
            if node.op_type in ("Mul", "Add"):
                for i in node.input:
                    if i in inits and i not in params:
                        folded.setdefault((module_path(node.name), node.op_type), inits[i])
        bns = [(n, mod) for n, mod in model.named_modules() if isinstance(mod, misc_nn_ops.FrozenBatchNorm2d)]
        for n, mod in bns:
            mod.weight.copy_(folded[(n, "Mul")].flatten())
            mod.bias.copy_(folded[(n, "Add")].flatten())
            mod.running_mean.zero_()
            mod.running_var.fill_(1.0 - mod.eps)
            assert torch.equal((mod.running_var + mod.eps).rsqrt(), torch.ones_like(mod.running_var)), n
    assert len(state) == len(model.state_dict())
    return len(params), len(bns)


def check_against_onnx(model, path):
    """The loaded model's eval output equals ONNX Runtime on the ONNX it was loaded from."""
    x = torch.rand(3, SIZE, SIZE, generator=torch.Generator().manual_seed(11))
    model.eval()
    with torch.no_grad():
        ref = model([x])[0]
    so = ort.SessionOptions()
    so.log_severity_level = 3
    sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
    boxes = sess.run(None, {"image": x.numpy()})[0]
    diff = float(np.abs(boxes - ref["boxes"].numpy()).max()) if boxes.shape == ref["boxes"].shape else float("inf")
    assert diff < 1e-3, f"{path}: torch model with the loaded weights differs from the ONNX (boxes {diff})"
    return diff


def ground_truth(kind, num_classes, g, batch):
    """2-3 boxes per image with labels, masks (ellipses in the boxes) and 17 keypoints (some invisible, some
    outside their box)."""
    targets = []
    for _ in range(batch):
        n = int(torch.randint(2, 4, (1,), generator=g))
        xy = torch.rand(n, 2, generator=g) * 70
        wh = torch.rand(n, 2, generator=g) * 40 + 16
        boxes = torch.cat([xy, (xy + wh).clamp(max=SIZE - 1)], 1)
        t = {"boxes": boxes, "labels": torch.randint(1, num_classes, (n,), generator=g)}
        if kind == "mask_rcnn":
            yy, xx = torch.meshgrid(torch.arange(SIZE) + 0.5, torch.arange(SIZE) + 0.5, indexing="ij")
            cx, cy = (boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2
            rx, ry = (boxes[:, 2] - boxes[:, 0]) / 2, (boxes[:, 3] - boxes[:, 1]) / 2
            e = ((xx[None] - cx[:, None, None]) / rx[:, None, None]) ** 2 + ((yy[None] - cy[:, None, None]) / ry[:, None, None]) ** 2
            t["masks"] = (e <= 1).to(torch.uint8)
        if kind == "keypoint_rcnn":
            u = torch.rand(n, 17, 2, generator=g) * 1.2 - 0.1  # a few just outside the box
            kx = boxes[:, None, 0] + u[..., 0] * (boxes[:, None, 2] - boxes[:, None, 0])
            ky = boxes[:, None, 1] + u[..., 1] * (boxes[:, None, 3] - boxes[:, None, 1])
            vis = (torch.rand(n, 17, generator=g) > 0.2).float() * 2
            t["keypoints"] = torch.stack([kx, ky, vis], 2)
        targets.append(t)
    return targets


def record_training_forward(model, images_u8, targets):
    """torchvision's training forward, with what its samplers chose recorded."""
    rec = {}
    rpn, heads = model.rpn, model.roi_heads
    sampler, compute_loss, select = rpn.fg_bg_sampler, rpn.compute_loss, heads.select_training_samples

    def rpn_sampler(labels):
        pos, neg = sampler(labels)
        rec["rpn_pos"], rec["rpn_neg"] = [p.clone() for p in pos], [q.clone() for q in neg]
        return pos, neg

    def rpn_loss(objectness, deltas, labels, regression_targets):
        rec["rpn_labels"] = [l.clone() for l in labels]
        rec["rpn_targets"] = [r.clone() for r in regression_targets]
        return compute_loss(objectness, deltas, labels, regression_targets)

    def select_training_samples(proposals, targets):
        out = select(proposals, targets)
        rec["proposals"], rec["matched_idxs"], rec["labels"], rec["regression_targets"] = [[x.clone() for x in o] for o in out]
        return out

    rpn.fg_bg_sampler, rpn.compute_loss, heads.select_training_samples = rpn_sampler, rpn_loss, select_training_samples
    # The images are already at the model's size: no resize (torchvision's would be an identity up to rounding).
    model.transform.resize = lambda image, target=None: (image, target)
    model.train()
    torch.manual_seed(0)
    losses = model([im.float() / 255 for im in images_u8], targets)
    rpn.fg_bg_sampler, rpn.compute_loss, heads.select_training_samples = sampler, compute_loss, select
    return rec, {k: v.detach() for k, v in losses.items()}


def positives(rec):
    labels, props, midx = rec["labels"], rec["proposals"], rec["matched_idxs"]
    pos = [torch.where(l > 0)[0] for l in labels]
    return [p[i] for p, i in zip(props, pos)], [m[i] for m, i in zip(midx, pos)]


def fixed_losses(model, images, targets, rec):
    """The losses of `model` with torchvision's choices in `rec` fixed: RoIHeads.forward / RPN.forward's training
    path with the sampling taken from the record."""
    model.eval()  # no module here behaves differently; the losses are called directly
    rpn, heads = model.rpn, model.roi_heads
    features = model.backbone(images)
    objectness, deltas = rpn.head(list(features.values()))
    objectness, deltas = concat_box_prediction_layers(objectness, deltas)
    sampler = rpn.fg_bg_sampler
    rpn.fg_bg_sampler = lambda labels: (rec["rpn_pos"], rec["rpn_neg"])
    loss_objectness, loss_rpn_box_reg = rpn.compute_loss(objectness, deltas, rec["rpn_labels"], rec["rpn_targets"])
    rpn.fg_bg_sampler = sampler
    shapes = [(SIZE, SIZE)] * images.shape[0]
    x = heads.box_roi_pool(features, rec["proposals"], shapes)
    class_logits, box_regression = heads.box_predictor(heads.box_head(x))
    loss_classifier, loss_box_reg = fastrcnn_loss(class_logits, box_regression, rec["labels"], rec["regression_targets"])
    out = {"loss_objectness": loss_objectness, "loss_rpn_box_reg": loss_rpn_box_reg,
           "loss_classifier": loss_classifier, "loss_box_reg": loss_box_reg}
    pos_props, pos_midx = positives(rec)
    if heads.has_mask():
        logits = heads.mask_predictor(heads.mask_head(heads.mask_roi_pool(features, pos_props, shapes)))
        out["loss_mask"] = tv_roi_heads.maskrcnn_loss(
            logits, pos_props, [t["masks"] for t in targets], [t["labels"] for t in targets], pos_midx)
    if heads.keypoint_predictor is not None:
        logits = heads.keypoint_predictor(heads.keypoint_head(heads.keypoint_roi_pool(features, pos_props, shapes)))
        out["loss_keypoint"] = tv_roi_heads.keypointrcnn_loss(logits, pos_props, [t["keypoints"] for t in targets], pos_midx)
    return out


def gradient_probes(model, losses, masks):
    """For each parameter that trains: the L2 norm of d(total loss)/dW and its dot product with a ±1 probe
    (`2·keep_mask(name + "#probe") − 1`). W enters the Rust graph as W · M, so torch's gradient of the masked
    weight is multiplied by M."""
    model.zero_grad()
    sum(losses.values()).backward()
    out = {}
    for n, p in model.named_parameters():
        if not p.requires_grad:
            continue
        g = p.grad.double() * (torch.from_numpy(masks[n]).double() if n in masks else 1.0)
        probe = torch.from_numpy(2 * keep_mask(n + "#probe", tuple(p.shape)) - 1).double()
        out[f"grad_norm.{n}"] = g.norm().reshape(1).float()
        out[f"grad_probe.{n}"] = (g * probe).sum().reshape(1).float()
    return out


def pad_rows(rows, count, make_padding):
    """Stacks one image's rows and pads them to `count` with `make_padding(k)` (k rows)."""
    assert rows.shape[0] <= count, f"{rows.shape[0]} rows do not fit {count}"
    return torch.cat([rows, make_padding(count - rows.shape[0]).to(rows.dtype)], 0)


def random_boxes(g, k):
    xy = torch.rand(k, 2, generator=g) * 90
    return torch.cat([xy, xy + torch.rand(k, 2, generator=g) * 36 + 2], 1)


def make_case(name, batch, sampled, rows, head_rows):
    kind, arch, classes, _ = export_models.MODELS[name]
    torch.manual_seed(0)
    model = export_models.make_detector(kind, arch, classes, export_models.NARROW, SIZE)
    path = os.path.join(ROOT, "tests", "fixtures", f"{name}.onnx")
    n_params, n_bns = load_onnx_weights(model, path)
    onnx_diff = check_against_onnx(model, path)
    model.roi_heads.fg_bg_sampler.batch_size_per_image = sampled

    g = torch.Generator().manual_seed(sum(map(ord, name)))
    images_u8 = torch.randint(0, 256, (batch, 3, SIZE, SIZE), generator=g, dtype=torch.uint8)
    targets = ground_truth(kind, classes, g, batch)
    rec, dict_losses = record_training_forward(model, images_u8, targets)
    mean, std = torch.tensor(MEAN), torch.tensor(STD)
    images = (images_u8.float() / 255 - mean[:, None, None]) / std[:, None, None]

    dense = {k: v.detach() for k, v in fixed_losses(model, images, targets, rec).items()}
    for k, v in dict_losses.items():
        assert torch.allclose(dense[k], v, rtol=1e-6, atol=0), f"{name} {k}: fixed {dense[k]} vs forward {v}"
    masked_model = copy.deepcopy(model)
    masks = {}
    with torch.no_grad():
        for mn, mod in masked_model.named_modules():
            if isinstance(mod, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
                masks[f"{mn}.weight"] = keep_mask(f"{mn}.weight", tuple(mod.weight.shape))
                mod.weight.mul_(torch.from_numpy(masks[f"{mn}.weight"]))
    n_masked = len(masks)
    masked_losses = fixed_losses(masked_model, images, targets, rec)
    probes = gradient_probes(masked_model, masked_losses, masks)
    masked = {k: v.detach() for k, v in masked_losses.items()}

    out = {"images_u8": images_u8.contiguous()}
    rpn_labels = []
    for lab, pos, neg in zip(rec["rpn_labels"], rec["rpn_pos"], rec["rpn_neg"]):
        l = torch.full_like(lab, -1.0)
        l[neg.bool()] = 0.0
        l[pos.bool()] = 1.0
        assert torch.equal(l[pos.bool()], lab[pos.bool()]) and torch.equal(l[neg.bool()], lab[neg.bool()])
        rpn_labels.append(l)
    out["rpn_labels"] = torch.stack(rpn_labels)
    out["rpn_bbox_targets"] = torch.stack(rec["rpn_targets"])

    pad = torch.Generator().manual_seed(99)
    num_classes = classes
    box_rows = {"roi_boxes": [], "roi_labels": [], "roi_bbox_targets": [], "roi_weights": []}
    for props, labels, regt in zip(rec["proposals"], rec["labels"], rec["regression_targets"]):
        r = props.shape[0]
        box_rows["roi_boxes"].append(pad_rows(props, rows, lambda k: random_boxes(pad, k)))
        box_rows["roi_labels"].append(pad_rows(labels, rows, lambda k: torch.randint(0, num_classes, (k,), generator=pad)))
        box_rows["roi_bbox_targets"].append(pad_rows(regt, rows, lambda k: torch.randn(k, 4, generator=pad)))
        box_rows["roi_weights"].append(pad_rows(torch.ones(r), rows, lambda k: torch.zeros(k)))
    out.update({k: torch.cat(v) for k, v in box_rows.items()})

    pos_props, pos_midx = positives(rec)
    if kind == "mask_rcnn":
        rows_m = {"mask_boxes": [], "mask_labels": [], "mask_targets": [], "mask_weights": []}
        for t, p, m in zip(targets, pos_props, pos_midx):
            rows_m["mask_boxes"].append(pad_rows(p, head_rows, lambda k: random_boxes(pad, k)))
            rows_m["mask_labels"].append(pad_rows(t["labels"][m], head_rows, lambda k: torch.randint(0, num_classes, (k,), generator=pad)))
            tg = project_masks_on_boxes(t["masks"], p, m, 28)
            rows_m["mask_targets"].append(pad_rows(tg, head_rows, lambda k: torch.rand(k, 28, 28, generator=pad)))
            rows_m["mask_weights"].append(pad_rows(torch.ones(p.shape[0]), head_rows, lambda k: torch.zeros(k)))
        out.update({k: torch.cat(v) for k, v in rows_m.items()})
    if kind == "keypoint_rcnn":
        rows_k = {"kp_boxes": [], "kp_targets": [], "kp_valid": []}
        for t, p, m in zip(targets, pos_props, pos_midx):
            heat, valid = keypoints_to_heatmap(t["keypoints"][m], p, 56)
            rows_k["kp_boxes"].append(pad_rows(p, head_rows, lambda k: random_boxes(pad, k)))
            rows_k["kp_targets"].append(pad_rows(heat, head_rows, lambda k: torch.randint(0, 56 * 56, (k, 17), generator=pad)))
            rows_k["kp_valid"].append(pad_rows(valid.float(), head_rows, lambda k: torch.zeros(k, 17)))
        out.update({k: torch.cat(v) for k, v in rows_k.items()})
    out["shape"] = torch.tensor([batch, SIZE, SIZE, rows, head_rows], dtype=torch.int64)
    for k, v in dense.items():
        out[f"dense.{k}"] = v.reshape(1).float()
        out[f"masked.{k}"] = masked[k].reshape(1).float()
    out.update({f"masked.{k}": v for k, v in probes.items()})
    out = {k: v.contiguous() for k, v in out.items()}

    pos_counts = [int((l > 0).sum()) for l in rec["labels"]]
    print(f"{name}: {n_params} params, {n_bns} FrozenBN loaded (ONNX boxes diff {onnx_diff:.1e}); "
          f"{n_masked} weights masked; RoIs per image {[p.shape[0] for p in rec['proposals']]}, positives {pos_counts}, "
          f"RPN sampled {[int(p.sum() + q.sum()) for p, q in zip(rec['rpn_pos'], rec['rpn_neg'])]}")
    for k in dense:
        print(f"  {k:18s} dense {dense[k].item():.6f}  masked {masked[k].item():.6f}")
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=os.path.join(ROOT, "tests", "fixtures", "train"))
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    torch.set_num_threads(2)
    for name, case in CASES.items():
        tensors = make_case(name, *case)
        save_file(tensors, os.path.join(args.out, f"{name}.safetensors"))


if __name__ == "__main__":
    main()
