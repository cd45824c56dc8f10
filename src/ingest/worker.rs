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

use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::FutureExt;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::chunk::Chunker;
use super::extract;
use super::in_flight::InFlight;
use super::{FileStore, JobSignals};
use crate::catalog::{Catalog, CatalogError, ClaimedJob, JobOutcome};
use crate::domain::{Chunk, Collection, Document, EmbeddingModel, Job, JobProgress, JobStage};
use crate::embed::{Bm25Encoder, EmbedError, Embedder};
use crate::index::{ChunkPayload, ChunkPoint, IndexError, IndexLayout, VectorIndex};

/// Chunks embedded and written to the index per step (and per progress update).
pub(crate) const CHUNKS_PER_STEP: usize = 64;
/// A job that keeps meeting a backend that is down fails after this many attempts.
const MAX_ATTEMPTS: u32 = 20;
const LONGEST_RETRY_PAUSE: Duration = Duration::from_secs(300);

/// Why a job did not succeed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum JobError {
    /// For good: the input or the setup is wrong. The reason is shown to users.
    #[error("{0}")]
    Failed(String),
    /// Something the job needs is down: worth another try later.
    #[error("{0}")]
    Unavailable(String),
    /// A delete of its document or collection stopped it.
    #[error("interrupted by a delete")]
    Cancelled,
}

impl JobError {
    pub(crate) fn failed(e: impl std::fmt::Display) -> Self {
        Self::Failed(e.to_string())
    }
}

/// Runs `work` unless the job is cancelled first; for work that changes nothing
/// outside the job (extracting, embedding), so that dropping it half way is safe.
async fn unless_cancelled<T, E: Into<JobError>>(
    cancel: &CancellationToken,
    work: impl Future<Output = Result<T, E>>,
) -> Result<T, JobError> {
    tokio::select! {
        result = work => result.map_err(Into::into),
        () = cancel.cancelled() => Err(JobError::Cancelled),
    }
}

/// Stops at a step boundary when the job is cancelled: index and catalog writes
/// are never cut in half, so a delete that waits for the job finds them done.
fn checkpoint(cancel: &CancellationToken) -> Result<(), JobError> {
    if cancel.is_cancelled() { Err(JobError::Cancelled) } else { Ok(()) }
}

impl From<extract::ExtractError> for JobError {
    fn from(e: extract::ExtractError) -> Self {
        Self::failed(e)
    }
}

impl From<CatalogError> for JobError {
    fn from(e: CatalogError) -> Self {
        match e {
            CatalogError::Unavailable(detail) | CatalogError::Conflict(detail) => {
                Self::Unavailable(format!("catalog unavailable: {detail}"))
            }
            other => Self::Failed(format!("catalog: {other}")),
        }
    }
}

impl From<IndexError> for JobError {
    fn from(e: IndexError) -> Self {
        match e {
            IndexError::Unavailable(detail) => Self::Unavailable(format!("vector index unavailable: {detail}")),
            other => Self::Failed(format!("indexing: {other}")),
        }
    }
}

