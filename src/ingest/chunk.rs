//! Splitting a document's pages into chunks with `text-splitter`, sized in the
//! embedding model's own tokens, each chunk knowing its page range and where
//! inside it a new page begins.

use text_splitter::{Characters, ChunkCharIndex, ChunkConfig, ChunkSizer, TextSplitter};
use tokenizers::Tokenizer;

use crate::config::ChunkSettings;
use crate::domain::{Chunk, ChunkLayout, DocumentId, PageBreak, PageGeometry};

/// Between pages in a document's joined text: a paragraph break, which the
/// splitter prefers to cut at.
pub const PAGE_SEPARATOR: &str = "\n\n";

/// The most text tokenized at once. Larger texts are chunked in sections cut at
/// paragraph breaks (else line breaks, else spaces); chunks do not overlap
/// across a cut. Most documents are one section.
const SECTION_BYTES: usize = 256 * 1024;

/// Without a tokenizer, a token is taken to be about four characters.
const CHARS_PER_TOKEN: usize = 4;

enum Splitter {
    /// The splitter for strings, and the tokenizer for per-document sizers.
    Tokens(Box<(TextSplitter<Tokenizer>, Tokenizer)>),
    Characters(TextSplitter<Characters>),
}

pub struct Chunker {
    splitter: Splitter,
    settings: ChunkSettings,
    /// Chunk size and overlap in characters (tokens taken as four), for estimates.
    chars_per_chunk: (usize, usize),
}

#[derive(Debug, thiserror::Error)]
#[error("invalid chunk settings: {0}")]
pub struct ChunkSettingsError(String);

impl Chunker {
    pub fn new(settings: &ChunkSettings, tokenizer: Option<Tokenizer>) -> Result<Self, ChunkSettingsError> {
        let invalid = |e: text_splitter::ChunkConfigError| ChunkSettingsError(e.to_string());
        let splitter = match tokenizer {
            Some(tokenizer) => Splitter::Tokens(Box::new((
                TextSplitter::new(
                    ChunkConfig::new(settings.tokens)
                        .with_overlap(settings.overlap)
                        .map_err(invalid)?
                        .with_sizer(tokenizer.clone()),
                ),
                tokenizer,
            ))),
            None => Splitter::Characters(TextSplitter::new(
                ChunkConfig::new(settings.tokens * CHARS_PER_TOKEN)
                    .with_overlap(settings.overlap * CHARS_PER_TOKEN)
                    .map_err(invalid)?,
            )),
        };
        Ok(Self {
            splitter,
            settings: settings.clone(),
            chars_per_chunk: (settings.tokens * CHARS_PER_TOKEN, settings.overlap * CHARS_PER_TOKEN),
        })
    }

    /// Chunks the pages of one document (blocking: tokenizes the whole text).
    pub fn chunk(&self, document_id: DocumentId, pages: &[String]) -> Vec<Chunk> {
        let mut chunks = Vec::new();
        self.chunk_in_steps(document_id, pages, &[], usize::MAX, |step| {
            chunks.extend(step);
            true
        });
        chunks
    }

