#!/usr/bin/env bash
# Measures docqa on this machine and prints a JSON summary:
#  - embedding tokens/s of the local model (criterion, benches/embed.rs)
#  - ingestion pages/s on ../shared/corpus and the UDA PDFs (the peer's ingest.py)
#  - SQuAD dev gold-paragraph recall, docqa hybrid vs plain BM25 on the same chunks
#  - /v1/search latency for 1 client and throughput for 8 clients at ~10k chunks
#    (the peer's load.py, SQuAD dev questions; SciFact abstracts pad the collection)
#  - resident memory idle, peak during ingestion, after
# Usage: bench/run.sh [--skip-criterion] [--skip-pdf]    (PORT, DOCQA_SHARED_DIR may be set)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
ensure_model
ensure_onnx
SHARED="${DOCQA_SHARED_DIR:-$(cd .. && pwd)/shared}"
PORT="${PORT:-8090}"
URL="http://127.0.0.1:$PORT"
OUT="$(mktemp -d /tmp/docqa-bench.XXXXXX)"
DATA="$OUT/data"
echo "bench output in $OUT" >&2

SKIP_CRITERION=no SKIP_PDF=no
for arg in "$@"; do
    case "$arg" in
        --skip-criterion) SKIP_CRITERION=yes ;;
        --skip-pdf) SKIP_PDF=yes ;;
        *) echo "unknown option $arg" >&2; exit 2 ;;
    esac
done

cargo build --release --locked --bin docqa >&2
if [ "$SKIP_CRITERION" = no ]; then
    cargo bench --locked --bench embed -- --noplot 2>/dev/null | grep -E "^embed/|thrpt:" > "$OUT/embed.txt" || true
fi

DOCQA_ADDR="127.0.0.1:$PORT" DOCQA_DATA_DIR="$DATA" EMBEDDER=local RUST_LOG=warn \
    "$CARGO_TARGET_DIR/release/docqa" serve > "$OUT/server.log" 2>&1 &
PID=$!
trap 'kill $PID 2>/dev/null || true' EXIT
for _ in $(seq 1 120); do curl -sf "$URL/readyz" >/dev/null && break; sleep 0.5; done
rss() { awk '/VmRSS/{print int($2/1024)}' "/proc/$PID/status" 2>/dev/null || echo 0; }
sleep 2
IDLE=$(rss)
echo "$IDLE" > "$OUT/peak"
( peak=0; while kill -0 "$PID" 2>/dev/null; do r=$(rss); if [ "${r:-0}" -gt "$peak" ]; then peak=$r; echo "$peak" > "$OUT/peak"; fi; sleep 0.2; done ) &

if [ "$SKIP_PDF" = no ]; then
    python3 "$SHARED/peer/ingest.py" "$URL" corpus "$SHARED/corpus" > "$OUT/ingest_corpus.txt"
    UDA_DIRS=$(find "$SHARED/eval/uda/pdfs" -mindepth 1 -maxdepth 1 -type d | sort)
    # shellcheck disable=SC2086
    python3 "$SHARED/peer/ingest.py" "$URL" uda $UDA_DIRS > "$OUT/ingest_uda.txt"
else
    echo '{"skipped": true}' | tee "$OUT/ingest_corpus.txt" > "$OUT/ingest_uda.txt"
fi

python3 bench/squad_recall.py "$URL" "$DATA" --collection default > "$OUT/squad.json"
python3 bench/scifact_texts.py "$OUT/scifact" >/dev/null
python3 "$SHARED/peer/ingest.py" "$URL" default "$OUT"/scifact/*.txt > "$OUT/ingest_scifact.txt"
PEAK_INGEST=$(cat "$OUT/peak")
CHUNKS=$(python3 -c "import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute(\"select count(*) from chunks c join documents d on d.id=c.document_id where d.collection='default'\").fetchone()[0])" "$DATA/docqa.sqlite")

python3 "$SHARED/peer/load.py" "$URL" --clients 1 --requests 300 --warmup 10 > "$OUT/load1.json"
python3 "$SHARED/peer/load.py" "$URL" --clients 8 --duration 30 > "$OUT/load8.json"
AFTER=$(rss)

python3 - "$OUT" "$IDLE" "$PEAK_INGEST" "$AFTER" "$CHUNKS" <<'PY'
import json, sys, os
out, idle, peak, after, chunks = sys.argv[1], *map(int, sys.argv[2:])
last = lambda f: json.loads(open(os.path.join(out, f)).read().strip().splitlines()[-1])
summary = {
    "machine": {"cores": os.cpu_count()},
    "embed_criterion": open(os.path.join(out, "embed.txt")).read().strip().splitlines() if os.path.exists(os.path.join(out, "embed.txt")) else None,
    "ingest_corpus": last("ingest_corpus.txt"),
    "ingest_uda": last("ingest_uda.txt"),
    "ingest_scifact": last("ingest_scifact.txt"),
    "squad_dev": json.load(open(os.path.join(out, "squad.json"))),
    "search_collection_chunks": chunks,
    "search_1_client": last("load1.json"),
    "search_8_clients": last("load8.json"),
    "rss_mib": {"idle": idle, "peak_during_ingestion": peak, "after_load": after},
}
print(json.dumps(summary, indent=1))
PY
