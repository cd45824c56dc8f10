//! Accepting uploads: staged files judged, stored and written as documents
//! with queued jobs, or refused whole; waiting for them; retrying a failed job.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use tokio::sync::broadcast;
use utoipa::ToSchema;

use super::detect::Detected;
use super::staging::StagedFile;
use super::{FileStore, InFlight, JobSignals};
use crate::auth::Scope;
use crate::catalog::{Catalog, CatalogError, InsertOutcome};
use crate::config::UploadLimits;
use crate::domain::{
    CollectionName, ContentType, Document, DocumentId, DocumentStatus, EmbeddingModel, JobId, Metadata, ModelMismatch,
    NewDocument, QuotaExceeded, TenantQuota, TenantUsage,
};
use crate::store::{StoreError, errors_through_store, find_collection, find_job};

/// How long an upload waits for a place when `MAX_CONCURRENT_UPLOADS` are
/// being received.
const UPLOAD_PLACE_WAIT: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum AcceptError {
    #[error(transparent)]
    ModelMismatch(#[from] Box<ModelMismatch>),
    #[error("the request has no `file` part")]
    NoFile,
    #[error("{filename:?} is empty")]
    EmptyFile { filename: String },
    #[error("{filename:?} looks like {detected}, which is not supported")]
    UnsupportedMediaType { filename: String, detected: String },
    #[error("the ingestion queue is full ({queued} jobs waiting, INGEST_QUEUE_MAX {limit}); retry later")]
    QueueFull { queued: u64, limit: u64 },
    #[error("{limit} uploads are being received (MAX_CONCURRENT_UPLOADS); retry in a moment")]
    TooManyUploads { limit: usize },
    #[error(transparent)]
    QuotaExceeded(#[from] QuotaExceeded),
    #[error("no job {0}")]
    JobNotFound(String),
    #[error("job {0} has not failed; only a failed job can be retried")]
    JobNotRetryable(String),
    #[error("storing an upload: {0}")]
    Storage(#[from] std::io::Error),
    #[error(transparent)]
    Store(#[from] StoreError),
}

errors_through_store!(AcceptError);

/// What an upload did with one file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum UploadStatus {
    Queued,
    Processing,
    Ready,
    Failed,
    /// The same bytes were already in the collection; `id` is that document.
    Duplicate,
}

impl From<DocumentStatus> for UploadStatus {
    fn from(status: DocumentStatus) -> Self {
        match status {
            DocumentStatus::Queued => Self::Queued,
            DocumentStatus::Processing => Self::Processing,
            DocumentStatus::Ready => Self::Ready,
            DocumentStatus::Failed => Self::Failed,
        }
    }
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct UploadedDocument {
    pub id: DocumentId,
    pub filename: String,
    pub status: UploadStatus,
    pub job_id: JobId,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Known once the document is processed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pages: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub chunks: Option<u32>,
}

impl UploadedDocument {
    fn of(document: Document, status: UploadStatus) -> Self {
        Self {
            id: document.id,
            filename: document.filename,
            status,
            job_id: document.job_id,
            error: document.error,
            pages: document.pages,
            chunks: document.chunks,
        }
    }
}

/// Accepts uploads: turns staged files into documents with queued jobs. Built
/// once by the app from its parts.
pub struct Ingestor {
    pub catalog: Arc<dyn Catalog>,
    pub files: FileStore,
    pub signals: JobSignals,
    pub in_flight: Arc<InFlight>,
    /// The server's model: a collection filled by another takes no uploads.
    pub embedding_model: Option<EmbeddingModel>,
    /// More queued jobs than this and uploads are refused with 429.
    pub max_queued_jobs: u64,
    /// How long `?wait=true` waits.
    pub wait_timeout: Duration,
    /// What each tenant may store.
    pub quota: TenantQuota,
    /// Held from a quota check to the upload's last insert, so that two uploads
    /// cannot both pass it. Only taken when a quota is set.
    pub quota_lock: tokio::sync::Mutex<()>,
    /// How upload bodies are received.
    pub upload_limits: UploadLimits,
    /// One per upload being received (`MAX_CONCURRENT_UPLOADS`).
    pub upload_permits: Arc<tokio::sync::Semaphore>,
}

impl Ingestor {
    pub fn files(&self) -> &FileStore {
        &self.files
    }

    /// Refuses an upload to a tenant already at its quota, before its body is
    /// read; `accept` checks again with the files' sizes.
    /// A place among the uploads being received (each holds a staging file and
    /// its descriptor): a burst waits a moment for one, and if all stay taken
    /// the upload is refused with 503 rather than queued without bound.
    pub async fn upload_permit(&self) -> Result<tokio::sync::OwnedSemaphorePermit, AcceptError> {
        let place = Arc::clone(&self.upload_permits).acquire_owned();
        match tokio::time::timeout(UPLOAD_PLACE_WAIT, place).await {
            Ok(Ok(permit)) => Ok(permit),
            _ => Err(AcceptError::TooManyUploads {
                limit: self.upload_limits.max_concurrent,
            }),
        }
    }

    /// What can be judged before an upload's body is read: the collection
    /// exists and takes this server's model, the tenant has room for one more
    /// file, the queue has room for one more job.
    pub async fn check_before_reading(&self, collection: &CollectionName) -> Result<(), AcceptError> {
        let found = find_collection(self.catalog.as_ref(), collection).await?;
        if let Some(mismatch) = found.model_mismatch(self.embedding_model.as_ref()) {
            return Err(mismatch.into());
        }
        if !self.quota.is_unlimited() {
            let usage = self.catalog.tenant_usage(&collection.tenant()).await?;
            let smallest = TenantUsage { documents: 1, bytes: 1 };
            if let Some(exceeded) = self.quota.exceeded(usage, smallest) {
                return Err(exceeded.into());
            }
        }
        let queued = self.catalog.queued_jobs().await?;
        if queued >= self.max_queued_jobs {
            return Err(AcceptError::QueueFull {
                queued,
                limit: self.max_queued_jobs,
            });
        }
        Ok(())
    }

    /// Accepts every file or none: a file that can be judged bad now (empty, of an
    /// unsupported type) refuses the whole request and nothing is stored.
    pub async fn accept(
        &self,
        collection: &CollectionName,
        staged: Vec<StagedFile>,
        metadata: Metadata,
        access: Vec<String>,
    ) -> Result<Vec<UploadedDocument>, AcceptError> {
        // A collection being deleted takes no files; one that is not waits for
        // them to be stored, so its delete sees every document.
        let entered = self.in_flight.enter(collection);
        let _quota = match self.quota.is_unlimited() {
            true => None,
            false => Some(self.quota_lock.lock().await),
        };
        let verdict = match entered {
            Some(_) => self.judge(collection, &staged).await,
            None => Err(StoreError::CollectionNotFound(collection.to_string()).into()),
        };
        let content_types = match verdict {
            Ok(types) => types,
            Err(e) => {
                for file in &staged {
                    file.discard().await;
                }
                return Err(e);
            }
        };

        let mut accepted = Vec::with_capacity(staged.len());
        let mut staged = staged.into_iter();
        for (file, content_type) in staged.by_ref().zip(content_types) {
            match self
                .accept_one(collection, file, content_type, &metadata, &access)
                .await
            {
                Ok(document) => accepted.push(document),
                Err(e) => {
                    for rest in staged.by_ref() {
                        rest.discard().await;
                    }
                    return Err(e);
                }
            }
        }
        self.signals.work_available();
        Ok(accepted)
    }

    async fn judge(&self, collection: &CollectionName, staged: &[StagedFile]) -> Result<Vec<ContentType>, AcceptError> {
        let collection = find_collection(self.catalog.as_ref(), collection).await?;
        if let Some(mismatch) = collection.model_mismatch(self.embedding_model.as_ref()) {
            return Err(mismatch.into());
        }
        if staged.is_empty() {
            return Err(AcceptError::NoFile);
        }
        if !self.quota.is_unlimited() {
            let usage = self.catalog.tenant_usage(&collection.name.tenant()).await?;
            let incoming = TenantUsage {
                documents: staged.len() as u64,
                bytes: staged.iter().map(|file| file.bytes).sum(),
            };
            if let Some(exceeded) = self.quota.exceeded(usage, incoming) {
                return Err(exceeded.into());
            }
        }
        let queued = self.catalog.queued_jobs().await?;
        if queued + staged.len() as u64 > self.max_queued_jobs {
            return Err(AcceptError::QueueFull {
                queued,
                limit: self.max_queued_jobs,
            });
        }
        staged
            .iter()
            .map(|file| {
                if file.bytes == 0 {
                    return Err(AcceptError::EmptyFile {
                        filename: file.filename.clone(),
                    });
                }
                match file.detected {
                    Detected::Supported(content_type) => Ok(content_type),
                    Detected::Unsupported(detected) => Err(AcceptError::UnsupportedMediaType {
                        filename: file.filename.clone(),
                        detected: detected.to_string(),
                    }),
                    // Staging opens every container before it hands the file on.
                    Detected::Container(_) => Err(AcceptError::UnsupportedMediaType {
                        filename: file.filename.clone(),
                        detected: "a container that was not opened".to_string(),
                    }),
                }
            })
            .collect()
    }

    /// Stores the file under its document id, then writes the document and its job.
    /// The file is in place before the row exists, so a row never points at nothing.
    async fn accept_one(
        &self,
        collection: &CollectionName,
        file: StagedFile,
        content_type: ContentType,
        metadata: &Metadata,
        access: &[String],
    ) -> Result<UploadedDocument, AcceptError> {
        let new = NewDocument {
            id: DocumentId::new(),
            job_id: JobId::new(),
            collection: collection.clone(),
            filename: file.filename.clone(),
            content_type,
            bytes: file.bytes,
            sha256: file.sha256.clone(),
            metadata: metadata.clone(),
            access: access.to_vec(),
        };
        self.files.store(&file.path, new.id).await?;
        let outcome = match self.catalog.insert_document(&new).await {
            Ok(outcome) => outcome,
            Err(e) => {
                self.files.remove(new.id).await;
                return Err(match e {
                    // Deleted while the file came in.
                    CatalogError::MissingParent(_) => StoreError::CollectionNotFound(collection.to_string()).into(),
                    other => other.into(),
                });
            }
        };
        Ok(match outcome {
            InsertOutcome::Created(document) => {
                tracing::info!(document = %document.id, job = %document.job_id, filename = %document.filename,
                    content_type = %content_type, bytes = document.bytes, "document accepted");
                UploadedDocument::of(document, UploadStatus::Queued)
            }
            InsertOutcome::Duplicate(existing) => {
                self.files.remove(new.id).await;
                tracing::info!(document = %existing.id, filename = %new.filename, "duplicate upload");
                // The name this upload gave, the rest of the document that has the bytes.
                UploadedDocument {
                    filename: new.filename,
                    ..UploadedDocument::of(existing, UploadStatus::Duplicate)
                }
            }
        })
    }

    /// Queues a failed job the scope may see again: its document is processed anew.
    pub async fn retry(&self, scope: &Scope, id: JobId) -> Result<crate::domain::Job, AcceptError> {
        if find_job(self.catalog.as_ref(), scope, id).await?.is_none() {
            return Err(AcceptError::JobNotFound(id.to_string()));
        }
        match self.catalog.retry_job(id).await? {
            Some(job) => {
                self.signals.work_available();
                tracing::info!(job = %job.id, document = ?job.document_id, "job queued again");
                Ok(job)
            }
            None => match self.catalog.get_job(id).await? {
                Some(_) => Err(AcceptError::JobNotRetryable(id.to_string())),
                None => Err(AcceptError::JobNotFound(id.to_string())),
            },
        }
    }

    /// Waits until every accepted document is ready or failed (or the wait times
    /// out) and reports each one's status then. Duplicates keep their status.
    pub async fn wait(
        &self,
        collection: &CollectionName,
        documents: Vec<UploadedDocument>,
    ) -> Result<Vec<UploadedDocument>, AcceptError> {
        // Subscribe before reading statuses, so no ending is missed in between.
        let mut finished = self.signals.subscribe();
        let deadline = tokio::time::Instant::now() + self.wait_timeout;
        let mut pending: HashMap<DocumentId, usize> = documents
            .iter()
            .enumerate()
            .filter(|(_, d)| d.status != UploadStatus::Duplicate)
            .map(|(i, d)| (d.id, i))
            .collect();
        let mut documents = documents;
        loop {
            let ids: Vec<DocumentId> = pending.keys().copied().collect();
            for id in ids {
                let Some(document) = self.catalog.get_document(collection, id).await? else {
                    pending.remove(&id);
                    continue;
                };
                if document.status.is_final() {
                    let slot = &mut documents[pending[&id]];
                    slot.status = document.status.into();
                    slot.error = document.error;
                    slot.pages = document.pages;
                    slot.chunks = document.chunks;
                    pending.remove(&id);
                }
            }
            if pending.is_empty() {
                return Ok(documents);
            }
            match tokio::time::timeout_at(deadline, finished.recv()).await {
                Err(_) => {
                    // Out of patience: report where each document is now.
                    for (&id, &i) in &pending {
                        if let Some(document) = self.catalog.get_document(collection, id).await? {
                            documents[i].status = document.status.into();
                        }
                    }
                    return Ok(documents);
                }
                Ok(Ok(_)) | Ok(Err(broadcast::error::RecvError::Lagged(_))) => {}
                Ok(Err(broadcast::error::RecvError::Closed)) => return Ok(documents),
            }
        }
    }
}
