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
[ -d "$out" ] || { echo "$out: no study folder here (OUT)" >&2; exit 2; }
synth_once "$out/test" "${IMAGES:-2000}" 3
export ticket out
export -f score_once

last_level() { ls -d "$1"/level_* | sort -V | tail -n 1; }
# MODEL OUT pairs, each model once.
{
  # The converged study's dense models, longest first, and each seed's 4000-step one (the ticket run's level 0).
  for arm in dense_64x dense_64x_clip dense_32x dense_32x_clip dense_16x dense_16x_clip dense_8x dense_4x dense_2x; do
    for run in "$out"/seed_*/"$arm"; do
      [ -f "$run/model.onnx" ] && echo "$run/model.onnx $run/eval_test.json"
    done
  done
  for run in "$out"/seed_*/ticket; do
    [ -f "$run/summary.json" ] && echo "$run/level_0/model.onnx $run/level_0/eval_test.json"
  done
  # Every finished imp run at its last level (the iterative ticket's third; a level 0 is a dense model scored here
  # anyway). The early_bird runs repeat the ticket run bit for bit, and App. B's Mask R-CNN (mask_ticket) is scored
  # on boxes and masks by the validation set only. The patterns start at OUT: OUT's own path may hold any name.
  find "$out" -name summary.json -not -path "$out/*/level_*" -not -path "$out/*/early_bird/*" \
    -not -path "$out/*/mask_ticket/*" | sort | while read -r summary; do
    last=$(last_level "$(dirname "$summary")")
    echo "$last/model.onnx $last/eval_test.json"
  done
  # Every other model: a finished `ticket train` run (the re-runs; another study's dense models), a linked teacher.
  find "$out" -name model.onnx -not -path "$out/*/level_*" -not -path "$out/*/checkpoints/*" -not -path "$out/*/work/*" |
    sort | while read -r model; do echo "$model $(dirname "$model")/eval_test.json"; done
} | awk '!seen[$0]++' | xargs -r -n 2 -P "${JOBS:-1}" bash -c 'score_once "$0" "$out/test/annotations.json" "$1" --threads 1 > /dev/null
  echo "$1"'
