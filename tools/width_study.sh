#!/usr/bin/env bash
# The width study (docs/RESULTS.md): does the sparsity a ticket tolerates grow with the detector's width? Per base width
# W in WIDTHS and seed S (initial weights and data order), a ResNet-18-FPN Faster R-CNN of base width W
# (`tools/export_models.py --synth W`: W/2W/4W/8W channels in the four stages, FPN 4W) from random init on the 128-px
# synthetic set (1000 train / 100 val images, the converged study's):
#   w{W}/seed_S/s80/   ticket imp: dense trained STEPS (validation AP every STEPS/8 steps), then the one-shot 80% ticket
#                      (global magnitude, 5% floor per tensor) rewound to init and trained STEPS
#   w{W}/seed_S/s50/, s90/ (and s95/ where SPARSITIES asks for it)
#                      the same dense model (--trained) pruned one-shot to 50% and 90%, rewound, trained STEPS
# tools/width_summary.py tables each ticket against its dense model at equal steps (paired 95% intervals, the paper's
# one-point "matches") and the highest sparsity that still matches, per width.
#
#   tools/width_study.sh    # OUT (out/width), WIDTHS ("4 8 16"), SEEDS ("1 2 3 4 5"), SPARSITIES ("80 90 50", in
#                           # that order; any other waits for the s80 run's dense model), STEPS (4000, the converged
#                           # study's), JOBS (2), TICKET_BIN (a copy of the binary, so a rebuild cannot change a running
#                           # experiment), FROM_CONVERGED (a tools/converged_study.sh output folder at the same STEPS:
#                           # its seed_S/ticket and seed_S/global_90 runs are width 8's s80 and s90, copied, not rerun —
#                           # the same data, initial models and settings, and one ORT thread makes them bit for bit
#                           # what this script would train; the data sets are compared first)
# `ticket study width` runs the same grid as a sweep (Slurm or --local), but each of its tasks trains its own dense
# model: six trainings per width and seed against this script's four, which share one dense model (--trained).
# Cost on this 2-core machine, two runs side by side: a width-16 step costs about 2× a width-8 one, a width-32 step
# 5× (about 4 hours for width 32's twenty runs of 4000 steps), a width-4 step about half — with RoIAlign as Gather
# taps; since the training core pools 128-px canvases with interpolation matrices a width-32 run trains about 4 steps
# a second (a dense model and its 80% ticket in about 35 minutes, two side by side).
# Runs JOBS at a time, one ORT thread each (bit-for-bit repeatable); every run resumes where it stopped.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
out=$(realpath -m "${OUT:-out/width}")
widths=${WIDTHS:-4 8 16}
seeds=${SEEDS:-1 2 3 4 5}
sparsities=${SPARSITIES:-80 90 50}
steps=${STEPS:-4000}
jobs=${JOBS:-2}
for p in $sparsities; do
  [[ $p =~ ^[1-9][0-9]$ ]] || { echo "SPARSITIES: $p is not a whole percentage from 10 to 99" >&2; exit 2; }
done
source tools/imp_lib.sh
study_env
mkdir -p "$out"
synth_sets "$out" 1000 100
for w in $widths; do init_models "$out" "$w" "$seeds"; done
if [ -n "${FROM_CONVERGED:-}" ] && [[ " $widths " == *" 8 "* ]]; then
  from=$(realpath "$FROM_CONVERGED")
  for f in train/annotations.json val/annotations.json; do
    cmp -s "$from/$f" "$out/$f" || { echo "$from/$f differs from $out/$f: not the same data" >&2; exit 2; }
  done
  for s in $seeds; do
    cmp -s "$from/models/w8/seed_$s/fasterrcnn_r18_fpn_synth.onnx" "$out/models/w8/seed_$s/fasterrcnn_r18_fpn_synth.onnx" ||
      { echo "$from/models/w8/seed_$s: not the same initial model" >&2; exit 2; }
    for pair in ticket:s80 global_90:s90; do
      src=$from/seed_$s/${pair%%:*} dst=$out/w8/seed_$s/${pair#*:}
      [ -f "$src/summary.json" ] || continue
      n=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["dense_steps"])' "$src/run.json")
      [ "$n" = "$steps" ] || { echo "$src trained $n steps, not STEPS=$steps" >&2; exit 2; }
      if [ ! -e "$dst" ]; then mkdir -p "$(dirname "$dst")" && cp -a "$src" "$dst.tmp" && mv "$dst.tmp" "$dst"; fi
    done
  done
fi
common="--coco $out/train/annotations.json --val-coco $out/val/annotations.json --lr 0.01 --batch 2 --rois 64
  --save-every 500 --threads 1 --max-map-drop 0.01 --min-layer-density 0.05"
# One job: SPARSITY WIDTH SEED. The tickets at other sparsities wait for the 80% run's dense model (and fail at once
# where it is missing and SPARSITIES does not train it).
job() {
  local p=$1 w=$2 seed=$3 dir=$out/w$2/seed_$3
  local init=$out/models/w$w/seed_$seed/fasterrcnn_r18_fpn_synth.onnx dense=$dir/s80/level_0/model.onnx
  local trained=()
  if [ "$p" != 80 ]; then
    local queued=0
    if [[ " $sparsities " == *" 80 "* ]]; then queued=1; fi
    await_run_file "$dense" "$queued" "SPARSITIES ($sparsities) does not train it"
    trained=(--trained "$dense")
  fi
  imp "$dir/s$p" "$init" $common --sparsity "0.$p" $(sched "$steps") --seed "$seed" --rewind init \
    --val-every $(( steps / 8 )) "${trained[@]}"
}
export -f job imp sched await_run_file
export out steps ticket common sparsities
# In SPARSITIES' order, by default every width's dense models and 80% tickets first, then the 90% tickets, then the
# 50% ones (a waiting job holds a slot): a study cut short keeps what tells the most (how far beyond 80% a wider model
# goes).
for p in $sparsities; do for w in $widths; do for s in $seeds; do echo "$p $w $s"; done; done; done |
  # Each job in a subshell, so one that exits (a wait that cannot be met) is reported as failed like one that returns 1.
  xargs -P "$jobs" -L 1 bash -c '(job "$0" "$1" "$2") > "$out/log_w$1_s$0_$2.txt" 2>&1 ||
    echo "failed: width $1, sparsity 0.$0, seed $2 (see $out/log_w$1_s$0_$2.txt)"'
python3 tools/width_summary.py "$out" | tee "$out/tables.md"
