#!/usr/bin/env bash
# The web page in a real browser: tests/browser/*.test.mjs (node's test runner,
# playwright-core driving Debian's chromium, axe-core) against docqa servers
# they start themselves from the debug binary the tests built (DOCQA_BIN to
# choose another). Screenshots and server logs go to BROWSER_TEST_ARTIFACTS
# (default $CARGO_TARGET_DIR/browser-artifacts), never into the repository.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
ensure_model
ensure_onnx
ensure_browser || { echo "browser_tests: chromium or the npm packages could not be installed" >&2; exit 1; }
bin="${DOCQA_BIN:-$CARGO_TARGET_DIR/debug/docqa}"
[ -x "$bin" ] || cargo build --locked --bin docqa >&2
export BROWSER_TEST_DOCQA_BIN="$bin"
export BROWSER_TEST_ARTIFACTS="${BROWSER_TEST_ARTIFACTS:-$CARGO_TARGET_DIR/browser-artifacts}"
rm -rf "$BROWSER_TEST_ARTIFACTS"
started=$(date +%s)
status=0
node --test --test-concurrency=1 --test-reporter=spec tests/browser/ || status=$?
echo "browser_tests: $(( $(date +%s) - started )) s; screenshots and server logs in $BROWSER_TEST_ARTIFACTS" >&2
exit "$status"
