//! The ingest job: extract, chunk, embed and index one document; its points
//! stay pending until it is ready.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

use tokio_util::sync::CancellationToken;

use super::job_error::{checkpoint, unless_cancelled};
use super::{CHUNKS_PER_STEP, JobError, Pipeline, chunk_points, embed};
use crate::catalog::JobOutcome;
use crate::domain::{Chunk, Document, Job, JobProgress, JobStage, PageSource};
use crate::embed::Embedder;
use crate::index::{ChunkPoint, IndexLayout};
use crate::ingest::extract;
use crate::store::{StoreError, find_collection};

/// A step's index write, started while the next step is embedded.
type Writing<'a> = Pin<Box<dyn Future<Output = Result<(), JobError>> + Send + 'a>>;

impl Pipeline {
    pub(super) async fn ingest(
        &self,
        job: &Job,
        document: &Document,
        cancel: &CancellationToken,
    ) -> Result<JobOutcome, JobError> {
        self.progress(job, JobProgress::at(JobStage::Extract, 0, 1)).await;
        let started = Instant::now();
        // Dropping the extraction kills its child process.
        let path = self.files.path(document.id);
        let extracted = unless_cancelled(cancel, self.extract_reporting(job, document, &path)).await?;
        let pages = extracted.pages.len() as u32;
        let page_sources = PageSource::runs(pages, &extracted.ocr_pages);
        if !extracted.notes.is_empty() {
            // Hidden sheets and slides: left out on purpose, said once.
            tracing::info!(document = %document.id, notes = ?extracted.notes, "parts of the document not indexed");
        }
        self.progress(
            job,
            JobProgress::at(JobStage::Extract, u64::from(pages), u64::from(pages)),
        )
        .await;
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
            chunker.chunk_in_steps(id, &extracted.pages, &extracted.geometry, CHUNKS_PER_STEP, |step| {
                sender.blocking_send(step).is_ok()
            });
        }));
        let mut chunks: Vec<Chunk> = Vec::new();
        let mut writing: Option<Writing<'_>> = None;
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
        Ok(JobOutcome::Ingested {
            pages,
            chunks: chunks.len() as u32,
            page_sources,
        })
    }

    /// Extracts the document's text, passing on the extraction's page progress
    /// (OCR of scanned pages) to the job as it comes.
    async fn extract_reporting(
        &self,
        job: &Job,
        document: &Document,
        path: &std::path::Path,
    ) -> Result<extract::ExtractedText, extract::ExtractError> {
        let (progress, mut reports) = tokio::sync::watch::channel((0, 1));
        let extraction = self.extractor.extract_file(path, document.content_type, &progress);
        tokio::pin!(extraction);
        loop {
            tokio::select! {
                result = &mut extraction => return result,
                Ok(()) = reports.changed() => {
                    let (done, total) = *reports.borrow_and_update();
                    self.progress(job, JobProgress::at(JobStage::Extract, done, total)).await;
                }
            }
        }
    }

    /// Writes one step's points to the index, then reports the progress they make.
    async fn write(
        &self,
        job: &Job,
        document: &Document,
        points: Vec<ChunkPoint>,
        progress: JobProgress,
    ) -> Result<(), JobError> {
        self.index.upsert(&document.collection, points).await?;
        self.progress(job, progress).await;
        Ok(())
    }

    /// The embedder, when it is the one the collection's vectors come from. A
    /// collection made without dense vectors stays BM25-only; one made with another
    /// model must not get mixed vectors.
    async fn dense_embedder_for(&self, document: &Document) -> Result<Option<Arc<dyn Embedder>>, JobError> {
        let collection = match find_collection(self.catalog.as_ref(), &document.collection).await {
            Ok(collection) => collection,
            Err(StoreError::CollectionNotFound(name)) => {
                return Err(JobError::Failed(format!("collection {name} is gone")));
            }
            Err(StoreError::Catalog(e)) => return Err(e.into()),
            Err(StoreError::Index(e)) => return Err(e.into()),
        };
        let layout = IndexLayout {
            dense_dimension: collection.embedding_model.as_ref().map(|m| m.dimension),
        };
        self.index.ensure_collection(&collection.name, layout).await?;
        if let Some(mismatch) = collection.model_mismatch(self.embedder.as_ref().map(|e| e.model())) {
            return Err(mismatch.into());
        }
        match (&collection.embedding_model, &self.embedder) {
            (None, _) => Ok(None),
            (Some(stored), None) => {
                // BM25-only mode: the document is searchable by its terms; its dense
                // vectors are missing until it is re-indexed with the model.
                tracing::warn!(document = %document.id, model = %stored.name,
                    "no embedding model loaded: indexing this document for BM25 only");
                Ok(None)
            }
            (Some(_), Some(embedder)) => Ok(Some(Arc::clone(embedder))),
        }
    }
}
