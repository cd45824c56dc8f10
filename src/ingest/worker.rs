//! The durable job runner. Jobs live in the catalog; workers claim the oldest
//! queued one, run the pipeline and record the outcome. Jobs a crash left
//! `running` are queued again at start, and because point ids are deterministic
//! a rerun overwrites what the interrupted run wrote.

use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::chunk::Chunker;
use super::extract;
use super::{FileStore, JobSignals};
use crate::catalog::{Catalog, JobOutcome};
use crate::domain::{Chunk, Document, Job, JobProgress, JobStage};
use crate::embed::{Bm25Encoder, Embedder};
use crate::index::{ChunkPayload, ChunkPoint, IndexLayout, VectorIndex};

/// Chunks embedded and written to the index per step (and per progress update).
const CHUNKS_PER_STEP: usize = 64;

/// Everything a job needs, shared by all workers.
pub struct Pipeline {
    pub catalog: Arc<dyn Catalog>,
    pub index: Arc<dyn VectorIndex>,
    pub embedder: Option<Arc<dyn Embedder>>,
    pub bm25: Arc<Bm25Encoder>,
    pub chunker: Arc<Chunker>,
    pub files: FileStore,
    pub extract_timeout: Duration,
}

impl Pipeline {
    /// Runs one job to its outcome. Every failure becomes a reason on the document.
    pub async fn run(&self, job: &Job, document: &Document) -> JobOutcome {
        match self.try_run(job, document).await {
            Ok((pages, chunks)) => JobOutcome::Succeeded { pages, chunks },
            Err(reason) => JobOutcome::Failed { reason },
        }
    }

    async fn try_run(&self, job: &Job, document: &Document) -> Result<(u32, u32), String> {
        self.progress(job, JobProgress::at(JobStage::Extract, 0, 1)).await;
        let started = Instant::now();
        let extracted = extract::extract_file(
            &self.files.path(document.id),
            document.content_type,
            self.extract_timeout,
        )
        .await
        .map_err(|e| e.to_string())?;
        let pages = extracted.pages.len() as u32;
        let extract_ms = started.elapsed().as_millis() as u64;
        let started = Instant::now();
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
        let mut writing: Option<Pin<Box<dyn Future<Output = Result<(), String>> + Send + '_>>> = None;
        while let Some(batch) = steps.recv().await {
            let previous = async {
                match writing.take() {
                    Some(write) => write.await,
                    None => Ok(()),
                }
            };
            let (points, written) = tokio::join!(self.points(document, &batch, dense.as_deref()), previous);
            written?;
            chunks.extend(batch);
            let done = chunks.len() as u64;
            let progress = JobProgress::at(JobStage::Embed, done, expected.max(done));
            writing = Some(Box::pin(self.write(job, document, points?, progress)));
        }
        if let Some(write) = writing {
            write.await?;
        }
        match chunking.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(format!("chunking failed: {e}")),
            Err(e) => return Err(format!("chunking failed: {e}")),
        }
        if chunks.is_empty() {
            return Err(extract::ExtractError::NoText.to_string());
        }
        // The catalog's copy of the chunks, once all of them are indexed.
        self.catalog
            .replace_chunks(document.id, &chunks)
            .await
            .map_err(|e| format!("storing chunks: {e}"))?;
        // Where a document's time goes: what to speed up next.
        tracing::info!(document = %document.id, extract_ms,
            chunk_embed_index_ms = started.elapsed().as_millis() as u64, chunks = chunks.len(), "pipeline stages");
        Ok((pages, chunks.len() as u32))
    }

    /// Writes one step's points to the index, then reports the progress they make.
    async fn write(&self, job: &Job, document: &Document, points: Vec<ChunkPoint>, progress: JobProgress) -> Result<(), String> {
        self.index
            .upsert(&document.collection, points)
            .await
            .map_err(|e| format!("indexing: {e}"))?;
        self.progress(job, progress).await;
        Ok(())
    }

    /// The embedder, when it is the one the collection's vectors come from. A
    /// collection made without dense vectors stays BM25-only; one made with another
    /// model must not get mixed vectors.
    async fn dense_embedder_for(&self, document: &Document) -> Result<Option<Arc<dyn Embedder>>, String> {
        let collection = self
            .catalog
            .get_collection(&document.collection)
            .await
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("collection {} is gone", document.collection))?;
        let layout = IndexLayout {
            dense_dimension: collection.embedding_model.as_ref().map(|m| m.dimension),
        };
        self.index
            .ensure_collection(&collection.name, layout)
            .await
            .map_err(|e| format!("index: {e}"))?;
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
            (Some(stored), Some(current)) => Err(format!(
                "the collection holds vectors of {} ({}, {} dims) but the server runs {}; re-index it",
                stored.name,
                stored.variant,
                stored.dimension,
                current.model().name
            )),
        }
    }

    async fn points(
        &self,
        document: &Document,
        batch: &[Chunk],
        dense: Option<&dyn Embedder>,
    ) -> Result<Vec<ChunkPoint>, String> {
        let dense_vectors = match dense {
            Some(embedder) => {
                let texts = batch.iter().map(|c| c.text.clone()).collect();
                Some(
                    embedder
                        .embed_passages(texts)
                        .await
                        .map_err(|e| e.to_string())?,
                )
            }
            None => None,
        };
        let mut dense_vectors = dense_vectors.map(Vec::into_iter);
        Ok(batch
            .iter()
            .map(|chunk| ChunkPoint {
                id: chunk.id(),
                dense: dense_vectors.as_mut().and_then(Iterator::next),
                bm25: self.bm25.passage(&chunk.text),
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
                },
            })
            .collect())
    }

    async fn progress(&self, job: &Job, progress: JobProgress) {
        if let Err(e) = self.catalog.update_job_progress(job.id, progress).await {
            tracing::warn!(job = %job.id, error = %e, "could not record job progress");
        }
    }
}

/// The workers, running until cancelled.
pub struct WorkerPool {
    handles: Vec<JoinHandle<()>>,
    cancel: CancellationToken,
}

impl WorkerPool {
    /// Requeues interrupted jobs, then starts `workers` loops.
    pub async fn start(
        pipeline: Arc<Pipeline>,
        signals: JobSignals,
        workers: usize,
    ) -> Result<Self, crate::catalog::CatalogError> {
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
            Ok(Some((job, document))) => {
                let started = Instant::now();
                tracing::info!(worker, job = %job.id, document = %document.id, attempt = job.attempts, "job started");
                let outcome = pipeline.run(&job, &document).await;
                match pipeline.catalog.finish_job(job.id, &outcome).await {
                    Ok(true) => {}
                    Ok(false) => {
                        // Deleted while we worked: take back the vectors we wrote.
                        if let Err(e) = pipeline.index.delete_document(&document.collection, document.id).await {
                            tracing::warn!(document = %document.id, error = %e, "could not remove vectors of a deleted document");
                        }
                    }
                    Err(e) => tracing::error!(job = %job.id, error = %e, "could not record job outcome"),
                }
                match &outcome {
                    JobOutcome::Succeeded { pages, chunks } => tracing::info!(
                        job = %job.id, document = %document.id, pages, chunks,
                        ms = started.elapsed().as_millis() as u64, "job succeeded"),
                    JobOutcome::Failed { reason } => tracing::warn!(
                        job = %job.id, document = %document.id, %reason, "job failed"),
                }
                signals.job_finished(job.id);
            }
            Ok(None) => signals.wait_for_work(Duration::from_secs(2)).await,
            Err(e) => {
                tracing::error!(worker, error = %e, "could not claim a job");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}
