#!/usr/bin/env bash
# OCR character error rate and pages per second by resolution (bench/ocr_cer.py
# says how), on corpus pages with a text layer as reference.
# Usage: bench/ocr.sh [--dpi 100,150,200,300] [--pages 12] [--sources]
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
ensure_ocr
venv="${DOCQA_CACHE_DIR:-$HOME/.cache/docqa}/ocr-bench-venv"
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c "import PIL, rapidfuzz" >/dev/null 2>&1; then
    python3 -m venv "$venv" && "$venv/bin/pip" install --quiet --disable-pip-version-check pillow rapidfuzz >&2
fi
exec "$venv/bin/python" bench/ocr_cer.py "$@"
