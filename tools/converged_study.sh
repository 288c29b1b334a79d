#!/usr/bin/env bash
# Claim (a) against dense models trained 1×, 2× and 4× as long (the plateau check), with the lottery controls beside the ticket:
# a width-8 ResNet-18-FPN Faster R-CNN from random init on the 128-px synthetic set (1000 train / 100 val images),
# per seed (initial weights and data order):
#   ticket/        ticket imp: dense trained STEPS (validation AP every STEPS/8 steps), then the one-shot 80% ticket
#                  (global magnitude with a 5% floor per tensor) rewound to init and trained STEPS
#   dense_2x/      ticket train: dense trained 2×STEPS (the plateau check: doubling the steps; and the ticket
#                  lineage's compute, dense + ticket), scored by ticket eval on the same images
#   random_reinit/ the ticket's mask on a fresh random initialisation (--rewind random), trained STEPS
#   random_mask/   a random mask with the ticket's per-tensor densities (--mask random), trained STEPS
#   ticket_2x/     with TICKET_2X=1: the paper's protocol at the longer length: the 80% ticket of dense_2x (its
#                  level 0, scored by imp), rewound to init and trained 2×STEPS, as long as that dense model
#   dense_4x/      for PLATEAU_SEEDS: dense trained 4×STEPS, the plateau check of dense_2x
#   ticket_4x/     with TICKET_4X=1, for PLATEAU_SEEDS: the 80% ticket of dense_4x, trained 4×STEPS
#   dense_8x/      for DENSE_8X_SEEDS (none by default): dense trained 8×STEPS, the plateau check of dense_4x
#   ticket_8x/     with TICKET_8X=1, for DENSE_8X_SEEDS: the 80% ticket of dense_8x, trained 8×STEPS
#   dense_16x/     for DENSE_16X_SEEDS (none by default): dense trained 16×STEPS, the plateau check of dense_8x
#   dense_32x/     for DENSE_32X_SEEDS (none by default): dense trained 32×STEPS, the plateau check of dense_16x
#   dense_64x/     for DENSE_64X_SEEDS (none by default): dense trained 64×STEPS, the plateau check of dense_32x
#   ticket_32x/, ticket_64x/
#                  with TICKET_32X=1 (TICKET_64X=1), for DENSE_32X_SEEDS (DENSE_64X_SEEDS): the 80% ticket of that
#                  dense model, trained as long
#   dense_Nx_clip/ with CLIP=C, a dense_Nx run stopped by a non-finite loss goes on here from its last checkpoint with
#                  the gradients clipped to norm C (a recipe of its own from that step on; the summary keeps it apart),
#                  and one that collapsed (a finite loss spike it never came back from: it scores below the seed's
#                  STEPS-step dense model) is trained here again from init with the gradients clipped to norm C
#   ticket_16x/    with TICKET_16X=1, for DENSE_16X_SEEDS: the 80% ticket of dense_16x (or of dense_16x_clip where
#                  that one had to be clipped), trained 16×STEPS
#   random_reinit_8x/, random_mask_8x/ (and _16x/)
#                  with CONTROLS_8X=1 (CONTROLS_16X=1), for DENSE_8X_SEEDS (DENSE_16X_SEEDS): the lottery controls of
#                  ticket_8x (ticket_16x): its mask on a fresh random init, and a random mask with its per-tensor
#                  densities, drawn from the same dense model and trained as long, with the same validation points
#   iterative/     with ITERATIVE=1, claim (b): the seed's dense model pruned to 80% in 3 levels (41%, 66%, 80%; 5%
#                  floor), each rewound to init and trained STEPS: a lineage of 4×STEPS, as long as dense_4x
#   global_90/, layer_80/, layer_90/
#                  with CLAIM_C=1, claim (c): the seed's dense model pruned one-shot to 90% globally (5% floor), or
#                  every tensor to 80 or 90% (layer-wise), rewound to init and trained STEPS like the ticket
#   early_bird/    with EARLY_BIRD=1, claim (e): the ticket's run again, saving the mask level 1 would draw at 0, 10,
#                  …, 90% of dense training (--early-bird) and its IoU with the final mask; its dense model and ticket
#                  are the ticket run's, bit for bit (one ORT thread), which the summary checks
#   modules_base/, modules_fpn/, modules_rpn/
#                  with MODULES=1, the paper's Table 3: the seed's dense model with 80% of the weights of the backbone
#                  (base), then of base and FPN, then of base, FPN and RPN pruned (global, 5% floor), rewound to init
#                  and trained STEPS; the ticket itself prunes every module (base, FPN, RPN, box head and predictor)
#   mask_ticket/, task_transfer/
#                  with TASK_TRANSFER=1, the paper's App. B: the Mask R-CNN of the same init seed (dense STEPS, then its
#                  80% ticket, 5% floor), whose mask up to the box head moves onto the Faster R-CNN (ticket mask
#                  transfer); the Faster R-CNN is trained STEPS from init under it, against its own ticket (direct)
# Runs JOBS at a time (one ORT thread each, so every run is bit-for-bit repeatable); every run resumes where it
# stopped, so the script is idempotent. Then the figures (ticket report: OUT/report/ the ticket and its controls,
# OUT/report_8x/ (report_16x/) the 8× (16×) ticket and its controls,
# OUT/report_c/ claim (c), OUT/report_b/ claim (b)) and the tables
# (tools/converged_summary.py, OUT/tables.md). tools/test_scores.sh then scores every finished model again on a
# test set twenty times the validation set's size (converged_summary.py --test reads those scores).
#
#   tools/converged_study.sh           # about 95 minutes on 2 cores (STEPS=4000, SEEDS="1 2 3 4 5"); TICKET_2X=1 adds ~25
#
# Knobs: OUT (out/converged), SEEDS ("1 2 3 4 5"), PLATEAU_SEEDS ("1 2"), STEPS (4000), JOBS (2), TICKET_2X (0),
# TICKET_4X (0), DENSE_8X_SEEDS (""), TICKET_8X (0), CONTROLS_8X (0), DENSE_16X_SEEDS (""), TICKET_16X (0), CONTROLS_16X (0), DENSE_32X_SEEDS (""), TICKET_32X (0), DENSE_64X_SEEDS (""), TICKET_64X (0), CLIP (none), CLAIM_C (0), ITERATIVE (0), EARLY_BIRD (0), MODULES (0), TASK_TRANSFER (0), ONLY (every queued arm; a list such as "ticket mask_ticket task_transfer" runs just those
# arms, for a study whose other runs are already packed), TICKET_BIN (a copy of the binary, so a rebuild cannot change a running
# experiment).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
out=$(realpath -m "${OUT:-out/converged}")
seeds=${SEEDS:-1 2 3 4 5}
plateau_seeds=${PLATEAU_SEEDS:-1 2}
steps=${STEPS:-4000}
jobs=${JOBS:-2}
source tools/imp_lib.sh
study_env
mkdir -p "$out"
synth_sets "$out" 1000 100
init_models "$out" 8 "$seeds"
common="--coco $out/train/annotations.json --lr 0.01 --batch 2 --rois 64 --save-every 500 --threads 1"
gate="$common --val-coco $out/val/annotations.json --max-map-drop 0.01"
imp_common="$gate --sparsity 0.8 --min-layer-density 0.05"

