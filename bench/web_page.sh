#!/usr/bin/env bash
# The web page's figures on this machine: first-load weight, time until usable,
# and citation click → highlighted page painted for a 117-page PDF, in Debian's
# chromium on loopback, against the release binary (tests/browser/measure.mjs).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
ensure_model
ensure_onnx
ensure_browser
build_for_bench
export BROWSER_TEST_DOCQA_BIN="$CARGO_TARGET_DIR/release/docqa"
node tests/browser/measure.mjs
