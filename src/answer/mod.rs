//! Answering a question: retrieve, then either let the LLM write a cited answer
//! (every citation checked here) or pick the best sentences extractively.

pub mod breaker;
pub mod citations;
pub mod extractive;
pub mod followup;
pub mod llm;
pub mod openai;
pub mod partial_json;
pub mod prompt;
pub mod stream;

use std::sync::Arc;
use std::time::Instant;

use serde::Deserialize;
use tokio::sync::mpsc;
use tracing::Instrument;
use utoipa::ToSchema;

pub use followup::{Exchange, FollowUps, Rewritten};
pub use llm::{ContextPassage, LlmAnswer, LlmCitation, LlmClient, LlmError, OnDelta};
pub use openai::OpenAiLlm;
pub use stream::{AnswerEvent, AnswerEventStream, AnswerEvents};

use crate::domain::{Answer, AnswerMode, CollectionName, Filter, Readers, SearchHit, Timings};
use crate::embed::Bm25Encoder;
use crate::retrieve::{RetrieveError, Retrieved, Retriever, SearchQuery};

#[derive(Debug, thiserror::Error)]
pub enum AnswerError {
    #[error(transparent)]
    Retrieve(#[from] RetrieveError),
    #[error("generative answers need an LLM: set LLM_BASE_URL or LLM_API_KEY, or ask with mode \"extractive\"")]
    LlmNotConfigured,
    #[error("the LLM did not answer within {0} s")]
    LlmTimeout(u64),
    #[error("the LLM call failed: {0}")]
    LlmFailed(String),
    #[error("the LLM's answer was not the structured answer asked for: {0}")]
    LlmInvalidOutput(String),
    #[error("{0}")]
    LlmUnavailable(String),
    /// A conversation's answer was written but could not be kept.
    #[error("the answer could not be stored: {0}")]
    NotStored(String),
    #[error(
        "the LLM is busy: {limit} answers are being written (LLM_MAX_CONCURRENCY); retry shortly, or ask with mode \"auto\" or \"extractive\""
    )]
    LlmOverloaded { limit: usize },
}

pub const NOT_FOUND_ANSWER: &str = "The answer was not found in the documents.";

/// A chunk is worth answering from when it is this similar to the question…
const MIN_ANSWER_SIMILARITY: f32 = 0.3;
/// …or holds at least this share of the question's terms.
const MIN_TERM_COVERAGE: f32 = 0.5;

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct QueryRequest {
    #[schema(
        example = "How long is the warranty?",
        min_length = 1,
        max_length = 4096,
        pattern = "\\S"
    )]
    pub question: String,
    /// How many chunks to answer from (1 to 50; default `TOP_K`).
    #[schema(minimum = 1, maximum = 50)]
    pub top_k: Option<usize>,
    pub filter: Option<Filter>,
    #[serde(default)]
    pub mode: AnswerMode,
    /// Server-sent events (`retrieval`, `delta`…, then `answer` or `error`)
    /// instead of one JSON answer; so does `Accept: text/event-stream`.
    #[serde(default)]
    pub stream: bool,
}

pub struct Answerer {
    retriever: Arc<Retriever>,
    follow_ups: FollowUps,
    llm: Option<Arc<dyn LlmClient>>,
    bm25: Arc<Bm25Encoder>,
    /// One permit per LLM call in flight: the spend and the provider's load are
    /// bounded by a setting, not by how many clients ask at once.
    llm_slots: Arc<tokio::sync::Semaphore>,
    llm_max_concurrency: usize,
}

/// A question whose chunks are found, ready to be answered.
struct Prepared {
    started: Instant,
    /// In a conversation: the standalone question retrieved with.
    follow_up: Option<Rewritten>,
    query: SearchQuery,
    requested: AnswerMode,
    llm: Option<Arc<dyn LlmClient>>,
    retrieved: Retrieved,
    timings: Timings,
}

impl Answerer {
    /// `tokenizer` and `history_tokens` bound the conversation history a
    /// follow-up's rewrite sends to the LLM.
    pub fn new(
        retriever: Arc<Retriever>,
        llm: Option<Arc<dyn LlmClient>>,
        bm25: Arc<Bm25Encoder>,
        llm_max_concurrency: usize,
        tokenizer: Option<tokenizers::Tokenizer>,
        history_tokens: usize,
    ) -> Self {
        let llm_slots = Arc::new(tokio::sync::Semaphore::new(llm_max_concurrency));
        Self {
            retriever,
            follow_ups: FollowUps::new(llm.clone(), bm25.clone(), tokenizer, history_tokens, llm_slots.clone()),
            llm,
            bm25,
            llm_slots,
            llm_max_concurrency,
        }
    }

    /// Refuses a request whose question, `top_k` or filter cannot be searched
    /// (before a follow-up is rewritten into something that could).
    pub fn check(&self, request: &QueryRequest) -> Result<(), AnswerError> {
        SearchQuery::parse(
            &request.question,
            request.top_k,
            request.filter.clone(),
            self.retriever.default_top_k(),
        )?;
        Ok(())
    }