# The rewind and mask of an arm: the lottery controls' (random re-init, random mask), else the ticket's.
rewind_flags() {
  case $1 in
    random_reinit*) echo "--rewind random" ;;
    random_mask*) echo "--rewind init --mask random" ;;
    *) echo "--rewind init" ;;
  esac
}
# A dense run's validation scores in RUN/eval.json, once.
scored() { eval_once "$1" "$out/val/annotations.json" --threads 1; }
# FILE: wait for a file the seed's ticket run writes (its dense model, its level-0 scores); fail at once where ONLY
# leaves that run out and the file is not there, rather than wait for a run that never comes.
await_ticket() {
  local queued=1
  if [ -n "${ONLY:-}" ] && [[ " $ONLY " != *" ticket "* ]]; then queued=0; fi
  await_run_file "$1" "$queued" "ONLY leaves out the ticket run that writes it"
}
# EVAL_JSON SEED_DIR: the run's AP is below that of the seed's 4000-step dense model (level 0 of its ticket run, scored
# when that level ends), so a long run finishing first cannot pass for not collapsed.
collapsed() {
  local level0=$2/ticket/level_0/metrics.json
  await_ticket "$level0"
  python3 -c 'import json, sys
ap = json.load(open(sys.argv[1]))["summary"]["AP"]
dense = json.load(open(sys.argv[2]))["row"]["scores"]["bbox"]["ap"]
sys.exit(0 if ap < dense else 1)' "$1" "$level0"
}
# One job: KIND SEED. A control waits for its seed's dense model.
job() {
  local kind=$1 seed=$2 dir=$out/seed_$2
  local init=$out/models/w8/seed_$seed/fasterrcnn_r18_fpn_synth.onnx dense=$dir/ticket/level_0/model.onnx
  case $kind in
    ticket) imp "$dir/ticket" "$init" $imp_common $(sched "$steps") --seed "$seed" --rewind init --val-every $(( steps / 8 )) ;;
    dense_2x|dense_4x|dense_8x|dense_16x|dense_32x|dense_64x)
      local n=${kind#dense_}; n=${n%x}
      local run=$dir/$kind
      train_run "$run" "$init" $common $(sched $(( n * steps ))) --seed "$seed" > /dev/null || {
        # Stopped by a non-finite loss (exit 1; the last checkpoint is intact): with CLIP, go on from it in KIND_clip/.
        # Any other end (killed, out of disk) is no divergence: the next start resumes the run as it was.
        local rc=$?
        [ "$rc" -eq 1 ] && [ -n "${CLIP:-}" ] && [ -d "$run/checkpoints" ] || return 1
        run=$dir/${kind}_clip
        [ -d "$run" ] || { rm -rf "$run.tmp"; cp -r "$dir/$kind" "$run.tmp" && mv "$run.tmp" "$run"; }
        # Resuming with the same clip again (after a kill) keeps the step it started from.
        [ -f "$run/model.onnx" ] || $ticket train "$init" --resume "$run" --clip-grad-norm "$CLIP" > /dev/null || return 1
      }
      scored "$run"
      # Collapsed: a finite loss spike it never came back from (nothing stopped it), so it scores below the seed's
      # 4000-step dense model. With CLIP, the same recipe again from init with the gradients clipped, in KIND_clip/.
      if [ -n "${CLIP:-}" ] && [ "$run" = "$dir/$kind" ] && collapsed "$run/eval.json" "$dir"; then
        run=$dir/${kind}_clip
        train_run "$run" "$init" $common $(sched $(( n * steps ))) --seed "$seed" --clip-grad-norm "$CLIP" > /dev/null ||
          return 1
        scored "$run"
      fi ;;
    ticket_2x|ticket_4x|ticket_8x|ticket_16x|ticket_32x|ticket_64x|random_reinit_*x|random_mask_*x)
      # The longer ticket and its controls: drawn from dense_Nx (dense_Nx_clip where that one had to be clipped)
      # and trained as long as it.
      local n=${kind##*_}; n=${n%x}
      local src=$dir/dense_${n}x
      until [ -f "$src/eval.json" ] || [ -f "${src}_clip/eval.json" ]; do sleep 10; done
      # A collapsed dense run is trained again clipped (with CLIP): that one is the source.
      if [ ! -f "${src}_clip/eval.json" ] && collapsed "$src/eval.json" "$dir"; then
        [ -n "${CLIP:-}" ] || { echo "$src collapsed: set CLIP to train it again with clipped gradients" >&2; return 1; }
        until [ -f "${src}_clip/eval.json" ]; do sleep 10; done
      fi
      [ -f "${src}_clip/eval.json" ] && src=${src}_clip
      imp "$dir/$kind" "$init" $imp_common $(sched $(( n * steps ))) --seed "$seed" $(rewind_flags "$kind") \
        --val-every $(( n * steps / 8 )) --trained "$src/model.onnx" ;;
    random_reinit|random_mask)
      await_ticket "$dense"
      imp "$dir/$kind" "$init" $imp_common $(sched "$steps") --seed "$seed" $(rewind_flags "$kind") --trained "$dense" ;;
    iterative)
      await_ticket "$dense"
      imp "$dir/iterative" "$init" $imp_common --rounds 3 $(sched "$steps") --seed "$seed" --rewind init --trained "$dense" ;;
    early_bird) imp "$dir/early_bird" "$init" $imp_common $(sched "$steps") --seed "$seed" --rewind init \
      --val-every $(( steps / 8 )) --early-bird 0,0.1,0.2,0.3,0.4,0.5,0.6,0.7,0.8,0.9 ;;
    modules_base|modules_fpn|modules_rpn)
      await_ticket "$dense"
      local m=base
      case $kind in modules_fpn) m=base,fpn ;; modules_rpn) m=base,fpn,rpn ;; esac
      imp "$dir/$kind" "$init" $imp_common $(sched "$steps") --seed "$seed" --rewind init --val-every $(( steps / 8 )) \
        --modules "$m" --trained "$dense" ;;
    mask_ticket) imp "$dir/mask_ticket" "$out/models/w8/seed_$seed/maskrcnn_r18_fpn_synth.onnx" $imp_common $(sched "$steps") \
      --seed "$seed" --rewind init ;;
    task_transfer)
      # The Mask R-CNN's mask is drawn (level_1/masks.safetensors) before its ticket trains; that is all this needs.
      local from=$dir/mask_ticket/level_1/masks.safetensors moved=$dir/mask_ticket_on_faster.safetensors
      await_ticket "$dense"
      until [ -f "$from" ]; do sleep 10; done
      [ -f "$moved" ] || $ticket mask transfer "$from" --to "$init" -o "$moved" > /dev/null
      imp "$dir/task_transfer" "$init" $gate $(sched "$steps") --seed "$seed" --masks-from "$moved" --rewind init \
        --val-every $(( steps / 8 )) --trained "$dense" ;;
    layer_80|global_90|layer_90)
      await_ticket "$dense"
      local flags="--sparsity 0.${kind#*_} --scope layer"
      [ "$kind" = global_90 ] && flags="--sparsity 0.9 --min-layer-density 0.05"
      imp "$dir/$kind" "$init" $gate $flags $(sched "$steps") --seed "$seed" --rewind init --val-every $(( steps / 8 )) \
        --trained "$dense" ;;
  esac
}
only_arms() { # the queue, less the arms ONLY leaves out
  if [ -n "${ONLY:-}" ]; then grep -E "^($(echo $ONLY | tr ' ' '|')) " || true; else cat; fi
}
export -f job imp sched train_run eval_once score_once rewind_flags scored collapsed await_ticket await_run_file
export out steps ticket common gate imp_common CLIP ONLY
# Dense and ticket first for every seed, the 2× dense next, then the controls, the plateau check and the longer
# tickets, each after its dense model (a waiting job holds a slot): a cut-short study keeps whole pairs.
{ for s in $seeds; do echo "ticket $s"; done
  for s in $seeds; do echo "dense_2x $s"; done
  for s in $seeds; do echo "random_reinit $s"; echo "random_mask $s"; done
  for s in $plateau_seeds; do echo "dense_4x $s"; done
  if [ "${TICKET_2X:-0}" = 1 ]; then for s in $seeds; do echo "ticket_2x $s"; done; fi
  if [ "${TICKET_4X:-0}" = 1 ]; then for s in $plateau_seeds; do echo "ticket_4x $s"; done; fi
  if [ "${CLAIM_C:-0}" = 1 ]; then for a in global_90 layer_80 layer_90; do for s in $seeds; do echo "$a $s"; done; done; fi
  if [ "${ITERATIVE:-0}" = 1 ]; then for s in $seeds; do echo "iterative $s"; done; fi
  if [ "${EARLY_BIRD:-0}" = 1 ]; then for s in $seeds; do echo "early_bird $s"; done; fi
  if [ "${MODULES:-0}" = 1 ]; then for a in modules_base modules_fpn modules_rpn; do for s in $seeds; do echo "$a $s"; done; done; fi
  if [ "${TASK_TRANSFER:-0}" = 1 ]; then for s in $seeds; do echo "mask_ticket $s"; done; for s in $seeds; do echo "task_transfer $s"; done; fi
  # Each 8× ticket right after its dense model: two slots then run one seed's ticket beside the next seed's dense.
  for n in 8 16 32 64; do
    seeds_n=DENSE_${n}X_SEEDS ticket_n=TICKET_${n}X controls_n=CONTROLS_${n}X
    for s in ${!seeds_n:-}; do
      echo "dense_${n}x $s"
      if [ "${!ticket_n:-0}" = 1 ]; then echo "ticket_${n}x $s"; fi
      if [ "${!controls_n:-0}" = 1 ]; then echo "random_reinit_${n}x $s"; echo "random_mask_${n}x $s"; fi
    done
  done; } |
  only_arms |
  # Each job in a subshell, so one that exits (a wait that cannot be met) is reported as failed like one that returns 1.
  xargs -P "$jobs" -L 1 bash -c '(job "$0" "$1") > "$out/log_$0_$1.txt" 2>&1 || echo "failed: $0 $1 (see $out/log_$0_$1.txt)"'
