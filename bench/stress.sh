#!/usr/bin/env bash
# Hostile clients and a heavy day against one docqa server on loopback (issue P8):
# 300 slow uploads, 150 concurrent queries against a scripted slow LLM, a 100 MiB
# text upload, a 10 MiB text and a 2,000-page PDF that should ingest, 50 clients
# that hang up; prints RSS peak, open fds, LLM calls in flight and answers by
# status (bench/stress.py says how).
#
# Usage: bench/stress.sh [BINARY] [stress.py options]   (default: the release build)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
ensure_model
ensure_onnx
binary="${1:-$CARGO_TARGET_DIR/release/docqa}"
shift || true
if [ ! -x "$binary" ]; then
    cargo build --release --locked
fi
# The descriptor limit of a usual shell, the same for every run.
ulimit -n 1024
exec python3 bench/stress.py "$binary" "$@"
