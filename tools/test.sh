#!/usr/bin/env bash
# The whole test suite: sets up what is missing, checks formatting (rustfmt) and lints (clippy, warnings
# as errors), then unit and integration tests against real ONNX fixtures,
# real ONNX Runtime and onnx.checker. One release-profile build serves tests, benches and the main job.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
tools/setup.sh
source tools/env.sh
# Formatting and lints first: they fail before the long part. clippy only checks (metadata, no code
# generation), about 2 minutes on 2 cores from a clean checkout; the tests' release build follows.
cargo fmt --check
cargo clippy --release --all-targets -- -D warnings
cargo test --release "$@"