runs() { for s in $seeds; do [ -f "$out/seed_$s/$1/summary.json" ] && echo "$out/seed_$s/$1"; done; }
$ticket report $(runs ticket) $(runs random_reinit) $(runs random_mask) -o "$out/report" > /dev/null
for n in 8 16; do
  if [ -n "$(runs random_reinit_${n}x)" ]; then
    $ticket report $(runs ticket_${n}x) $(runs random_reinit_${n}x) $(runs random_mask_${n}x) -o "$out/report_${n}x" > /dev/null
  fi
done
if [ -n "$(runs layer_80)" ]; then
  $ticket report $(runs ticket) $(runs global_90) $(runs layer_80) $(runs layer_90) -o "$out/report_c" > /dev/null
fi
if [ -n "$(runs modules_base)" ]; then
  $ticket report $(runs modules_base) $(runs modules_fpn) $(runs modules_rpn) $(runs ticket) -o "$out/report_modules" > /dev/null
fi
if [ -n "$(runs early_bird)" ]; then
  $ticket report $(runs early_bird) -o "$out/report_e" > /dev/null
fi
if [ -n "$(runs task_transfer)" ]; then
  $ticket report $(runs ticket) $(runs task_transfer) -o "$out/report_tt" > /dev/null
fi
if [ -n "$(runs iterative)" ]; then
  $ticket report $(runs ticket) $(runs iterative) -o "$out/report_b" > /dev/null
fi
python3 tools/pack_runs.py --no-logs "$out" "$out/runs.tar.gz"
.venv/bin/python tools/converged_summary.py "$out" | tee "$out/tables.md"
