//! The durable job runner. Jobs live in the catalog; workers claim the oldest
//! one that may run, run it and record the outcome. Jobs a crash left `running`
//! are queued again at start, and because point ids are deterministic a rerun
//! overwrites what the interrupted run wrote.
//!
//! An ingest job writes its document's points `pending` (invisible to search),
//! stores the chunks, then publishes the points and marks the document `ready`:
//! a document is searchable only once it is ready, and a failed one leaves no
//! vectors behind. A job that meets a backend that is down goes back to the
//! queue with a backoff instead of failing its document.

mod ingest_job;
mod job_error;
mod pool;
mod reindex_job;

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

pub(crate) use job_error::JobError;
use job_error::retry_pause;
pub use pool::WorkerPool;

use super::FileStore;
use super::chunk::Chunker;
use super::extract;
use super::in_flight::InFlight;
use crate::catalog::{Catalog, ClaimedJob, JobOutcome};
use crate::domain::{Chunk, Document, Job, JobProgress};
use crate::embed::{Bm25Encoder, Embedder};
use crate::index::{ChunkPayload, ChunkPoint, VectorIndex};

/// Chunks embedded and written to the index per step (and per progress update).
pub(crate) const CHUNKS_PER_STEP: usize = 64;
/// A job that keeps meeting a backend that is down fails after this many attempts.
const MAX_ATTEMPTS: u32 = 20;

/// Everything a job needs, shared by all workers.
pub struct Pipeline {
    pub catalog: Arc<dyn Catalog>,
    pub index: Arc<dyn VectorIndex>,
    pub embedder: Option<Arc<dyn Embedder>>,
    pub bm25: Arc<Bm25Encoder>,
    pub chunker: Arc<Chunker>,
    pub files: FileStore,
    pub extractor: extract::Extractor,
    /// Jobs running here, so that deletes can stop them.
    pub in_flight: Arc<InFlight>,
}

impl Pipeline {
    /// Runs one claimed job to its outcome; `cancel` stops it at its next step
    /// (it is then queued again: the delete that cancelled it takes it away).
    pub async fn run(&self, claimed: &ClaimedJob, cancel: &CancellationToken) -> JobOutcome {
        let result = match claimed {
            ClaimedJob::Ingest { job, document } => self.ingest(job, document, cancel).await,
            ClaimedJob::Reindex { job, collection } => self
                .reindex(job, collection, cancel)
                .await
                .map(|model| JobOutcome::Reindexed { model }),
        };
        let job = claimed.job();
        match result {
            Ok(outcome) => outcome,
            Err(JobError::Unavailable(reason)) if job.attempts < MAX_ATTEMPTS => JobOutcome::Retry {
                after: retry_pause(job.attempts),
                reason,
            },
            Err(JobError::Unavailable(reason)) => JobOutcome::Failed {
                reason: format!("gave up after {} attempts: {reason}", job.attempts),
            },
            Err(JobError::Failed(reason)) => JobOutcome::Failed { reason },
            Err(JobError::Cancelled) => JobOutcome::Retry {
                reason: JobError::Cancelled.to_string(),
                after: Duration::from_secs(1),
            },
        }
    }
    async fn progress(&self, job: &Job, progress: JobProgress) {
        if let Err(e) = self.catalog.update_job_progress(job.id, progress).await {
            tracing::warn!(job = %job.id, error = %e, "could not record job progress");
        }
    }
}

/// The dense vectors of a batch, when the collection has them.
async fn embed(dense: Option<&dyn Embedder>, batch: &[Chunk]) -> Result<Option<Vec<Vec<f32>>>, JobError> {
    match dense {
        Some(embedder) => {
            let texts = batch.iter().map(|c| c.text.clone()).collect();
            Ok(Some(embedder.embed_passages(texts).await?))
        }
        None => Ok(None),
    }
}

/// A batch of chunks as index points: dense vector (if any), BM25 terms, payload.
fn chunk_points(
    bm25: &Bm25Encoder,
    document: &Document,
    batch: &[Chunk],
    dense: Option<Vec<Vec<f32>>>,
    pending: bool,
) -> Vec<ChunkPoint> {
    let mut dense = dense.map(Vec::into_iter);
    batch
        .iter()
        .map(|chunk| ChunkPoint {
            id: chunk.id(),
            dense: dense.as_mut().and_then(Iterator::next),
            bm25: bm25.passage(&chunk.text),
            payload: ChunkPayload {
                collection: document.collection.to_string(),
                document_id: document.id,
                chunk_index: chunk.index,
                page_start: chunk.page_start,
                page_end: chunk.page_end,
                filename: document.filename.clone(),
                text: chunk.text.clone(),
                page_breaks: chunk.page_breaks.clone(),
                metadata: document.metadata.clone(),
                access: document.access.clone(),
                pending,
                layout: chunk.layout.clone(),
            },
        })
        .collect()
}