    /// The last question of a conversation, rewritten to stand on its own
    /// (by rule for an extractive answer, which promises no LLM call).
    pub async fn rewrite(&self, history: &[Exchange], question: &str, mode: AnswerMode) -> Rewritten {
        self.follow_ups
            .rewrite(history, question, mode != AnswerMode::Extractive)
            .await
    }

    /// Tokens of `text` by the embedding model's tokenizer (an estimate without one).
    pub fn count_tokens(&self, text: &str) -> usize {
        self.follow_ups.tokens(text)
    }

    /// Follow-up rewriting by rule (see [`FollowUps::rule_chain`]).
    pub fn follow_ups(&self) -> &FollowUps {
        &self.follow_ups
    }

    pub fn llm_model(&self) -> Option<&str> {
        self.llm.as_deref().map(LlmClient::model)
    }

    /// The answer from the documents `readers` may see. A conversation's
    /// question comes `follow_up`: rewritten, retrieved and answered as such.
    pub async fn answer(
        &self,
        collection: &CollectionName,
        request: QueryRequest,
        follow_up: Option<Rewritten>,
        readers: &Readers,
    ) -> Result<Answer, AnswerError> {
        let prepared = self.prepare(collection, request, follow_up, readers).await?;
        self.finish(prepared, None).await
    }

    /// The answer as events. What can be refused (bad request, unknown
    /// collection, retrieval down) is refused before the stream starts, with
    /// its error; later failures arrive as an `Error` event. The answer is made
    /// by a task that ends when the events are dropped (the client went away),
    /// and with it the LLM call.
    pub async fn answer_events(
        self: Arc<Self>,
        collection: &CollectionName,
        request: QueryRequest,
        follow_up: Option<Rewritten>,
        readers: &Readers,
    ) -> Result<AnswerEvents, AnswerError> {
        let prepared = self.prepare(collection, request, follow_up, readers).await?;
        let (events, receiver) = mpsc::unbounded_channel();
        // The receiver may be gone already: then nobody is listening, and the
        // task is aborted with the events.
        let _ = events.send(AnswerEvent::Retrieval(prepared.retrieved.hits.clone()));
        let work = async move {
            let on_delta = |text: String| {
                let _ = events.send(AnswerEvent::Delta(text));
            };
            let last = match self.finish(prepared, Some(&on_delta)).await {
                Ok(answer) => AnswerEvent::Answer(Box::new(answer)),
                Err(e) => AnswerEvent::Error(Box::new(e)),
            };
            let _ = events.send(last);
        };
        let task = tokio::spawn(work.instrument(tracing::Span::current()));
        Ok(AnswerEvents::new(receiver, task))
    }

    async fn prepare(
        &self,
        collection: &CollectionName,
        request: QueryRequest,
        follow_up: Option<Rewritten>,
        readers: &Readers,
    ) -> Result<Prepared, AnswerError> {
        let started = Instant::now();
        let question = follow_up
            .as_ref()
            .map_or(request.question.as_str(), |f| f.query.as_str());
        let query = SearchQuery::parse(question, request.top_k, request.filter, self.retriever.default_top_k())?;
        // Decide before retrieving, so a request that cannot be served costs nothing.
        let llm = match (request.mode, &self.llm) {
            (AnswerMode::Extractive, _) | (AnswerMode::Auto, None) => None,
            (AnswerMode::Generative | AnswerMode::Auto, Some(llm)) => Some(llm.clone()),
            (AnswerMode::Generative, None) => return Err(AnswerError::LlmNotConfigured),
        };
        let mut retrieved = self.retriever.retrieve(collection, &query, readers).await?;
        retrieved.hits = relevant(&query.text, std::mem::take(&mut retrieved.hits), &self.bm25);
        let timings = Timings {
            embed: retrieved.embed_ms,
            search: retrieved.search_ms,
            ..Timings::default()
        };
        Ok(Prepared {
            started,
            follow_up,
            query,
            requested: request.mode,
            llm,
            retrieved,
            timings,
        })
    }

    async fn finish(&self, prepared: Prepared, on_delta: Option<OnDelta<'_>>) -> Result<Answer, AnswerError> {
        let follow_up = prepared.follow_up.clone();
        let mut answer = self.write(prepared, on_delta).await?;
        if let Some(follow_up) = follow_up {
            answer.retrieval_query = Some(follow_up.query);
            answer.warnings.extend(follow_up.warning);
        }
        Ok(answer)
    }

