//! Embedding throughput (tokens/s) of the local model on the texts the Python
//! peer measures with `../shared/peer/embed_bench.py`: 64 texts of ~227 MiniLM
//! tokens. `EMBED_MODEL_DIR` must point at the model (scripts/env.sh sets it).
//!
//! With `ORT_DYLIB_PATH` and `EMBED_ONNX_MODEL` set (`ensure_onnx`), ONNX Runtime
//! is measured too, with 1 and 2 threads.
//!
//!   source scripts/env.sh && ensure_model && ensure_onnx && cargo bench --bench embed

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use docqa::embed::{LocalEmbedder, ModelFiles, ModelSource, OnnxEmbedder, OnnxFiles};

fn texts() -> Vec<String> {
    let base = "The quick brown fox jumps over the lazy dog while the committee reviews the annual budget report \
                and its many appendices describing warranty terms. ";
    (0..64).map(|i| format!("{i} {}", base.repeat(8))).collect()
}

fn bench(c: &mut Criterion) {
    let dir = std::env::var("EMBED_MODEL_DIR").expect("set EMBED_MODEL_DIR (source scripts/env.sh; ensure_model)");
    let files = ModelFiles {
        dir: dir.into(),
        source: ModelSource::Directory,
    };
    let texts = texts();
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    // Tokens as the peer counts them: with special tokens, cut at 256.
    let reference = LocalEmbedder::load(&files, "all-MiniLM-L6-v2", 16).expect("model loads");
    let tokenizer = reference.sizing_tokenizer();
    let tokens: usize = refs
        .iter()
        .map(|t| {
            tokenizer
                .encode(*t, true)
                .map(|e| e.get_ids().len().min(256))
                .unwrap_or(0)
        })
        .sum();
    let mut group = c.benchmark_group("embed");
    group.throughput(Throughput::Elements(tokens as u64));
    group.sample_size(10);

    if let (Ok(runtime), Ok(model)) = (std::env::var("ORT_DYLIB_PATH"), std::env::var("EMBED_ONNX_MODEL")) {
        let onnx = OnnxFiles {
            runtime: runtime.into(),
            model: model.into(),
        };
        for threads in [1, 2] {
            for batch in [2, 4, 8] {
                let embedder =
                    OnnxEmbedder::load(&onnx, &files, "all-MiniLM-L6-v2", batch, threads).expect("onnx loads");
                group.bench_function(
                    format!("onnx_int8_threads{threads}_batch{batch}_{tokens}_tokens"),
                    |b| b.iter(|| embedder.embed_blocking(&refs).expect("embeds")),
                );
            }
        }
    }
    for batch in [16, 32] {
        let embedder = LocalEmbedder::load(&files, "all-MiniLM-L6-v2", batch).expect("model loads");
        group.bench_function(format!("candle_f32_batch{batch}_{tokens}_tokens"), |b| {
            b.iter(|| embedder.embed_blocking(&refs).expect("embeds"))
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
