#!/usr/bin/env bash
# Ingestion with 1, 2 and 4 workers against the embedder alone on the same
# chunks (examples/pipeline.rs), on the shared corpus and the UDA PDFs by default.
# Prints one JSON line per (folder, workers): pages/s, tokens/s and the
# pipeline's share of the embedder's speed.
#
# Usage: bench/workers.sh [DIR…]
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
ensure_model
ensure_onnx
SHARED="${DOCQA_SHARED_DIR:-$(cd .. && pwd)/shared}"
dirs=("$@"); [ ${#dirs[@]} -gt 0 ] || dirs=("$SHARED/corpus" "$SHARED/eval/uda/pdfs")
build_for_bench
for dir in "${dirs[@]}"; do
    for workers in 1 2 4; do
        INGEST_WORKERS=$workers RUST_LOG=error "$CARGO_TARGET_DIR/release/examples/pipeline" "$dir" \
            | python3 -c "import json, sys; r = json.load(sys.stdin); print(json.dumps({'dir': sys.argv[1], 'workers': int(sys.argv[2]), 'files': r['ready'], 'pages': r['pages'], 'chunks': r['chunks'], 'pages_per_s': round(r['pipeline']['pages_per_s'], 2), 'pipeline_tokens_per_s': round(r['pipeline']['tokens_per_s']), 'embedder_tokens_per_s': round(r['embedder_alone']['tokens_per_s']), 'pipeline_over_embedder': round(r['pipeline_over_embedder'], 3)}))" "$dir" "$workers"
    done
done
