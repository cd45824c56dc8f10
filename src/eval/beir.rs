//! BEIR datasets (SciFact): every abstract becomes a text document named
//! `<corpus-id>.txt` (title, blank line, text); each query is searched in each
//! retrieval mode, hits are mapped back to corpus ids (first chunk of a
//! document counts), and scored against `qrels/<split>.tsv`.

use std::collections::HashMap;
use std::path::Path;

use serde::Deserialize;

use super::metrics::dedup_ranked;
use super::{EvalError, EvalOptions, Report, read_jsonl};

/// Chunks asked for per query: enough for 10 distinct documents when abstracts
/// are split into a few chunks each.
const HITS_PER_QUERY: usize = 50;

#[derive(Debug, Deserialize)]
pub struct CorpusEntry {
    #[serde(rename = "_id")]
    pub id: String,
    #[serde(default)]
    pub title: String,
    pub text: String,
}

#[derive(Debug, Deserialize)]
pub struct QueryEntry {
    #[serde(rename = "_id")]
    pub id: String,
    pub text: String,
}

impl super::Searched for QueryEntry {
    fn text(&self) -> &str {
        &self.text
    }
}

/// query id → (corpus id → graded relevance > 0).
pub type Qrels = HashMap<String, HashMap<String, u32>>;

pub fn read_qrels(path: &Path) -> Result<Qrels, EvalError> {
    let text = std::fs::read_to_string(path).map_err(|e| EvalError::Read(path.to_path_buf(), e))?;
    let mut qrels = Qrels::new();
    for (i, line) in text.lines().enumerate() {
        let fields: Vec<&str> = line.split('\t').map(str::trim).collect();
        // The header line, or a blank one.
        if fields.len() < 3 || fields[2].parse::<i64>().is_err() {
            continue;
        }
        let score: i64 = fields[2].parse().map_err(|e| EvalError::Parse {
            path: path.to_path_buf(),
            line: i + 1,
            detail: format!("{e}"),
        })?;
        if score > 0 {
            qrels
                .entry(fields[0].to_string())
                .or_default()
                .insert(fields[1].to_string(), score as u32);
        }
    }
    Ok(qrels)
}

pub async fn evaluate(base: &str, options: &EvalOptions) -> Result<Report, EvalError> {
    let dir = options.data_dir.join("scifact");
    let split = options.split.clone().unwrap_or_else(|| "test".to_string());
    let corpus: Vec<CorpusEntry> = read_jsonl(&dir.join("corpus.jsonl"))?;
    let queries: Vec<QueryEntry> = read_jsonl(&dir.join("queries.jsonl"))?;
    let qrels = read_qrels(&dir.join("qrels").join(format!("{split}.tsv")))?;
    let queries = options.questions(
        queries.into_iter().filter(|q| qrels.contains_key(&q.id)).collect(),
        || format!("no query of {} has judgements in qrels/{split}.tsv", dir.display()),
    )?;

    // The abstracts as files, so they go through the same upload pipeline as any document.
    let staging = tempfile::tempdir().map_err(|e| EvalError::Read(std::env::temp_dir(), e))?;
    let mut files = Vec::with_capacity(corpus.len());
    for entry in &corpus {
        let path = staging.path().join(format!("{}.txt", entry.id));
        let text = if entry.title.is_empty() {
            entry.text.clone()
        } else {
            format!("{}\n\n{}", entry.title, entry.text)
        };
        std::fs::write(&path, text).map_err(|e| EvalError::Read(path.clone(), e))?;
        files.push(path);
    }
    let mut run = super::Run::ingest(base, "eval-scifact", options, files, 5).await?;
    let measured = run
        .retrieve_by_mode(&queries, HITS_PER_QUERY, |query, hits, sheet| {
            let ranked = dedup_ranked(hits.iter().filter_map(|hit| corpus_id(&hit.filename)));
            sheet.add_ranking(&ranked, &qrels[&query.id]);
            None
        })
        .await?;
    Ok(run.report(split, measured))
}

/// `4983.txt` → `4983`.
fn corpus_id(filename: &str) -> Option<String> {
    filename.strip_suffix(".txt").map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qrels_skip_the_header_and_zero_scores() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("test.tsv");
        std::fs::write(
            &path,
            "query-id\tcorpus-id\tscore\n1\t31715818\t1\n1\t99\t0\n3\t14717500\t2\n",
        )
        .unwrap();
        let qrels = read_qrels(&path).unwrap();
        assert_eq!(qrels.len(), 2);
        assert_eq!(qrels["1"].len(), 1);
        assert_eq!(qrels["3"]["14717500"], 2);
        assert_eq!(corpus_id("4983.txt").as_deref(), Some("4983"));
    }
}
