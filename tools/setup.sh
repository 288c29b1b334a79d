#!/usr/bin/env bash
# Idempotent setup of the Python side. `tools/setup.sh` makes .venv (checks, references, the ONNX Runtime
# library) and .venv-train (the training worker: ORT training 1.19.2, which cannot share a venv with the
# `onnxruntime` package); `tools/setup.sh torch` also makes .venv-torch (fixture export and the torch benchmark baseline).
# A venv is rebuilt only when its requirements file changed. Prints nothing on a no-op.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

make_venv() { # venv-dir requirements-file
  local venv=$1 req=$2
  if [ -f "$venv/.requirements" ] && cmp -s "$req" "$venv/.requirements"; then return 0; fi
  echo "setting up $venv from $req" >&2
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/python" -m pip install -q --disable-pip-version-check -r "$req"
  cp "$req" "$venv/.requirements"
}

make_venv "$root/.venv" "$root/tools/requirements.txt"
make_venv "$root/.venv-train" "$root/tools/requirements-train.txt"
if [ "${1:-}" = torch ]; then
  make_venv "$root/.venv-torch" "$root/tools/requirements-torch.txt"
fi
lib=$(ls "$root"/.venv/lib/python3*/site-packages/onnxruntime/capi/libonnxruntime.so.* 2>/dev/null | head -n 1)
if [ -z "$lib" ]; then
  echo "error: libonnxruntime.so not found in $root/.venv (onnxruntime wheel layout changed?)" >&2
  exit 1
fi
