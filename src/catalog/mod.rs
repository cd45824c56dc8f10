//! The catalog: collections, documents, chunks and jobs, the durable truth of
//! what the server holds. One implementation (`sql.rs`) on SQLite (the embedded
//! default) or Postgres; what differs between the two is `dialect.rs`.

mod connect;
mod dialect;
mod retrying;
mod sql;

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, SecondsFormat, Utc};

pub use connect::connect;
pub use sql::SqlCatalog;

use crate::domain::{
    ApiKey, AttemptOutcome, AuditEntry, AuditQuery, Chunk, Collection, CollectionName, Conversation, ConversationId,
    Delivery, Document, DocumentId, DocumentStatus, EmbeddingModel, Job, JobId, JobProgress, KeyId, Metadata,
    NewApiKey, NewDocument, NewTurn, PageSource, Tenant, TenantName, TenantUsage, Turn, Webhook, WebhookId,
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
    /// A row refers to one that is gone (its collection or document was deleted
    /// meanwhile): a lost race, not an outage.
    #[error("what this refers to was deleted: {0}")]
    MissingParent(String),
    /// The database broke a deadlock (or a serialization conflict) by rolling
    /// this transaction back: running it again is safe.
    #[error("transaction conflict: {0}")]
    Conflict(String),
    /// The database refused the statement for what it holds (a constraint, a
    /// value it cannot store): running it again fails the same way, so this is
    /// neither an outage nor worth a retry.
    #[error("the database refused the write: {0}")]
    Rejected(String),
}

impl From<sqlx::Error> for CatalogError {
    fn from(err: sqlx::Error) -> Self {
        match &err {
            sqlx::Error::Database(db) if db.is_unique_violation() => Self::AlreadyExists,
            sqlx::Error::Database(db) if db.is_foreign_key_violation() => Self::MissingParent(db.message().to_string()),
            // Postgres: deadlock_detected, serialization_failure; SQLite: busy (a
            // write lock not had within the busy timeout, or a stale snapshot).
            sqlx::Error::Database(db)
                if matches!(db.code().as_deref(), Some("40P01" | "40001" | "5" | "517" | "261")) =>
            {
                Self::Conflict(db.message().to_string())
            }
            sqlx::Error::Database(db) if is_permanent(db.code().as_deref()) => Self::Rejected(db.message().to_string()),
            sqlx::Error::ColumnDecode { .. } | sqlx::Error::Decode(_) => Self::Corrupt(err.to_string()),
            // Connection, pool, timeout, I/O, and any database error not known to
            // be permanent: an outage, retried later.
            _ => Self::Unavailable(err.to_string()),
        }
    }
}

/// Whether a database error code means the statement can never succeed as it
/// is. Only codes known to be about the data are listed; anything else (a lock,
/// a full disk, I/O) stays an outage so that its job is retried, not lost.
fn is_permanent(code: Option<&str>) -> bool {
    let Some(code) = code else { return false };
    // Postgres SQLSTATEs are five characters, whose class is the first two: 22
    // data exception (NUL in text, out of range), 23 integrity constraint, 54
    // program limit exceeded (a row too large).
    if code.len() == 5 {
        return matches!(code.get(..2), Some("22" | "23" | "54"));
    }
    // SQLite result codes (below 10,000), extended ones carrying the primary in
    // their low byte: 18 TOOBIG, 19 CONSTRAINT, 20 MISMATCH, 25 RANGE.
    code.parse::<i32>().is_ok_and(|c| matches!(c & 0xff, 18 | 19 | 20 | 25))
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
    pub created_at: DateTime<Utc>,
    pub id: DocumentId,
}

impl DocumentCursor {
    /// Opaque to clients: hex of `created_at|id`.
    pub fn encode(&self) -> String {
        hex::encode(format!("{}|{}", timestamp(self.created_at), self.id))
    }

    pub fn decode(raw: &str) -> Option<Self> {
        let bytes = hex::decode(raw).ok()?;
        let text = String::from_utf8(bytes).ok()?;
        let (created_at, id) = text.split_once('|')?;
        Some(Self {
            created_at: DateTime::parse_from_rfc3339(created_at).ok()?.with_timezone(&Utc),
            id: id.parse().ok()?,
        })
    }
}

