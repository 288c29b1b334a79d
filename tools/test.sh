#!/usr/bin/env bash
# The whole test suite: sets up what is missing, then unit and integration tests against real ONNX fixtures,
# real ONNX Runtime and onnx.checker. One release-profile build serves tests, benches and the main job.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
tools/setup.sh
source tools/env.sh
cargo test --release "$@"
