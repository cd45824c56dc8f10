//! The seam to the language model: a trait, so tests and other providers slot in.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

/// A passage given to the model, under the id it must cite.
#[derive(Debug, Clone)]
pub struct ContextPassage {
    pub chunk_id: String,
    pub filename: String,
    pub page_start: u32,
    pub page_end: u32,
    pub text: String,
}

/// What the model returns: the answer text with `[n]` markers, and for each
/// marker the chunk and the verbatim quote it rests on (`citations[n-1]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LlmAnswer {
    pub answer: String,
    pub citations: Vec<LlmCitation>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LlmCitation {
    pub chunk_id: String,
    pub quote: String,
}

#[derive(Debug, thiserror::Error)]
pub enum LlmError {
    #[error("timed out after {0} s")]
    Timeout(u64),
    #[error("{0}")]
    Upstream(String),
    /// The reply was not the structured answer asked for (worth one retry).
    #[error("{0}")]
    InvalidOutput(String),
}

#[async_trait]
pub trait LlmClient: Send + Sync {
    /// The model's name, reported with every answer it writes.
    fn model(&self) -> &str;

    async fn answer(&self, question: &str, context: &[ContextPassage]) -> Result<LlmAnswer, LlmError>;
}
