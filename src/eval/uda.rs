//! UDA's PDF question sets (`uda/*_qa.jsonl` and `uda/pdfs/`): the PDFs are
//! uploaded, and each question is searched and answered within its own
//! document, as the benchmark asks (`filter.document_ids`).
//!
//! A question's gold pages are FinQA's page (`gold_page_1based_hint`) for
//! `fin`, else the pages of the document on which its evidence stands: the
//! gold passage (`nq`'s long answer, QASPER's evidence, TAT's facts) or, when
//! there is none, the gold answer itself, found after SQuAD's normalisation;
//! an evidence longer than [`SHINGLE`] words counts where any run of that many
//! of its words stands. Pages are read by docqa's own PDF extractor, the one
//! ingestion uses. A question none of whose evidence can be found (FeTaQA's
//! free-form sentences, most arithmetic answers) is not scored on pages.
//!
//! Retrieval scores are those of the first hit on a gold page; extractive
//! answers are scored on whether a citation names a gold page and whether the
//! answer text contains a gold answer (for the questions whose gold answer is
//! written somewhere in the document at all).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::client::Hit;
use super::metrics::{contains_answer, mean, normalize_answer};
use super::{AnswerTally, EvalError, EvalOptions, Report, progress_bar, read_jsonl};

const HITS_PER_QUESTION: usize = 10;
const ANSWER_TOP_K: usize = 5;
/// Words of a long evidence that must stand together on a page.
pub const SHINGLE: usize = 8;
const SUBSETS: [&str; 6] = ["paper_text", "paper_tab", "fin", "tat", "nq", "feta"];

#[derive(Debug, Deserialize)]
pub struct UdaQuestion {
    pub subset: String,
    pub pdf: String,
    pub question: String,
    #[serde(default)]
    pub answers: serde_json::Map<String, Value>,
    #[serde(default)]
    pub extended: Option<Value>,
    #[serde(default)]
    pub gold_page_1based_hint: Option<String>,
    #[serde(default)]
    pub answer_type: Option<String>,
}

impl UdaQuestion {
    /// Short gold answers, as written (yes/no answers left out: any text "contains" them).
    pub fn gold_answers(&self) -> Vec<String> {
        let field = |key: &str| self.answers.get(key).and_then(Value::as_str).map(str::to_string);
        let answers: Vec<String> = match self.subset.as_str() {
            "fin" => field("answer_1").into_iter().collect(),
            "nq" => field("short_answer").into_iter().collect(),
            "tat" => match self.extended.as_ref().and_then(|e| e["answers"]["answer"].as_array()) {
                Some(list) => list.iter().filter_map(|a| a.as_str().map(str::to_string)).collect(),
                None => field("answer").map(|a| python_list_items(&a)).unwrap_or_default(),
            },
            _ => ["answer", "answer_1", "answer_2"]
                .iter()
                .filter_map(|k| field(k))
                .collect(),
        };
        answers
            .into_iter()
            .filter(|a| !matches!(normalize_answer(a).as_str(), "" | "yes" | "no"))
            .collect()
    }

    /// Passages the answer stands in: the gold passage where the set has one,
    /// else the extractive gold answers.
    pub fn evidence(&self) -> Vec<String> {
        let mut passages: Vec<String> = Vec::new();
        match self.subset.as_str() {
            "nq" => passages.extend(
                self.answers
                    .get("long_answer")
                    .and_then(Value::as_str)
                    .map(str::to_string),
            ),
            "paper_text" | "paper_tab" => {
                let evidence = self.extended.as_ref().and_then(|e| e["evidence"].as_array());
                for item in evidence.into_iter().flatten() {
                    for key in ["raw_evidence", "highlighted_evidence"] {
                        passages.extend(
                            item[key]
                                .as_array()
                                .into_iter()
                                .flatten()
                                .filter_map(|p| p.as_str().map(str::to_string)),
                        );
                    }
                }
            }
            "tat" => {
                let facts = self.extended.as_ref().and_then(|e| e["facts"].as_array());
                passages.extend(
                    facts
                        .into_iter()
                        .flatten()
                        .filter_map(|f| f.as_str().map(str::to_string)),
                );
            }
            _ => {}
        }
        passages.retain(|p| !normalize_answer(p).is_empty());
        if passages.is_empty() && self.answer_type.as_deref() != Some("arithmetic") {
            passages = self.gold_answers();
        }
        passages
    }