    /// Chunks the pages of one document and hands them on `step` at a time, as
    /// the splitter finds them, so that embedding can start before chunking ends.
    /// Stops early when `emit` returns false (nobody wants the rest). Blocking.
    /// Each chunk takes the boxes of its words from the pages' `geometry`
    /// (empty when the format has none).
    pub fn chunk_in_steps(
        &self,
        document_id: DocumentId,
        pages: &[String],
        geometry: &[Option<PageGeometry>],
        step: usize,
        mut emit: impl FnMut(Vec<Chunk>) -> bool,
    ) {
        let (text, page_starts) = join_pages(pages);
        let step = step.max(1);
        let mut pending = Vec::new();
        let mut index = 0u32;
        let mut char_base = 0usize;
        // A section at a time: the tokenizer's working set grows with what it is
        // given (about 100 bytes per character), so it is never given more than
        // a section, whatever the document's size.
        for (start, end) in sections(&text, SECTION_BYTES) {
            let section = &text[start..end];
            let document_splitter;
            let pieces: Box<dyn Iterator<Item = ChunkCharIndex<'_>>> = match &self.splitter {
                Splitter::Tokens(splitter) => match self.document_splitter(&splitter.1, section) {
                    Some(splitter) => {
                        document_splitter = splitter;
                        Box::new(document_splitter.chunk_char_indices(section))
                    }
                    None => Box::new(splitter.0.chunk_char_indices(section)),
                },
                Splitter::Characters(s) => Box::new(s.chunk_char_indices(section)),
            };
            for piece in pieces.filter(|piece| piece.chunk.chars().any(char::is_alphanumeric)) {
                let in_document = ChunkCharIndex {
                    chunk: piece.chunk,
                    byte_offset: start + piece.byte_offset,
                    char_offset: char_base + piece.char_offset,
                };
                let mut chunk = to_chunk(document_id, index, &in_document, &page_starts);
                if !geometry.is_empty() {
                    let end = in_document.byte_offset + in_document.chunk.len();
                    chunk.layout = ChunkLayout::of_span(
                        in_document.byte_offset,
                        end,
                        chunk.page_start,
                        chunk.page_end,
                        &page_starts,
                        geometry,
                    );
                }
                pending.push(chunk);
                index += 1;
                if pending.len() == step && !emit(std::mem::take(&mut pending)) {
                    return;
                }
            }
            char_base += section.chars().count();
        }
        if !pending.is_empty() {
            emit(pending);
        }
    }

    /// A splitter that sizes spans of this one text from a single tokenization of
    /// it (None if the text cannot be tokenized; the plain splitter then serves).
    fn document_splitter<'a>(
        &self,
        tokenizer: &'a Tokenizer,
        text: &'a str,
    ) -> Option<TextSplitter<DocumentTokens<'a>>> {
        // `encode`, not `encode_fast`: the latter leaves the offsets out.
        let encoding = tokenizer.encode(text, false).ok()?;
        let sizer = DocumentTokens {
            text,
            token_starts: encoding.get_offsets().iter().map(|&(start, _)| start).collect(),
            tokenizer,
        };
        let config = ChunkConfig::new(self.settings.tokens)
            .with_overlap(self.settings.overlap)
            .ok()?
            .with_sizer(sizer);
        Some(TextSplitter::new(config))
    }

    /// About how many chunks the pages will give, for progress before chunking ends.
    pub fn estimate(&self, pages: &[String]) -> u64 {
        let chars: usize = pages.iter().map(|p| p.chars().count()).sum();
        let (size, overlap) = self.chars_per_chunk;
        (chars / size.saturating_sub(overlap).max(1)).max(1) as u64
    }
}

fn to_chunk(document_id: DocumentId, index: u32, piece: &ChunkCharIndex<'_>, page_starts: &[usize]) -> Chunk {
    let (start, end) = (piece.byte_offset, piece.byte_offset + piece.chunk.len());
    let page_breaks = page_starts
        .iter()
        .enumerate()
        .filter(|&(_, &page_start)| page_start > start && page_start < end)
        .map(|(i, &page_start)| PageBreak {
            page: i as u32 + 1,
            offset: (page_start - start) as u32,
        })
        .collect();
    Chunk {
        document_id,
        index,
        page_start: page_of(page_starts, start),
        page_end: page_of(page_starts, end.saturating_sub(1).max(start)),
        char_start: piece.char_offset as u64,
        char_end: (piece.char_offset + piece.chunk.chars().count()) as u64,
        text: piece.chunk.to_string(),
        page_breaks,
        layout: None,
    }
}