impl From<EmbedError> for JobError {
    fn from(e: EmbedError) -> Self {
        match e {
            EmbedError::Remote(detail) => Self::Unavailable(format!("embedding service unavailable: {detail}")),
            other => Self::Failed(other.to_string()),
        }
    }
}

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
            ClaimedJob::Ingest { job, document } => self
                .ingest(job, document, cancel)
                .await
                .map(|(pages, chunks)| JobOutcome::Ingested { pages, chunks }),
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

    async fn ingest(&self, job: &Job, document: &Document, cancel: &CancellationToken) -> Result<(u32, u32), JobError> {
        self.progress(job, JobProgress::at(JobStage::Extract, 0, 1)).await;
        let started = Instant::now();
        // Dropping the extraction kills its child process.
        let path = self.files.path(document.id);
        let extracted = unless_cancelled(cancel, self.extractor.extract_file(&path, document.content_type)).await?;
        let pages = extracted.pages.len() as u32;
        self.progress(job, JobProgress::at(JobStage::Extract, u64::from(pages), u64::from(pages))).await;
        let extract_ms = started.elapsed().as_millis() as u64;
        let started = Instant::now();
        checkpoint(cancel)?;
        let dense = self.dense_embedder_for(document).await?;

        // Chunks stream from the splitter, a step at a time, into embedding; each
        // step's points are written while the next step is embedded.
        let expected = self.chunker.estimate(&extracted.pages);
        self.progress(job, JobProgress::at(JobStage::Embed, 0, expected)).await;
        let (sender, mut steps) = tokio::sync::mpsc::channel::<Vec<Chunk>>(2);
        let chunker = Arc::clone(&self.chunker);
        let id = document.id;
        let chunking = tokio::spawn(crate::background::run("docqa-chunk", move || {
            chunker.chunk_in_steps(id, &extracted.pages, CHUNKS_PER_STEP, |step| sender.blocking_send(step).is_ok());
        }));
        let mut chunks: Vec<Chunk> = Vec::new();
        let mut writing: Option<Pin<Box<dyn Future<Output = Result<(), JobError>> + Send + '_>>> = None;
        while let Some(batch) = steps.recv().await {
            let previous = async {
                match writing.take() {
                    Some(write) => write.await,
                    None => Ok(()),
                }
            };
            // The previous step's write always completes, even when the job is cancelled.
            let (vectors, written) = tokio::join!(unless_cancelled(cancel, embed(dense.as_deref(), &batch)), previous);
            written?;
            let vectors = vectors?;
            checkpoint(cancel)?;
            let points = chunk_points(&self.bm25, document, &batch, vectors, true);
            chunks.extend(batch);
            let done = chunks.len() as u64;
            let progress = JobProgress::at(JobStage::Embed, done, expected.max(done));
            writing = Some(Box::pin(self.write(job, document, points, progress)));
        }
        if let Some(write) = writing {
            write.await?;
        }
        match chunking.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(JobError::Failed(format!("chunking failed: {e}"))),
            Err(e) => return Err(JobError::Failed(format!("chunking failed: {e}"))),
        }
        if chunks.is_empty() {
            return Err(JobError::failed(extract::ExtractError::NoText));
        }
        // The catalog's copy of the chunks, once all of them are indexed; then the
        // points become searchable, just before the document is marked ready.
        checkpoint(cancel)?;
        self.progress(job, JobProgress::at(JobStage::Index, 0, 1)).await;
        self.catalog.replace_chunks(document.id, &chunks).await?;
        self.index.publish_document(&document.collection, document.id).await?;
        // Where a document's time goes: what to speed up next.
        tracing::info!(document = %document.id, extract_ms,
            chunk_embed_index_ms = started.elapsed().as_millis() as u64, chunks = chunks.len(), "pipeline stages");
        Ok((pages, chunks.len() as u32))
    }

    /// Writes one step's points to the index, then reports the progress they make.
    async fn write(&self, job: &Job, document: &Document, points: Vec<ChunkPoint>, progress: JobProgress) -> Result<(), JobError> {
        self.index.upsert(&document.collection, points).await?;
        self.progress(job, progress).await;
        Ok(())
    }

    /// The embedder, when it is the one the collection's vectors come from. A
    /// collection made without dense vectors stays BM25-only; one made with another
    /// model must not get mixed vectors.
    async fn dense_embedder_for(&self, document: &Document) -> Result<Option<Arc<dyn Embedder>>, JobError> {
        let collection = self
            .catalog
            .get_collection(&document.collection)
            .await?
            .ok_or_else(|| JobError::Failed(format!("collection {} is gone", document.collection)))?;
        let layout = IndexLayout {
            dense_dimension: collection.embedding_model.as_ref().map(|m| m.dimension),
        };
        self.index.ensure_collection(&collection.name, layout).await?;
        match (&collection.embedding_model, &self.embedder) {
            (None, _) => Ok(None),
            (Some(stored), None) => {
                // BM25-only mode: the document is searchable by its terms; its dense
                // vectors are missing until it is re-indexed with the model.
                tracing::warn!(document = %document.id, model = %stored.name,
                    "no embedding model loaded: indexing this document for BM25 only");
                Ok(None)
            }
            (Some(stored), Some(embedder)) if stored.same_space(embedder.model()) => Ok(Some(Arc::clone(embedder))),
            (Some(stored), Some(current)) => Err(JobError::Failed(format!(
                "the collection holds vectors of {} ({} dims) but the server runs {} ({} dims); \
                 re-index the collection (POST /v1/collections/{}/reindex), then upload this document again",
                stored.name,
                stored.dimension,
                current.model().name,
                current.model().dimension,
                collection.name,
            ))),
        }
    }

    /// Re-embeds every ready document's chunks, as the catalog stores them, into a
    /// fresh generation of the collection's index and swaps it in. Searches use the
    /// old generation until the swap.
    async fn reindex(
        &self,
        job: &Job,
        collection: &Collection,
        cancel: &CancellationToken,
    ) -> Result<Option<EmbeddingModel>, JobError> {
        let embedder = self.embedder.as_ref().ok_or_else(|| {
            JobError::Failed("re-indexing needs an embedding model, and the server runs without one".into())
        })?;
        let model = embedder.model().clone();
        let layout = IndexLayout {
            dense_dimension: Some(model.dimension),
        };
        let documents = super::reindex::ready_documents(self.catalog.as_ref(), &collection.name).await?;
        let total = documents.len() as u64;
        self.progress(job, JobProgress::at(JobStage::Embed, 0, total)).await;
        checkpoint(cancel)?;
        let rebuild = self.index.begin_rebuild(&collection.name, layout).await?;
        tracing::info!(job = %job.id, collection = %collection.name, documents = total,
            generation = rebuild.generation, model = %model.name, "re-index started");
        for (done, document) in documents.iter().enumerate() {
            let chunks = self.catalog.chunks_of(document.id).await?;
            for batch in chunks.chunks(CHUNKS_PER_STEP) {
                let vectors = unless_cancelled(cancel, embed(Some(embedder.as_ref()), batch)).await?;
                checkpoint(cancel)?;
                let points = chunk_points(&self.bm25, document, batch, vectors, false);
                self.index.upsert_rebuild(&rebuild, points).await?;
            }
            self.progress(job, JobProgress::at(JobStage::Embed, done as u64 + 1, total)).await;
        }
        checkpoint(cancel)?;
        self.index.finish_rebuild(&rebuild).await?;
        // A document deleted while it was being copied may have been written into
        // the new generation after its delete: take such points back.
        let remaining: std::collections::HashSet<_> = self.catalog.document_ids(&collection.name).await?.into_iter().collect();
        for document in documents.iter().filter(|d| !remaining.contains(&d.id)) {
            self.index.delete_document(&collection.name, document.id).await?;
        }
        tracing::info!(job = %job.id, collection = %collection.name, documents = total, "re-index swapped in");
        Ok(Some(model))
    }

    async fn progress(&self, job: &Job, progress: JobProgress) {
        if let Err(e) = self.catalog.update_job_progress(job.id, progress).await {
            tracing::warn!(job = %job.id, error = %e, "could not record job progress");
        }
    }
}

