//! A streamed answer as server-sent events: `retrieval` (the chunks answered
//! from), `delta` (answer text as the model writes it), then `answer` (the final
//! Answer, citations verified: this one counts) or `error` (a problem+json).
//! The answer is made by a task that lives as long as the response: a client
//! that goes away drops the response, and that aborts the task and the LLM call.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use actix_web::web::Bytes;
use futures_util::Stream;
use serde::Serialize;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::domain::{Answer, SearchHit};
use crate::error::Problem;

/// How often an idle stream says it is alive: keeps proxies from cutting it,
/// and lets the server notice a client that has gone (a write fails).
const HEARTBEAT: Duration = Duration::from_secs(1);

#[derive(Debug)]
pub enum AnswerEvent {
    Retrieval(Vec<SearchHit>),
    Delta(String),
    Answer(Box<Answer>),
    Error(Box<Problem>),
}

#[derive(Serialize)]
struct RetrievalData<'a> {
    results: &'a [SearchHit],
}

#[derive(Serialize)]
struct DeltaData<'a> {
    text: &'a str,
}

impl AnswerEvent {
    /// `event: <name>\ndata: <json>\n\n` (JSON has no raw newlines, so one data line).
    pub fn to_sse(&self) -> Bytes {
        let (name, data) = match self {
            Self::Retrieval(hits) => ("retrieval", serde_json::to_string(&RetrievalData { results: hits })),
            Self::Delta(text) => ("delta", serde_json::to_string(&DeltaData { text })),
            Self::Answer(answer) => ("answer", serde_json::to_string(answer)),
            Self::Error(problem) => ("error", serde_json::to_string(problem)),
        };
        let data = data.unwrap_or_else(|e| format!(r#"{{"type":"/problems/internal","detail":"{e}"}}"#));
        Bytes::from(format!("event: {name}\ndata: {data}\n\n"))
    }
}

/// The response body: the events the task sends, heartbeats while it works.
pub struct AnswerEvents {
    events: mpsc::UnboundedReceiver<AnswerEvent>,
    task: JoinHandle<()>,
    heartbeat: tokio::time::Interval,
}

impl AnswerEvents {
    pub fn new(events: mpsc::UnboundedReceiver<AnswerEvent>, task: JoinHandle<()>) -> Self {
        let mut heartbeat = tokio::time::interval_at(tokio::time::Instant::now() + HEARTBEAT, HEARTBEAT);
        heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        Self { events, task, heartbeat }
    }
}

impl Stream for AnswerEvents {
    type Item = Result<Bytes, actix_web::Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        match self.events.poll_recv(cx) {
            Poll::Ready(Some(event)) => return Poll::Ready(Some(Ok(event.to_sse()))),
            // The task is done and every event is out.
            Poll::Ready(None) => return Poll::Ready(None),
            Poll::Pending => {}
        }
        match self.heartbeat.poll_tick(cx) {
            Poll::Ready(_) => Poll::Ready(Some(Ok(Bytes::from_static(b": working\n\n")))),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl Drop for AnswerEvents {
    fn drop(&mut self) {
        // Finished or not: a response nobody reads needs no answer.
        self.task.abort();
    }
}
