//! An answer's events as server-sent events: `event: <name>` and one line of
//! JSON `data`, with a comment line while the answer is being written, which
//! keeps proxies from cutting the stream and lets the server notice a client
//! that has gone (a write fails, the events are dropped, the answer stops).

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use actix_web::web::Bytes;
use futures_util::Stream;
use serde::Serialize;

use super::problem::AppError;
use crate::answer::{AnswerEvent, AnswerEventStream};
use crate::domain::SearchHit;

/// How often an idle stream says it is alive.
const HEARTBEAT: Duration = Duration::from_secs(1);

#[derive(Serialize)]
struct RetrievalData<'a> {
    results: &'a [SearchHit],
}

#[derive(Serialize)]
struct DeltaData<'a> {
    text: &'a str,
}

/// `event: <name>\ndata: <json>\n\n` (JSON has no raw newlines, so one data line).
/// An error becomes its problem document, under the request's id.
fn frame(event: AnswerEvent, request_id: &str) -> Bytes {
    let (name, data) = match event {
        AnswerEvent::Retrieval(hits) => ("retrieval", serde_json::to_string(&RetrievalData { results: &hits })),
        AnswerEvent::Delta(text) => ("delta", serde_json::to_string(&DeltaData { text: &text })),
        AnswerEvent::Answer(answer) => ("answer", serde_json::to_string(&answer)),
        AnswerEvent::Error(error) => {
            let problem = AppError::from(*error).problem(request_id);
            ("error", serde_json::to_string(&problem))
        }
    };
    let data = data.unwrap_or_else(|e| format!(r#"{{"type":"/problems/internal","detail":"{e}"}}"#));
    Bytes::from(format!("event: {name}\ndata: {data}\n\n"))
}

/// A streamed answer's response: server-sent events, not cached nor held
/// back by proxies.
pub fn response(events: AnswerEventStream) -> actix_web::HttpResponse {
    actix_web::HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header((actix_web::http::header::CACHE_CONTROL, "no-cache"))
        // Proxies such as nginx would otherwise hold the events back.
        .insert_header(("x-accel-buffering", "no"))
        .streaming(EventStream::new(events, super::request_id::current()))
}

/// The response body of a streamed answer.
pub struct EventStream {
    events: AnswerEventStream,
    heartbeat: tokio::time::Interval,
    request_id: String,
}

impl EventStream {
    pub fn new(events: AnswerEventStream, request_id: String) -> Self {
        let mut heartbeat = tokio::time::interval_at(tokio::time::Instant::now() + HEARTBEAT, HEARTBEAT);
        heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        Self {
            events,
            heartbeat,
            request_id,
        }
    }
}

impl Stream for EventStream {
    type Item = Result<Bytes, actix_web::Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        match this.events.as_mut().poll_next(cx) {
            Poll::Ready(Some(event)) => return Poll::Ready(Some(Ok(frame(event, &this.request_id)))),
            // The answer is done and every event is out.
            Poll::Ready(None) => return Poll::Ready(None),
            Poll::Pending => {}
        }
        match this.heartbeat.poll_tick(cx) {
            Poll::Ready(_) => Poll::Ready(Some(Ok(Bytes::from_static(b": working\n\n")))),
            Poll::Pending => Poll::Pending,
        }
    }
}