    async fn write(&self, prepared: Prepared, on_delta: Option<OnDelta<'_>>) -> Result<Answer, AnswerError> {
        let Prepared {
            started,
            follow_up: _,
            query,
            requested,
            llm,
            retrieved,
            mut timings,
        } = prepared;
        if retrieved.hits.is_empty() {
            timings.total = started.elapsed().as_millis() as u64;
            let mode = if llm.is_some() {
                AnswerMode::Generative
            } else {
                AnswerMode::Extractive
            };
            if let Some(on_delta) = on_delta {
                on_delta(NOT_FOUND_ANSWER.to_string());
            }
            return Ok(not_found(mode, timings, retrieved.warnings));
        }

        let mut fallback_reason = None;
        let generated = match llm {
            Some(llm) => {
                let llm_started = Instant::now();
                // No queue: a client waiting for a slot holds a connection and
                // tells nobody; it hears "busy" at once instead.
                let reply = match self.llm_slots.try_acquire() {
                    Ok(_slot) => ask_with_one_retry(llm.as_ref(), &query.text, &retrieved.hits, on_delta).await,
                    Err(_) => Err(AnswerError::LlmOverloaded {
                        limit: self.llm_max_concurrency,
                    }),
                };
                timings.llm = llm_started.elapsed().as_millis() as u64;
                match reply {
                    Ok(reply) => {
                        let (text, citations) = citations::verify(reply, &retrieved.hits);
                        Some((text, citations, Some(llm.model().to_string())))
                    }
                    // `auto` promises an answer: the extractive one, saying why.
                    Err(e) if requested == AnswerMode::Auto => {
                        tracing::warn!(error = %e, "the LLM failed; answering extractively");
                        fallback_reason = Some(format!("{e}; answered extractively instead"));
                        None
                    }
                    Err(e) => return Err(e),
                }
            }
            None => None,
        };
        let (text, citations, mode, model) = match generated {
            Some((text, citations, model)) => (text, citations, AnswerMode::Generative, model),
            None => {
                let (text, citations) = extractive::answer(&query.text, &retrieved.hits, &self.bm25);
                if let Some(on_delta) = on_delta {
                    on_delta(text.clone());
                }
                (text, citations, AnswerMode::Extractive, None)
            }
        };
        timings.total = started.elapsed().as_millis() as u64;
        if citations.is_empty() {
            let mut answer = not_found(mode, timings, retrieved.warnings);
            answer.model = model;
            answer.fallback_reason = fallback_reason;
            return Ok(answer);
        }
        Ok(Answer {
            answer: text,
            citations,
            grounded: true,
            mode,
            model,
            timings_ms: timings,
            warnings: retrieved.warnings,
            fallback_reason,
            retrieval_query: None,
        })
    }
}

/// The hits that can support an answer. Rank fusion always returns something;
/// a chunk that shares one common word with the question is no grounds to answer.
fn relevant(question: &str, hits: Vec<SearchHit>, bm25: &Bm25Encoder) -> Vec<SearchHit> {
    let question_terms: std::collections::HashSet<u32> = bm25.query(question).indices.into_iter().collect();
    hits.into_iter()
        .filter(|hit| {
            if hit.dense_similarity.is_some_and(|s| s >= MIN_ANSWER_SIMILARITY) {
                return true;
            }
            if question_terms.is_empty() {
                return false;
            }
            let shared = bm25
                .passage(&hit.text)
                .indices
                .iter()
                .filter(|t| question_terms.contains(t))
                .count();
            shared as f32 / question_terms.len() as f32 >= MIN_TERM_COVERAGE
        })
        .collect()
}

fn not_found(mode: AnswerMode, timings: Timings, warnings: Vec<String>) -> Answer {
    Answer {
        answer: NOT_FOUND_ANSWER.to_string(),
        citations: Vec::new(),
        grounded: false,
        mode,
        model: None,
        timings_ms: timings,
        warnings,
        fallback_reason: None,
        retrieval_query: None,
    }
}

/// A reply that is not the structured answer gets one more chance.
async fn ask_with_one_retry(
    llm: &dyn LlmClient,
    question: &str,
    hits: &[SearchHit],
    on_delta: Option<OnDelta<'_>>,
) -> Result<LlmAnswer, AnswerError> {
    let context: Vec<ContextPassage> = hits
        .iter()
        .map(|hit| ContextPassage {
            chunk_id: hit.chunk_id.to_string(),
            filename: hit.filename.clone(),
            page_start: hit.page_start,
            page_end: hit.page_end,
            text: hit.text.clone(),
        })
        .collect();
    let mut attempt = 0;
    loop {
        attempt += 1;
        let reply = match on_delta {
            None => llm.answer(question, &context).await,
            Some(on_delta) => llm.answer_streaming(question, &context, on_delta).await,
        };
        match reply {
            Ok(answer) => return Ok(answer),
            Err(LlmError::InvalidOutput(reason)) if attempt == 1 => {
                tracing::warn!(%reason, "the LLM's reply was not a structured answer; asking once more");
            }
            Err(LlmError::InvalidOutput(reason)) => return Err(AnswerError::LlmInvalidOutput(reason)),
            Err(LlmError::Timeout(secs)) => return Err(AnswerError::LlmTimeout(secs)),
            Err(LlmError::Upstream(reason)) => return Err(AnswerError::LlmFailed(reason)),
            Err(unavailable @ LlmError::Unavailable { .. }) => {
                return Err(AnswerError::LlmUnavailable(unavailable.to_string()));
            }
        }
    }
}
