#!/usr/bin/env bash
# Reproduces docs/RESULTS.md: the seed paper's claims checked on the synthetic set with a width-8 ResNet-18-FPN
# Faster R-CNN (random init, 128-px images, 1000 train / 100 val, 1200 steps a run), 3 seeds.
#
#   tools/results.sh             # about 3.5 hours on 2 cores (STEPS=800: about 2.5); resumable (every run is an imp run folder)
#
# 1. tools/imp_synth.sh faster with ITERATIVE=1 CHANNEL=1: dense, the 80% one-shot ticket, prune + fine-tune,
#    the iterative ticket (41/66/80%), the channel ticket — per seed.
#    tools/imp_synth.sh mask: the Mask R-CNN tickets whose masks the task transfer (App. B) moves onto the Faster R-CNN.
# 2. Global vs layer-wise at 80% and 90%, and global 80% with a 5% floor per tensor (--min-layer-density), one-shot
#    from each seed's dense model, rewound to init.
# 3. Early-bird masks at 10-90% of dense training (their IoU with the final mask), per seed.
# 4. tools/transfer_synth.sh: a backbone pretrained here and tickets transferred from it (claims d and f).
# 5. tools/results.py: the tables (mean ± std); ticket report: the plots, one report per comparison.
# Knobs: OUT (out/results), SEEDS ("1 2 3"), STEPS (1200: every detector run's; 800 fits 3 hours), TICKET_BIN (a copy of the binary, so a rebuild cannot change a
# running experiment).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
out=${OUT:-out/results}
seeds=${SEEDS:-1 2 3}
steps=${STEPS:-1200}
OUT=$out SEEDS=$seeds STEPS=$steps ITERATIVE=1 CHANNEL=1 tools/imp_synth.sh faster
OUT=$out SEEDS=$seeds STEPS=$steps tools/imp_synth.sh mask
source tools/env.sh
ticket=${TICKET_BIN:-target/release/ticket}
source tools/imp_lib.sh
common=(--coco "$out/train/annotations.json" --val-coco "$out/val/annotations.json" --lr 0.01 --batch 2 --rois 64
        --save-every 200 --max-map-drop 0.01 $(sched "$steps"))
for seed in $seeds; do
  dir=$out/faster/w8/seed_$seed
  init=$out/models/w8/seed_$seed/fasterrcnn_r18_fpn_synth.onnx
  for cfg in "layer 0.8" "global 0.9" "layer 0.9"; do
    set -- $cfg
    imp "$dir/${1}_$2" "$init" "${common[@]}" --seed "$seed" --sparsity "$2" --scope "$1" --rewind init --trained "$dir/ticket/level_0/model.onnx"
  done
  imp "$dir/global_0.8_floor" "$init" "${common[@]}" --seed "$seed" --sparsity 0.8 --scope global --min-layer-density 0.05 \
    --rewind init --trained "$dir/ticket/level_0/model.onnx"
  # App. B: the seed's Mask R-CNN ticket (tools/imp_synth.sh mask) moved onto its Faster R-CNN up to the box head.
  mask_ticket=$out/mask/w8/seed_$seed/ticket/level_1/masks.safetensors
  if [ -f "$mask_ticket" ]; then
    [ -f "$dir/mask_ticket_on_faster.safetensors" ] || $ticket mask transfer "$mask_ticket" --to "$init" -o "$dir/mask_ticket_on_faster.safetensors" > /dev/null
    imp "$dir/task_transfer" "$init" "${common[@]}" --seed "$seed" --masks-from "$dir/mask_ticket_on_faster.safetensors" --rewind init \
      --trained "$dir/ticket/level_0/model.onnx"
  fi
  imp "$dir/early_bird" "$init" "${common[@]}" --seed "$seed" --sparsity 0.8 --rewind init --early-bird 0.1,0.2,0.3,0.5,0.7,0.9
done
OUT=$out SEEDS=$seeds STEPS=$(( steps / 2 )) TICKET_BIN=$ticket tools/transfer_synth.sh
runs() { for s in $seeds; do echo "$out/faster/w8/seed_$s/$1"; done; }
$ticket report $(runs ticket) $(runs global_0.8_floor) $(runs finetune) $(runs iterative) $(runs channel) -o "$out/report/ticket_vs_dense" > /dev/null
$ticket report $(runs ticket) $(runs layer_0.8) $(runs global_0.8_floor) $(runs global_0.9) $(runs layer_0.9) -o "$out/report/scope" > /dev/null
$ticket report $(runs early_bird) -o "$out/report/early_bird" > /dev/null
.venv/bin/python tools/results.py "$out" | tee "$out/results.md"
