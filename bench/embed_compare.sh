#!/usr/bin/env bash
# Embedding throughput, docqa against sentence-transformers (the Python peer's
# embed_bench.py), in one run on the same 64 texts of ~227 tokens, each with its
# best thread setting. Prints both and the ratio of the bests.
# The peer's side runs on PEER_PYTHON (bench/compare.sh passes its venv's), which
# needs torch and sentence-transformers; docqa's side is the ONNX Runtime embedder.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
ensure_model
ensure_onnx
SHARED="${DOCQA_SHARED_DIR:-$(cd .. && pwd)/shared}"
OUT="$(mktemp -d /tmp/docqa-embed.XXXXXX)"

cargo bench --locked --bench embed -- --noplot onnx 2>/dev/null | grep -E "^embed/|thrpt:" | tee "$OUT/docqa.txt" >&2
for threads in 1 2; do
    OMP_NUM_THREADS=$threads "${PEER_PYTHON:-python3}" "$SHARED/peer/embed_bench.py" 64 8 16 32 2>/dev/null | tee -a "$OUT/torch.txt" >&2
done

python3 - "$OUT" <<'PY'
import re, sys, json
out = sys.argv[1]
docqa, name = {}, None
for line in open(f"{out}/docqa.txt"):
    if line.startswith("embed/"):
        name = line.split()[0].split("/")[1]
    m = re.search(r"thrpt:\s+\[\S+ \S+ (\S+) (\S+)", line)
    if m and name:
        value = float(m.group(1)) * (1000 if m.group(2).startswith("K") else 1)
        docqa[name] = round(value)
torch = {}
for line in open(f"{out}/torch.txt"):
    m = re.search(r"threads=(\d+) batch=(\d+).*median (\d+) tok/s", line)
    if m:
        torch[f"torch_threads{m.group(1)}_batch{m.group(2)}"] = int(m.group(3))
best_docqa = max(docqa.items(), key=lambda kv: kv[1])
best_torch = max(torch.items(), key=lambda kv: kv[1])
print(json.dumps({"docqa_tokens_per_s": docqa, "torch_tokens_per_s": torch,
                  "best_docqa": best_docqa, "best_torch": best_torch,
                  "ratio": round(best_docqa[1] / best_torch[1], 2)}, indent=1))
PY
