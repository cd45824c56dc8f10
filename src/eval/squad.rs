//! SQuAD v1.1 as a document collection: the split's articles are uploaded as
//! text, every question of the split is searched, and a hit counts when the
//! chunk overlaps the question's gold paragraph — located by its text in the
//! article, compared by character span. Extractive answers are scored with
//! SQuAD's normalisation: contains a gold answer, EM and F1.

use std::collections::{HashMap, HashSet};

use serde::Deserialize;
use serde_json::Value;

use super::client::Hit;
use super::{AnswerTally, EvalError, EvalOptions, Report, progress_bar, read_jsonl};

const HITS_PER_QUESTION: usize = 10;
/// Chunks an extractive answer is made from.
const ANSWER_TOP_K: usize = 5;

#[derive(Debug, Deserialize)]
struct Paragraph {
    paragraph_id: String,
    title: String,
    split: String,
    article_file: String,
    article_char_start: usize,
    article_char_end: usize,
}

#[derive(Debug, Deserialize)]
struct Question {
    question: String,
    paragraph_id: String,
    answers: Vec<GoldAnswer>,
}

impl super::Searched for Question {
    fn text(&self) -> &str {
        &self.question
    }
}

#[derive(Debug, Deserialize)]
struct GoldAnswer {
    text: String,
}

/// An article's text, lower-cased letters and digits only, each byte mapped
/// back to the character it came from: chunk text is found in it however the
/// extractor and the chunker changed whitespace and punctuation.
pub struct ArticleText {
    letters: String,
    char_of_byte: Vec<usize>,
}

impl ArticleText {
    pub fn new(text: &str) -> Self {
        let mut letters = String::with_capacity(text.len());
        let mut char_of_byte = Vec::with_capacity(text.len());
        for (index, c) in text.chars().enumerate() {
            if c.is_alphanumeric() {
                for lower in c.to_lowercase() {
                    letters.push(lower);
                    char_of_byte.extend(std::iter::repeat_n(index, lower.len_utf8()));
                }
            }
        }
        Self { letters, char_of_byte }
    }

    /// The character span `[start, end)` of `chunk` in the article.
    pub fn locate(&self, chunk: &str) -> Option<(usize, usize)> {
        let needle: String = chunk
            .chars()
            .filter(|c| c.is_alphanumeric())
            .flat_map(char::to_lowercase)
            .collect();
        if needle.is_empty() {
            return None;
        }
        let at = self.letters.find(&needle)?;
        Some((self.char_of_byte[at], self.char_of_byte[at + needle.len() - 1] + 1))
    }
}

fn split_titles(options: &EvalOptions, split: &str) -> Result<Option<HashSet<String>>, EvalError> {
    if split == "all" {
        return Ok(None);
    }
    let path = options.data_dir.join("squad").join("split.json");
    let text = std::fs::read_to_string(&path).map_err(|e| EvalError::Read(path.clone(), e))?;
    let value: Value = serde_json::from_str(&text).map_err(|e| EvalError::Parse {
        path: path.clone(),
        line: e.line(),
        detail: e.to_string(),
    })?;
    let titles = value[split].as_array().ok_or_else(|| {
        EvalError::Data(format!(
            "{} has no split {split:?} (dev, heldout or all)",
            path.display()
        ))
    })?;
    Ok(Some(
        titles.iter().filter_map(|t| t.as_str().map(str::to_string)).collect(),
    ))
}

