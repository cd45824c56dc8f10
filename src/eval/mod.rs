//! `docqa eval DATASET`: the quality harness. Ingests a benchmark's documents
//! into a fresh collection through the HTTP API (of a running server, or of one
//! started in this process on a temporary data dir), asks its questions, and
//! reports retrieval (nDCG@10, recall@k, MRR@10), extractive answer quality and
//! latency percentiles, as JSON and as a table.
//!
//! Datasets, in `../shared/eval`'s formats: `scifact` (BEIR: corpus.jsonl,
//! queries.jsonl, qrels/<split>.tsv) and `squad` (articles/, paragraphs.jsonl,
//! questions.jsonl, split.json) and `uda` (PDFs with questions, scored on
//! their gold pages).

pub mod beir;
mod client;
pub mod metrics;
pub mod squad;
pub mod uda;

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
    /// UDA's 20 PDFs and their questions: gold-page recall, citations on gold pages, extractive answers (`all` or one subset).
    Uda,
}

#[derive(Debug, Clone)]
pub struct EvalOptions {
    pub dataset: Dataset,
    /// The folder holding `scifact/`, `squad/` and `uda/`.
    pub data_dir: PathBuf,
    /// Default: `test` for SciFact, `dev` for SQuAD.
    pub split: Option<String>,
    /// At most this many questions (all by default).
    pub limit: Option<usize>,
    /// Evaluate in this collection (created if missing) instead of a fresh one:
    /// with a running server, the documents are ingested once for many runs.
    pub collection: Option<String>,
    pub progress: bool,
}

impl EvalOptions {
    /// The questions to ask: the first `limit` of them; none is an error that
    /// says why (`missing`).
    fn questions<T>(&self, mut questions: Vec<T>, missing: impl FnOnce() -> String) -> Result<Vec<T>, EvalError> {
        if let Some(limit) = self.limit {
            questions.truncate(limit);
        }
        if questions.is_empty() {
            return Err(EvalError::Data(missing()));
        }
        Ok(questions)
    }
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

/// Extractive answers scored one by one, averaged into [`AnswerScores`].
#[derive(Debug, Default)]
pub struct AnswerTally {
    contains: Vec<f64>,
    contains_retrieved: Vec<f64>,
    em: Vec<f64>,
    f1: Vec<f64>,
}

impl AnswerTally {
    /// One answer text against its gold answers; `retrieved`: its gold
    /// passage was in the top 5. Whether it contains a gold answer.
    pub fn add<'a>(&mut self, text: &str, golds: impl Iterator<Item = &'a str> + Clone, retrieved: bool) -> bool {
        let has = golds.clone().any(|g| metrics::contains_answer(text, g));
        self.contains.push(f64::from(u8::from(has)));
        if retrieved {
            self.contains_retrieved.push(f64::from(u8::from(has)));
        }
        self.em.push(f64::from(u8::from(
            golds.clone().any(|g| metrics::exact_match(text, g)),
        )));
        self.f1.push(golds.map(|g| metrics::f1(text, g)).fold(0.0, f64::max));
        has
    }

    pub fn scores(&self) -> AnswerScores {
        AnswerScores {
            questions: self.contains.len(),
            contains_gold: metrics::mean(&self.contains),
            contains_gold_when_retrieved: metrics::mean(&self.contains_retrieved),
            questions_retrieved: self.contains_retrieved.len(),
            exact_match: metrics::mean(&self.em),
            f1: metrics::mean(&self.f1),
        }
    }
}

/// Per-question scores of one retrieval mode, averaged into [`RetrievalScores`].
#[derive(Debug, Default)]
pub struct ScoreSheet {
    ndcg: Vec<f64>,
    r1: Vec<f64>,
    r5: Vec<f64>,
    r10: Vec<f64>,
    mrr: Vec<f64>,
}

impl ScoreSheet {
    /// A question with graded judgements (BEIR), from its ranked ids.
    pub fn add_ranking(&mut self, ranked: &[String], judged: &std::collections::HashMap<String, u32>) {
        let relevant: std::collections::HashSet<String> = judged.keys().cloned().collect();
        self.ndcg.push(metrics::ndcg_at(10, ranked, judged));
        self.r1.push(metrics::recall_at(1, ranked, &relevant));
        self.r5.push(metrics::recall_at(5, ranked, &relevant));
        self.r10.push(metrics::recall_at(10, ranked, &relevant));
        self.mrr.push(metrics::reciprocal_rank_at(10, ranked, &relevant));
    }

    /// A question with one relevant item (SQuAD's gold paragraph), found at
    /// `rank` (0-based) or not: nDCG@10 is then 1/log2(rank + 2).
    pub fn add_single(&mut self, rank: Option<usize>) {
        let within = |k: usize| f64::from(u8::from(rank.is_some_and(|r| r < k)));
        self.ndcg
            .push(rank.filter(|r| *r < 10).map_or(0.0, |r| 1.0 / (r as f64 + 2.0).log2()));
        self.r1.push(within(1));
        self.r5.push(within(5));
        self.r10.push(within(10));
        self.mrr
            .push(rank.filter(|r| *r < 10).map_or(0.0, |r| 1.0 / (r as f64 + 1.0)));
    }

