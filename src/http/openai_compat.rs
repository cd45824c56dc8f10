//! OpenAI-compatible routes, so that chat UIs and OpenAI SDKs talk to docqa as
//! to a model provider: `GET /v1/models` lists the collections the caller may
//! read as models, and `POST /v1/chat/completions` answers from the collection
//! named by `model`. The last user message is the question, the earlier ones
//! the conversation (a follow-up is rewritten as in conversations); the answer
//! keeps its verified citations in `message.citations` (streamed: in the last
//! chunk). Errors on these routes come in OpenAI's error shape.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::middleware::Next;
use actix_web::web::Bytes;
use actix_web::{HttpRequest, HttpResponse, ResponseError, web};
use futures_util::Stream;
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;

use super::auth::{Authorized, Read, collection_in_scope, note_query_text};
use super::problem::AppError;
use crate::answer::{AnswerEvent, AnswerEventStream, Answerer};
use crate::domain::{Answer, AnswerMode, Citation, Filter};
use crate::service::chat::{ChatRequest, ChatTurn};
use crate::service::collections::Collections;

/// How often an idle stream says it is alive (a comment line, which OpenAI
/// clients skip).
const HEARTBEAT: Duration = Duration::from_secs(1);

/// An error in OpenAI's shape: `{"error": {message, type, param, code}}`,
/// with the status the problem would have had.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct OpenAiError(#[from] pub AppError);

impl OpenAiError {
    fn body(&self) -> serde_json::Value {
        let problem = self.0.problem(&super::request_id::current());
        error_body(
            problem.status,
            &problem.problem_type,
            &problem.detail,
            &problem.request_id,
        )
    }
}

/// OpenAI's error object for a problem.
fn error_body(status: u16, problem_type: &str, detail: &str, request_id: &str) -> serde_json::Value {
    let kind = match status {
        401 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        429 => "rate_limit_error",
        400..=499 => "invalid_request_error",
        _ => "server_error",
    };
    let (param, code) = match problem_type {
        "/problems/collection-not-found" => (Some("model"), "model_not_found".to_string()),
        other => (None, other.trim_start_matches("/problems/").replace('-', "_")),
    };
    let body = OpenAiErrorResponse {
        error: OpenAiErrorObject {
            message: detail.to_string(),
            kind: kind.to_string(),
            param: param.map(str::to_string),
            code,
            request_id: request_id.to_string(),
        },
    };
    serde_json::to_value(body).unwrap_or_default()
}

impl ResponseError for OpenAiError {
    fn status_code(&self) -> StatusCode {
        self.0.status_code()
    }

    fn error_response(&self) -> HttpResponse {
        let problem = self.0.error_response();
        let body = self.body();
        reshaped(&problem, body)
    }
}

/// A response with `problem`'s status and headers (Retry-After,
/// WWW-Authenticate) and `body` as JSON.
fn reshaped<B>(problem: &HttpResponse<B>, body: serde_json::Value) -> HttpResponse {
    let mut response = HttpResponse::build(problem.status());
    for (name, value) in problem.headers() {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            response.append_header((name.clone(), value.clone()));
        }
    }
    response.json(body)
}

/// Middleware on these routes: every problem a handler or extractor answers
/// with (a body that is not JSON, a missing right, an unknown model) leaves in
/// OpenAI's error shape, with its status and headers.
pub async fn error_shape(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let response = next.call(req).await?;
    let is_problem = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/problem+json"));
    if !is_problem {
        return Ok(response.map_into_boxed_body());
    }
    let (req, res) = response.into_parts();
    let (head, body) = res.into_parts();
    // A problem document is a few hundred bytes.
    let bytes = actix_web::body::to_bytes_limited(body, 64 * 1024)
        .await
        .map_err(|_| actix_web::error::ErrorInternalServerError("problem body too large"))?
        .map_err(|e| actix_web::error::ErrorInternalServerError(e.into().to_string()))?;
    let problem: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
    let text = |field: &str| problem[field].as_str().unwrap_or_default().to_string();
    let body = error_body(
        head.status().as_u16(),
        &text("type"),
        &text("detail"),
        &text("request_id"),
    );
    Ok(ServiceResponse::new(req, reshaped(&head, body)))
}

