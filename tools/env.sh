# Sourced by tools/run.sh and tools/test.sh after tools/setup.sh: points the binary and the tests at the venv.
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
ORT_DYLIB_PATH=$(ls "$root"/.venv/lib/python3*/site-packages/onnxruntime/capi/libonnxruntime.so.* | head -n 1)
export ORT_DYLIB_PATH
export TICKET_PYTHON="$root/.venv/bin/python"
export TICKET_TRAIN_PYTHON="$root/.venv-train/bin/python"