    pub fn scores(&self, retrieval: &str) -> RetrievalScores {
        RetrievalScores {
            retrieval: retrieval.to_string(),
            questions: self.ndcg.len(),
            ndcg_at_10: metrics::mean(&self.ndcg),
            recall_at_1: metrics::mean(&self.r1),
            recall_at_5: metrics::mean(&self.r5),
            recall_at_10: metrics::mean(&self.r10),
            mrr_at_10: metrics::mean(&self.mrr),
        }
    }
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

impl IngestScores {
    /// How the upload of a dataset's `documents` went (a duplicate is ready too).
    fn of(documents: usize, summary: &crate::bulk::Summary) -> Self {
        Self {
            documents,
            ready: summary.ready + summary.duplicate,
            failed: summary.failed.len(),
            pages: summary.pages,
            seconds: summary.elapsed.as_secs_f64(),
        }
    }
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
    /// PDF question sets: gold pages found and cited, by subset and in all.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub pages: Vec<uda::SubsetScores>,
    pub search_latency: Latency,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub query_latency: Option<Latency>,
    /// Things the reader should know (a mode that could not run, files that failed).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    pub seconds: f64,
}

impl Report {
    /// With the extractive answers scored and their latency.
    pub(crate) fn with_answers(self, answers: AnswerScores, query_latency: &[f64]) -> Self {
        Self {
            answers: Some(answers),
            query_latency: Some(Latency::of(query_latency)),
            ..self
        }
    }

    /// A readable table of the report.
    pub fn table(&self) -> String {
        let mut out = format!(
            "{:?} ({} split), collection {}: {} documents ingested ({} failed) in {:.1} s; {:.1} s in all\n\n",
            self.dataset,
            self.split,
            self.collection,
            self.ingest.ready,
            self.ingest.failed,
            self.ingest.seconds,
            self.seconds
        );
        let fraction = |x: f64| format!("{x:.3}");
        push_table(
            &mut out,
            &[
                ("retrieval", 10),
                ("questions", 9),
                ("nDCG@10", 8),
                ("R@1", 8),
                ("R@5", 8),
                ("R@10", 9),
                ("MRR@10", 8),
            ],
            self.retrieval.iter().map(|row| {
                let scores = [
                    row.ndcg_at_10,
                    row.recall_at_1,
                    row.recall_at_5,
                    row.recall_at_10,
                    row.mrr_at_10,
                ];
                [row.retrieval.clone(), row.questions.to_string()]
                    .into_iter()
                    .chain(scores.map(fraction))
                    .collect()
            }),
        );
        if let Some(answers) = &self.answers {
            out.push_str(&format!(
                "\nextractive answers: {} questions; contains a gold answer {:.3} ({:.3} of the {} whose gold paragraph or page was in the top 5); EM {:.3}, F1 {:.3}\n",
                answers.questions, answers.contains_gold, answers.contains_gold_when_retrieved, answers.questions_retrieved,
                answers.exact_match, answers.f1
            ));
        }
        if !self.pages.is_empty() {
            out.push('\n');
            push_table(
                &mut out,
                &[
                    ("subset", 11),
                    ("questions", 9),
                    ("located", 8),
                    ("page R@5", 12),
                    ("cites gold pg", 14),
                    ("extractable", 12),
                    ("contains gold", 14),
                ],
                self.pages.iter().map(|row| {
                    vec![
                        row.subset.clone(),
                        row.questions.to_string(),
                        row.located.to_string(),
                        fraction(row.page_recall_at_5),
                        fraction(row.cites_gold_page),
                        row.extractable.to_string(),
                        fraction(row.contains_gold),
                    ]
                }),
            );
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
        Dataset::Uda => uda::evaluate(base, options).await?,
    };
    report.seconds = started.elapsed().as_secs_f64();
    Ok(report)
}

/// A progress bar over `len` questions (hidden when not wanted).
/// The retrieval modes every dataset is scored in.
pub const MODES: [&str; 3] = ["hybrid", "dense", "bm25"];

/// One dataset's run on the server: its collection, how its ingestion went and
/// the notes for the report so far.
pub(crate) struct Run<'a> {
    pub client: EvalClient,
    pub options: &'a EvalOptions,
    pub ingest: IngestScores,
    pub notes: Vec<String>,
}

impl<'a> Run<'a> {
    /// Uploads `files` into the run's collection (fresh, or `options.collection`),
    /// noting the first `failures_noted` files that failed.
    pub(crate) async fn ingest(
        base: &str,
        prefix: &str,
        options: &'a EvalOptions,
        files: Vec<PathBuf>,
        failures_noted: usize,
    ) -> Result<Self, EvalError> {
        let client = EvalClient::collection(base, prefix, options.collection.as_deref()).await?;
        let documents = files.len();
        let ingested = crate::bulk::ingest(base, &client.collection, files, options.progress).await?;
        let failed = ingested.failed.iter().take(failures_noted);
        let notes = failed
            .map(|(path, why)| format!("{} failed: {why}", path.display()))
            .collect();
        Ok(Self {
            client,
            options,
            ingest: IngestScores::of(documents, &ingested),
            notes,
        })
    }

