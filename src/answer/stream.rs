//! A streamed answer as a plain stream of events: `Retrieval` (the chunks
//! answered from), `Delta` (answer text as the model writes it), then `Answer`
//! (the final Answer, citations verified: this one counts) or `Error`. The
//! answer is made by a task that lives as long as the stream: dropping the
//! stream aborts the task and the LLM call. How the events travel (server-sent
//! events) is the HTTP layer's.

use std::pin::Pin;
use std::task::{Context, Poll};

use futures_util::Stream;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::AnswerError;
use crate::domain::{Answer, SearchHit};

#[derive(Debug)]
pub enum AnswerEvent {
    Retrieval(Vec<SearchHit>),
    Delta(String),
    Answer(Box<Answer>),
    Error(Box<AnswerError>),
}

/// Answer events from wherever they come (a plain answer's task, or a
/// conversation that stores the answer on its way out).
pub type AnswerEventStream = Pin<Box<dyn Stream<Item = AnswerEvent> + Send>>;

/// The events the answering task sends, until it is done.
pub struct AnswerEvents {
    events: mpsc::UnboundedReceiver<AnswerEvent>,
    task: JoinHandle<()>,
}

impl AnswerEvents {
    pub fn new(events: mpsc::UnboundedReceiver<AnswerEvent>, task: JoinHandle<()>) -> Self {
        Self { events, task }
    }
}

impl Stream for AnswerEvents {
    type Item = AnswerEvent;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<AnswerEvent>> {
        // `None` once the task is done and every event is out.
        self.events.poll_recv(cx)
    }
}

impl Drop for AnswerEvents {
    fn drop(&mut self) {
        // Finished or not: events nobody reads need no answer.
        self.task.abort();
    }
}
