//! Qdrant Edge at scale, through docqa's own index code: upserts N chunk points
//! (384-d dense vectors, MiniLM's size, and a few BM25 terms each) in batches of
//! 256, then times hybrid searches every few seconds while the index settles.
//! Prints one JSON line per step. `bench/edge_scale.sh` runs it to compare two
//! builds (e.g. with and without Edge's optimizers after writes).
//!
//!   cargo run --release --example edge_scale -- 100000
//!
//! The vectors are random (a fixed seed): the latencies and the memory are what
//! this measures, not the relevance.

use std::time::{Duration, Instant};

use docqa::domain::{ChunkId, CollectionName, DocumentId, Filter, Metadata, Readers};
use docqa::embed::SparseVector;
use docqa::index::{ChunkPayload, ChunkPoint, EdgeIndex, HybridQuery, IndexLayout, VectorIndex};
use serde_json::json;

const DIMENSION: usize = 384;
const BATCH: usize = 256;
const CHUNKS_PER_DOCUMENT: u32 = 100;
const VOCABULARY: u32 = 30_000;

fn unit_vector(rng: &mut fastrand::Rng) -> Vec<f32> {
    let v: Vec<f32> = (0..DIMENSION).map(|_| rng.f32() - 0.5).collect();
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    v.into_iter().map(|x| x / norm).collect()
}

fn terms(rng: &mut fastrand::Rng, n: usize) -> SparseVector {
    let mut indices: Vec<u32> = (0..n).map(|_| rng.u32(0..VOCABULARY)).collect();
    indices.sort_unstable();
    indices.dedup();
    let values = vec![1.0; indices.len()];
    SparseVector { indices, values }
}

fn point(rng: &mut fastrand::Rng, document: DocumentId, index: u32) -> ChunkPoint {
    ChunkPoint {
        id: ChunkId::for_chunk(document, index),
        dense: Some(unit_vector(rng)),
        bm25: terms(rng, 40),
        payload: ChunkPayload {
            collection: "scale".into(),
            document_id: document,
            chunk_index: index,
            page_start: 1,
            page_end: 1,
            filename: "scale.txt".into(),
            text: format!("chunk {index}"),
            page_breaks: Vec::new(),
            metadata: Metadata::default(),
            access: Vec::new(),
            pending: false,
            layout: None,
        },
    }
}

/// Median and 95th percentile of `queries` searches, in milliseconds.
async fn search_latency(
    index: &EdgeIndex,
    collection: &CollectionName,
    rng: &mut fastrand::Rng,
    queries: usize,
) -> (f64, f64) {
    let mut took = Vec::with_capacity(queries);
    for _ in 0..queries {
        let query = HybridQuery {
            dense: Some(unit_vector(rng)),
            bm25: terms(rng, 6),
            filter: Filter::default(),
            readers: Readers::Principals(vec!["group:everyone".into()]),
            limit: 5,
            prefetch: 50,
            fusion: Default::default(),
            min_dense_score: 0.0,
        };
        let started = Instant::now();
        index.search(collection, query).await.expect("search");
        took.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    took.sort_by(f64::total_cmp);
    (took[took.len() / 2], took[took.len() * 95 / 100])
}

fn peak_rss_mib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb / 1024)
}

#[tokio::main]
async fn main() {
    let points: u32 = std::env::args().nth(1).and_then(|n| n.parse().ok()).unwrap_or(100_000);
    let settle_seconds: u64 = std::env::args().nth(2).and_then(|n| n.parse().ok()).unwrap_or(120);
    let dir = tempfile::tempdir().expect("temp dir");
    let index = EdgeIndex::open(dir.path()).expect("index opens");
    let collection = CollectionName::parse("scale").expect("name");
    index
        .ensure_collection(
            &collection,
            IndexLayout {
                dense_dimension: Some(DIMENSION),
            },
        )
        .await
        .expect("collection");
    let mut rng = fastrand::Rng::with_seed(7);

    let started = Instant::now();
    let mut document = DocumentId::new();
    let mut batch = Vec::with_capacity(BATCH);
    let mut lap = Instant::now();
    // How long each batch's upsert took: a write waits while the shard's
    // writer is busy (an optimizer building an index, say).
    let mut waits: Vec<f64> = Vec::new();
    for i in 0..points {
        if i % CHUNKS_PER_DOCUMENT == 0 {
            document = DocumentId::new();
        }
        batch.push(point(&mut rng, document, i % CHUNKS_PER_DOCUMENT));
        if batch.len() == BATCH || i + 1 == points {
            let write = Instant::now();
            index
                .upsert(&collection, std::mem::take(&mut batch))
                .await
                .expect("upsert");
            waits.push(write.elapsed().as_secs_f64() * 1000.0);
        }
        if (i + 1) % 20_000 == 0 {
            let rate = 20_000.0 / lap.elapsed().as_secs_f64();
            println!(
                "{}",
                json!({"step": "upsert", "points": i + 1, "points_per_s": rate.round()})
            );
            lap = Instant::now();
        }
    }
    let upserted = started.elapsed().as_secs_f64();
    waits.sort_by(f64::total_cmp);
    let batch_ms = |q: f64| waits[((waits.len() - 1) as f64 * q) as usize].round();
    println!(
        "{}",
        json!({"step": "upserted", "points": points, "seconds": (upserted * 10.0).round() / 10.0,
               "points_per_s": (points as f64 / upserted).round(),
               "batch_ms_p50": batch_ms(0.5), "batch_ms_p99": batch_ms(0.99), "batch_ms_max": batch_ms(1.0)})
    );

    // The index as searches find it while it settles (the optimizers, when
    // they run, work on a blocking thread meanwhile).
    let settle = Instant::now();
    while settle.elapsed() < Duration::from_secs(settle_seconds) {
        let (p50, p95) = search_latency(&index, &collection, &mut rng, 50).await;
        println!(
            "{}",
            json!({"step": "search", "after_s": settle.elapsed().as_secs(), "p50_ms": (p50 * 100.0).round() / 100.0,
                   "p95_ms": (p95 * 100.0).round() / 100.0})
        );
        tokio::time::sleep(Duration::from_secs(5)).await;
    }
    let (p50, p95) = search_latency(&index, &collection, &mut rng, 500).await;
    println!(
        "{}",
        json!({"step": "settled", "queries": 500, "p50_ms": (p50 * 100.0).round() / 100.0,
               "p95_ms": (p95 * 100.0).round() / 100.0, "peak_rss_mib": peak_rss_mib()})
    );
}