    /// Every retrieval mode over the questions, `top_k` hits each: `score` puts a
    /// question's hits on the sheet and says where the first gold hit stood. A
    /// mode the server refuses (dense without a model) is noted and skipped.
    pub(crate) async fn retrieve_by_mode<Q: Searched>(
        &mut self,
        questions: &[Q],
        top_k: usize,
        mut score: impl FnMut(&Q, &[client::Hit], &mut ScoreSheet) -> Option<usize>,
    ) -> Result<ByMode, EvalError> {
        let mut measured = ByMode {
            scores: Vec::new(),
            hybrid_latency: Vec::new(),
            hybrid_ranks: vec![None; questions.len()],
        };
        for mode in MODES {
            let bar = progress_bar(questions.len(), self.options.progress, &format!("questions ({mode})"));
            let mut sheet = ScoreSheet::default();
            let mut refused = false;
            for (index, question) in questions.iter().enumerate() {
                let searched = self
                    .client
                    .search(question.text(), top_k, mode, question.filter())
                    .await?;
                let Some((hits, ms)) = searched else {
                    refused = true;
                    break;
                };
                let rank = score(question, &hits, &mut sheet);
                if mode == "hybrid" {
                    measured.hybrid_latency.push(ms);
                    measured.hybrid_ranks[index] = rank;
                }
                bar.inc(1);
            }
            bar.finish_and_clear();
            if refused {
                self.notes.push(format!(
                    "{mode} retrieval was refused by the server (no embedding model?)"
                ));
                continue;
            }
            measured.scores.push(sheet.scores(mode));
        }
        Ok(measured)
    }

    /// The report of the retrieval measured; answers and pages are added by the
    /// datasets that score them.
    pub(crate) fn report(self, split: String, measured: ByMode) -> Report {
        Report {
            dataset: self.options.dataset,
            split,
            collection: self.client.collection,
            ingest: self.ingest,
            retrieval: measured.scores,
            answers: None,
            pages: Vec::new(),
            search_latency: Latency::of(&measured.hybrid_latency),
            query_latency: None,
            notes: self.notes,
            seconds: 0.0,
        }
    }
}

/// A question as the search API takes it: its text, and a filter (UDA keeps
/// each question within its document).
pub(crate) trait Searched {
    fn text(&self) -> &str;
    fn filter(&self) -> Option<&serde_json::Value> {
        None
    }
}

/// What [`Run::retrieve_by_mode`] measured.
pub(crate) struct ByMode {
    pub scores: Vec<RetrievalScores>,
    pub hybrid_latency: Vec<f64>,
    /// Per question (in order), the rank `score` gave its hybrid hits.
    pub hybrid_ranks: Vec<Option<usize>>,
}

/// A header and rows, one line each: every column `width` wide, the first
/// aligned left, the others right.
fn push_table(out: &mut String, columns: &[(&str, usize)], rows: impl Iterator<Item = Vec<String>>) {
    let line = |cells: Vec<String>| {
        let cells: Vec<String> = cells
            .iter()
            .zip(columns)
            .enumerate()
            .map(|(i, (cell, &(_, width)))| match i {
                0 => format!("{cell:<width$}"),
                _ => format!("{cell:>width$}"),
            })
            .collect();
        cells.join(" ") + "\n"
    };
    out.push_str(&line(columns.iter().map(|(header, _)| header.to_string()).collect()));
    for row in rows {
        out.push_str(&line(row));
    }
}

fn progress_bar(len: usize, show: bool, what: &str) -> indicatif::ProgressBar {
    let bar = if show {
        indicatif::ProgressBar::new(len as u64)
    } else {
        indicatif::ProgressBar::hidden()
    };
    bar.set_style(
        indicatif::ProgressStyle::with_template(&format!(
            "{{bar:30}} {{pos}}/{{len}} {what} · {{elapsed_precise}} (eta {{eta}})"
        ))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_single_relevant_item_scores_by_its_rank() {
        let mut sheet = ScoreSheet::default();
        for rank in [Some(0), Some(1), None, Some(12)] {
            sheet.add_single(rank);
        }
        let scores = sheet.scores("bm25");
        assert_eq!(scores.questions, 4);
        assert!((scores.ndcg_at_10 - (1.0 + 1.0 / 3f64.log2()) / 4.0).abs() < 1e-12);
        assert_eq!(
            (scores.recall_at_1, scores.recall_at_5, scores.mrr_at_10),
            (0.25, 0.5, 1.5 / 4.0)
        );
    }
}
