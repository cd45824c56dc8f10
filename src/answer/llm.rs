//! The seam to the language model: a trait, so tests and other providers slot in.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::followup::Exchange;

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
    /// Not called: the provider failed too often lately (circuit breaker).
    #[error("the LLM provider failed {failures} times in a row; not calling it for another {retry_in_secs} s")]
    Unavailable { failures: u32, retry_in_secs: u64 },
}

/// A model's JSON reply, read as `T`. Tolerates a Markdown code fence around
/// the JSON, which some OpenAI-compatible servers add.
pub fn json_reply<T: serde::de::DeserializeOwned>(content: &str) -> Result<T, LlmError> {
    let trimmed = content.trim();
    let json = trimmed
        .strip_prefix("```json")
        .or_else(|| trimmed.strip_prefix("```"))
        .and_then(|rest| rest.strip_suffix("```"))
        .unwrap_or(trimmed);
    serde_json::from_str(json).map_err(|e| LlmError::InvalidOutput(e.to_string()))
}

#[async_trait]
pub trait LlmClient: Send + Sync {
    /// The model's name, reported with every answer it writes.
    fn model(&self) -> &str;

    async fn answer(&self, question: &str, context: &[ContextPassage]) -> Result<LlmAnswer, LlmError>;

    /// The last question of a conversation as a standalone question
    /// (`followup` says how it is asked and checked).
    async fn rewrite(&self, history: &[Exchange], question: &str) -> Result<String, LlmError>;

    /// The same answer, with `on_delta` called with the answer text as it is
    /// written. A client that cannot stream hands over the whole text at once.
    async fn answer_streaming(
        &self,
        question: &str,
        context: &[ContextPassage],
        on_delta: &(dyn Fn(String) + Send + Sync),
    ) -> Result<LlmAnswer, LlmError> {
        let answer = self.answer(question, context).await?;
        on_delta(answer.answer.clone());
        Ok(answer)
    }
}

/// Called with each piece of answer text of a streamed answer.
pub type OnDelta<'a> = &'a (dyn Fn(String) + Send + Sync);
