#!/usr/bin/env bash
# Recovery by distillation on the synthetic set (docs/distill.md): for SEEDS replicates of a random-init ResNet-18-FPN
# detector (base width WIDTH; tools/export_models.py --synth), trained densely for DENSE steps (`ticket train`), then
#   (a) a channel ticket (CHANNEL of the channels by global L1, rounded to 4: ≥ 70% of the FLOPs removed),
#       fine-tuned STEPS steps from the trained weights with and without distillation from the dense model;
#   (b) the 80% weight ticket (global, ≥ 5% kept per tensor: without the floor the RPN conv and fc6 collapse)
#       fine-tuned STEPS steps with labels, and recovered from unlabeled images only
#       (UNLABELED images of the same generator, other seed: pseudo labels + every distillation term);
#   (c) the 80% one-shot ticket without any retraining (the floor);
#   (u) the channel ticket of (a) recovered from the unlabeled images only (pseudo labels + every distillation term);
#   (m) with LABELS=N, the channel ticket of (a) recovered from the N labelled images and the unlabeled ones together
#       (--coco with --unlabeled: pseudo labels for the unlabeled, every distillation term), in channel_mixed_lN/.
# With LABELS=N, (a)'s recoveries see the labels of the first N training images only (the synthetic set draws image i
# from (seed, i), so they are the same images) and their folders end in _lN: the scarce-label test of distillation.
# Dense is also trained at half its steps (the plateau check). Every run is a run folder (an interrupted script resumes where it stopped); tools/distill_summary.py prints
# mean ± std and the paired differences. `OUT=… tools/test_scores.sh` then scores every finished model on a test set
# twenty times the validation set's size, and `distill_summary.py --test` prints the same tables from those scores.
#
#   tools/distill_synth.sh mask        # Mask R-CNN (bbox and segm AP); `faster` for Faster R-CNN
#
# Knobs: OUT (out/distill_synth), TICKET_BIN (a copy of the binary, so a rebuild cannot change a running
# experiment), WIDTH (8), DENSE (3000), STEPS (600), SEEDS ("1 2 3"), TRAIN (1000), VAL (100), UNLABELED (1000),
# CHANNEL (0.55), DISTILL (the `--distill` terms of channel_distill/, features,logits,objectness; another set names its
# folder channel_distill_TERM_…/), EXTRA_DISTILL (more distilled channel tickets, a `--distill` value each: "features,objectness
# objectness" adds channel_distill_features_objectness/ and channel_distill_objectness/), PARTS ("a b c": which of
# the parts to run; u and m only when named), LR (the recoveries' learning rate, 0.01), THREADS (ORT threads per run; default all cores),
# PLATEAU (1; 0 skips the half-length dense model of the plateau check), LINEAGE (0; 1 also trains dense as long as a
# recovered ticket's lineage, DENSE + STEPS steps, in dense_lineage/: the compute-matched reference), LABELS (see
# above; unset: every label),
# DENSE_FROM (a tools/converged_study.sh output folder: its initial models, data and dense models
# DENSE_FROM/seed_N/DENSE_ARM, default dense_4x (DENSE_ARM_clip where that one diverged or
# collapsed), are the teachers; no dense training here; `faster` only).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
kind=${1:-mask}
case "$kind" in
  faster) model=fasterrcnn_r18_fpn_synth ;;
  mask) model=maskrcnn_r18_fpn_synth ;;
  *) echo "usage: tools/distill_synth.sh faster|mask" >&2; exit 2 ;;
esac
out=${OUT:-out/distill_synth}
width=${WIDTH:-8}
dense=${DENSE:-3000}
steps=${STEPS:-600}
seeds=${SEEDS:-1 2 3}
parts=${PARTS:-a b c}
source tools/imp_lib.sh
study_env
mkdir -p "$out"
data=$out
if [ -n "${DENSE_FROM:-}" ]; then
  [ "$kind" = faster ] || { echo "DENSE_FROM holds Faster R-CNN dense models: run tools/distill_synth.sh faster" >&2; exit 2; }
  data=$(realpath "$DENSE_FROM")
fi
synth_sets "$data" "${TRAIN:-1000}" "${VAL:-100}"
# Unlabeled images: the generator's images under another seed, the annotations thrown away.
if [ ! -d "$out/unlabeled/images" ]; then
  $ticket data synth --out "$out/unlabeled_src" --images "${UNLABELED:-1000}" --seed 3 > /dev/null
  mv "$out/unlabeled_src/images" "$out/unlabeled_images.tmp" && rm -rf "$out/unlabeled_src"
  mkdir -p "$out/unlabeled" && mv "$out/unlabeled_images.tmp" "$out/unlabeled/images"
fi
# LABELS=N: the labelled subset (the first N training images) and the suffix of (a)'s folders.
labelled=(--coco "$data/train/annotations.json") sfx=
if [ -n "${LABELS:-}" ]; then
  synth_once "$data/train_l$LABELS" "$LABELS" 1
  labelled=(--coco "$data/train_l$LABELS/annotations.json") sfx=_l$LABELS
