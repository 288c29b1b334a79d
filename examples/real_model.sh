#!/usr/bin/env bash
# From your torchvision detector to a validated ticket you can ship: export → imp → validate.
#
#   examples/real_model.sh --weights MODEL.pth TRAIN.json VAL.json OUT_DIR   # your trained weights
#   examples/real_model.sh --download TRAIN.json VAL.json OUT_DIR            # torchvision's COCO weights
#   examples/real_model.sh --onnx MODEL.onnx TRAIN.json VAL.json OUT_DIR     # already exported
#
# TRAIN.json and VAL.json are COCO files with an `images/` folder next to each. Knobs: ARCH (default
# maskrcnn_resnet50_fpn; fasterrcnn_…, keypointrcnn_…), NUM_CLASSES (replace the predictors for your classes,
# background included), SIZE (the model's resize, default 512), STEPS, SPARSITY, ROUNDS, MAX_DROP (the gate,
# default 0.01 AP), TICKET (the binary), TORCH_PYTHON (a Python with torch: default $TICKET_TORCH_PYTHON, else the
# one `ticket setup --torch` made, else .venv-torch/bin/python).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ticket=${TICKET:-ticket}
case ${1:-} in
  --weights) source_args=(--weights "$2") ;;
  --download) source_args=(--download); set -- "$1" "" "${@:2}" ;;
  --onnx) source_args=() ;;
  *) awk 'NR > 1 && !/^#/ { exit } NR > 1' "$0" >&2; exit 2 ;;
esac
[ $# -eq 5 ] || { awk 'NR > 1 && !/^#/ { exit } NR > 1' "$0" >&2; exit 2; }
mode=$1 arg=$2 train=$3 val=$4 out=$5
mkdir -p "$out"
steps=${STEPS:-800}

# 1. The ONNX model (torchvision's parameter names kept: that is how ticket recognises the modules).
if [ "$mode" = --onnx ]; then
  model=$arg
else
  data=${TICKET_HOME:-${XDG_DATA_HOME:-$HOME/.local/share}/ticket}
  py=${TORCH_PYTHON:-${TICKET_TORCH_PYTHON:-}}
  if [ -z "$py" ]; then
    if [ -x "$data/venv-torch/bin/python" ]; then py=$data/venv-torch/bin/python; else py=.venv-torch/bin/python; fi
  fi
  model=$out/model.onnx
  classes=()
  if [ -n "${NUM_CLASSES:-}" ]; then classes=(--num-classes "$NUM_CLASSES"); fi
  "$py" "$here/export_torchvision.py" --arch "${ARCH:-maskrcnn_resnet50_fpn}" "${source_args[@]}" "${classes[@]}" \
    --size "${SIZE:-512}" -o "$model"
fi
$ticket inspect "$model"

# 2. IMP: dense training, then ROUNDS levels of global magnitude pruning rewound to init, each retrained and
#    scored on VAL with tract. Killed? Run the same line again: it resumes where it stopped.
if [ -f "$out/run/run.json" ]; then
  $ticket imp --resume "$out/run" || [ $? -eq 1 ]
else
  $ticket imp "$model" --coco "$train" --val-coco "$val" --sparsity "${SPARSITY:-0.8}" --rounds "${ROUNDS:-3}" \
    --steps "$steps" --warmup $((steps / 15)) --decay-at $((steps * 2 / 3)),$((steps * 13 / 15)) \
    --max-map-drop "${MAX_DROP:-0.01}" -o "$out/run" || [ $? -eq 1 ]   # exit 1: no level within the gate
fi

# 3. The CI gate: the ticket against the dense model, on sparsity and mAP of every IoU type the model has.
if [ ! -f "$out/run/ticket.onnx" ]; then
  echo "no level within ${MAX_DROP:-0.01} AP of dense: see $out/run/summary.json" >&2
  exit 1
fi
$ticket validate "$out/run/ticket.onnx" --dense "$out/run/level_0/model.onnx" --coco "$val" \
  --images "$(dirname "$val")/images" --min-sparsity 0.1 --max-map-drop "${MAX_DROP:-0.01}"

# 4. What to ship: ticket.onnx runs in any ONNX runtime (zeros in place); ticket.tkt is the compact file
#    (bitmap + non-zero values) that `ticket detect` runs directly on CPU and `ticket unpack` turns back to ONNX.
echo "ship $out/run/ticket.onnx (plain ONNX) or $out/run/ticket.tkt (compact: ticket detect / ticket unpack)"
