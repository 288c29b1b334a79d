# Shared by the experiment scripts (source it, then study_env or set $ticket): the schedule of tools/train_synth.sh scaled
# to N steps, an idempotent `ticket imp` and `ticket train`, and a model's validation scores computed once.
sched() { echo "--steps $1 --warmup $(( $1 / 15 )) --decay-at $(( $1 * 2 / 3 )),$(( $1 * 13 / 15 ))"; }
imp() { # RUN_DIR ARGS…: a new run, or the rest of an interrupted one (exit 1 = no level within the gate: a result)
  local d=$1; shift
  if [ -f "$d/summary.json" ]; then return 0; fi
  if [ -f "$d/run.json" ]; then $ticket imp --resume "$d" || [ $? -eq 1 ]; else $ticket imp "$@" -o "$d" || [ $? -eq 1 ]; fi
}
train_run() { # RUN_DIR MODEL ARGS…: a new `ticket train` run, or the rest of an interrupted one (its run.json keeps
  # the settings, threads included, so a resume is bit-for-bit with the uninterrupted run at --threads 1)
  local d=$1 model=$2; shift 2
  if [ -f "$d/model.onnx" ]; then return 0; fi
  if [ -f "$d/run.json" ]; then $ticket train "$model" --resume "$d"; else $ticket train "$model" "$@" -o "$d"; fi
}
await_run_file() { # FILE QUEUED WHY: wait for FILE, which another job of the study writes; where that job is not
  # queued (QUEUED is not 1) and FILE is missing, fail at once ("FILE is missing and WHY") instead of waiting forever
  if [ ! -f "$1" ] && [ "$2" != 1 ]; then
    echo "$1 is missing and $3" >&2
    exit 1
  fi
  until [ -f "$1" ]; do sleep 10; done
}
eval_once() { # DIR VAL_GT [FLAGS…]: DIR/model.onnx scored on VAL_GT into DIR/eval.json, once (score_once)
  local d=$1 gt=$2; shift 2
  score_once "$d/model.onnx" "$gt" "$d/eval.json" "$@"
}
score_once() { # MODEL GT OUT [FLAGS…]: MODEL scored on GT (`ticket eval --json`) into OUT, unless it is there
  # (written whole or not at all)
  local model=$1 gt=$2 dest=$3; shift 3
  [ ! -f "$dest" ] || return 0
  $ticket eval --model "$model" --coco "$gt" --json "$@" > "$dest.tmp" && mv "$dest.tmp" "$dest"
}
study_env() { # The experiment scripts' start: the Python environments, then the binary in $ticket: TICKET_BIN (a copy,
  # so that a rebuild cannot change a running experiment), else a release build of the checkout.
  tools/setup.sh torch
  source tools/env.sh
  [ -n "${TICKET_BIN:-}" ] || cargo build --release --quiet
  ticket=$(realpath "${TICKET_BIN:-target/release/ticket}")
}
synth_once() { # DIR IMAGES SEED [FLAGS…]: a synthetic detection set in DIR, unless it is there. Lanes started side
  # by side may race to write it: `data synth` refuses the folder another lane has just filled, and that set is the
  # same one (deterministic per seed), so only a failure that leaves no set stops the script.
  local dir=$1 images=$2 seed=$3; shift 3
  [ -f "$dir/annotations.json" ] || $ticket data synth --out "$dir" --images "$images" --seed "$seed" "$@" > /dev/null \
    || [ -f "$dir/annotations.json" ]
}
synth_sets() { # OUT TRAIN VAL [FLAGS…]: the study's training (seed 1) and held-out (seed 2) synthetic sets, once
  local out=$1 train=$2 val=$3; shift 3
  synth_once "$out/train" "$train" 1 "$@"
  synth_once "$out/val" "$val" 2 "$@"
}
init_models() { # OUT WIDTH "SEEDS" [FLAGS…]: OUT/models/wWIDTH/seed_S/, the random-init detectors of tools/export_models.py, once
  local out=$1 width=$2 seeds=$3 seed init; shift 3
  for seed in $seeds; do
    init=$out/models/w$width/seed_$seed/fasterrcnn_r18_fpn_synth.onnx
    [ -f "$init" ] || .venv-torch/bin/python tools/export_models.py --out "$(dirname "$init")" --synth "$width" \
      --init-seed "$seed" "$@" > /dev/null
  done
}