/// Timestamps are kept to the microsecond (Postgres' precision) in one fixed
/// RFC 3339 form, so that SQLite's text columns sort like Postgres' timestamps.
pub(crate) fn timestamp(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// Now, cut to the microsecond, so that what is written reads back equal.
pub(crate) fn now() -> DateTime<Utc> {
    let at = Utc::now();
    DateTime::from_timestamp_micros(at.timestamp_micros()).unwrap_or(at)
}

#[derive(Debug, Clone)]
pub struct DocumentPage {
    pub documents: Vec<Document>,
    pub next: Option<DocumentCursor>,
}

impl DocumentPage {
    /// A page from up to `limit + 1` rows: the extra one says there is a next page.
    pub(crate) fn of(mut documents: Vec<Document>, limit: u32) -> Self {
        let next = if documents.len() > limit as usize {
            documents.truncate(limit as usize);
            documents.last().map(|d| DocumentCursor {
                created_at: d.created_at,
                id: d.id,
            })
        } else {
            None
        };
        Self { documents, next }
    }
}

/// How a job ended.
#[derive(Debug, Clone)]
pub enum JobOutcome {
    /// An ingest job: its document is ready.
    /// `page_sources`: how each page's text was got.
    Ingested {
        pages: u32,
        chunks: u32,
        page_sources: Vec<PageSource>,
    },
    /// A re-index: the collection's vectors now come from `model` (`None`: BM25 alone).
    Reindexed { model: Option<EmbeddingModel> },
    /// For good: the reason is kept on the job (and on its document).
    Failed { reason: String },
    /// Something it needs is down for now: queued again, to run after `after`.
    Retry { reason: String, after: Duration },
}

/// A job a worker took, with what it works on.
#[derive(Debug, Clone)]
pub enum ClaimedJob {
    Ingest { job: Job, document: Document },
    Reindex { job: Job, collection: Collection },
}

impl ClaimedJob {
    pub fn job(&self) -> &Job {
        match self {
            Self::Ingest { job, .. } | Self::Reindex { job, .. } => job,
        }
    }
}

#[async_trait]
pub trait Catalog: Send + Sync {
    /// A cheap round trip, for readiness.
    async fn ping(&self) -> Result<(), CatalogError>;
    /// Closes the connections (at shutdown).
    async fn close(&self);

    async fn create_collection(&self, new: &NewCollection) -> Result<Collection, CatalogError>;
    async fn get_collection(&self, name: &CollectionName) -> Result<Option<Collection>, CatalogError>;
    /// A tenant's collections, by name.
    async fn list_collections(&self, tenant: &TenantName) -> Result<Vec<Collection>, CatalogError>;
    /// Removes the collection with its documents, chunks and jobs.
    async fn delete_collection(&self, name: &CollectionName) -> Result<bool, CatalogError>;

    /// Inserts the document and its queued job in one transaction, unless the same
    /// content is already in the collection.
    async fn insert_document(&self, new: &NewDocument) -> Result<InsertOutcome, CatalogError>;
    async fn get_document(&self, collection: &CollectionName, id: DocumentId)
    -> Result<Option<Document>, CatalogError>;
    async fn list_documents(
        &self,
        collection: &CollectionName,
        query: &DocumentQuery,
    ) -> Result<DocumentPage, CatalogError>;
    async fn document_ids(&self, collection: &CollectionName) -> Result<Vec<DocumentId>, CatalogError>;
    /// Whether a document of this id exists, in any collection of any tenant.
    async fn has_document(&self, id: DocumentId) -> Result<bool, CatalogError>;
    async fn delete_document(&self, collection: &CollectionName, id: DocumentId) -> Result<bool, CatalogError>;
    /// Changes a document's `access` and/or `metadata` (what is `None` stays).
    async fn update_document(
        &self,
        collection: &CollectionName,
        id: DocumentId,
        access: Option<&[String]>,
        metadata: Option<&Metadata>,
    ) -> Result<Option<Document>, CatalogError>;

    /// Replaces every chunk of a document (a rerun writes the same rows again).
    async fn replace_chunks(&self, document: DocumentId, chunks: &[Chunk]) -> Result<(), CatalogError>;
    async fn chunks_of(&self, document: DocumentId) -> Result<Vec<Chunk>, CatalogError>;

    async fn get_job(&self, id: JobId) -> Result<Option<Job>, CatalogError>;
    /// Queues a re-index of the collection, or returns the one already queued or
    /// running (asking twice is one job).
    async fn enqueue_reindex(&self, collection: &CollectionName) -> Result<Job, CatalogError>;
    /// The collection's re-index that is queued or running, if any.
    async fn active_reindex(&self, collection: &CollectionName) -> Result<Option<Job>, CatalogError>;
    /// Takes the oldest queued job that may run now and marks it running (an ingest
    /// job's document becomes `processing`). A collection's re-index runs alone: it
    /// waits for that collection's running ingest jobs, and ingest jobs queued after
    /// it wait for it.
    async fn claim_next_job(&self) -> Result<Option<ClaimedJob>, CatalogError>;
    async fn update_job_progress(&self, id: JobId, progress: JobProgress) -> Result<(), CatalogError>;
    /// Ends a job and applies its outcome (the document's final status, the
    /// collection's new model) in one transaction. False when what it worked on
    /// was deleted meanwhile.
    async fn finish_job(&self, id: JobId, outcome: &JobOutcome) -> Result<bool, CatalogError>;
    /// Puts jobs a crash left `running` back in the queue; returns how many.
    async fn requeue_interrupted_jobs(&self) -> Result<u64, CatalogError>;
    /// Queues a failed job again (its document, if any, becomes `queued`); `None`
    /// when there is no such job or it has not failed.
    async fn retry_job(&self, id: JobId) -> Result<Option<Job>, CatalogError>;
    /// How many jobs wait in the queue (for back-pressure on uploads).
    async fn queued_jobs(&self) -> Result<u64, CatalogError>;
    /// The documents a tenant stores and their bytes (for its quota).
    async fn tenant_usage(&self, tenant: &TenantName) -> Result<TenantUsage, CatalogError>;

    /// Stores a new API key (the hash of its secret, never the secret).
    async fn create_key(&self, new: &NewApiKey) -> Result<ApiKey, CatalogError>;
    /// The key whose secret hashes to `hash`, revoked and expired ones included.
    async fn key_by_hash(&self, hash: &str) -> Result<Option<ApiKey>, CatalogError>;
    /// The keys of one tenant (`None`: of every tenant), oldest first.
    async fn list_keys(&self, tenant: Option<&TenantName>) -> Result<Vec<ApiKey>, CatalogError>;
    /// Marks the key revoked (kept as it was if it already is); false when there
    /// is no such key (in `tenant`, when given).
    async fn revoke_key(&self, tenant: Option<&TenantName>, id: KeyId, at: DateTime<Utc>)
    -> Result<bool, CatalogError>;
    /// Records when the key was last used.
    async fn touch_key(&self, id: KeyId, at: DateTime<Utc>) -> Result<(), CatalogError>;

    async fn create_tenant(&self, name: &TenantName) -> Result<Tenant, CatalogError>;
    async fn get_tenant(&self, name: &TenantName) -> Result<Option<Tenant>, CatalogError>;
    async fn list_tenants(&self) -> Result<Vec<Tenant>, CatalogError>;

    /// Appends entries to the audit log, in one transaction.
    async fn append_audit(&self, entries: &[AuditEntry]) -> Result<(), CatalogError>;
    /// Entries by time, oldest first, up to `query.limit`.
    async fn audit_entries(&self, query: &AuditQuery) -> Result<Vec<AuditEntry>, CatalogError>;
    /// Removes entries older than `before`; how many.
    async fn prune_audit(&self, before: DateTime<Utc>) -> Result<u64, CatalogError>;

    async fn create_conversation(&self, conversation: &Conversation) -> Result<(), CatalogError>;
    async fn get_conversation(&self, id: ConversationId) -> Result<Option<Conversation>, CatalogError>;
    /// Its turns, oldest first.
    async fn conversation_turns(&self, id: ConversationId) -> Result<Vec<Turn>, CatalogError>;
    /// Appends a turn after the last one; `None` when the conversation is gone.
    async fn append_turn(&self, id: ConversationId, turn: &NewTurn) -> Result<Option<Turn>, CatalogError>;
    async fn delete_conversation(&self, id: ConversationId) -> Result<bool, CatalogError>;

    async fn create_webhook(&self, webhook: &Webhook) -> Result<(), CatalogError>;
    /// A tenant's webhooks, oldest first.
    async fn list_webhooks(&self, tenant: &TenantName) -> Result<Vec<Webhook>, CatalogError>;
    async fn get_webhook(&self, id: WebhookId) -> Result<Option<Webhook>, CatalogError>;
    /// Removes the webhook (of `tenant`) with its deliveries; false when there is none.
    async fn delete_webhook(&self, tenant: &TenantName, id: WebhookId) -> Result<bool, CatalogError>;
    /// A webhook's deliveries, newest first, up to `limit`.
    async fn webhook_deliveries(&self, id: WebhookId, limit: u32) -> Result<Vec<Delivery>, CatalogError>;
    /// Takes up to `limit` pending deliveries due at `now`, each with its
    /// webhook, and puts them out of reach until `lease_until` (so that another
    /// dispatcher does not send them too, and a crash mid-send retries them then).
    async fn claim_deliveries(
        &self,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<(Delivery, Webhook)>, CatalogError>;
    /// Records how an attempt went.
    async fn record_attempt(&self, id: uuid::Uuid, outcome: &AttemptOutcome) -> Result<(), CatalogError>;
}

/// The oldest queued job that may run now (see [`Catalog::claim_next_job`]):
/// `now` is the placeholder of the current time (`$1`).
pub(crate) fn claimable_job_sql(now: &str) -> String {
    format!(
        "SELECT j.id FROM jobs j \
         WHERE j.status = 'queued' AND (j.run_after IS NULL OR j.run_after <= {now}) \
         AND NOT EXISTS (SELECT 1 FROM jobs o WHERE o.collection = j.collection AND o.id <> j.id AND ( \
             (j.kind = 'ingest' AND o.kind = 'reindex' AND (o.status = 'running' \
                 OR (o.status = 'queued' AND (o.created_at, o.id) < (j.created_at, j.id)))) \
             OR (j.kind = 'reindex' AND o.status = 'running'))) \
         ORDER BY j.created_at, j.id LIMIT 1"
    )
}

/// The status, error and progress a job ends with.
pub(crate) fn job_ending(outcome: &JobOutcome) -> (crate::domain::JobStatus, Option<String>) {
    use crate::domain::JobStatus;
    match outcome {
        JobOutcome::Ingested { .. } | JobOutcome::Reindexed { .. } => (JobStatus::Succeeded, None),
        JobOutcome::Failed { reason } => (JobStatus::Failed, Some(reason.clone())),
        JobOutcome::Retry { reason, .. } => (JobStatus::Queued, Some(reason.clone())),
    }
}
