"""Export a torchvision R-CNN with your weights to the ONNX form `ticket` reads.

    python examples/export_torchvision.py --arch maskrcnn_resnet50_fpn --weights model.pth -o model.onnx
    python examples/export_torchvision.py --arch fasterrcnn_resnet50_fpn --download --num-classes 6 -o model.onnx

--weights takes a state_dict saved with torch.save (or a checkpoint dict holding one under "model");
--download uses torchvision's weights API (the COCO weights, fetched into torch's cache: only when you ask);
--random exports the architecture with random weights (to try the pipeline). --num-classes N replaces the
box (and mask) predictors with fresh N-class ones after loading, the usual start for fine-tuning on your data.
--size S fixes the resize to S (min_size = max_size = S): smaller is faster on CPU.
Run it in a Python with torch and torchvision (`ticket setup --torch` makes one; tools/setup.sh torch in a
checkout). The export keeps torchvision's parameter names, which is how `ticket` recognises the modules.
"""
import argparse
import sys
import warnings

OUTPUTS = {
    "fasterrcnn": ["boxes", "labels", "scores"],
    "maskrcnn": ["boxes", "labels", "scores", "masks"],
    "keypointrcnn": ["boxes", "labels", "scores", "keypoints", "keypoints_scores"],
}
ARCHS = ["fasterrcnn_resnet50_fpn", "maskrcnn_resnet50_fpn", "keypointrcnn_resnet50_fpn"]


def parse(argv):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--arch", choices=ARCHS, default="maskrcnn_resnet50_fpn")
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--weights", metavar="PATH", help="a state_dict (.pth) of the same architecture")
    src.add_argument("--download", action="store_true", help="torchvision's COCO weights (downloads them)")
    src.add_argument("--random", action="store_true", help="random weights")
    ap.add_argument("--num-classes", type=int, help="replace the predictors with N-class ones (background included)")
    ap.add_argument("--size", type=int, default=800, help="min_size = max_size of the model's resize")
    ap.add_argument("-o", "--out", required=True)
    return ap.parse_args(argv)


def build(args):
    import torch
    from torchvision.models import detection, resnet50
    from torchvision.models.detection.backbone_utils import _resnet_fpn_extractor
    from torchvision.ops import misc as misc_nn_ops

    # torchvision's builders use FrozenBatchNorm only when they load weights themselves; with plain BatchNorm
    # the exporter folds it into the convs and renames them. Built the same way as the builders, with frozen
    # BatchNorm always, the export keeps every parameter name and a saved state_dict loads as it is.
    kind = args.arch.split("_")[0]
    backbone = _resnet_fpn_extractor(resnet50(norm_layer=misc_nn_ops.FrozenBatchNorm2d), 3)
    common = dict(min_size=args.size, max_size=args.size)
    if kind == "fasterrcnn":
        model = detection.FasterRCNN(backbone, num_classes=91, **common)
    elif kind == "maskrcnn":
        model = detection.MaskRCNN(backbone, num_classes=91, **common)
    else:
        model = detection.KeypointRCNN(backbone, num_classes=2, num_keypoints=17, **common)
    if args.download:
        model.load_state_dict(detection.get_model_weights(args.arch).DEFAULT.get_state_dict(progress=True))
    if args.weights:
        state = torch.load(args.weights, map_location="cpu", weights_only=True)
        state = state.get("model", state)
        model.load_state_dict(state)
    if args.num_classes:
        from torchvision.models.detection.faster_rcnn import FastRCNNPredictor
        from torchvision.models.detection.mask_rcnn import MaskRCNNPredictor

        heads = model.roi_heads
        heads.box_predictor = FastRCNNPredictor(heads.box_predictor.cls_score.in_features, args.num_classes)
        if heads.has_mask():
            heads.mask_predictor = MaskRCNNPredictor(heads.mask_predictor.conv5_mask.in_channels, 256, args.num_classes)
    return model.eval()


def main(argv):
    args = parse(argv)
    import torch

    model = build(args)
    outputs = OUTPUTS[args.arch.split("_")[0]]
    x = torch.rand(3, args.size, args.size)
    dyn = {"image": {1: "height", 2: "width"}}
    dyn.update({o: {0: "detections"} for o in outputs})
    # The settings ticket's tests export with: TorchScript exporter, opset 17, one 3-D image in a list. The
    # exporter's warnings are about tracing torchvision's data-dependent code, which is exported as ops anyway.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, ([x],), args.out, dynamo=False, opset_version=17, input_names=["image"],
                          output_names=outputs, dynamic_axes=dyn)
    print(f"{args.out}: {args.arch}, {sum(p.numel() for p in model.parameters())} parameters")


if __name__ == "__main__":
    main(sys.argv[1:])
