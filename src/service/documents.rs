//! Reading, updating and deleting documents, and reading their jobs. A document
//! the caller's principals may not read is "not found", as one that does not exist.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::auth::{Scope, parse_principal};
use crate::catalog::{Catalog, DocumentCursor, DocumentQuery};
use crate::domain::{CollectionName, Document, DocumentId, DocumentStatus, Job, JobId, Metadata, Readers, page_text};
use crate::index::VectorIndex;
use crate::ingest::{FileStore, HoldTarget, InFlight};
use crate::store::{StoreError, errors_through_store, find_collection, find_job};

#[derive(Debug, thiserror::Error)]
pub enum DocumentsError {
    #[error("no document {0} in this collection")]
    DocumentNotFound(String),
    #[error("no job {0}")]
    JobNotFound(String),
    #[error("{0}")]
    Invalid(String),
    #[error("document {0} is not ready (still being processed, or failed)")]
    NotReady(String),
    #[error("no page {page}: the document has {pages}")]
    PageNotFound { page: u32, pages: u32 },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The most principals a document's `access` may name.
pub const MAX_ACCESS: usize = 100;

/// A document's `access` as sent: a list of principals, checked.
pub fn parse_access(principals: &[String]) -> Result<Vec<String>, String> {
    if principals.len() > MAX_ACCESS {
        return Err(format!("access: at most {MAX_ACCESS} principals"));
    }
    let mut access = principals
        .iter()
        .map(|p| parse_principal(p).map_err(|e| format!("access: {e}")))
        .collect::<Result<Vec<_>, _>>()?;
    access.sort();
    access.dedup();
    Ok(access)
}

/// `PATCH …/documents/{id}`: what to change; what is absent stays.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(min_properties = 1)]
pub struct UpdateDocument {
    /// Principals who may read it (`user:<id>`, `group:<id>`); `[]`: everyone of the tenant.
    #[schema(value_type = Option<Vec<crate::domain::Principal>>)]
    pub access: Option<Vec<String>>,
    /// Replaces its metadata (a JSON object).
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<serde_json::Value>,
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

/// One page's text.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PageText {
    pub document_id: DocumentId,
    pub filename: String,
    /// 1-based.
    pub page: u32,
    /// The document's page count.
    pub pages: u32,
    pub text: String,
}

/// A document's file, open, with what is needed to serve it.
pub struct StoredFile {
    pub document: Document,
    pub file: std::fs::File,
    pub path: std::path::PathBuf,
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

    /// A page of the documents `readers` may read (one they may not is left
    /// out, so a page may hold fewer than `limit`; `next_cursor` still goes on).
    pub async fn list(
        &self,
        collection: &CollectionName,
        request: ListDocuments,
        readers: &Readers,
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
            documents: page
                .documents
                .into_iter()
                .filter(|document| readers.may_read(&document.access))
                .collect(),
            next_cursor: page.next.map(|c| c.encode()),
        })
    }

    pub async fn get(
        &self,
        collection: &CollectionName,
        id: DocumentId,
        readers: &Readers,
    ) -> Result<Document, DocumentsError> {
        find_collection(self.catalog.as_ref(), collection).await?;
        self.catalog
            .get_document(collection, id)
            .await?
            .filter(|document| readers.may_read(&document.access))
            .ok_or_else(|| DocumentsError::DocumentNotFound(id.to_string()))
    }

    /// The text of one page (slide, sheet) of a ready document, put back
    /// together from its chunks.
    pub async fn page(
        &self,
        collection: &CollectionName,
        id: DocumentId,
        page: u32,
        readers: &Readers,
    ) -> Result<PageText, DocumentsError> {
        let document = self.get(collection, id, readers).await?;
        if document.status != DocumentStatus::Ready {
            return Err(DocumentsError::NotReady(id.to_string()));
        }
        let pages = document.pages.unwrap_or(0);
        if !(1..=pages).contains(&page) {
            return Err(DocumentsError::PageNotFound { page, pages });
        }
        let chunks = self.catalog.chunks_of(id).await?;
        Ok(PageText {
            document_id: id,
            filename: document.filename,
            page,
            pages,
            // A page without text (a blank or unread one) has none.
            text: page_text(&chunks, page).unwrap_or_default(),
        })
    }

    /// The file a document was made from, as uploaded, opened for reading:
    /// whoever may read the document may read it, whatever its status.
    pub async fn file(
        &self,
        collection: &CollectionName,
        id: DocumentId,
        readers: &Readers,
    ) -> Result<StoredFile, DocumentsError> {
        let document = self.get(collection, id, readers).await?;
        // Gone when a delete ran between the lookup and here: as gone as the document.
        let file = tokio::fs::File::open(self.files.path(id))
            .await
            .map_err(|_| DocumentsError::DocumentNotFound(id.to_string()))?;
        Ok(StoredFile {
            document,
            file: file.into_std().await,
            path: self.files.path(id),
        })
    }

    /// Changes a document's `access` and/or `metadata`: in the catalog, then on
    /// its points in the index (no re-embedding), in effect for the next search.
    pub async fn update(
        &self,
        collection: &CollectionName,
        id: DocumentId,
        request: UpdateDocument,
        readers: &Readers,
    ) -> Result<Document, DocumentsError> {
        let access = request
            .access
            .as_deref()
            .map(parse_access)
            .transpose()
            .map_err(DocumentsError::Invalid)?;
        let metadata = request
            .metadata
            .map(|value| Metadata::parse(value.to_string().as_bytes()))
            .transpose()
            .map_err(|e| DocumentsError::Invalid(format!("metadata: {e}")))?;
        if access.is_none() && metadata.is_none() {
            return Err(DocumentsError::Invalid("send `access`, `metadata` or both".into()));
        }
        let current = self.get(collection, id, readers).await?;
        // Its points are still being written, with what the job read.
        if matches!(current.status, DocumentStatus::Queued | DocumentStatus::Processing) {
            return Err(DocumentsError::NotReady(id.to_string()));
        }
        let updated = self
            .catalog
            .update_document(collection, id, access.as_deref(), metadata.as_ref())
            .await?
            .ok_or_else(|| DocumentsError::DocumentNotFound(id.to_string()))?;
        if updated.status == DocumentStatus::Ready {
            self.index
                .set_document_payload(collection, id, &updated.access, &updated.metadata)
                .await?;
        }
        tracing::info!(document = %id, %collection, "document access or metadata changed");
        Ok(updated)
    }

    /// Stops the document's job and waits until it lets go; then the vectors go,
    /// then the row (with its chunks and job), then the file.
    pub async fn delete(
        &self,
        collection: &CollectionName,
        id: DocumentId,
        readers: &Readers,
    ) -> Result<(), DocumentsError> {
        self.get(collection, id, readers).await?;
        let _hold = self.in_flight.hold(HoldTarget::Document(id)).await;
        self.index.delete_document(collection, id).await?;
        if !self.catalog.delete_document(collection, id).await? {
            return Err(DocumentsError::DocumentNotFound(id.to_string()));
        }
        self.files.remove(id).await;
        tracing::info!(document = %id, %collection, "document deleted");
        Ok(())
    }

    /// A job the scope may see (`store::find_job`).
    pub async fn job(&self, scope: &Scope, id: JobId) -> Result<Job, DocumentsError> {
        find_job(self.catalog.as_ref(), scope, id)
            .await?
            .ok_or_else(|| DocumentsError::JobNotFound(id.to_string()))
    }
}