/// Token counts of spans of one text, from one tokenization of the whole text:
/// text-splitter sizes many candidate spans per chunk, and tokenizing each anew
/// took 12 % of ingestion time. A span's size is the number of tokens that start
/// inside it (spans begin and end at word boundaries, where the two agree).
struct DocumentTokens<'a> {
    text: &'a str,
    /// Byte offset in `text` at which each token starts, ascending.
    token_starts: Vec<usize>,
    /// For a string that is not a span of `text`.
    tokenizer: &'a Tokenizer,
}

impl ChunkSizer for DocumentTokens<'_> {
    fn size(&self, chunk: &str) -> usize {
        let base = self.text.as_ptr() as usize;
        let start = (chunk.as_ptr() as usize).wrapping_sub(base);
        if start > self.text.len() || start + chunk.len() > self.text.len() {
            return self.tokenizer.size(chunk);
        }
        let end = start + chunk.len();
        self.token_starts.partition_point(|&s| s < end) - self.token_starts.partition_point(|&s| s < start)
    }
}

/// Byte ranges of `text`, each at most `limit` bytes (more only for a run
/// without any space), ending after a paragraph break where there is one.
fn sections(text: &str, limit: usize) -> Vec<(usize, usize)> {
    let mut ranges = Vec::new();
    let mut start = 0;
    while text.len() - start > limit {
        let mut cap = start + limit;
        while !text.is_char_boundary(cap) {
            cap -= 1;
        }
        let window = &text[start..cap];
        // Past the middle of the window, so that sections stay large.
        let half = window.len() / 2;
        let cut = ["\n\n", "\n", " "]
            .iter()
            .find_map(|sep| window.rfind(sep).filter(|&at| at > half).map(|at| at + sep.len()))
            .or_else(|| {
                text[cap..]
                    .char_indices()
                    .find(|(_, c)| c.is_whitespace())
                    .map(|(at, c)| cap - start + at + c.len_utf8())
            })
            .unwrap_or(text.len() - start);
        ranges.push((start, start + cut));
        start += cut;
    }
    if start < text.len() || ranges.is_empty() {
        ranges.push((start, text.len()));
    }
    ranges
}

/// The document's text and the byte offset at which each page starts.
pub fn join_pages(pages: &[String]) -> (String, Vec<usize>) {
    let mut text = String::with_capacity(pages.iter().map(|p| p.len() + PAGE_SEPARATOR.len()).sum());
    let mut starts = Vec::with_capacity(pages.len());
    for (i, page) in pages.iter().enumerate() {
        if i > 0 {
            text.push_str(PAGE_SEPARATOR);
        }
        starts.push(text.len());
        text.push_str(page);
    }
    (text, starts)
}

