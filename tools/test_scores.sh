#!/usr/bin/env bash
# Every finished model of tools/converged_study.sh's runs (or of another study below OUT, tools/distill_synth.sh's
# say) scored again on a held-out test set twenty times the size of the validation set the study selects and
# reports on: IMAGES synthetic images of seed 3 (2000 by default: about
# 4700 boxes, against the validation set's 100 images and 236 boxes), so that a difference of a point between two
# models is not lost in the scoring of a few hundred boxes. Nothing is trained; each score lands beside its model
# (RUN/eval_test.json for a dense run, RUN/level_N/eval_test.json for an imp level), written once and whole, so the
# script is idempotent and a run finished later is scored by running it again. The longest dense models come first:
# the plateau rule needs them most. Then `python3 tools/converged_summary.py --test OUT` reads these scores.
#
#   OUT=/path/to/converged tools/test_scores.sh     # about 50 s of one core a model (2000 images, width 8)
#
# Knobs: OUT (out/converged), IMAGES (2000), JOBS (1), TICKET_BIN (a copy of the binary).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
out=$(realpath -m "${OUT:-out/converged}")
source tools/imp_lib.sh
study_env
[ -d "$out" ] || { echo "$out: no converged study here (OUT)" >&2; exit 2; }
synth_once "$out/test" "${IMAGES:-2000}" 3
export ticket out
export -f score_once

# MODEL OUT pairs: dense runs that finished (eval.json written), then the imp levels of finished runs.
{
  for arm in dense_32x dense_32x_clip dense_16x dense_16x_clip dense_8x dense_4x dense_2x; do
    for run in "$out"/seed_*/"$arm"; do
      [ -f "$run/eval.json" ] && echo "$run/model.onnx $run/eval_test.json"
    done
  done
  # The seed's 4000-step dense model is the ticket run's level 0; a longer ticket's or a control's level 0 is the
  # dense model scored above.
  for run in "$out"/seed_*/ticket; do
    [ -f "$run/summary.json" ] && echo "$run/level_0/model.onnx $run/level_0/eval_test.json"
  done
  # The pruned runs at their last level (the iterative ticket's third); the early_bird runs repeat the ticket run bit
  # for bit, and App. B's Mask R-CNN is scored on boxes and masks by the validation set only.
  for arm in ticket_16x random_reinit_16x random_mask_16x ticket_8x random_reinit_8x random_mask_8x ticket_4x \
    ticket_2x ticket random_reinit random_mask layer_80 global_90 layer_90 modules_base modules_fpn modules_rpn \
    task_transfer iterative; do
    for run in "$out"/seed_*/"$arm"; do
      [ -f "$run/summary.json" ] || continue
      last=$(ls -d "$run"/level_* | sort -V | tail -n 1)
      echo "$last/model.onnx $last/eval_test.json"
    done
  done
  # The repeatability check: dense runs trained again at one thread.
  for run in "$out"/seed_*/dense_2x_rerun "$out"/seed_*/dense_4x_rerun; do
    [ -f "$run/eval.json" ] && echo "$run/model.onnx $run/eval_test.json"
  done
  # Another study below OUT (tools/distill_synth.sh's: OUT/faster/wW/seed_*/…): every finished imp run's last
  # level, and every other model.onnx (a finished `ticket train` run, a linked teacher).
  if [ ! -d "$out/seed_1/ticket" ]; then
    find "$out" -name summary.json -not -path "$out/*/level_*" | sort | while read -r summary; do
      last=$(ls -d "$(dirname "$summary")"/level_* | sort -V | tail -n 1)
      echo "$last/model.onnx $last/eval_test.json"
    done
    # (The patterns start at OUT: OUT's own path may hold any of these names.)
    find "$out" -name model.onnx -not -path "$out/*/level_*" -not -path "$out/*/checkpoints/*" -not -path "$out/*/work/*" | sort |
      while read -r model; do echo "$model $(dirname "$model")/eval_test.json"; done
  fi
} | awk '!seen[$0]++' | xargs -r -n 2 -P "${JOBS:-1}" bash -c 'score_once "$0" "$out/test/annotations.json" "$1" --threads 1 > /dev/null
  echo "$1"'
