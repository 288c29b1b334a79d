#!/usr/bin/env bash
# The README's lottery-ticket runs: on the synthetic set, a random-init ResNet-18-FPN detector (base width
# WIDTH, default 8; tools/export_models.py --synth) trained densely, its 80% one-shot ticket rewound to init and
# retrained as long as dense, prune + fine-tune (the same mask on the trained weights, a third as long), and
# with ITERATIVE=1 the iterative ticket (3 levels to 80%, each rewound to init and retrained as long as dense),
# with CHANNEL=1 a channel ticket (55% of the channels by global L1, rounded to multiples of 4, rewound to init),
# for SEEDS replicates (initial weights and data order both seeded). Scored with tract on held-out images.
#
#   tools/imp_synth.sh faster      # Faster R-CNN, bbox AP
#   tools/imp_synth.sh mask        # Mask R-CNN, bbox and segm AP
#
# Writes under out/imp_synth/ (OUT overrides); every run is an imp run folder, so an interrupted script
# resumes where it stopped. Then tools/imp_summary.py prints mean ± std per method.
# Knobs: TICKET_BIN (a copy of the binary, so a rebuild cannot change a running experiment), WIDTH (8), STEPS (1200 dense and ticket training), SEEDS ("1 2 3"), TRAIN (1000 images), VAL (100).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
kind=${1:-faster}
case "$kind" in
  faster) model=fasterrcnn_r18_fpn_synth ;;
  mask) model=maskrcnn_r18_fpn_synth ;;
  *) echo "usage: tools/imp_synth.sh faster|mask" >&2; exit 2 ;;
esac
out=${OUT:-out/imp_synth}
width=${WIDTH:-8}
steps=${STEPS:-1200}
seeds=${SEEDS:-1 2 3}
source tools/imp_lib.sh
study_env
mkdir -p "$out"
synth_sets "$out" "${TRAIN:-1000}" "${VAL:-100}"
common=(--coco "$out/train/annotations.json" --val-coco "$out/val/annotations.json" --lr 0.01 --batch 2 --rois 64
        --save-every 200 --max-map-drop 0.01)
for seed in $seeds; do
  dir="$out/$kind/w$width/seed_$seed"
  init="$out/models/w$width/seed_$seed/$model.onnx"
  [ -f "$init" ] || .venv-torch/bin/python tools/export_models.py --out "$(dirname "$init")" --synth "$width" --init-seed "$seed" > /dev/null
  dense=(--trained "$dir/ticket/level_0/model.onnx")
  # The 80% one-shot ticket rewound to init (level 0 is the dense model).
  imp "$dir/ticket" "$init" "${common[@]}" $(sched "$steps") --seed "$seed" --sparsity 0.8 --rewind init
  # Prune + fine-tune: the same dense model, pruned 80% and trained on a third as long without rewinding.
  imp "$dir/finetune" "$init" "${common[@]}" $(sched $(( steps / 3 ))) --seed "$seed" --sparsity 0.8 --rewind none "${dense[@]}"
  # The iterative ticket: 41%, 66%, 80%, from the same dense model.
  if [ "${ITERATIVE:-0}" = 1 ]; then
    imp "$dir/iterative" "$init" "${common[@]}" $(sched "$steps") --seed "$seed" --sparsity 0.8 --rounds 3 --rewind init "${dense[@]}"
  fi
  if [ "${CHANNEL:-0}" = 1 ]; then
    imp "$dir/channel" "$init" "${common[@]}" $(sched "$steps") --seed "$seed" --structure channel --sparsity 0.55 --round-to 4 \
      --rewind init "${dense[@]}"
  fi
done
.venv/bin/python tools/imp_summary.py "$out/$kind/w$width"
