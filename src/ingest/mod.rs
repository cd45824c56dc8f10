//! Ingestion: accepting uploads as durable documents and jobs, then the worker
//! pipeline that extracts, chunks, embeds and indexes them.

mod accept;
pub mod chunk;
pub mod detect;
pub mod extract;
mod files;
pub mod in_flight;
pub mod staging;
mod worker;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Notify, broadcast};

pub use accept::{AcceptError, Ingestor, UploadStatus, UploadedDocument};
pub use files::FileStore;
pub use in_flight::{HoldTarget, InFlight};
pub use worker::{Pipeline, WorkerPool};

use crate::domain::JobId;

/// Wakes workers when work arrives and tells waiters when a job ends.
#[derive(Clone)]
pub struct JobSignals {
    work: Arc<Notify>,
    finished: broadcast::Sender<JobId>,
}

impl JobSignals {
    pub fn new() -> Self {
        Self {
            work: Arc::new(Notify::new()),
            finished: broadcast::channel(1024).0,
        }
    }

    pub fn work_available(&self) {
        self.work.notify_waiters();
        self.work.notify_one();
    }

    pub async fn wait_for_work(&self, at_most: Duration) {
        let _ = tokio::time::timeout(at_most, self.work.notified()).await;
    }

    pub fn job_finished(&self, job: JobId) {
        // Nobody listening is fine.
        let _ = self.finished.send(job);
    }

    pub fn subscribe(&self) -> broadcast::Receiver<JobId> {
        self.finished.subscribe()
    }
}

impl Default for JobSignals {
    fn default() -> Self {
        Self::new()
    }
}
