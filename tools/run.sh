#!/usr/bin/env bash
# The main job: sets up what is missing, builds once (release profile, shared with the tests), runs `ticket`.
# With no arguments it runs `ticket demo` on the embedded default model.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
tools/setup.sh
source tools/env.sh
cargo build --release --quiet
if [ $# -eq 0 ]; then set -- demo; fi
exec target/release/ticket "$@"
