#!/usr/bin/env bash
# Long form of the fuzz harness (tests/fuzz.rs, `fuzz_long`): a million seeded mutation cases through the ONNX
# loader, compact and mask files, COCO/VOC readers, run folders, image files (bytes, header sizes, truncation, a
# FIFO), classification sets, IMP run folders, sweep specs, sweep folders and report inputs, in-process; any
# panic, multi-line error,
# hang (watchdog) or broken invariant fails it, with the input saved under target/fuzz-crashes/.
#   tools/fuzz.sh [CASES [SEED]]      (defaults: 1000000, 12)
# Runs at the lowest priority: it is meant for a loaded machine, in the background.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
source tools/env.sh
export TICKET_FUZZ_CASES=${1:-1000000} TICKET_FUZZ_SEED=${2:-12}
# The test binary is run directly, not through cargo, so that cargo's build lock is not held for the hour.
bin=$(cargo test --release --test fuzz --no-run --message-format=json 2>/dev/null \
  | "$TICKET_PYTHON" -c 'import json,sys; print([m["executable"] for m in map(json.loads, sys.stdin) if m.get("executable") and m["target"]["name"] == "fuzz"][-1])')
cp "$bin" target/fuzz-long-bin
start=$(date +%s)
nice -n 19 target/fuzz-long-bin --ignored --nocapture --exact fuzz_long
echo "tools/fuzz.sh: ${TICKET_FUZZ_CASES} cases, seed ${TICKET_FUZZ_SEED}, $(( $(date +%s) - start )) s wall"
