#!/usr/bin/env bash
# The OpenAPI document tells the truth: schemathesis (property-based, stateful)
# against a running docqa for API_FUZZ_SECONDS (default 120) with the checks
# not_a_server_error, response_schema_conformance, content_type_conformance and
# status_code_conformance. Fails on any failure or error, or if the server dies.
# Runs the debug binary the tests built (DOCQA_BIN to choose another).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
ensure_model
ensure_onnx
ensure_schemathesis || { echo "api_conformance: schemathesis could not be installed" >&2; exit 1; }
bin="${DOCQA_BIN:-$CARGO_TARGET_DIR/debug/docqa}"
[ -x "$bin" ] || cargo build --locked --bin docqa >&2

work="$(mktemp -d)"
port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
# Private webhook URLs are allowed so that generated ones (0.0.0.0, 127.x) make
# webhooks, and their deliveries and delete are exercised too.
DOCQA_ADDR="127.0.0.1:$port" DOCQA_DATA_DIR="$work/data" DOCQA_EXE="$bin" RUST_LOG=warn WEBHOOK_ALLOW_PRIVATE=true \
    "$bin" serve >"$work/server.log" 2>&1 &
server=$!
cleanup() {
    kill "$server" 2>/dev/null || true
    wait "$server" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
for _ in $(seq 1 300); do
    curl -fs "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 && break
    kill -0 "$server" 2>/dev/null || { cat "$work/server.log" >&2; exit 1; }
    sleep 0.2
done

status=0
(cd "$work" && "$SCHEMATHESIS" run "http://127.0.0.1:$port/openapi.json" \
    --checks not_a_server_error,response_schema_conformance,content_type_conformance,status_code_conformance \
    --max-time "${API_FUZZ_SECONDS:-120}" --request-timeout 30 --seed "${API_FUZZ_SEED:-$RANDOM}" \
    --suppress-health-check too_slow) || status=$?
if ! kill -0 "$server" 2>/dev/null; then
    echo "api_conformance: the server died during the run; its log ends:" >&2
    tail -n 40 "$work/server.log" >&2
    exit 1
fi
if [ "$status" -ne 0 ]; then
    echo "api_conformance: schemathesis reported failures or errors (exit $status); server log ends:" >&2
    tail -n 20 "$work/server.log" >&2
fi
exit "$status"
