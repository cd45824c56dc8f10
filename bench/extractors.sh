#!/usr/bin/env bash
# How many PDFs each parser reads, how well and how fast, against pdftotext
# (poppler, in reading order) as the reference: every file through pdf-oxide, pdf-extract and the
# server's chain, each in its own process (a crash costs that line only).
#
# Usage: bench/extractors.sh [DIR…]   (default ../shared/corpus)
# Needs pdftotext (Debian: poppler-utils; installed on first use when apt can).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
SHARED="${DOCQA_SHARED_DIR:-$(cd .. && pwd)/shared}"
dirs=("$@"); [ ${#dirs[@]} -gt 0 ] || dirs=("$SHARED/corpus")
if ! command -v pdftotext >/dev/null; then
    apt-get install -y -q poppler-utils >/dev/null 2>&1 || { echo "pdftotext is needed (apt-get install poppler-utils)" >&2; exit 1; }
fi
build_for_bench
OUT="$(mktemp -d /tmp/docqa-extractors.XXXXXX)"
echo "output in $OUT" >&2
find "${dirs[@]}" -type f -iname '*.pdf' | sort > "$OUT/files"
while read -r file; do
    name="$(basename "$file")"
    # Reading order (not -layout, which joins columns line by line).
    timeout 60 pdftotext "$file" "$OUT/$name.ref.txt" 2>/dev/null || true
    for parser in pdf-oxide pdf-extract chain; do
        line="$(timeout 60 "$CARGO_TARGET_DIR/release/examples/extractors" "$parser" "$file" 2>/dev/null)" \
            || line="{\"file\": \"$file\", \"parser\": \"$parser\", \"ok\": false, \"error\": \"crashed or timed out (exit $?)\"}"
        printf '%s\n' "$line" >> "$OUT/results.jsonl"
    done
done < "$OUT/files"
python3 bench/extractors_summary.py "$OUT"
