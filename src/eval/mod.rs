//! `docqa eval DATASET`: the quality harness. Ingests a benchmark's documents
//! into a fresh collection through the HTTP API (of a running server, or of one
//! started in this process on a temporary data dir), asks its questions, and
//! reports retrieval (nDCG@10, recall@k, MRR@10), extractive answer quality and
//! latency percentiles, as JSON and as a table.
//!
//! Datasets, in `../shared/eval`'s formats: `scifact` (BEIR: corpus.jsonl,
//! queries.jsonl, qrels/<split>.tsv) and `squad` (articles/, paragraphs.jsonl,
//! questions.jsonl, split.json).

pub mod beir;
mod client;
pub mod metrics;
pub mod squad;

use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;

pub use client::EvalClient;

#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    #[error("{0}: {1}")]
    Read(PathBuf, std::io::Error),
    #[error("{path}, line {line}: {detail}")]
    Parse { path: PathBuf, line: usize, detail: String },
    #[error("the server: {0}")]
    Server(String),
    #[error(transparent)]
    Bulk(#[from] crate::bulk::BulkError),
    #[error("{0}")]
    Data(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Dataset {
    /// BEIR SciFact: claims against 5,183 abstracts; nDCG@10 on `test` (or `train`).
    Scifact,
    /// SQuAD v1.1 dev articles: gold-paragraph recall and extractive answers on `dev` (or `heldout`, `all`).
    Squad,
}

#[derive(Debug, Clone)]
pub struct EvalOptions {
    pub dataset: Dataset,
    /// The folder holding `scifact/` and `squad/`.
    pub data_dir: PathBuf,
    /// Default: `test` for SciFact, `dev` for SQuAD.
    pub split: Option<String>,
    /// At most this many questions (all by default).
    pub limit: Option<usize>,
    pub progress: bool,
}

/// Ranking quality of one retrieval mode.
#[derive(Debug, Clone, Serialize)]
pub struct RetrievalScores {
    pub retrieval: String,
    pub questions: usize,
    pub ndcg_at_10: f64,
    pub recall_at_1: f64,
    pub recall_at_5: f64,
    pub recall_at_10: f64,
    pub mrr_at_10: f64,
}

/// Extractive answers (no LLM) to the questions.
#[derive(Debug, Clone, Serialize)]
pub struct AnswerScores {
    pub questions: usize,
    /// The answer text contains a gold answer (normalised, on word boundaries).
    pub contains_gold: f64,
    /// The same, among the questions whose gold paragraph was in the top 5.
    pub contains_gold_when_retrieved: f64,
    pub questions_retrieved: usize,
    /// SQuAD exact match and token F1 of the whole answer text (low by nature:
    /// an extractive answer is sentences, not a span).
    pub exact_match: f64,
    pub f1: f64,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Latency {
    pub requests: usize,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    pub mean_ms: f64,
}

impl Latency {
    pub fn of(samples_ms: &[f64]) -> Self {
        Self {
            requests: samples_ms.len(),
            p50_ms: metrics::percentile(samples_ms, 0.50),
            p95_ms: metrics::percentile(samples_ms, 0.95),
            p99_ms: metrics::percentile(samples_ms, 0.99),
            mean_ms: metrics::mean(samples_ms),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct IngestScores {
    pub documents: usize,
    pub ready: usize,
    pub failed: usize,
    pub pages: u64,
    pub seconds: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub dataset: Dataset,
    pub split: String,
    pub collection: String,
    pub ingest: IngestScores,
    pub retrieval: Vec<RetrievalScores>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub answers: Option<AnswerScores>,
    pub search_latency: Latency,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub query_latency: Option<Latency>,
    /// Things the reader should know (a mode that could not run, files that failed).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    pub seconds: f64,
}

impl Report {
    /// A readable table of the report.
    pub fn table(&self) -> String {
        let mut out = format!(
            "{:?} ({} split), collection {}: {} documents ingested ({} failed) in {:.1} s; {:.1} s in all\n\n",
            self.dataset, self.split, self.collection, self.ingest.ready, self.ingest.failed, self.ingest.seconds, self.seconds
        );
        out.push_str(&format!(
            "{:<10} {:>9} {:>8} {:>8} {:>8} {:>9} {:>8}\n",
            "retrieval", "questions", "nDCG@10", "R@1", "R@5", "R@10", "MRR@10"
        ));
        for row in &self.retrieval {
            out.push_str(&format!(
                "{:<10} {:>9} {:>8.3} {:>8.3} {:>8.3} {:>9.3} {:>8.3}\n",
                row.retrieval, row.questions, row.ndcg_at_10, row.recall_at_1, row.recall_at_5, row.recall_at_10, row.mrr_at_10
            ));
        }
        if let Some(answers) = &self.answers {
            out.push_str(&format!(
                "\nextractive answers: {} questions; contains a gold answer {:.3} ({:.3} of the {} whose gold paragraph was in the top 5); EM {:.3}, F1 {:.3}\n",
                answers.questions, answers.contains_gold, answers.contains_gold_when_retrieved, answers.questions_retrieved,
                answers.exact_match, answers.f1
            ));
        }
        let latency = |name: &str, l: &Latency| {
            format!(
                "{name} latency: p50 {:.1} ms, p95 {:.1} ms, p99 {:.1} ms over {} requests\n",
                l.p50_ms, l.p95_ms, l.p99_ms, l.requests
            )
        };
        out.push('\n');
        out.push_str(&latency("search (hybrid)", &self.search_latency));
        if let Some(query) = &self.query_latency {
            out.push_str(&latency("query (extractive)", query));
        }
        for note in &self.notes {
            out.push_str(&format!("note: {note}\n"));
        }
        out
    }
}

/// Runs the evaluation against the server at `base`.
pub async fn run(base: &str, options: &EvalOptions) -> Result<Report, EvalError> {
    let started = std::time::Instant::now();
    let mut report = match options.dataset {
        Dataset::Scifact => beir::evaluate(base, options).await?,
        Dataset::Squad => squad::evaluate(base, options).await?,
    };
    report.seconds = started.elapsed().as_secs_f64();
    Ok(report)
}

/// A progress bar over `len` questions (hidden when not wanted).
fn progress_bar(len: usize, show: bool, what: &str) -> indicatif::ProgressBar {
    let bar = if show {
        indicatif::ProgressBar::new(len as u64)
    } else {
        indicatif::ProgressBar::hidden()
    };
    bar.set_style(
        indicatif::ProgressStyle::with_template(&format!("{{bar:30}} {{pos}}/{{len}} {what} · {{elapsed_precise}} (eta {{eta}})"))
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    bar.enable_steady_tick(Duration::from_millis(500));
    bar
}

/// Lines of a JSON Lines file, parsed.
fn read_jsonl<T: serde::de::DeserializeOwned>(path: &std::path::Path) -> Result<Vec<T>, EvalError> {
    let text = std::fs::read_to_string(path).map_err(|e| EvalError::Read(path.to_path_buf(), e))?;
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(i, line)| {
            serde_json::from_str(line).map_err(|e| EvalError::Parse {
                path: path.to_path_buf(),
                line: i + 1,
                detail: e.to_string(),
            })
        })
        .collect()
}
