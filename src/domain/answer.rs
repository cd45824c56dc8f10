use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{ChunkId, ChunkLayout, DocumentId, PageBreak, PageSize, QuoteBox};

/// A chunk found by a search, with what is needed to show and cite it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SearchHit {
    pub chunk_id: ChunkId,
    pub document_id: DocumentId,
    pub filename: String,
    pub page_start: u32,
    pub page_end: u32,
    pub text: String,
    /// Fused rank score (reciprocal rank fusion of dense and BM25); higher is better.
    pub score: f32,
    #[serde(skip)]
    pub page_breaks: Vec<PageBreak>,
    /// Cosine similarity to the query's dense vector (absent on BM25 alone).
    #[serde(skip)]
    pub dense_similarity: Option<f32>,
    /// Its words' rectangles, for the boxes of a citation.
    #[serde(skip)]
    pub layout: Option<ChunkLayout>,
}

impl SearchHit {
    /// The rectangles of the hit's bytes `start..end` and the sizes of their
    /// pages; empty when the chunk has no layout (formats without pages on paper).
    pub fn boxes(&self, start: usize, end: usize) -> (Vec<QuoteBox>, Vec<PageSize>) {
        match &self.layout {
            Some(layout) => {
                let boxes = layout.boxes(&self.text, self.page_start, &self.page_breaks, start, end);
                let sizes = layout.sizes_for(&boxes);
                (boxes, sizes)
            }
            None => (Vec::new(), Vec::new()),
        }
    }
}

/// How an answer is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AnswerMode {
    /// Generative when an LLM is configured, extractive otherwise.
    #[default]
    Auto,
    /// The LLM writes the answer; fails when no LLM is configured.
    Generative,
    /// The best-matching sentences of the retrieved chunks, no LLM.
    Extractive,
}

/// One claim's source: the document, the page the quote stands on, and the quote.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Citation {
    /// The `[n]` marker in the answer text.
    pub index: u32,
    pub document_id: DocumentId,
    pub filename: String,
    /// 1-based page on which the quote starts.
    pub page: u32,
    pub chunk_id: ChunkId,
    /// Verbatim text of the chunk.
    pub quote: String,
    /// The retrieval score of the cited chunk.
    pub score: f32,
    /// Where the quote stands on its page(s), one rectangle per line it runs
    /// over (PDF and image pages only; PDF points or image pixels, origin top left).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub boxes: Vec<QuoteBox>,
    /// The size of each page in `boxes`, in the same unit.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub page_sizes: Vec<PageSize>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Timings {
    pub embed: u64,
    pub search: u64,
    pub llm: u64,
    pub total: u64,
}

/// The answer to a question, every claim cited.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Answer {
    pub answer: String,
    pub citations: Vec<Citation>,
    /// False when nothing in the documents supports an answer.
    pub grounded: bool,
    /// `generative` or `extractive`: how this answer was made.
    pub mode: AnswerMode,
    /// The LLM that wrote it; `null` for extractive answers.
    pub model: Option<String>,
    pub timings_ms: Timings,
    /// Things the caller should know, e.g. that retrieval ran on BM25 alone.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    /// Set when `mode: auto` asked the LLM and it failed: why this answer is extractive.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fallback_reason: Option<String>,
    /// In a conversation: the standalone question the message was rewritten
    /// into, which retrieval ran on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retrieval_query: Option<String>,
}
