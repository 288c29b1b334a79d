#!/usr/bin/env bash
# The real training runs of the README: a random-init ResNet-18-FPN detector (base width 16, torchvision's
# module classes; tools/export_models.py --synth 16) trained densely by `ticket train` on 1000 synthetic
# 128-px images and evaluated with tract through `ticket eval` on 200 held-out ones (another seed).
#
#   tools/train_synth.sh faster     # Faster R-CNN, bbox AP
#   tools/train_synth.sh mask       # Mask R-CNN, bbox and segm AP
#
# Needs torch only to export the starting point (tools/setup.sh torch makes .venv-torch). Writes under
# out/train_synth/ (OUT overrides); an existing run folder is resumed, so an interrupted run continues.
# STEPS (default 3000) shortens a run for a smoke test; TICKET_BIN runs a copy of the binary (a rebuild cannot change a
# running experiment).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
kind=${1:-faster}
case "$kind" in
  faster) model=fasterrcnn_r18_fpn_synth; types=bbox ;;
  mask) model=maskrcnn_r18_fpn_synth; types="bbox segm" ;;
  *) echo "usage: tools/train_synth.sh faster|mask" >&2; exit 2 ;;
esac
out=${OUT:-out/train_synth}
source tools/imp_lib.sh
study_env
mkdir -p "$out"
[ -f "$out/models/$model.onnx" ] || .venv-torch/bin/python tools/export_models.py --out "$out/models" --synth 16
synth_sets "$out" 1000 200
run="$out/$kind"
steps=${STEPS:-3000}
# The schedule scaled to STEPS (sched: warm-up 1/15, ×0.1 at 2/3 and 13/15; at 3000 steps 200, 2000 and 2600).
args=($(sched "$steps") --lr 0.01 --batch 2 --rois 64 --trainable-layers 5 --save-every 500)
start=$(date +%s)
if [ -f "$run/run.json" ]; then
  $ticket train "$out/models/$model.onnx" --resume "$run" --steps "$steps"
else
  $ticket train "$out/models/$model.onnx" --coco "$out/train/annotations.json" "${args[@]}" -o "$run"
fi
echo "training wall time: $(( $(date +%s) - start )) s"
for t in $types; do
  $ticket eval --model "$run/model.onnx" --images "$out/val/images" --coco "$out/val/annotations.json" --iou-type "$t" > "$run/eval_$t.txt"
  head -9 "$run/eval_$t.txt"
done
