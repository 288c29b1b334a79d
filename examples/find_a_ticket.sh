#!/usr/bin/env bash
# Find a lottery ticket for your detector and gate it the way CI would. Copy this and change the four paths.
#
#   examples/find_a_ticket.sh MODEL.onnx TRAIN.json VAL.json OUT_DIR
#
# MODEL.onnx is a torchvision Faster/Mask/Keypoint R-CNN exported to ONNX (its initial weights: a
# pretrained backbone, or random init); TRAIN.json and VAL.json are COCO files with an `images/` folder next to
# each. Without arguments it runs on a synthetic set and the narrow Mask R-CNN the tests use.
# Knobs: TICKET (the binary), STEPS (training steps per level), SPARSITY, ROUNDS.
set -euo pipefail
ticket=${TICKET:-target/release/ticket}
steps=${STEPS:-800}
if [ $# -eq 0 ]; then
  out=out/example
  $ticket data synth --out "$out/train" --images 300 --seed 1 > /dev/null
  $ticket data synth --out "$out/val" --images 60 --seed 2 > /dev/null
  set -- tests/fixtures/train/maskrcnn_r18_fpn_synth.onnx "$out/train/annotations.json" "$out/val/annotations.json" "$out"
fi
model=$1 train=$2 val=$3 out=$4

# 1. IMP: dense training, then ROUNDS levels of global magnitude pruning rewound to init, each retrained and
#    scored on VAL with tract. Killed? Run the same line again: it resumes where it stopped.
if [ -f "$out/run/run.json" ]; then
  $ticket imp --resume "$out/run" || [ $? -eq 1 ]
else
  $ticket imp "$model" --coco "$train" --val-coco "$val" --sparsity "${SPARSITY:-0.8}" --rounds "${ROUNDS:-3}" \
    --steps "$steps" --warmup $((steps / 15)) --decay-at $((steps * 2 / 3)),$((steps * 13 / 15)) --rois 64 \
    --max-map-drop 0.01 -o "$out/run" || [ $? -eq 1 ]   # exit 1: no level within the gate (the table says why)
fi

# 2. The CI gate on the sparsest ticket within 1 AP point (when there is one): sparsity and mAP drop against
#    the dense model, on every IoU type the model has. Exit 1 fails the pipeline.
if [ -f "$out/run/ticket.onnx" ]; then
  $ticket validate "$out/run/ticket.onnx" --dense "$out/run/level_0/model.onnx" --coco "$val" \
    --images "$(dirname "$val")/images" --min-sparsity 0.3 --max-map-drop 0.01
fi