    fn hinted_page(&self) -> Option<u32> {
        self.gold_page_1based_hint
            .as_deref()
            .and_then(|p| p.trim().parse().ok())
            .filter(|p| *p > 0)
    }
}

/// The items of a Python list literal as UDA's CSVs wrote them: `['$ 5.99', "Bob's"]`.
pub fn python_list_items(text: &str) -> Vec<String> {
    let trimmed = text.trim();
    let Some(inner) = trimmed.strip_prefix('[').and_then(|t| t.strip_suffix(']')) else {
        return vec![trimmed.to_string()];
    };
    let mut items = Vec::new();
    let mut chars = inner.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\'' && c != '"' {
            continue;
        }
        let mut item = String::new();
        // An item ends at its quote followed by `,` or the end.
        while let Some(d) = chars.next() {
            if d == c {
                let rest: String = chars.clone().collect();
                if rest.trim_start().is_empty() || rest.trim_start().starts_with(',') {
                    break;
                }
            }
            item.push(d);
        }
        items.push(item);
    }
    items
}

/// A document's pages, normalised once for finding evidence on them.
pub struct DocumentPages {
    pages: Vec<String>,
}

impl DocumentPages {
    pub fn new(pages: &[String]) -> Self {
        Self {
            pages: pages.iter().map(|p| format!(" {} ", normalize_answer(p))).collect(),
        }
    }

    /// 1-based pages on which any of the passages stands.
    pub fn pages_with(&self, passages: &[String]) -> HashSet<u32> {
        let mut needles: Vec<String> = Vec::new();
        for passage in passages {
            let normalized = normalize_answer(passage);
            let words: Vec<&str> = normalized.split_whitespace().collect();
            if words.len() <= SHINGLE {
                needles.push(format!(" {normalized} "));
            } else {
                needles.extend(words.windows(SHINGLE).map(|w| format!(" {} ", w.join(" "))));
            }
        }
        self.pages
            .iter()
            .enumerate()
            .filter(|(_, page)| needles.iter().any(|n| page.contains(n.as_str())))
            .map(|(i, _)| i as u32 + 1)
            .collect()
    }

    /// Whether any of the answers is written in the document.
    pub fn contains_any(&self, answers: &[String]) -> bool {
        answers.iter().any(|a| self.pages.iter().any(|p| contains_answer(p, a)))
    }
}

/// Page-level scores of one subset (or of all).
#[derive(Debug, Clone, Serialize)]
pub struct SubsetScores {
    pub subset: String,
    pub questions: usize,
    /// Questions whose gold pages are known.
    pub located: usize,
    /// A hybrid hit of the top 5 stands on a gold page.
    pub page_recall_at_5: f64,
    /// A citation of the extractive answer names a gold page.
    pub cites_gold_page: f64,
    /// Questions whose gold answer is written in the document.
    pub extractable: usize,
    /// Of those, the extractive answer contains a gold answer.
    pub contains_gold: f64,
}

#[derive(Default)]
struct Tally {
    questions: usize,
    page_hit5: Vec<f64>,
    cites: Vec<f64>,
    contains: Vec<f64>,
}

impl Tally {
    fn scores(&self, subset: &str) -> SubsetScores {
        SubsetScores {
            subset: subset.to_string(),
            questions: self.questions,
            located: self.page_hit5.len(),
            page_recall_at_5: mean(&self.page_hit5),
            cites_gold_page: mean(&self.cites),
            extractable: self.contains.len(),
            contains_gold: mean(&self.contains),
        }
    }
}

/// One question, ready to ask: its document's id and what counts as right.
struct Prepared<'a> {
    question: &'a UdaQuestion,
    filter: Value,
    gold_pages: HashSet<u32>,
    golds: Vec<String>,
    extractable: bool,
}