/// OpenAI's error shape, as these routes answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct OpenAiErrorResponse {
    pub error: OpenAiErrorObject,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct OpenAiErrorObject {
    pub message: String,
    /// `invalid_request_error`, `authentication_error`, `permission_error`,
    /// `not_found_error`, `rate_limit_error` or `server_error`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The request field at fault (`model`), if one is.
    pub param: Option<String>,
    /// `model_not_found`, else the docqa problem type (`invalid_request`, …).
    pub code: String,
    pub request_id: String,
}

/// Whether a path is one of these routes (whose refusals, even the auth
/// middleware's, come in OpenAI's shape).
pub fn is_openai_route(path: &str) -> bool {
    path == "/v1/chat/completions" || path == "/v1/models" || path.starts_with("/v1/models/")
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ModelList {
    #[schema(example = "list")]
    pub object: &'static str,
    pub data: Vec<Model>,
}

/// A collection, as an OpenAI model.
#[derive(Debug, Serialize, ToSchema)]
pub struct Model {
    /// The collection's name.
    pub id: String,
    #[schema(example = "model")]
    pub object: &'static str,
    /// When the collection was made (Unix seconds).
    pub created: i64,
    #[schema(example = "docqa")]
    pub owned_by: &'static str,
}

/// The collections the key may read, as models (for OpenAI clients and chat UIs).
#[utoipa::path(
    get, path = "/v1/models", operation_id = "list_models", tag = "openai",
    responses(
        (status = 200, body = ModelList),
        (status = 401, description = "No valid API key", body = OpenAiErrorResponse),
    )
)]
pub async fn list_models(
    caller: Authorized<Read>,
    collections: web::Data<Collections>,
) -> Result<HttpResponse, AppError> {
    let data = collections
        .list(&caller.scope)
        .await?
        .into_iter()
        .map(|view| model(view.collection.name.name(), view.collection.created_at.timestamp()))
        .collect();
    Ok(HttpResponse::Ok().json(ModelList { object: "list", data }))
}

/// One collection as a model.
#[utoipa::path(
    get, path = "/v1/models/{model}", operation_id = "get_model", tag = "openai",
    params(("model" = crate::domain::CollectionName, Path)),
    responses((status = 200, body = Model))
)]
pub async fn get_model(
    caller: Authorized<Read>,
    path: web::Path<String>,
    collections: web::Data<Collections>,
) -> Result<HttpResponse, AppError> {
    let name = collection_in_scope(&caller.scope, &path)?;
    let view = collections.get(&name).await?;
    Ok(HttpResponse::Ok().json(model(
        view.collection.name.name(),
        view.collection.created_at.timestamp(),
    )))
}

fn model(name: &str, created: i64) -> Model {
    Model {
        id: name.to_string(),
        object: "model",
        created,
        owned_by: "docqa",
    }
}

