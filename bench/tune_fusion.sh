#!/usr/bin/env bash
# Hybrid fusion settings (RRF_K × HYBRID_BM25_WEIGHT × HYBRID_PREFETCH) scored
# on the tuning splits only: SciFact `train` queries and SQuAD `dev` articles.
# One server data dir for the whole grid: each dataset is ingested once, into a
# named collection, and every later run finds it there (`docqa eval --collection`).
# Prints one JSON line per setting: nDCG@10 (SciFact train), R@1/R@5 (SQuAD dev).
#
# Usage: bench/tune_fusion.sh [K,WEIGHT,PREFETCH …]   (default: a small grid)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
ensure_model
ensure_onnx
SHARED="${DOCQA_SHARED_DIR:-$(cd .. && pwd)/shared}"
settings=("$@")
if [ ${#settings[@]} -eq 0 ]; then
    # Weights scale ranks (1 / (rank / w + k - 1)): they matter at small k.
    settings+=("60,1,32" "60,1,100")
    for k in 1 5 20; do for w in 0.5 1 2 4; do settings+=("$k,$w,32"); done; done
fi
BIN="${BENCH_BIN:-$CARGO_TARGET_DIR/release/docqa}"
[ -n "${BENCH_BIN:-}" ] || build_for_bench
work="$(mktemp -d)"
trap 'kill $(cat "$work/pid" 2>/dev/null) 2>/dev/null || true; rm -rf "$work"' EXIT
port=8097
url="http://127.0.0.1:$port"
for setting in "${settings[@]}"; do
    IFS=, read -r k w prefetch <<< "$setting"
    RRF_K=$k HYBRID_BM25_WEIGHT=$w HYBRID_PREFETCH=$prefetch EMBEDDER=local RUST_LOG=warn \
        DOCQA_ADDR="127.0.0.1:$port" DOCQA_DATA_DIR="$work/data" "$BIN" serve > "$work/server.log" 2>&1 &
    echo $! > "$work/pid"
    for _ in $(seq 1 120); do curl -sf "$url/readyz" >/dev/null && break; sleep 0.5; done
    "$BIN" eval scifact --split train --url "$url" --collection tune-scifact --quiet --json "$work/scifact.json" --data "$SHARED/eval" >/dev/null
    "$BIN" eval squad --split dev --url "$url" --collection tune-squad --quiet --json "$work/squad.json" --data "$SHARED/eval" >/dev/null
    kill "$(cat "$work/pid")"; wait "$(cat "$work/pid")" 2>/dev/null || true
    python3 - "$k" "$w" "$prefetch" "$work/scifact.json" "$work/squad.json" <<'PY'
import json, sys
k, w, prefetch, scifact, squad = sys.argv[1:]
def modes(path):
    return {r["retrieval"]: r for r in json.load(open(path))["retrieval"]}
s, q = modes(scifact), modes(squad)
print(json.dumps({
    "rrf_k": int(k), "bm25_weight": float(w), "prefetch": int(prefetch),
    "scifact_train_ndcg10": {m: round(s[m]["ndcg_at_10"], 4) for m in s},
    "squad_dev_r1": {m: round(q[m]["recall_at_1"], 4) for m in q},
    "squad_dev_r5": {m: round(q[m]["recall_at_5"], 4) for m in q},
}))
PY
done