/// Backoff for a job that met a backend that is down: 5 s, 10 s, 20 s, … up to 5 min.
fn retry_pause(attempts: u32) -> Duration {
    let exponent = attempts.saturating_sub(1).min(10);
    (Duration::from_secs(5) * 2u32.pow(exponent)).min(LONGEST_RETRY_PAUSE)
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
                pending,
            },
        })
        .collect()
}

/// The workers, running until cancelled.
pub struct WorkerPool {
    handles: Vec<JoinHandle<()>>,
    cancel: CancellationToken,
}

impl WorkerPool {
    /// Requeues interrupted jobs, then starts `workers` loops.
    pub async fn start(pipeline: Arc<Pipeline>, signals: JobSignals, workers: usize) -> Result<Self, CatalogError> {
        let requeued = pipeline.catalog.requeue_interrupted_jobs().await?;
        if requeued > 0 {
            tracing::info!(requeued, "resuming jobs interrupted by the last shutdown");
        }
        let cancel = CancellationToken::new();
        let handles = (0..workers)
            .map(|worker| {
                let pipeline = Arc::clone(&pipeline);
                let signals = signals.clone();
                let cancel = cancel.clone();
                tokio::spawn(async move {
                    tokio::select! {
                        () = cancel.cancelled() => {}
                        () = work_loop(worker, pipeline, signals) => {}
                    }
                })
            })
            .collect();
        signals.work_available();
        Ok(Self { handles, cancel })
    }

    /// Stops taking jobs. A job cut off here stays `running` and is resumed at the
    /// next start.
    pub async fn stop(self) {
        self.cancel.cancel();
        for handle in self.handles {
            let _ = handle.await;
        }
    }
}

