#!/usr/bin/env bash
# P7's measurement: /v1/search latency with authentication and a permission filter
# against authentication off, in one run on one data dir (release build, embedded
# default). ~10k chunks (the SciFact abstracts as 500 documents), 50 groups, each
# document readable by 1–3 of them (bench/permissions.py load).
#
#   phase 1, DOCQA_AUTH=required: a reader in group:g7 (the access condition inside
#            the index filter), then a tenant admin (authenticated, no access condition)
#   phase 2, the same data dir restarted with DOCQA_AUTH=off: no key, no filter
#
# Prints one JSON object. BENCH_BIN: measure that binary (no build).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
ensure_model
ensure_onnx
if [ -z "${BENCH_BIN:-}" ]; then
    build_for_bench
fi
BENCH_BIN="${BENCH_BIN:-$CARGO_TARGET_DIR/release/docqa}"
DATA="$(mktemp -d /tmp/docqa-permissions.XXXXXX)"
PORT="${PORT:-18091}"
BASE="http://127.0.0.1:$PORT"
OPERATOR="bench-operator-key-$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')"
PID=""
trap '[ -n "$PID" ] && kill $PID 2>/dev/null || true' EXIT

serve() {
    DOCQA_DATA_DIR="$DATA" DOCQA_ADDR="127.0.0.1:$PORT" DOCQA_AUTH="$1" DOCQA_ADMIN_KEY="$OPERATOR" \
        EMBEDDER=local INGEST_WORKERS=2 "$BENCH_BIN" serve > "$DATA/server-$1.log" 2>&1 &
    PID=$!
    for _ in $(seq 1 120); do
        curl -sf "$BASE/readyz" > /dev/null && return 0
        sleep 0.5
    done
    echo "docqa did not become ready; see $DATA/server-$1.log" >&2
    exit 1
}
stop() { kill "$PID"; wait "$PID" 2>/dev/null || true; PID=""; }

serve required
loaded="$(python3 bench/permissions.py load "$BASE" "$OPERATOR")"
reader="$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["reader"])' "$loaded")"
admin="$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["admin"])' "$loaded")"
filtered="$(python3 bench/permissions.py measure "$BASE" "$reader")"
unfiltered="$(python3 bench/permissions.py measure "$BASE" "$admin")"
stop
serve off
open="$(python3 bench/permissions.py measure "$BASE")"
stop
python3 - "$loaded" "$filtered" "$unfiltered" "$open" <<'PY'
import json, sys
loaded, filtered, admin, off = (json.loads(a) for a in sys.argv[1:])
print(json.dumps({
    "documents": loaded["documents"], "chunks": loaded["chunks"], "load_s": loaded["load_s"],
    "auth_and_permission_filter": filtered,
    "auth_admin_no_filter": admin,
    "auth_off": off,
    "added_p50_ms": round(filtered["p50_ms"] - off["p50_ms"], 2),
}, indent=1))
PY
rm -rf "$DATA"
