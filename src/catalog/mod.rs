//! The catalog: collections, documents, chunks and jobs, the durable truth of
//! what the server holds. SQLite now; Postgres slots in behind the same trait.

mod sqlite;

use async_trait::async_trait;

pub use sqlite::SqliteCatalog;

use crate::domain::{
    Chunk, Collection, CollectionName, Document, DocumentId, DocumentStatus, EmbeddingModel, Job,
    JobId, JobProgress, NewDocument,
};

#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("already exists")]
    AlreadyExists,
    #[error("catalog unavailable: {0}")]
    Unavailable(String),
    #[error("catalog holds a value it cannot read: {0}")]
    Corrupt(String),
    #[error("catalog migration failed: {0}")]
    Migration(String),
}

impl From<sqlx::Error> for CatalogError {
    fn from(err: sqlx::Error) -> Self {
        match &err {
            sqlx::Error::Database(db) if db.is_unique_violation() => Self::AlreadyExists,
            sqlx::Error::ColumnDecode { .. } | sqlx::Error::Decode(_) => Self::Corrupt(err.to_string()),
            _ => Self::Unavailable(err.to_string()),
        }
    }
}

#[derive(Debug, Clone)]
pub struct NewCollection {
    pub name: CollectionName,
    pub description: Option<String>,
    pub embedding_model: Option<EmbeddingModel>,
}

/// What inserting an uploaded document did.
#[derive(Debug, Clone)]
pub enum InsertOutcome {
    Created(Document),
    /// The same bytes are already in the collection: this is that document.
    Duplicate(Document),
}

#[derive(Debug, Clone, Default)]
pub struct DocumentQuery {
    pub status: Option<DocumentStatus>,
    pub limit: u32,
    pub after: Option<DocumentCursor>,
}

/// Position in a document listing: documents are listed oldest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DocumentCursor {
    pub created_at: String,
    pub id: DocumentId,
}

impl DocumentCursor {
    /// Opaque to clients: hex of `created_at|id`.
    pub fn encode(&self) -> String {
        hex::encode(format!("{}|{}", self.created_at, self.id))
    }

    pub fn decode(raw: &str) -> Option<Self> {
        let bytes = hex::decode(raw).ok()?;
        let text = String::from_utf8(bytes).ok()?;
        let (created_at, id) = text.split_once('|')?;
        Some(Self {
            created_at: created_at.to_string(),
            id: id.parse().ok()?,
        })
    }
}

#[derive(Debug, Clone)]
pub struct DocumentPage {
    pub documents: Vec<Document>,
    pub next: Option<DocumentCursor>,
}

/// How a job ended, for its document.
#[derive(Debug, Clone)]
pub enum JobOutcome {
    Succeeded { pages: u32, chunks: u32 },
    Failed { reason: String },
}

#[async_trait]
pub trait Catalog: Send + Sync {
    /// A cheap round trip, for readiness.
    async fn ping(&self) -> Result<(), CatalogError>;

    async fn create_collection(&self, new: &NewCollection) -> Result<Collection, CatalogError>;
    async fn get_collection(&self, name: &CollectionName) -> Result<Option<Collection>, CatalogError>;
    async fn list_collections(&self) -> Result<Vec<Collection>, CatalogError>;
    /// Removes the collection with its documents, chunks and jobs.
    async fn delete_collection(&self, name: &CollectionName) -> Result<bool, CatalogError>;

    /// Inserts the document and its queued job in one transaction, unless the same
    /// content is already in the collection.
    async fn insert_document(&self, new: &NewDocument) -> Result<InsertOutcome, CatalogError>;
    async fn get_document(
        &self,
        collection: &CollectionName,
        id: DocumentId,
    ) -> Result<Option<Document>, CatalogError>;
    async fn list_documents(
        &self,
        collection: &CollectionName,
        query: &DocumentQuery,
    ) -> Result<DocumentPage, CatalogError>;
    async fn document_ids(&self, collection: &CollectionName) -> Result<Vec<DocumentId>, CatalogError>;
    async fn delete_document(
        &self,
        collection: &CollectionName,
        id: DocumentId,
    ) -> Result<bool, CatalogError>;

    /// Replaces every chunk of a document (a rerun writes the same rows again).
    async fn replace_chunks(&self, document: DocumentId, chunks: &[Chunk]) -> Result<(), CatalogError>;
    async fn chunks_of(&self, document: DocumentId) -> Result<Vec<Chunk>, CatalogError>;

    async fn get_job(&self, id: JobId) -> Result<Option<Job>, CatalogError>;
    /// Takes the oldest queued job, marks it running and its document processing.
    async fn claim_next_job(&self) -> Result<Option<(Job, Document)>, CatalogError>;
    async fn update_job_progress(&self, id: JobId, progress: JobProgress) -> Result<(), CatalogError>;
    /// Ends a job and sets its document's final status in one transaction. False when
    /// the document was deleted meanwhile.
    async fn finish_job(&self, id: JobId, outcome: &JobOutcome) -> Result<bool, CatalogError>;
    /// Puts jobs a crash left `running` back in the queue; returns how many.
    async fn requeue_interrupted_jobs(&self) -> Result<u64, CatalogError>;
}
