//! The re-index job: every ready document's chunks, as the catalog keeps them,
//! embedded again into a fresh generation of the collection's index, swapped in
//! when complete.

use tokio_util::sync::CancellationToken;

use super::job_error::{checkpoint, unless_cancelled};
use super::{CHUNKS_PER_STEP, JobError, Pipeline, chunk_points, embed};
use crate::catalog::{Catalog, CatalogError, DocumentQuery};
use crate::domain::{Collection, CollectionName, Document, DocumentStatus, EmbeddingModel, Job, JobProgress, JobStage};
use crate::index::IndexLayout;

/// Documents read from the catalog per page.
const PAGE: u32 = 500;

impl Pipeline {
    /// Re-embeds every ready document's chunks, as the catalog stores them, into a
    /// fresh generation of the collection's index and swaps it in. Searches use the
    /// old generation until the swap.
    pub(super) async fn reindex(
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
        let documents = ready_documents(self.catalog.as_ref(), &collection.name).await?;
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
            self.progress(job, JobProgress::at(JobStage::Embed, done as u64 + 1, total))
                .await;
        }
        checkpoint(cancel)?;
        // A document whose access or metadata changed (PATCH) after the list
        // above was read was copied with the old ones: set them again, on both
        // generations, before the swap (a revoked reader must not come back with
        // it). A change from now on finds its points in the new generation.
        let copied: std::collections::HashMap<_, _> = documents.iter().map(|d| (d.id, d)).collect();
        for now in ready_documents(self.catalog.as_ref(), &collection.name).await? {
            if let Some(then) = copied.get(&now.id)
                && (then.access != now.access || then.metadata != now.metadata)
            {
                self.index
                    .set_document_payload(&collection.name, now.id, &now.access, &now.metadata)
                    .await?;
            }
        }
        self.index.finish_rebuild(&rebuild).await?;
        // A document deleted while it was being copied may have been written into
        // the new generation after its delete: take such points back.
        let remaining: std::collections::HashSet<_> =
            self.catalog.document_ids(&collection.name).await?.into_iter().collect();
        for document in documents.iter().filter(|d| !remaining.contains(&d.id)) {
            self.index.delete_document(&collection.name, document.id).await?;
        }
        tracing::info!(job = %job.id, collection = %collection.name, documents = total, "re-index swapped in");
        Ok(Some(model))
    }
}

/// Every ready document of the collection, page by page.
async fn ready_documents(catalog: &dyn Catalog, collection: &CollectionName) -> Result<Vec<Document>, CatalogError> {
    let mut documents = Vec::new();
    let mut after = None;
    loop {
        let page = catalog
            .list_documents(
                collection,
                &DocumentQuery {
                    status: Some(DocumentStatus::Ready),
                    limit: PAGE,
                    after,
                },
            )
            .await?;
        documents.extend(page.documents);
        match page.next {
            Some(next) => after = Some(next),
            None => return Ok(documents),
        }
    }
}
