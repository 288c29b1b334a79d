#!/usr/bin/env bash
# The CUDA check, in one go (meant to finish in under 8 minutes on a GPU machine, installs included):
#   1. a venv with the CUDA training requirements (tools/requirements-train-cuda.txt; reused when unchanged);
#   2. the full-width Mask R-CNN R18-FPN (MODEL, or exported here with `tools/export_models.py --full` when a
#      torch Python is at hand: $TICKET_TORCH_PYTHON or .venv-torch);
#   3. `ticket train` for STEPS steps on the GPU and on the CPU from the same start (same weights, seed, data
#      order), timed, and the losses compared step by step: |gpu - cpu| <= TOL * max(1, |cpu|) at every step
#      (TOL = 0.02 by default: cuDNN's kernels and reduction orders differ from the CPU's, and the difference grows
#      with the steps, so the check is on a few steps from one start);
#   4. one short `ticket imp` level (dense + one pruned level, a few steps each) with --device cuda;
#   5. one summary table.
# --cpu-only runs the CPU half alone (what CI runs, no GPU needed): the CPU training twice, compared step by step
# (the same start must give the same losses: TOL applies), and the imp level on the CPU.
#
#   tools/cuda_check.sh [--cpu-only] [--steps N] [--tol T] [--out DIR] [MODEL.onnx]
#
# Knobs: TICKET (the binary; built here when absent), CUDA_VENV (default .venv-train-cuda), PYTHON (base
# Python for the venv, default python3).
set -euo pipefail
shopt -s inherit_errexit
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cpu_only=0 steps=10 tol=0.02 out=out/cuda_check model=
while [ $# -gt 0 ]; do
  case $1 in
    --cpu-only) cpu_only=1 ;;
    --steps) steps=$2; shift ;;
    --tol) tol=$2; shift ;;
    --out) out=$2; shift ;;
    -h|--help) awk 'NR > 1 && !/^#/ { exit } NR > 1' "$0"; exit 0 ;;
    -*) echo "cuda_check.sh: unknown option $1" >&2; exit 2 ;;
    *) model=$1 ;;
  esac
  shift
done
started=$(date +%s)
now() { date +%s.%N; }
mkdir -p "$out"
out=$(cd "$out" && pwd)

# The checking and CPU training environments (no-op when they exist), and the binary.
"$root/tools/setup.sh"
source "$root/tools/env.sh"
ticket=${TICKET:-$root/target/release/ticket}
if [ ! -x "$ticket" ]; then (cd "$root" && cargo build --release --quiet); fi
cpu_python=$TICKET_TRAIN_PYTHON

# 1. The CUDA venv.
if [ $cpu_only = 0 ]; then
  venv=${CUDA_VENV:-$root/.venv-train-cuda}
  req=$root/tools/requirements-train-cuda.txt
  if ! { [ -f "$venv/.requirements" ] && cmp -s "$req" "$venv/.requirements"; }; then
    echo "cuda_check: installing $req into $venv" >&2
    rm -rf "$venv"
    "${PYTHON:-python3}" -m venv "$venv"
    "$venv/bin/python" -m pip install -q --disable-pip-version-check -r "$req"
    cp "$req" "$venv/.requirements"
  fi
  gpu_python=$venv/bin/python
  command -v nvidia-smi > /dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader >&2 || true
fi
installed=$(date +%s)

# 2. The model.
if [ -z "$model" ]; then
  torch_python=${TICKET_TORCH_PYTHON:-$root/.venv-torch/bin/python}
  if [ ! -x "$torch_python" ]; then
    echo "cuda_check: give MODEL.onnx (the full-width maskrcnn_r18_fpn.onnx), or make a torch Python (tools/setup.sh torch) to export it" >&2
    exit 2
  fi
  if [ ! -f "$out/fullsize/maskrcnn_r18_fpn.onnx" ]; then
    echo "cuda_check: exporting the full-width models (tools/export_models.py --full)" >&2
    "$torch_python" "$root/tools/export_models.py" --full --out "$out/fullsize" > "$out/export.log"
  fi
  model=$out/fullsize/maskrcnn_r18_fpn.onnx
fi

