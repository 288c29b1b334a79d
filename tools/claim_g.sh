#!/usr/bin/env bash
# Claim (g), small objects and rare categories suffer first, on a synthetic set where it can be tested: 256-320 px
# scenes with small, medium and large objects by COCO's area ranges and one rare category (triangle, ~5% of the
# objects), deterministic per seed (`ticket data synth --size 256..320 --scales coco --rare-fraction 0.05`).
# A width-8 ResNet-18-FPN Faster R-CNN at a 320-px input side (`tools/export_models.py --synth 8 --synth-size 320`),
# per seed (initial weights and data order):
#   faster/w8/seed_S/ticket/   ticket imp: dense trained STEPS (validation AP every STEPS/8 steps), then the one-shot 80%
#                              ticket (global magnitude, 5% floor per tensor) rewound to init and trained STEPS
#   faster/w8/seed_S/ticket_90/  with SPARSITY_90=1: the same dense model pruned to 90% (a ticket that loses more AP,
#                              so who loses first shows with more power), rewound to init and trained STEPS
# Per-size and per-category AP of every level are in its metrics.json (hotcoco); tools/claim_g_summary.py tables them
# with paired 95% intervals and verdicts (small against medium and large objects, the rare category against the rest).
#
#   tools/claim_g.sh        # OUT (out/claim_g), SEEDS ("1 2 3 4 5"), STEPS (4000), JOBS (2), TRAIN (1000), VAL (200), SPARSITY_90 (0),
#                           # TICKET_BIN (a copy of the binary, so a rebuild cannot change a running experiment)
# Runs JOBS at a time, one ORT thread each (bit-for-bit repeatable); every run resumes where it stopped.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
out=$(realpath -m "${OUT:-out/claim_g}")
seeds=${SEEDS:-1 2 3 4 5}
steps=${STEPS:-4000}
jobs=${JOBS:-2}
source tools/imp_lib.sh
study_env
mkdir -p "$out"
# The validation set is larger than the 128-px study's (200 images): the rare category needs boxes to be scored on.
synth_sets "$out" "${TRAIN:-1000}" "${VAL:-200}" --size 256..320 --scales coco --rare-fraction 0.05
init_models "$out" 8 "$seeds" --synth-size 320
# One job: KIND SEED. ticket_90 waits for the seed's dense model (the ticket run's level 0).
job() {
  local kind=$1 seed=$2 dir=$out/faster/w8/seed_$2
  local flags=(--sparsity 0.8)
  if [ "$kind" = ticket_90 ]; then
    until [ -f "$dir/ticket/level_0/model.onnx" ]; do sleep 10; done
    flags=(--sparsity 0.9 --trained "$dir/ticket/level_0/model.onnx")
  fi
  imp "$dir/$kind" "$out/models/w8/seed_$seed/fasterrcnn_r18_fpn_synth.onnx" \
    --coco "$out/train/annotations.json" --val-coco "$out/val/annotations.json" --lr 0.01 --batch 2 --rois 64 \
    --save-every 500 --threads 1 --max-map-drop 0.01 --min-layer-density 0.05 $(sched "$steps") \
    --seed "$seed" --rewind init --val-every $(( steps / 8 )) "${flags[@]}"
}
export -f job imp sched
export out steps ticket
{ for s in $seeds; do echo "ticket $s"; done
  if [ "${SPARSITY_90:-0}" = 1 ]; then for s in $seeds; do echo "ticket_90 $s"; done; fi; } |
  xargs -P "$jobs" -L 1 bash -c 'job "$0" "$1" > "$out/log_$0_$1.txt" 2>&1 || echo "failed: $0, seed $1 (see $out/log_$0_$1.txt)"'
python3 tools/claim_g_summary.py "$out" | tee "$out/tables.md"
