//! Reading and deleting documents, and reading their jobs.

use std::sync::Arc;

use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

use crate::catalog::{Catalog, DocumentCursor, DocumentQuery};
use crate::domain::{CollectionName, Document, DocumentId, DocumentStatus, Job, JobId};
use crate::index::VectorIndex;
use crate::ingest::{FileStore, HoldTarget, InFlight};
use crate::store::{StoreError, errors_through_store, find_collection};

#[derive(Debug, thiserror::Error)]
pub enum DocumentsError {
    #[error("no document {0} in this collection")]
    DocumentNotFound(String),
    #[error("no job {0}")]
    JobNotFound(String),
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

errors_through_store!(DocumentsError);

pub const DEFAULT_PAGE_SIZE: u32 = 50;
pub const MAX_PAGE_SIZE: u32 = 500;

#[derive(Debug, Clone, Deserialize, IntoParams, ToSchema)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListDocuments {
    /// Page size, 1 to 500 (default 50).
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// Only documents in this status.
    pub status: Option<DocumentStatus>,
}

pub struct DocumentsPage {
    pub documents: Vec<Document>,
    pub next_cursor: Option<String>,
}

pub struct Documents {
    catalog: Arc<dyn Catalog>,
    index: Arc<dyn VectorIndex>,
    files: FileStore,
    in_flight: Arc<InFlight>,
}

impl Documents {
    pub fn new(
        catalog: Arc<dyn Catalog>,
        index: Arc<dyn VectorIndex>,
        files: FileStore,
        in_flight: Arc<InFlight>,
    ) -> Self {
        Self {
            catalog,
            index,
            files,
            in_flight,
        }
    }

    pub async fn list(
        &self,
        collection: &CollectionName,
        request: ListDocuments,
    ) -> Result<DocumentsPage, DocumentsError> {
        find_collection(self.catalog.as_ref(), collection).await?;
        let limit = request.limit.unwrap_or(DEFAULT_PAGE_SIZE);
        if !(1..=MAX_PAGE_SIZE).contains(&limit) {
            return Err(DocumentsError::Invalid(format!(
                "limit must be between 1 and {MAX_PAGE_SIZE}, got {limit}"
            )));
        }
        let after = match request.cursor.as_deref() {
            None | Some("") => None,
            Some(raw) => Some(
                DocumentCursor::decode(raw)
                    .ok_or_else(|| DocumentsError::Invalid("cursor is not one this server gave out".into()))?,
            ),
        };
        let page = self
            .catalog
            .list_documents(
                collection,
                &DocumentQuery {
                    status: request.status,
                    limit,
                    after,
                },
            )
            .await?;
        Ok(DocumentsPage {
            documents: page.documents,
            next_cursor: page.next.map(|c| c.encode()),
        })
    }

    pub async fn get(&self, collection: &CollectionName, id: DocumentId) -> Result<Document, DocumentsError> {
        find_collection(self.catalog.as_ref(), collection).await?;
        self.catalog
            .get_document(collection, id)
            .await?
            .ok_or_else(|| DocumentsError::DocumentNotFound(id.to_string()))
    }

    /// Stops the document's job and waits until it lets go; then the vectors go,
    /// then the row (with its chunks and job), then the file.
    pub async fn delete(&self, collection: &CollectionName, id: DocumentId) -> Result<(), DocumentsError> {
        self.get(collection, id).await?;
        let _hold = self.in_flight.hold(HoldTarget::Document(id)).await;
        self.index.delete_document(collection, id).await?;
        if !self.catalog.delete_document(collection, id).await? {
            return Err(DocumentsError::DocumentNotFound(id.to_string()));
        }
        self.files.remove(id).await;
        tracing::info!(document = %id, %collection, "document deleted");
        Ok(())
    }

    pub async fn job(&self, id: JobId) -> Result<Job, DocumentsError> {
        self.catalog
            .get_job(id)
            .await?
            .ok_or_else(|| DocumentsError::JobNotFound(id.to_string()))
    }
}
