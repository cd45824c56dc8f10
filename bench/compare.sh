#!/usr/bin/env bash
# docqa and the Python peer (../shared/peer) side by side, in one run on this machine,
# measured the same way, one server at a time; prints both and the ratios as JSON.
#
#  1. embedding tokens/s on the peer's 64 texts of ~227 tokens (bench/embed_compare.sh)
#  2. per server, on a fresh data dir:
#     - resident memory when idle
#     - ingestion pages/s: ../shared/corpus, then the UDA PDFs (the peer's ingest.py)
#     - SQuAD dev articles into `default`; /v1/search latency, 1 client (the peer's load.py)
#     - the SciFact abstracts into `default` (~10k chunks in all) while 1 client searches:
#       latency during an ingestion
#     - 1 client again at ~10k chunks, then 8 clients for 30 s
#     - resident memory: peak (sampled every 0.2 s) and after the load
#  3. docqa only: SQuAD dev gold-paragraph recall against BM25 on the same chunks
#
# Usage: bench/compare.sh [--only docqa|peer] [--skip-embed]
# The peer runs in a venv with its requirements (PEER_VENV, default ~/.cache/docqa/peer-venv;
# created on first use: torch from PyPI is ~3 GB) with OMP_NUM_THREADS=${PEER_THREADS:-1},
# the setting its README's latency figures were taken with.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
ensure_model
ensure_onnx
SHARED="${DOCQA_SHARED_DIR:-$(cd .. && pwd)/shared}"
PEER_VENV="${PEER_VENV:-$HOME/.cache/docqa/peer-venv}"
OUT="$(mktemp -d /tmp/docqa-compare.XXXXXX)"
echo "output in $OUT" >&2

ONLY="" SKIP_EMBED=no
while [ $# -gt 0 ]; do
    case "$1" in
        --only) ONLY="$2"; shift ;;
        --skip-embed) SKIP_EMBED=yes ;;
        *) echo "unknown option $1" >&2; exit 2 ;;
    esac
    shift
done

ensure_peer() {
    if ! "$PEER_VENV/bin/python" -c "import fastapi, sentence_transformers, qdrant_client" >/dev/null 2>&1; then
        echo "installing the peer's requirements into $PEER_VENV (torch is ~3 GB)…" >&2
        python3 -m venv "$PEER_VENV"
        "$PEER_VENV/bin/pip" install --quiet --disable-pip-version-check -r "$SHARED/peer/requirements.txt" >&2
    fi
}
[ "$ONLY" = docqa ] || ensure_peer
# BENCH_BIN: measure that binary instead (no build).
if [ -z "${BENCH_BIN:-}" ]; then
    build_for_bench
fi
BENCH_BIN="${BENCH_BIN:-$CARGO_TARGET_DIR/release/docqa}"

if [ "$SKIP_EMBED" = no ]; then
    PEER_PYTHON="$PEER_VENV/bin/python" bash bench/embed_compare.sh > "$OUT/embed.json"
fi

PID=""
trap '[ -n "$PID" ] && kill $PID 2>/dev/null || true' EXIT
rss() { awk '/VmRSS/{print int($2/1024)}' "/proc/$1/status" 2>/dev/null || echo 0; }

# measure NAME PORT COMMAND...: starts the server, runs every phase, stops it.
measure() {
    local name="$1" port="$2"; shift 2
    local url="http://127.0.0.1:$port" dir="$OUT/$name"
    mkdir -p "$dir"
    DOCQA_ADDR="127.0.0.1:$port" DOCQA_DATA_DIR="$dir/data" "$@" > "$dir/server.log" 2>&1 &
    PID=$!
    for _ in $(seq 1 240); do curl -sf "$url/readyz" >/dev/null && break; sleep 0.5; done
    curl -sf "$url/readyz" >/dev/null || { echo "$name did not become ready; see $dir/server.log" >&2; exit 1; }
    sleep 2
    rss "$PID" > "$dir/rss_idle"
    ( peak=0; while kill -0 "$PID" 2>/dev/null; do r=$(rss "$PID"); if [ "${r:-0}" -gt "$peak" ]; then peak=$r; echo "$peak" > "$dir/rss_peak"; fi; sleep 0.2; done ) &

    python3 "$SHARED/peer/ingest.py" "$url" corpus "$SHARED/corpus" > "$dir/ingest_corpus.txt"
    # shellcheck disable=SC2046
    python3 "$SHARED/peer/ingest.py" "$url" uda $(find "$SHARED/eval/uda/pdfs" -mindepth 1 -maxdepth 1 -type d | sort) > "$dir/ingest_uda.txt"
    # shellcheck disable=SC2046
    python3 "$SHARED/peer/ingest.py" "$url" default $(python3 bench/squad_files.py dev) > "$dir/ingest_squad.txt"
    python3 "$SHARED/peer/load.py" "$url" --clients 1 --requests 300 --warmup 10 > "$dir/load1_small.json"

    # Latency while an ingestion runs: one client searches until the upload is done.
    python3 "$SHARED/peer/ingest.py" "$url" default "$OUT"/scifact/*.txt > "$dir/ingest_scifact.txt" &
    local ingest=$!
    python3 bench/search_during.py "$url" "$ingest" > "$dir/load1_during_ingest.json"
    wait "$ingest"

    python3 "$SHARED/peer/load.py" "$url" --clients 1 --requests 300 --warmup 10 > "$dir/load1.json"
    python3 "$SHARED/peer/load.py" "$url" --clients 8 --duration 30 > "$dir/load8.json"
    rss "$PID" > "$dir/rss_after"
    if [ "$name" = docqa ]; then
        python3 bench/squad_recall.py "$url" "$dir/data" --collection default > "$dir/squad.json" || true
    fi
    kill "$PID"; wait "$PID" 2>/dev/null || true
    PID=""
}

python3 bench/scifact_texts.py "$OUT/scifact" >/dev/null
if [ "$ONLY" != peer ]; then
    measure docqa 8091 env EMBEDDER=local RUST_LOG=warn "$BENCH_BIN" serve
fi
if [ "$ONLY" != docqa ]; then
    measure peer 8092 env OMP_NUM_THREADS="${PEER_THREADS:-1}" EMBED_MODEL_DIR="$EMBED_MODEL_DIR" \
        "$PEER_VENV/bin/python" "$SHARED/peer/app.py"
fi

python3 bench/compare_summary.py "$OUT"