pub async fn evaluate(base: &str, options: &EvalOptions) -> Result<Report, EvalError> {
    let dir = options.data_dir.join("squad");
    let split = options.split.clone().unwrap_or_else(|| "dev".to_string());
    let titles = split_titles(options, &split)?;
    let in_split =
        |title: &str, s: &str| titles.as_ref().is_none_or(|t| t.contains(title)) && (split == "all" || s == split);

    let paragraphs: Vec<Paragraph> = read_jsonl(&dir.join("paragraphs.jsonl"))?;
    let paragraphs: HashMap<String, Paragraph> = paragraphs
        .into_iter()
        .filter(|p| in_split(&p.title, &p.split))
        .map(|p| (p.paragraph_id.clone(), p))
        .collect();
    let questions = options.questions(
        read_jsonl::<Question>(&dir.join("questions.jsonl"))?
            .into_iter()
            .filter(|q| paragraphs.contains_key(&q.paragraph_id))
            .collect(),
        || format!("no SQuAD question in {} for split {split}", dir.display()),
    )?;

    // article file name → its located text
    let mut articles: HashMap<String, ArticleText> = HashMap::new();
    let mut files = Vec::new();
    for paragraph in paragraphs.values() {
        let name = paragraph
            .article_file
            .rsplit('/')
            .next()
            .unwrap_or(&paragraph.article_file)
            .to_string();
        if articles.contains_key(&name) {
            continue;
        }
        let path = dir.join(&paragraph.article_file);
        let text = std::fs::read_to_string(&path).map_err(|e| EvalError::Read(path.clone(), e))?;
        articles.insert(name, ArticleText::new(&text));
        files.push(path);
    }
    files.sort();

    let mut run = super::Run::ingest(base, "eval-squad", options, files, usize::MAX).await?;

    // chunk id → its span in its article, or None where it cannot be found
    let mut spans: HashMap<String, Option<(String, usize, usize)>> = HashMap::new();
    let mut unlocated = 0usize;
    let mut locate = |hit: &Hit| -> Option<(String, usize, usize)> {
        spans
            .entry(hit.chunk_id.clone())
            .or_insert_with(|| {
                let file = hit.filename.clone();
                let located = articles.get(&file)?.locate(&hit.text);
                if located.is_none() {
                    unlocated += 1;
                }
                located.map(|(start, end)| (file, start, end))
            })
            .clone()
    };

    let measured = run
        .retrieve_by_mode(&questions, HITS_PER_QUESTION, |question, hits, sheet| {
            let gold = &paragraphs[&question.paragraph_id];
            let gold_file = gold.article_file.rsplit('/').next().unwrap_or_default();
            let rank = hits.iter().position(|hit| {
                locate(hit).is_some_and(|(file, start, end)| {
                    file == gold_file && start < gold.article_char_end && gold.article_char_start < end
                })
            });
            sheet.add_single(rank);
            rank
        })
        .await?;
    // question index → gold paragraph within the hybrid top 5
    let retrieved_top5: Vec<bool> = measured
        .hybrid_ranks
        .iter()
        .map(|rank| rank.is_some_and(|r| r < 5))
        .collect();
    if unlocated > 0 {
        run.notes.push(format!(
            "{unlocated} returned chunks could not be located in their article (counted as misses)"
        ));
    }

    let bar = progress_bar(questions.len(), options.progress, "extractive answers");
    let mut query_latency = Vec::new();
    let mut answers = AnswerTally::default();
    for (index, question) in questions.iter().enumerate() {
        let (answer, ms) = run
            .client
            .answer_extractively(&question.question, ANSWER_TOP_K, None)
            .await?;
        query_latency.push(ms);
        let text = answer.answer.as_str();
        answers.add(
            text,
            question.answers.iter().map(|g| g.text.as_str()),
            retrieved_top5[index],
        );
        bar.inc(1);
    }
    bar.finish_and_clear();

    Ok(run
        .report(split, measured)
        .with_answers(answers.scores(), &query_latency))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_are_found_in_their_article_whatever_the_whitespace() {
        let article = "Warsaw is the capital.\n\nIt lies on the Vistula — in Poland. Überall Straße.";
        let text = ArticleText::new(article);
        let (start, end) = text.locate("It lies on the\nVistula  in Poland").unwrap();
        assert_eq!(
            &article.chars().skip(start).take(end - start).collect::<String>(),
            "It lies on the Vistula — in Poland"
        );
        let (start, _) = text.locate("überall").unwrap();
        assert_eq!(start, article.chars().position(|c| c == 'Ü').unwrap());
        assert!(text.locate("Krakow").is_none());
        assert!(text.locate(" — ").is_none());
    }
}