fi
val=(--val-coco "$data/val/annotations.json" --max-map-drop 1)
common=(--lr "${LR:-0.01}" --batch 2 --rois 64 --save-every 200 "${val[@]}" ${THREADS:+--threads "$THREADS"})
scored_dense() { # RUN_DIR STEPS: dense trained STEPS steps with the teacher's recipe and seed, scored on the validation set
  local d=$1
  [ ! -f "$d/eval.json" ] || return 0
  train_run "$d" "$init" "${coco[@]}" --lr 0.01 --batch 2 --rois 64 --save-every 200 $(sched "$2") --seed "$seed" \
    ${THREADS:+--threads "$THREADS"}
  eval_once "$d" "$data/val/annotations.json"
}
for seed in $seeds; do
  dir="$out/$kind/w$width/seed_$seed"
  init="$data/models/w$width/seed_$seed/$model.onnx"
  [ -f "$init" ] || .venv-torch/bin/python tools/export_models.py --out "$(dirname "$init")" --synth "$width" --init-seed "$seed" > /dev/null
  coco=(--coco "$data/train/annotations.json")
  # Dense: DENSE steps from the random init (or DENSE_FROM's); the teacher and the start of every ticket below.
  trained="$dir/dense/model.onnx"
  if [ -n "${DENSE_FROM:-}" ]; then
    # Where the dense run diverged or collapsed, the one trained with clipped gradients (converged_study.sh's CLIP,
    # ARM_clip/) took over from it.
    trained="$data/seed_$seed/${DENSE_ARM:-dense_4x}_clip/model.onnx"
    if [ ! -f "$trained" ]; then
      [ ! -d "$(dirname "$trained")" ] || { echo "$(dirname "$trained"): still training (run tools/converged_study.sh)" >&2; exit 2; }
      trained="$data/seed_$seed/${DENSE_ARM:-dense_4x}/model.onnx"
    fi
  fi
  if [ ! -f "$trained" ]; then
    [ -z "${DENSE_FROM:-}" ] || { echo "$trained: no such dense model (run tools/converged_study.sh first)" >&2; exit 2; }
    train_run "$dir/dense" "$init" "${coco[@]}" --lr 0.01 --batch 2 --rois 64 --save-every 200 $(sched "$dense") --seed "$seed" \
      ${THREADS:+--threads "$THREADS"}
  fi
  # The plateau check: the same recipe at half the steps, scored on the validation set; dense has converged (for
  # this recipe) when doubling its training gains less than a point.
  [ -n "${DENSE_FROM:-}" ] || [ "${PLATEAU:-1}" != 1 ] || scored_dense "$dir/dense_half" $(( dense / 2 ))
  # The compute-matched reference: dense trained as long as a recovered ticket's whole lineage (DENSE + STEPS).
  [ -n "${DENSE_FROM:-}" ] || [ "${LINEAGE:-0}" != 1 ] || scored_dense "$dir/dense_lineage" $(( dense + steps ))
  if [[ " $parts " == *" b "* ]]; then
    # (b, labelled): the 80% magnitude ticket (global, ≥ 5% kept per tensor) fine-tuned with labels.
    floor=(--sparsity 0.8 --min-layer-density 0.05 --rewind none --trained "$trained")
    imp "$dir/labelled" "$init" "${coco[@]}" "${common[@]}" $(sched "$steps") --seed "$seed" "${floor[@]}"
    # (b, unlabeled): the same ticket recovered from unlabeled images: pseudo labels and every distillation term.
    imp "$dir/unlabeled" "$init" --unlabeled "$out/unlabeled/images" "${common[@]}" $(sched "$steps") --seed "$seed" \
      "${floor[@]}"
  fi
  channel=(--structure channel --sparsity "${CHANNEL:-0.55}" --round-to 4 --rewind none --trained "$trained")
  if [[ " $parts " == *" a "* ]]; then
    # (a): the channel ticket fine-tuned without and with distillation (DISTILL's terms, then EXTRA_DISTILL's sets).
    imp "$dir/channel$sfx" "$init" "${labelled[@]}" "${common[@]}" $(sched "$steps") --seed "$seed" "${channel[@]}"
    for terms in ${DISTILL:-features,logits,objectness} ${EXTRA_DISTILL:-}; do
      arm=channel_distill; [ "$terms" = features,logits,objectness ] || arm=channel_distill_${terms//,/_}
      imp "$dir/$arm$sfx" "$init" "${labelled[@]}" "${common[@]}" $(sched "$steps") --seed "$seed" "${channel[@]}" \
        --distill "$terms"
    done
  fi
  if [[ " $parts " == *" u "* ]]; then
    # (u): the same channel ticket recovered without a label: the teacher's detections and signals alone.
    imp "$dir/channel_unlabeled" "$init" --unlabeled "$out/unlabeled/images" "${common[@]}" $(sched "$steps") \
      --seed "$seed" "${channel[@]}"
  fi
  if [[ " $parts " == *" m "* ]]; then
    [ -n "${LABELS:-}" ] || { echo "part m recovers from LABELS labelled images beside the unlabeled ones: set LABELS" >&2; exit 2; }
    # (m): the same channel ticket recovered from the few labels and the unlabeled images together.
    imp "$dir/channel_mixed$sfx" "$init" "${labelled[@]}" --unlabeled "$out/unlabeled/images" "${common[@]}" \
      $(sched "$steps") --seed "$seed" "${channel[@]}"
  fi
  # (c): the one-shot 80% ticket as pruned, no retraining.
  if [[ " $parts " == *" c "* ]] && [ ! -f "$dir/oneshot/eval.json" ]; then
    mkdir -p "$dir/oneshot"
    $ticket prune "$trained" --sparsity 0.8 --min-layer-density 0.05 -o "$dir/oneshot/model.onnx" --json > /dev/null
    eval_once "$dir/oneshot" "$data/val/annotations.json"
  fi
done
.venv/bin/python tools/distill_summary.py "$out/$kind/w$width"