/// Within its own document.
impl super::Searched for &Prepared<'_> {
    fn text(&self) -> &str {
        &self.question.question
    }

    fn filter(&self) -> Option<&Value> {
        Some(&self.filter)
    }
}

fn read_questions(dir: &Path) -> Result<Vec<UdaQuestion>, EvalError> {
    let mut questions = Vec::new();
    for subset in SUBSETS {
        let path = dir.join(format!("{subset}_qa.jsonl"));
        if path.exists() {
            questions.extend(read_jsonl::<UdaQuestion>(&path)?);
        }
    }
    Ok(questions)
}

/// Each PDF's pages, read with the extractor ingestion uses.
async fn read_pages(files: &[PathBuf]) -> Result<HashMap<PathBuf, DocumentPages>, EvalError> {
    let files = files.to_vec();
    tokio::task::spawn_blocking(move || {
        files
            .into_iter()
            .map(|path| {
                let bytes = std::fs::read(&path).map_err(|e| EvalError::Read(path.clone(), e))?;
                let pages = crate::ingest::extract::pdf::extract(&bytes, usize::MAX)
                    .map(|t| t.pages)
                    .unwrap_or_default();
                Ok((path, DocumentPages::new(&pages)))
            })
            .collect()
    })
    .await
    .map_err(|e| EvalError::Data(format!("reading the PDFs' pages: {e}")))?
}

