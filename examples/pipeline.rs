//! How close ingestion comes to its embedder: the same chunks embedded alone
//! (batches of 64, as the pipeline hands them over), then the whole pipeline —
//! upload, extraction, chunking, embedding, indexing, catalog — on the same
//! files, in one process on the same settings. Prints JSON.
//!
//!   source scripts/env.sh && ensure_model && ensure_onnx
//!   cargo run --release --example pipeline -- DIR_OR_FILE…
//!
//! Settings come from the environment as for `docqa serve` (DATABASE_URL,
//! QDRANT_URL, EMBED_*, INGEST_WORKERS…); the data dir is a fresh temporary one.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use docqa::domain::DocumentId;
use docqa::ingest::chunk::Chunker;
use docqa::ingest::detect::{Detected, detect_bytes};
use docqa::ingest::extract::extract_bytes;
use docqa::{App, Config};
use serde_json::{Value, json};

fn files(args: &[String]) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for arg in args {
        let path = Path::new(arg);
        if path.is_dir() {
            let mut walk = vec![path.to_path_buf()];
            while let Some(dir) = walk.pop() {
                for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
                    let p = entry.path();
                    if p.is_dir() { walk.push(p) } else { found.push(p) }
                }
            }
        } else {
            found.push(path.to_path_buf());
        }
    }
    found.sort();
    found
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let paths = files(&args);
    let data = tempfile::tempdir()?;
    let mut vars: HashMap<String, String> = std::env::vars().collect();
    vars.insert("DOCQA_DATA_DIR".into(), data.path().display().to_string());
    vars.insert("DOCQA_ADDR".into(), "127.0.0.1:0".into());
    let config = Config::from_vars(&vars)?;

    // 1. The chunks the pipeline will embed, and their tokens as the model reads them.
    let setup = docqa::embed::from_settings(&config.embedder, config.llm.as_ref()).await?;
    let embedder = setup
        .embedder
        .clone()
        .ok_or("no embedding model: set EMBED_MODEL_DIR")?;
    let tokenizer = setup.tokenizer.clone().ok_or("no tokenizer")?;
    let chunker = Chunker::new(&config.chunk, setup.tokenizer.clone())?;
    let mut texts = Vec::new();
    let mut accepted = Vec::new();
    let mut pages = 0;
    for path in &paths {
        let bytes = std::fs::read(path)?;
        let Detected::Supported(content_type) = detect_bytes(&bytes) else {
            continue;
        };
        let Ok(extracted) = extract_bytes(content_type, &bytes) else {
            continue;
        };
        pages += extracted.pages.len();
        texts.extend(
            chunker
                .chunk(DocumentId::new(), &extracted.pages)
                .into_iter()
                .map(|c| c.text),
        );
        accepted.push(path.clone());
    }
    let tokens: usize = texts
        .iter()
        .map(|t| {
            tokenizer
                .encode(t.as_str(), true)
                .map(|e| e.get_ids().len().min(256))
                .unwrap_or(0)
        })
        .sum();

    // 2. The embedder alone on those chunks, 64 at a time as the pipeline does.
    let started = Instant::now();
    for step in texts.chunks(64) {
        embedder.embed_passages(step.to_vec()).await?;
    }
    let embed_s = started.elapsed().as_secs_f64();
    drop(setup);
    drop(embedder);

    // 3. The whole pipeline, through the HTTP API, on the same files.
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let running = App::build(config).await?.start(listener)?;
    let base = format!("http://{}", running.addr);
    let client = reqwest::Client::new();
    let started = Instant::now();
    let mut jobs = Vec::new();
    for path in &accepted {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default();
        let form = reqwest::multipart::Form::new().part(
            "file",
            reqwest::multipart::Part::bytes(std::fs::read(path)?).file_name(name),
        );
        let answer: Value = client
            .post(format!("{base}/v1/documents"))
            .multipart(form)
            .send()
            .await?
            .json()
            .await?;
        if let Some(job) = answer["documents"][0]["job_id"].as_str() {
            jobs.push(job.to_string());
        }
    }
    let mut ready = 0;
    for job in &jobs {
        loop {
            let state: Value = client.get(format!("{base}/v1/jobs/{job}")).send().await?.json().await?;
            match state["status"].as_str() {
                Some("succeeded") => {
                    ready += 1;
                    break;
                }
                Some("failed") => break,
                _ => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        }
    }
    let pipeline_s = started.elapsed().as_secs_f64();
    running.stop().await;

    let report = json!({
        "files": accepted.len(),
        "ready": ready,
        "pages": pages,
        "chunks": texts.len(),
        "tokens": tokens,
        "embedder_alone": {"seconds": embed_s, "tokens_per_s": tokens as f64 / embed_s},
        "pipeline": {"seconds": pipeline_s, "tokens_per_s": tokens as f64 / pipeline_s, "pages_per_s": pages as f64 / pipeline_s},
        "pipeline_over_embedder": embed_s / pipeline_s,
    });
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(())
}