# Synthetic training and held-out images (5 categories, 128 px; deterministic per seed). A model with more
# classes (the full-width export has COCO's 91) gets categories without objects appended to match.
classes=$("$ticket" inspect "$model" --json | "${PYTHON:-python3}" -c 'import json, sys; print(json.load(sys.stdin)["arch"]["num_classes"])')
synth() { # dir images seed
  [ -f "$1/annotations.json" ] && return 0
  "$ticket" data synth --out "$1" --images "$2" --seed "$3" > /dev/null
  "${PYTHON:-python3}" - "$1/annotations.json" "$classes" <<'PY'
import json, sys
path, classes = sys.argv[1], int(sys.argv[2])
d = json.load(open(path))
top = max(c["id"] for c in d["categories"])
d["categories"] += [{"id": top + i, "name": f"unused_{top + i}"} for i in range(1, classes - len(d["categories"]))]
json.dump(d, open(path, "w"))
PY
}
synth "$out/train" 16 1
synth "$out/val" 4 2

# 3. The same training twice: A on the CPU; B on the GPU (or the CPU again with --cpu-only). One ORT thread on
#    the CPU so that its run is reproducible bit for bit.
train() { # name device python -> seconds
  rm -rf "$out/$1"
  local t0; t0=$(now)
  "$ticket" train "$model" --coco "$out/train/annotations.json" --steps "$steps" --warmup 0 --lr 0.001 --batch 1 \
    --rois 64 --seed 1 --save-every 1000000 --threads 1 --device "$2" --train-python "$3" -o "$out/$1" --json > "$out/$1.json"
  echo "$(now) $t0" | awk '{printf "%.1f", $1 - $2}'
}
cpu_s=$(train cpu cpu "$cpu_python")
if [ $cpu_only = 1 ]; then
  other=cpu2; other_s=$(train cpu2 cpu "$cpu_python"); device=cpu; imp_python=$cpu_python
else
  other=gpu; other_s=$(train gpu cuda "$gpu_python"); device=cuda; imp_python=$gpu_python
fi

# 4. One short imp level on the device.
rm -rf "$out/imp"
t0=$(now)
imp_code=0
"$ticket" imp "$model" --coco "$out/train/annotations.json" --val-coco "$out/val/annotations.json" --sparsity 0.5 \
  --rounds 1 --steps 2 --warmup 0 --batch 1 --rois 64 --threads 1 --device "$device" --train-python "$imp_python" \
  --max-map-drop 1 -o "$out/imp" --json > "$out/imp.json" || imp_code=$?
imp_s=$(echo "$(now) $t0" | awk '{printf "%.1f", $1 - $2}')

# 5. The table; exit 1 when a loss is off or the imp level did not finish.
"${PYTHON:-python3}" - "$out" "$other" "$tol" "$cpu_s" "$other_s" "$imp_s" "$imp_code" "$device" "$((installed - started))" "$(($(date +%s) - started))" <<'EOF'
import json, sys
out, other, tol, cpu_s, other_s, imp_s, imp_code, device, install_s, total_s = sys.argv[1:]
tol = float(tol)
def losses(name):
    return [json.loads(l)["loss"] for l in open(f"{out}/{name}/log.jsonl") if l.strip()]
a, b = losses("cpu"), losses(other)
bad = len(a) != len(b) or not a
print(f"| step | loss cpu | loss {other} | abs diff | within {tol} x max(1, |cpu|) |")
print("|---|---|---|---|---|")
for i, (x, y) in enumerate(zip(a, b), 1):
    ok = abs(x - y) <= tol * max(1.0, abs(x))
    bad |= not ok
    print(f"| {i} | {x:.6f} | {y:.6f} | {abs(x - y):.2e} | {'yes' if ok else 'NO'} |")
imp = json.load(open(f"{out}/imp.json")) if int(imp_code) in (0, 1) else {}
levels = len(imp.get("levels", []))
imp_ok = levels == 2
bad |= not imp_ok
n = len(a)
print()
print("| what | value |")
print("|---|---|")
print(f"| training, cpu ({n} steps, 1 thread) | {cpu_s} s ({float(cpu_s) / max(n, 1):.2f} s/step, wall incl. start) |")
print(f"| training, {other} ({n} steps) | {other_s} s ({float(other_s) / max(n, 1):.2f} s/step, wall incl. start) |")
print(f"| imp, dense + one level at 50%, --device {device} | {'ok' if imp_ok else 'FAILED'} ({levels} levels, exit {imp_code}), {imp_s} s |")
print(f"| installs | {install_s} s |")
print(f"| whole check | {total_s} s |")
print(f"| verdict | {'FAILED' if bad else 'ok'} |")
sys.exit(1 if bad else 0)
EOF
