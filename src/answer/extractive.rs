//! Answers without an LLM: the sentences of the retrieved chunks that share the
//! most terms with the question, each cited with its page.

use std::collections::HashSet;

use unicode_segmentation::UnicodeSegmentation;

use crate::domain::{Citation, SearchHit, page_at};
use crate::embed::Bm25Encoder;

/// At most this many sentences make an answer.
const MAX_SENTENCES: usize = 3;
const MIN_SENTENCE_CHARS: usize = 12;
const MAX_SENTENCE_CHARS: usize = 600;

struct Candidate<'a> {
    hit: &'a SearchHit,
    start: usize,
    text: &'a str,
    score: f32,
}

/// The answer text (sentences with `[n]` markers) and its citations; empty when
/// no sentence shares a term with the question.
pub fn answer(question: &str, hits: &[SearchHit], bm25: &Bm25Encoder) -> (String, Vec<Citation>) {
    let question_terms: HashSet<u32> = bm25.query(question).indices.into_iter().collect();
    if question_terms.is_empty() {
        return (String::new(), Vec::new());
    }
    let mut candidates = Vec::new();
    for (rank, hit) in hits.iter().enumerate() {
        for (start, sentence) in sentences(&hit.text) {
            let terms: HashSet<u32> = bm25.passage(sentence).indices.into_iter().collect();
            let shared = terms.intersection(&question_terms).count();
            if shared == 0 {
                continue;
            }
            // Mostly term coverage; the retrieval rank breaks ties.
            let score = shared as f32 / question_terms.len() as f32 + 0.05 / (rank as f32 + 1.0);
            candidates.push(Candidate {
                hit,
                start,
                text: sentence,
                score,
            });
        }
    }
    candidates.sort_by(|a, b| b.score.total_cmp(&a.score));

    let mut seen: Vec<String> = Vec::new();
    let mut parts = Vec::new();
    let mut citations = Vec::new();
    for candidate in candidates {
        if citations.len() == MAX_SENTENCES {
            break;
        }
        // The same sentence twice (chunk overlap, repeated boilerplate), or a
        // fragment of one already chosen, adds nothing.
        let key = one_line(candidate.text).to_lowercase();
        if seen
            .iter()
            .any(|s: &String| s.contains(&key) || key.contains(s.as_str()))
        {
            continue;
        }
        seen.push(key);
        let index = citations.len() as u32 + 1;
        parts.push(format!("{} [{index}]", one_line(candidate.text)));
        let (boxes, page_sizes) = candidate
            .hit
            .boxes(candidate.start, candidate.start + candidate.text.len());
        citations.push(Citation {
            index,
            document_id: candidate.hit.document_id,
            filename: candidate.hit.filename.clone(),
            page: page_at(candidate.hit.page_start, &candidate.hit.page_breaks, candidate.start),
            chunk_id: candidate.hit.chunk_id,
            quote: candidate.text.to_string(),
            score: candidate.hit.score,
            boxes,
            page_sizes,
        });
    }
    (parts.join(" "), citations)
}

/// Sentences of a chunk with their byte offsets. Single line breaks (layout, not
/// meaning, in extracted PDF text) do not end a sentence; blank lines do.
fn sentences(text: &str) -> Vec<(usize, &str)> {
    let bytes = text.as_bytes();
    // Same length as `text`, so offsets carry over.
    let joined: String = text
        .char_indices()
        .map(|(i, c)| {
            let lone_newline = c == '\n' && bytes.get(i + 1) != Some(&b'\n') && (i == 0 || bytes[i - 1] != b'\n');
            if lone_newline { ' ' } else { c }
        })
        .collect();
    joined
        .split_sentence_bound_indices()
        .filter_map(|(start, sentence)| {
            let trimmed_start = start + (sentence.len() - sentence.trim_start().len());
            let original = text[trimmed_start..start + sentence.len()].trim_end();
            let chars = original.chars().count();
            (MIN_SENTENCE_CHARS..=MAX_SENTENCE_CHARS)
                .contains(&chars)
                .then_some((trimmed_start, original))
        })
        .collect()
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{ChunkId, DocumentId, PageBreak};

    /// A hit of one chunk whose later pages begin where `page_breaks` say.
    fn hit(text: &str, page_breaks: Vec<PageBreak>) -> SearchHit {
        SearchHit {
            chunk_id: ChunkId::for_chunk(DocumentId::new(), 0),
            document_id: DocumentId::new(),
            filename: "terms.txt".into(),
            page_start: 1,
            page_end: 1 + page_breaks.len() as u32,
            text: text.into(),
            score: 0.4,
            page_breaks,
            dense_similarity: None,
            layout: None,
        }
    }

    #[test]
    fn the_matching_sentence_is_cited_on_its_page() {
        let text = "Our office opened in 1990 in Berlin.\nIt moved later.\n\nThe warranty period\nlasts 24 months for all devices. Returns are free.";
        let hit = hit(
            text,
            vec![PageBreak {
                page: 2,
                offset: text.find("The warranty").unwrap() as u32,
            }],
        );
        let (answer, citations) = super::answer("How long is the warranty?", &[hit], &Bm25Encoder::new());
        assert_eq!(citations.len(), 1, "{answer}");
        assert_eq!(
            citations[0].quote,
            "The warranty period\nlasts 24 months for all devices."
        );
        assert_eq!(citations[0].page, 2);
        assert_eq!(answer, "The warranty period lasts 24 months for all devices. [1]");
    }

    #[test]
    fn nothing_shared_gives_nothing() {
        let hit = hit("Completely unrelated sentence about gardening.", vec![]);
        let (answer, citations) = super::answer("warranty duration?", &[hit], &Bm25Encoder::new());
        assert!(answer.is_empty() && citations.is_empty());
    }
}