/// `POST /v1/chat/completions`. OpenAI's other fields (temperature,
/// max_tokens, …) are accepted and ignored: the answer is docqa's.
#[derive(Debug, Clone, Deserialize, ToSchema)]
pub struct ChatCompletionRequest {
    /// The collection to answer from (a name no collection can have is not found).
    #[schema(example = "default", pattern = "^[a-z0-9_-]{1,64}$")]
    pub model: String,
    /// The conversation; the last message must be the user's question.
    #[schema(min_items = 1)]
    pub messages: Vec<ChatMessage>,
    #[serde(default)]
    pub stream: bool,
    pub stream_options: Option<StreamOptions>,
    /// docqa: chunks to answer from (1 to 50).
    #[schema(minimum = 1, maximum = 50)]
    pub top_k: Option<usize>,
    /// docqa: which documents to answer from.
    pub filter: Option<Filter>,
    /// docqa: `auto` (default), `generative` or `extractive`.
    pub mode: Option<AnswerMode>,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
pub struct StreamOptions {
    #[serde(default)]
    pub include_usage: bool,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
pub struct ChatMessage {
    /// `user`, `assistant`; `system`, `developer` and `tool` messages are skipped.
    #[schema(pattern = "^(user|assistant|system|developer|tool)$", example = "user")]
    pub role: String,
    pub content: Option<MessageContent>,
}

/// A message's content: text, or parts of which the text ones count.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum MessageContent {
    Text(String),
    Parts(Vec<ContentPart>),
}

/// One part of a message's content: `text` parts count, others (images…) are skipped.
#[derive(Debug, Clone, Deserialize, ToSchema)]
pub struct ContentPart {
    #[serde(rename = "type")]
    #[schema(example = "text")]
    pub kind: String,
    pub text: Option<String>,
}

impl ChatMessage {
    fn text(&self) -> String {
        match &self.content {
            None => String::new(),
            Some(MessageContent::Text(text)) => text.clone(),
            Some(MessageContent::Parts(parts)) => parts
                .iter()
                .filter(|p| p.kind == "text")
                .filter_map(|p| p.text.as_deref())
                .collect::<Vec<_>>()
                .join("\n"),
        }
    }
}

/// The completion: the answer's text (with `[n]` markers) and its citations.
#[derive(Debug, Serialize, ToSchema)]
pub struct ChatCompletion {
    pub id: String,
    #[schema(example = "chat.completion")]
    pub object: &'static str,
    pub created: i64,
    pub model: String,
    pub choices: Vec<Choice>,
    pub usage: Usage,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Choice {
    pub index: u32,
    pub message: AssistantMessage,
    #[schema(example = "stop")]
    pub finish_reason: &'static str,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AssistantMessage {
    #[schema(example = "assistant")]
    pub role: &'static str,
    pub content: String,
    /// docqa: the verified citations of the `[n]` markers, as in an Answer.
    pub citations: Vec<Citation>,
    /// docqa: false when nothing in the documents supports an answer.
    pub grounded: bool,
    /// docqa: the standalone question retrieval ran on.
    pub retrieval_query: String,
}

/// Tokens counted with the embedding model's tokenizer (about four characters
/// a token without one): what docqa read and wrote, not an LLM provider's bill.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
pub struct Usage {
    pub prompt_tokens: usize,
    pub completion_tokens: usize,
    pub total_tokens: usize,
}

impl Usage {
    fn of(prompt_tokens: usize, completion_tokens: usize) -> Self {
        Self {
            prompt_tokens,
            completion_tokens,
            total_tokens: prompt_tokens + completion_tokens,
        }
    }
}

/// A chat completion answered from a collection's documents, citations kept.
#[utoipa::path(
    post, path = "/v1/chat/completions", operation_id = "chat_completions", tag = "openai",
    request_body = ChatCompletionRequest,
    responses(
        (status = 200, description = "The completion; `chat.completion.chunk` events (`data: {…}`, then `data: [DONE]`) when streamed", content(
            (ChatCompletion = "application/json"),
            (String = "text/event-stream"),
        )),
        (status = 404, description = "No such model (collection) for this key", body = OpenAiErrorResponse),
        (status = 422, description = "No user question last, an empty question, top_k or filter invalid", body = OpenAiErrorResponse),
        (status = 502, description = "The LLM failed", body = OpenAiErrorResponse),
        (status = 504, description = "The LLM timed out", body = OpenAiErrorResponse),
    )
)]
pub async fn chat_completions(
    caller: Authorized<Read>,
    http: HttpRequest,
    body: web::Json<ChatCompletionRequest>,
    answerer: web::Data<Answerer>,
) -> Result<HttpResponse, AppError> {
    let request = body.into_inner();
    let collection = collection_in_scope(&caller.scope, &request.model)?;
    let chat = ChatRequest {
        messages: request.messages.iter().map(|m| (m.role.clone(), m.text())).collect(),
        top_k: request.top_k,
        filter: request.filter,
        mode: request.mode.unwrap_or_default(),
        stream: request.stream,
    };
    let ChatTurn {
        query,
        history,
        prompt_tokens,
    } = ChatTurn::read(&answerer, chat)?;
    note_query_text(&http, &query.question);
    answerer.check(&query)?;
    let rewritten = answerer.rewrite(&history, &query.question, query.mode).await;
    let readers = caller.scope.readers();
    let id = format!("chatcmpl-{}", uuid::Uuid::new_v4().simple());
    let created = chrono::Utc::now().timestamp();
    if request.stream {
        let events = answerer
            .clone()
            .into_inner()
            .answer_events(&collection, query, Some(rewritten), &readers)
            .await?;
        let chunks = ChunkStream {
            events: Box::pin(events),
            heartbeat: heartbeat(),
            framer: Framer {
                id,
                created,
                model: request.model,
                answerer: answerer.into_inner(),
                prompt_tokens,
                include_usage: request.stream_options.is_some_and(|o| o.include_usage),
                started: false,
                done: false,
            },
        };
        return Ok(HttpResponse::Ok()
            .content_type("text/event-stream")
            .insert_header((header::CACHE_CONTROL, HeaderValue::from_static("no-cache")))
            .insert_header(("x-accel-buffering", "no"))
            .streaming(chunks));
    }
    let work = answerer.answer(&collection, query, Some(rewritten), &readers);
    let answer = super::peer::unless_client_leaves(&http, async { Ok(work.await?) }).await?;
    let completion_tokens = answerer.count_tokens(&answer.answer);
    Ok(HttpResponse::Ok().json(ChatCompletion {
        id,
        object: "chat.completion",
        created,
        model: request.model,
        choices: vec![Choice {
            index: 0,
            message: message(answer),
            finish_reason: "stop",
        }],
        usage: Usage::of(prompt_tokens, completion_tokens),
    }))
}