/// 1-based page of a byte offset.
fn page_of(page_starts: &[usize], offset: usize) -> u32 {
    page_starts.partition_point(|&s| s <= offset).max(1) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunker(tokens: usize, overlap: usize) -> Chunker {
        Chunker::new(&ChunkSettings { tokens, overlap }, None).unwrap()
    }

    #[test]
    fn chunks_know_their_pages() {
        let pages: Vec<String> = vec![
            "Alpha page one talks about Äpfel — apples. ".repeat(3),
            "Beta page two is about bananas. ".repeat(3),
            String::new(),
            "Gamma page four covers cherries.".to_string(),
        ];
        let doc = DocumentId::new();
        let chunks = chunker(10, 0).chunk(doc, &pages);
        assert!(chunks.len() > 2);
        let (text, starts) = join_pages(&pages);
        let chars: Vec<char> = text.chars().collect();
        for chunk in &chunks {
            let span: String = chars[chunk.char_start as usize..chunk.char_end as usize]
                .iter()
                .collect();
            assert_eq!(span, chunk.text);
            let byte_start = text.char_indices().nth(chunk.char_start as usize).unwrap().0;
            // Every byte of the chunk is attributed to the page whose span holds it.
            for (local, c) in chunk.text.char_indices().filter(|(_, c)| c.is_alphanumeric()) {
                let page = chunk.page_at(local) as usize;
                let global = byte_start + local;
                let span = starts[page - 1]..starts[page - 1] + pages[page - 1].len();
                assert!(
                    span.contains(&global),
                    "{c:?} at {global} put on page {page} ({span:?})"
                );
            }
        }
        let last = chunks.last().unwrap();
        assert_eq!(last.page_end, 4);
        assert!(chunks.windows(2).all(|w| w[0].index + 1 == w[1].index));
    }

    #[test]
    fn a_chunk_across_pages_records_the_break() {
        let pages = vec!["first".to_string(), "second".to_string()];
        let chunks = chunker(100, 0).chunk(DocumentId::new(), &pages);
        assert_eq!(chunks.len(), 1);
        let chunk = &chunks[0];
        assert_eq!((chunk.page_start, chunk.page_end), (1, 2));
        assert_eq!(chunk.page_breaks, vec![PageBreak { page: 2, offset: 7 }]);
        assert_eq!(chunk.page_at(chunk.text.find("second").unwrap()), 2);
        assert_eq!(chunk.page_at(0), 1);
    }

    #[test]
    fn chunks_come_in_steps_in_order_and_stop_when_refused() {
        let pages = vec![
            "One sentence about apples. ".repeat(40),
            "Another about pears. ".repeat(40),
        ];
        let all = chunker(20, 0).chunk(DocumentId::new(), &pages);
        assert!(all.len() > 7, "{}", all.len());
        let mut steps = Vec::new();
        chunker(20, 0).chunk_in_steps(DocumentId::new(), &pages, &[], 3, |step| {
            steps.push(step);
            true
        });
        assert!(steps[..steps.len() - 1].iter().all(|s| s.len() == 3));
        let streamed: Vec<_> = steps.concat().into_iter().map(|c| (c.index, c.text)).collect();
        assert_eq!(
            streamed,
            all.iter().map(|c| (c.index, c.text.clone())).collect::<Vec<_>>()
        );

        let mut calls = 0;
        chunker(20, 0).chunk_in_steps(DocumentId::new(), &pages, &[], 3, |_| {
            calls += 1;
            false
        });
        assert_eq!(calls, 1);
    }

    #[test]
    fn a_long_text_is_chunked_in_sections_with_the_same_offsets() {
        let pages: Vec<String> = (0..40)
            .map(|p| format!("Page {p} paragraph about the ferry timetable. ").repeat(30) + "\n\nNext paragraph.")
            .collect();
        let (text, _) = join_pages(&pages);
        let ranges = sections(&text, 4096);
        assert!(ranges.len() > 5, "{}", ranges.len());
        assert_eq!(ranges.first().unwrap().0, 0);
        assert_eq!(ranges.last().unwrap().1, text.len());
        assert!(ranges.windows(2).all(|w| w[0].1 == w[1].0));
        assert!(ranges.iter().all(|(s, e)| e - s <= 4096 && e > s));
        // Chunks from sections still name their place in the whole text.
        let chars: Vec<char> = text.chars().collect();
        let chunks = chunker(50, 5).chunk(DocumentId::new(), &pages);
        for chunk in &chunks {
            let span: String = chars[chunk.char_start as usize..chunk.char_end as usize]
                .iter()
                .collect();
            assert_eq!(span, chunk.text);
        }
        assert!(chunks.windows(2).all(|w| w[0].index + 1 == w[1].index));
        let unspaced = "x".repeat(10_000);
        assert_eq!(sections(&unspaced, 4096), vec![(0, 10_000)]);
        assert_eq!(sections("", 4096), vec![(0, 0)]);
    }

    #[test]
    fn blank_documents_give_no_chunks() {
        assert!(
            chunker(50, 0)
                .chunk(DocumentId::new(), &["  \n\n ".to_string()])
                .is_empty()
        );
    }
}
