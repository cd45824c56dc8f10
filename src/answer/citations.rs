//! Checking what the model cites: the chunk must be one it was given and the
//! quote must stand in that chunk (compared case- and whitespace-insensitively).
//! What fails is dropped and the answer's `[n]` markers are renumbered.

use std::collections::HashMap;

use crate::domain::{Citation, SearchHit, page_at};

use super::llm::LlmAnswer;

/// Quotes shorter than this (after normalising) prove nothing.
const MIN_QUOTE_CHARS: usize = 8;

/// Text folded for comparison, remembering where each folded byte came from.
struct Folded {
    text: String,
    /// For each byte of `text`: the byte range of the original character.
    origin: Vec<(usize, usize)>,
}

/// Lowercase, whitespace runs as one space, typographic quotes, angle quotes,
/// dashes and common ligatures as their plain forms.
fn fold(original: &str) -> Folded {
    let mut text = String::with_capacity(original.len());
    let mut origin = Vec::with_capacity(original.len());
    let mut pending_space: Option<(usize, usize)> = None;
    for (at, c) in original.char_indices() {
        let span = (at, at + c.len_utf8());
        if c.is_whitespace() {
            if !text.is_empty() && pending_space.is_none() {
                pending_space = Some(span);
            }
            continue;
        }
        if let Some(space) = pending_space.take() {
            text.push(' ');
            origin.push(space);
        }
        let plain: &str = match c {
            '\u{2018}' | '\u{2019}' | '\u{201B}' | '\u{2032}' => "'",
            '\u{201C}' | '\u{201D}' | '\u{201F}' | '\u{2033}' => "\"",
            '\u{2010}'..='\u{2015}' | '\u{2212}' => "-",
            '\u{FB00}' => "ff",
            '\u{FB01}' => "fi",
            '\u{FB02}' => "fl",
            '\u{FB03}' => "ffi",
            '\u{FB04}' => "ffl",
            '\u{00A0}' => " ",
            // What the prompt shows for an angle bracket that looked like its delimiter.
            '\u{2039}' => "<",
            '\u{203A}' => ">",
            _ => "",
        };
        if plain.is_empty() {
            for lower in c.to_lowercase() {
                let before = text.len();
                text.push(lower);
                origin.extend(std::iter::repeat_n(span, text.len() - before));
            }
        } else {
            text.push_str(plain);
            origin.extend(std::iter::repeat_n(span, plain.len()));
        }
    }
    Folded { text, origin }
}

/// Where `quote` stands in `text`: the byte range of the verbatim passage.
pub fn locate_quote(text: &str, quote: &str) -> Option<(usize, usize)> {
    let needle = fold(quote);
    if needle.text.chars().count() < MIN_QUOTE_CHARS {
        return None;
    }
    let haystack = fold(text);
    let at = haystack.text.find(&needle.text)?;
    let start = haystack.origin[at].0;
    let end = haystack.origin[at + needle.text.len() - 1].1;
    Some((start, end))
}

/// Keeps the citations that hold and rewrites the answer's markers to match.
pub fn verify(answer: LlmAnswer, hits: &[SearchHit]) -> (String, Vec<Citation>) {
    let by_id: HashMap<String, &SearchHit> = hits.iter().map(|h| (h.chunk_id.to_string(), h)).collect();
    let mut kept: Vec<Citation> = Vec::new();
    // Model's 1-based index → ours.
    let mut renumber: HashMap<u32, u32> = HashMap::new();
    for (i, cited) in answer.citations.iter().enumerate() {
        let Some(hit) = by_id.get(cited.chunk_id.trim()) else {
            tracing::info!(chunk_id = %cited.chunk_id, "dropping a citation of a chunk the model was not given");
            continue;
        };
        let Some((start, end)) = locate_quote(&hit.text, &cited.quote) else {
            tracing::info!(chunk_id = %cited.chunk_id, quote = %cited.quote, "dropping a citation whose quote is not in its chunk");
            continue;
        };
        let quote = &hit.text[start..end];
        let index = match kept.iter().find(|c| c.chunk_id == hit.chunk_id && c.quote == quote) {
            Some(same) => same.index,
            None => {
                let index = kept.len() as u32 + 1;
                let (boxes, page_sizes) = hit.boxes(start, end);
                kept.push(Citation {
                    index,
                    document_id: hit.document_id,
                    filename: hit.filename.clone(),
                    page: page_at(hit.page_start, &hit.page_breaks, start),
                    chunk_id: hit.chunk_id,
                    quote: quote.to_string(),
                    score: hit.score,
                    boxes,
                    page_sizes,
                });
                index
            }
        };
        renumber.insert(i as u32 + 1, index);
    }
    (renumber_markers(&answer.answer, &renumber), kept)
}