async fn work_loop(worker: usize, pipeline: Arc<Pipeline>, signals: JobSignals) {
    loop {
        match pipeline.catalog.claim_next_job().await {
            Ok(Some(claimed)) => {
                run_claimed(worker, &pipeline, &claimed).await;
                signals.job_finished(claimed.job().id);
            }
            Ok(None) => signals.wait_for_work(Duration::from_secs(2)).await,
            Err(e) => {
                tracing::error!(worker, error = %e, "could not claim a job");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

/// Runs a claimed job unless a delete holds what it works on, stops it when a
/// delete asks, and records how it ended.
async fn run_claimed(worker: usize, pipeline: &Pipeline, claimed: &ClaimedJob) {
    let job = claimed.job();
    let Some(running) = pipeline.in_flight.start(job) else {
        // Its collection or document is being deleted, the job with it; should
        // that delete fail, the job runs later.
        let outcome = JobOutcome::Retry {
            reason: "waiting for a delete to finish".into(),
            after: Duration::from_secs(1),
        };
        if let Err(e) = pipeline.catalog.finish_job(job.id, &outcome).await {
            tracing::error!(job = %job.id, error = %e, "could not record job outcome");
        }
        return;
    };
    // A delete that ended between the claim and the line above took the job with
    // it; one that starts from here waits for this job.
    match pipeline.catalog.get_job(job.id).await {
        Ok(Some(_)) => {}
        Ok(None) => {
            tracing::info!(job = %job.id, "job deleted before it started");
            return;
        }
        Err(e) => tracing::warn!(job = %job.id, error = %e, "could not check the job before starting it"),
    }
    let started = Instant::now();
    tracing::info!(worker, job = %job.id, kind = job.kind.as_str(), collection = %job.collection,
        document = ?job.document_id, attempt = job.attempts, "job started");
    let cancel = running.cancellation();
    let run = std::panic::AssertUnwindSafe(pipeline.run(claimed, &cancel)).catch_unwind();
    let outcome = run.await.unwrap_or_else(|panic| {
        let reason = format!("internal error: the job panicked ({})", crate::background::panic_message(&*panic));
        tracing::error!(job = %job.id, %reason, "job panicked");
        JobOutcome::Failed { reason }
    });
    if cancel.is_cancelled() {
        // A delete stopped it and removes what it wrote once we let go; should the
        // delete fail, the job (queued again) runs anew.
        drop(running);
        tracing::info!(job = %job.id, document = ?job.document_id, "job stopped by a delete");
        if let Err(e) = pipeline.catalog.finish_job(job.id, &outcome).await {
            tracing::error!(job = %job.id, error = %e, "could not record job outcome");
        }
        return;
    }
    if let ClaimedJob::Ingest { document, .. } = claimed {
        if matches!(outcome, JobOutcome::Failed { .. }) {
            // A failed document leaves no vectors behind.
            remove_vectors(pipeline, document).await;
        }
    }
    match pipeline.catalog.finish_job(job.id, &outcome).await {
        Ok(true) => {}
        Ok(false) => {
            // Deleted while we worked: take back the vectors we wrote.
            if let ClaimedJob::Ingest { document, .. } = claimed {
                remove_vectors(pipeline, document).await;
            }
        }
        Err(e) => tracing::error!(job = %job.id, error = %e, "could not record job outcome"),
    }
    drop(running);
    let ms = started.elapsed().as_millis() as u64;
    match &outcome {
        JobOutcome::Ingested { pages, chunks } => {
            tracing::info!(job = %job.id, document = ?job.document_id, pages, chunks, ms, "job succeeded")
        }
        JobOutcome::Reindexed { model } => {
            tracing::info!(job = %job.id, collection = %job.collection, model = ?model.as_ref().map(|m| &m.name), ms, "job succeeded")
        }
        JobOutcome::Failed { reason } => {
            tracing::warn!(job = %job.id, document = ?job.document_id, %reason, "job failed")
        }
        JobOutcome::Retry { reason, after } => tracing::warn!(job = %job.id, document = ?job.document_id,
            %reason, retry_in_s = after.as_secs(), "job postponed: a backend is down"),
    }
}

async fn remove_vectors(pipeline: &Pipeline, document: &Document) {
    if let Err(e) = pipeline.index.delete_document(&document.collection, document.id).await {
        tracing::warn!(document = %document.id, error = %e, "could not remove the vectors of a document");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_back_off_up_to_five_minutes() {
        assert_eq!(retry_pause(1), Duration::from_secs(5));
        assert_eq!(retry_pause(2), Duration::from_secs(10));
        assert_eq!(retry_pause(4), Duration::from_secs(40));
        assert_eq!(retry_pause(7), Duration::from_secs(300));
        assert_eq!(retry_pause(u32::MAX), Duration::from_secs(300));
    }
}