fn message(answer: Answer) -> AssistantMessage {
    AssistantMessage {
        role: "assistant",
        retrieval_query: answer.retrieval_query.unwrap_or_default(),
        content: answer.answer,
        citations: answer.citations,
        grounded: answer.grounded,
    }
}

fn heartbeat() -> tokio::time::Interval {
    let mut heartbeat = tokio::time::interval_at(tokio::time::Instant::now() + HEARTBEAT, HEARTBEAT);
    heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    heartbeat
}

/// Answer events as OpenAI `chat.completion.chunk` events.
struct Framer {
    id: String,
    created: i64,
    model: String,
    answerer: Arc<Answerer>,
    prompt_tokens: usize,
    include_usage: bool,
    /// The first chunk (the role) is out.
    started: bool,
    /// `[DONE]` (or an error) is out.
    done: bool,
}

impl Framer {
    fn chunk(&self, delta: serde_json::Value, finish_reason: Option<&str>) -> String {
        let chunk = json!({
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
        });
        format!("data: {chunk}\n\n")
    }

    fn frame(&mut self, event: AnswerEvent) -> Option<Bytes> {
        let mut out = String::new();
        if !self.started {
            self.started = true;
            out.push_str(&self.chunk(json!({"role": "assistant", "content": ""}), None));
        }
        match event {
            AnswerEvent::Retrieval(_) => {}
            AnswerEvent::Delta(text) => out.push_str(&self.chunk(json!({"content": text}), None)),
            AnswerEvent::Answer(answer) => {
                let completion_tokens = self.answerer.count_tokens(&answer.answer);
                let message = message(*answer);
                // The verified citations (and docqa's fields) ride on the last chunk.
                out.push_str(&self.chunk(
                    json!({
                        "citations": message.citations,
                        "grounded": message.grounded,
                        "retrieval_query": message.retrieval_query,
                    }),
                    Some("stop"),
                ));
                if self.include_usage {
                    let usage = json!({
                        "id": self.id, "object": "chat.completion.chunk", "created": self.created,
                        "model": self.model, "choices": [],
                        "usage": Usage::of(self.prompt_tokens, completion_tokens),
                    });
                    out.push_str(&format!("data: {usage}\n\n"));
                }
                out.push_str("data: [DONE]\n\n");
                self.done = true;
            }
            AnswerEvent::Error(error) => {
                let body = OpenAiError(AppError::from(*error)).body();
                out.push_str(&format!("data: {body}\n\n"));
                self.done = true;
            }
        }
        (!out.is_empty()).then(|| Bytes::from(out))
    }
}

struct ChunkStream {
    events: AnswerEventStream,
    heartbeat: tokio::time::Interval,
    framer: Framer,
}

impl Stream for ChunkStream {
    type Item = Result<Bytes, actix_web::Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        loop {
            if this.framer.done {
                return Poll::Ready(None);
            }
            match this.events.as_mut().poll_next(cx) {
                Poll::Ready(Some(event)) => match this.framer.frame(event) {
                    Some(bytes) => return Poll::Ready(Some(Ok(bytes))),
                    None => continue,
                },
                Poll::Ready(None) => return Poll::Ready(None),
                Poll::Pending => {}
            }
            return match this.heartbeat.poll_tick(cx) {
                Poll::Ready(_) => Poll::Ready(Some(Ok(Bytes::from_static(b": working\n\n")))),
                Poll::Pending => Poll::Pending,
            };
        }
    }
}