pub async fn evaluate(base: &str, options: &EvalOptions) -> Result<Report, EvalError> {
    let dir = options.data_dir.join("uda");
    let split = options.split.clone().unwrap_or_else(|| "all".to_string());
    let mut questions = read_questions(&dir)?;
    if split != "all" {
        questions.retain(|q| q.subset == split);
    }
    let questions = options.questions(questions, || {
        format!("no UDA question in {} for {split:?} (a subset or all)", dir.display())
    })?;
    let mut files: Vec<PathBuf> = questions
        .iter()
        .map(|q| dir.join(&q.pdf))
        .collect::<HashSet<_>>()
        .into_iter()
        .collect();
    files.sort();

    let mut run = super::Run::ingest(base, "eval-uda", options, files.clone(), usize::MAX).await?;
    let ids = run.client.document_ids().await?;
    let pages = read_pages(&files).await?;

    let mut prepared = Vec::new();
    let mut not_ingested = 0usize;
    for question in &questions {
        let path = dir.join(&question.pdf);
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default();
        let (Some(id), Some(document)) = (ids.get(&name), pages.get(&path)) else {
            not_ingested += 1;
            continue;
        };
        let golds = question.gold_answers();
        let gold_pages = match question.hinted_page() {
            Some(page) => HashSet::from([page]),
            None => document.pages_with(&question.evidence()),
        };
        prepared.push(Prepared {
            question,
            filter: json!({"document_ids": [id]}),
            extractable: document.contains_any(&golds),
            gold_pages,
            golds,
        });
    }
    if not_ingested > 0 {
        run.notes.push(format!(
            "{not_ingested} questions are about a PDF that was not ingested (not scored)"
        ));
    }
    let located: Vec<usize> = (0..prepared.len())
        .filter(|&i| !prepared[i].gold_pages.is_empty())
        .collect();
    let gold_page_counts: Vec<f64> = located.iter().map(|&i| prepared[i].gold_pages.len() as f64).collect();
    run.notes.push(format!(
        "{} of {} questions have known gold pages ({:.1} pages each on average); {} have a gold answer written in their PDF",
        located.len(),
        prepared.len(),
        mean(&gold_page_counts),
        prepared.iter().filter(|p| p.extractable).count()
    ));

    let on_gold_page = |hit: &Hit, gold: &HashSet<u32>| (hit.page_start..=hit.page_end).any(|p| gold.contains(&p));

    let located_items: Vec<&Prepared> = located.iter().map(|&index| &prepared[index]).collect();
    let measured = run
        .retrieve_by_mode(&located_items, HITS_PER_QUESTION, |item, hits, sheet| {
            let rank = hits.iter().position(|hit| on_gold_page(hit, &item.gold_pages));
            sheet.add_single(rank);
            rank
        })
        .await?;
    let mut hybrid_top5 = vec![false; prepared.len()];
    for (&index, rank) in located.iter().zip(&measured.hybrid_ranks) {
        hybrid_top5[index] = rank.is_some_and(|r| r < 5);
    }

    let bar = progress_bar(prepared.len(), options.progress, "extractive answers");
    let mut query_latency = Vec::new();
    let mut tallies: BTreeMap<&str, Tally> = BTreeMap::new();
    let mut answers = AnswerTally::default();
    for (index, item) in prepared.iter().enumerate() {
        let (answer, ms) = run
            .client
            .answer_extractively(&item.question.question, ANSWER_TOP_K, Some(&item.filter))
            .await?;
        query_latency.push(ms);
        let text = answer.answer.as_str();
        let cited_pages: HashSet<u32> = answer.citations.iter().map(|c| c.page).collect();
        for key in [item.question.subset.as_str(), "all"] {
            let tally = tallies.entry(key).or_default();
            tally.questions += 1;
            if !item.gold_pages.is_empty() {
                tally.page_hit5.push(f64::from(u8::from(hybrid_top5[index])));
                tally
                    .cites
                    .push(f64::from(u8::from(!cited_pages.is_disjoint(&item.gold_pages))));
            }
        }
        if item.extractable {
            let has = answers.add(text, item.golds.iter().map(String::as_str), hybrid_top5[index]);
            for key in [item.question.subset.as_str(), "all"] {
                tallies.entry(key).or_default().contains.push(f64::from(u8::from(has)));
            }
        }
        bar.inc(1);
    }
    bar.finish_and_clear();

    let mut pages_by_subset: Vec<SubsetScores> = SUBSETS
        .iter()
        .filter_map(|subset| tallies.get(subset).map(|t| t.scores(subset)))
        .collect();
    if let Some(all) = tallies.get("all") {
        pages_by_subset.push(all.scores("all"));
    }

    let mut report = run
        .report(split, measured)
        .with_answers(answers.scores(), &query_latency);
    report.pages = pages_by_subset;
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_lists_are_split_into_their_items() {
        assert_eq!(python_list_items("['$ 5.99', '$ 4.79']"), vec!["$ 5.99", "$ 4.79"]);
        assert_eq!(python_list_items("[\"Bob's\", 'x, y']"), vec!["Bob's", "x, y"]);
        assert_eq!(python_list_items("42"), vec!["42"]);
    }

    #[test]
    fn evidence_is_found_on_its_pages_by_runs_of_words() {
        let pages = vec![
            "The Judiciary Act of 1789 called for the appointment of six\njudges to the court.".to_string(),
            "Congress added justices: seven in 1807, nine in 1837.".to_string(),
        ];
        let document = DocumentPages::new(&pages);
        let long = "Although it varied, the Judiciary Act of 1789 called for the appointment of six `` judges ''. Later acts changed it.";
        assert_eq!(document.pages_with(&[long.to_string()]), HashSet::from([1]));
        assert_eq!(document.pages_with(&["nine in 1837".to_string()]), HashSet::from([2]));
        assert!(document.pages_with(&["the Senate decides".to_string()]).is_empty());
        assert!(document.contains_any(&["Congress added".to_string()]));
        assert!(!document.contains_any(&["Congress removed".to_string()]));
    }

    #[test]
    fn yes_no_answers_do_not_count_as_gold_text() {
        let question: UdaQuestion = serde_json::from_value(json!({
            "subset": "paper_text", "pdf": "p.pdf", "question": "q?",
            "answers": {"answer_1": "Yes", "answer_2": "BLEU scores"}
        }))
        .unwrap();
        assert_eq!(question.gold_answers(), vec!["BLEU scores"]);
        assert_eq!(question.evidence(), vec!["BLEU scores"]);
    }
}
