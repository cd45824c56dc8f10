#!/usr/bin/env bash
# P10's measurements (bench/followups.py says what): follow-up rewriting on
# tests/fixtures/conversations.json, and the time to the first answer text of the
# OpenAI-shaped stream against the native one. Release build, embedded default,
# the LLM scripted by bench/scripted_llm.py. BENCH_BIN: measure that binary.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
ensure_model
ensure_onnx
if [ -z "${BENCH_BIN:-}" ]; then
    build_for_bench
fi
BENCH_BIN="${BENCH_BIN:-$CARGO_TARGET_DIR/release/docqa}"
DATA="$(mktemp -d /tmp/docqa-followups.XXXXXX)"
PORT="${PORT:-18093}"
LLM_PORT="${LLM_PORT:-18094}"
BASE="http://127.0.0.1:$PORT"
PIDS=()
trap 'for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$DATA"' EXIT

python3 bench/scripted_llm.py "$LLM_PORT" tests/fixtures/conversations.json &
PIDS+=($!)
DOCQA_DATA_DIR="$DATA" DOCQA_ADDR="127.0.0.1:$PORT" EMBEDDER=local \
    LLM_BASE_URL="http://127.0.0.1:$LLM_PORT/v1" LLM_API_KEY=sk-scripted LLM_MODEL=scripted \
    "$BENCH_BIN" serve > "$DATA/server.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 1 120); do
    curl -sf "$BASE/readyz" > /dev/null && break
    sleep 0.5
done
curl -sf "$BASE/readyz" > /dev/null || { echo "docqa did not become ready; see $DATA/server.log" >&2; tail -20 "$DATA/server.log" >&2; exit 1; }
python3 bench/followups.py "$BASE"