/// Rewrites `[n]` and `[n, m]` markers through `renumber`, removing those that
/// point at dropped citations.
fn renumber_markers(text: &str, renumber: &HashMap<u32, u32>) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(open) = rest.find('[') {
        let Some(close_rel) = rest[open..].find(']') else {
            break;
        };
        let inner = &rest[open + 1..open + close_rel];
        let numbers: Option<Vec<u32>> = inner.split(',').map(|n| n.trim().parse::<u32>().ok()).collect();
        out.push_str(&rest[..open]);
        match numbers {
            Some(numbers) if !inner.trim().is_empty() => {
                let mapped: Vec<String> = numbers
                    .iter()
                    .filter_map(|n| renumber.get(n))
                    .map(u32::to_string)
                    .collect();
                if mapped.is_empty() {
                    // Drop the marker and the space before it.
                    let trimmed = out.trim_end_matches(' ').len();
                    out.truncate(trimmed);
                } else {
                    out.push('[');
                    out.push_str(&mapped.join(", "));
                    out.push(']');
                }
            }
            // Not a marker: keep the brackets as written.
            _ => out.push_str(&rest[open..open + close_rel + 1]),
        }
        rest = &rest[open + close_rel + 1..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::answer::llm::LlmCitation;
    use crate::domain::{ChunkId, DocumentId, PageBreak};

    fn hit(text: &str) -> SearchHit {
        SearchHit {
            chunk_id: ChunkId::for_chunk(DocumentId::new(), 0),
            document_id: DocumentId::new(),
            filename: "terms.pdf".into(),
            page_start: 3,
            page_end: 4,
            text: text.into(),
            score: 0.5,
            page_breaks: vec![PageBreak { page: 4, offset: 30 }],
            dense_similarity: None,
            layout: None,
        }
    }

    #[test]
    fn quotes_are_found_despite_case_whitespace_and_typography() {
        let text = "The  Warranty period\nis 24 months. It’s extendable.";
        let (start, end) = locate_quote(text, "warranty period is 24 months").unwrap();
        assert_eq!(&text[start..end], "Warranty period\nis 24 months");
        assert!(locate_quote(text, "it's extendable").is_some());
        assert_eq!(locate_quote(text, "36 months"), None);
        assert_eq!(locate_quote(text, "is"), None, "too short to prove anything");
    }

    #[test]
    fn bad_citations_are_dropped_and_markers_renumbered() {
        let h = hit("Intro text on page three here. The warranty lasts 24 months on page four.");
        let answer = LlmAnswer {
            answer: "Made up [1]. Lasts 24 months [2]. Wrong quote [3].".into(),
            citations: vec![
                LlmCitation {
                    chunk_id: ChunkId::for_chunk(DocumentId::new(), 9).to_string(),
                    quote: "The warranty lasts".into(),
                },
                LlmCitation {
                    chunk_id: h.chunk_id.to_string(),
                    quote: "the warranty lasts 24 months".into(),
                },
                LlmCitation {
                    chunk_id: h.chunk_id.to_string(),
                    quote: "lasts 36 months forever".into(),
                },
            ],
        };
        let (text, citations) = verify(answer, std::slice::from_ref(&h));
        assert_eq!(text, "Made up. Lasts 24 months [1]. Wrong quote.");
        assert_eq!(citations.len(), 1);
        assert_eq!(citations[0].index, 1);
        assert_eq!(citations[0].quote, "The warranty lasts 24 months");
        assert_eq!(citations[0].page, 4, "the quote starts after the page break");
    }

    #[test]
    fn markers_in_lists_and_non_markers() {
        let map = HashMap::from([(1, 1), (3, 2)]);
        assert_eq!(renumber_markers("a [1, 2, 3] b [x] c [2]", &map), "a [1, 2] b [x] c");
    }
}
