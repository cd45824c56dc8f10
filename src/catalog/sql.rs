//! The catalog, once, for SQLite and Postgres: every query and every row
//! mapping is written here; what differs between the two databases is in
//! `dialect.rs`.

use async_trait::async_trait;

use super::dialect::{Db, Row, Statement, Transaction};
use super::{
    Catalog, CatalogError, ClaimedJob, DocumentPage, DocumentQuery, InsertOutcome, JobOutcome, NewCollection,
    claimable_job_sql, job_ending, now,
};
use chrono::{DateTime, Utc};

use crate::domain::{
    ApiKey, AttemptOutcome, AuditEntry, AuditQuery, Chunk, Collection, CollectionName, Conversation, ConversationId,
    Delivery, DeliveryStatus, Document, DocumentId, DocumentStatus, EmbeddingModel, Job, JobId, JobKind, JobProgress,
    JobStatus, KeyId, Metadata, NewApiKey, NewDocument, NewTurn, Role, Tenant, TenantName, TenantUsage, Turn, Webhook,
    WebhookEvent, WebhookId,
};

const COLLECTION_COLUMNS: &str = "name, description, embed_model, embed_variant, embed_dim, created_at";
const DOCUMENT_COLUMNS: &str = "id, collection, filename, content_type, bytes, sha256, pages, chunks, \
     status, error, metadata, access, job_id, created_at, updated_at, page_sources";
const JOB_COLUMNS: &str =
    "id, kind, collection, document_id, status, progress, error, attempts, created_at, updated_at";
const KEY_COLUMNS: &str =
    "id, tenant, role, rights, collections, principals, name, expires_at, created_at, last_used_at, revoked_at";
const AUDIT_COLUMNS: &str = "id, at, request_id, tenant, key_id, acting_for, action, collection, document_id, status, \
     signed_in_user, query_text";
/// Arguments of one audit entry.
const AUDIT_ARGUMENTS: usize = 12;
/// Audit entries written per INSERT (12 arguments each).
const AUDIT_PER_INSERT: usize = 200;
const CONVERSATION_COLUMNS: &str = "id, collection, owner, created_at, updated_at";
const TURN_COLUMNS: &str = "seq, question, retrieval_query, answer, created_at";
/// Two turns appended to one conversation at once both want the next `seq`;
/// the one that loses takes the one after.
const TURN_APPEND_ATTEMPTS: u32 = 4;
const WEBHOOK_COLUMNS: &str = "id, tenant, url, events, secret, created_at";
const DELIVERY_COLUMNS: &str = "id, webhook_id, event, payload, status, attempts, last_status, last_error, \
                                next_attempt_at, delivered_at, created_at";
const CHUNK_COLUMNS: &str = "document_id, idx, page_start, page_end, char_start, char_end, text, page_breaks, layout";

/// Chunks written per INSERT: 9 arguments each, well under both databases'
/// limit on arguments per statement.
const CHUNKS_PER_INSERT: usize = 500;

pub struct SqlCatalog {
    db: Db,
}

impl SqlCatalog {
    /// Opens (creating if needed) a SQLite database and migrates it.
    pub async fn open_sqlite(url: &str, max_connections: u32) -> Result<Self, CatalogError> {
        Ok(Self {
            db: Db::open_sqlite(url, max_connections).await?,
        })
    }

    /// Connects to Postgres (one attempt), without migrating.
    pub async fn connect_postgres(url: &str, max_connections: u32) -> Result<Self, CatalogError> {
        Ok(Self {
            db: Db::connect_postgres(url, max_connections).await?,
        })
    }

    pub async fn migrate(&self) -> Result<(), CatalogError> {
        self.db.migrate().await
    }
}

fn collection_name(raw: String) -> Result<CollectionName, CatalogError> {
    CollectionName::from_key(&raw).map_err(|e| CatalogError::Corrupt(e.to_string()))
}

fn collection_from_row(row: &Row) -> Result<Collection, CatalogError> {
    let embedding_model = match (row.opt_text("embed_model")?, row.opt_count::<usize>("embed_dim")?) {
        (Some(name), Some(dimension)) => Some(EmbeddingModel {
            name,
            variant: row.opt_text("embed_variant")?.unwrap_or_default(),
            dimension,
        }),
        _ => None,
    };
    Ok(Collection {
        name: collection_name(row.text("name")?)?,
        description: row.opt_text("description")?,
        embedding_model,
        created_at: row.time("created_at")?,
    })
}

fn document_from_row(row: &Row) -> Result<Document, CatalogError> {
    Ok(Document {
        id: DocumentId(row.id("id")?),
        collection: collection_name(row.text("collection")?)?,
        filename: row.text("filename")?,
        content_type: row.parsed("content_type")?,
        bytes: row.count("bytes")?,
        sha256: row.text("sha256")?,
        pages: row.opt_count("pages")?,
        chunks: row.opt_count("chunks")?,
        status: row.parsed("status")?,
        error: row.opt_text("error")?,
        metadata: row.json("metadata")?,
        access: row.json("access")?,
        job_id: JobId(row.id("job_id")?),
        created_at: row.time("created_at")?,
        updated_at: row.time("updated_at")?,
        page_sources: row.json("page_sources")?,
    })
}

fn job_from_row(row: &Row) -> Result<Job, CatalogError> {
    Ok(Job {
        id: JobId(row.id("id")?),
        kind: row.parsed("kind")?,
        collection: collection_name(row.text("collection")?)?,
        document_id: row.opt_id("document_id")?.map(DocumentId),
        status: row.parsed("status")?,
        progress: row.json("progress")?,
        error: row.opt_text("error")?,
        attempts: row.count("attempts")?,
        created_at: row.time("created_at")?,
        updated_at: row.time("updated_at")?,
    })
}

fn key_from_row(row: &Row) -> Result<ApiKey, CatalogError> {
    let tenant = row.parsed::<TenantName>("tenant")?;
    // Stored as bare names; they are of the key's tenant.
    let collections = row
        .json::<Option<Vec<String>>>("collections")?
        .map(|names| {
            names
                .iter()
                .map(|name| CollectionName::in_tenant(&tenant, name).map_err(|e| CatalogError::Corrupt(e.to_string())))
                .collect::<Result<Vec<_>, _>>()
        })
        .transpose()?;
    Ok(ApiKey {
        id: KeyId(row.id("id")?),
        tenant,
        role: row.parsed("role")?,
        rights: row
            .opt_text("rights")?
            .map(|raw| raw.parse::<Role>().map_err(CatalogError::Corrupt))
            .transpose()?,
        collections,
        principals: row.json("principals")?,
        name: row.opt_text("name")?,
        expires_at: row.opt_time("expires_at")?,
        created_at: row.time("created_at")?,
        last_used_at: row.opt_time("last_used_at")?,
        revoked_at: row.opt_time("revoked_at")?,
    })
}

fn audit_from_row(row: &Row) -> Result<AuditEntry, CatalogError> {
    Ok(AuditEntry {
        id: row.id("id")?,
        at: row.time("at")?,
        request_id: row.text("request_id")?,
        tenant: row
            .opt_text("tenant")?
            .map(|raw| {
                raw.parse::<TenantName>()
                    .map_err(|e| CatalogError::Corrupt(e.to_string()))
            })
            .transpose()?,
        key_id: row.opt_id("key_id")?.map(KeyId),
        acting_for: row.json("acting_for")?,
        action: row.text("action")?,
        collection: row.opt_text("collection")?,
        document_id: row.opt_text("document_id")?,
        status: row.count("status")?,
        user: row.opt_text("signed_in_user")?,
        query: row.opt_text("query_text")?,
    })
}

/// `($1, …, $n), ($n+1, …)`: placeholders for `rows` rows of `columns` arguments.
fn value_rows(rows: usize, columns: usize) -> String {
    (0..rows)
        .map(|i| {
            let first = i * columns + 1;
            let placeholders: Vec<String> = (first..first + columns).map(|n| format!("${n}")).collect();
            format!("({})", placeholders.join(", "))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn chunk_from_row(row: &Row) -> Result<Chunk, CatalogError> {
    Ok(Chunk {
        document_id: DocumentId(row.id("document_id")?),
        index: row.count("idx")?,
        page_start: row.count("page_start")?,
        page_end: row.count("page_end")?,
        char_start: row.count("char_start")?,
        char_end: row.count("char_end")?,
        text: row.text("text")?,
        page_breaks: row.json("page_breaks")?,
        layout: row.json("layout")?,
    })
}

fn active_reindex(collection: &CollectionName) -> Statement {
    Statement::new(format!(
        "SELECT {JOB_COLUMNS} FROM jobs WHERE collection = $1 AND kind = 'reindex' \
         AND status IN ('queued', 'running') ORDER BY created_at LIMIT 1"
    ))
    .text(collection.as_str())
}

/// One INSERT for a batch of chunks: `($1, …, $9), ($10, …, $18), …`.
fn insert_chunks(document: DocumentId, batch: &[Chunk]) -> Statement {
    let mut statement = Statement::new(format!(
        "INSERT INTO chunks ({CHUNK_COLUMNS}) VALUES {}",
        value_rows(batch.len(), 9)
    ));
    for chunk in batch {
        statement = statement
            .id(document)
            .int(chunk.index)
            .int(chunk.page_start)
            .int(chunk.page_end)
            .int(chunk.char_start as i64)
            .int(chunk.char_end as i64)
            .text(chunk.text.as_str())
            .json(&chunk.page_breaks)
            .json(&chunk.layout);
    }
    statement
}

/// Applies a job's outcome to what it worked on; the rows changed.
async fn apply_outcome(
    tx: &mut Transaction,
    id: JobId,
    outcome: &JobOutcome,
    collection: &str,
    document: Option<DocumentId>,
) -> Result<Option<u64>, CatalogError> {
    let at = now();
    let statement = match (outcome, document) {
        (JobOutcome::Reindexed { model }, _) => {
            let model = model.as_ref();
            Statement::new(
                "UPDATE collections SET embed_model = $1, embed_variant = $2, embed_dim = $3 WHERE name = $4",
            )
            .opt_text(model.map(|m| m.name.as_str()))
            .opt_text(model.map(|m| m.variant.as_str()))
            .opt_int(model.map(|m| m.dimension as i64))
            .text(collection)
        }
        (
            JobOutcome::Ingested {
                pages,
                chunks,
                page_sources,
            },
            Some(document),
        ) => Statement::new(
            "UPDATE documents SET status = 'ready', error = NULL, pages = $1, chunks = $2, page_sources = $3, \
             updated_at = $4 WHERE id = $5",
        )
        .int(*pages)
        .int(*chunks)
        .json(page_sources)
        .time(at)
        .id(document),
        (JobOutcome::Failed { reason }, Some(document)) => {
            Statement::new("UPDATE documents SET status = 'failed', error = $1, updated_at = $2 WHERE id = $3")
                .text(reason.as_str())
                .time(at)
                .id(document)
        }
        (JobOutcome::Retry { .. }, Some(document)) => {
            Statement::new("UPDATE documents SET status = 'queued', updated_at = $1 WHERE id = $2")
                .time(at)
                .id(document)
        }
        // A re-index that failed or waits changes nothing but its job.
        (JobOutcome::Failed { .. } | JobOutcome::Retry { .. }, None) => return Ok(None),
        (JobOutcome::Ingested { .. }, None) => {
            return Err(CatalogError::Corrupt(format!("job {id} has no document to be ready")));
        }
    };
    Ok(Some(tx.execute(&statement).await?))
}

#[async_trait]
impl Catalog for SqlCatalog {
    async fn ping(&self) -> Result<(), CatalogError> {
        self.db.execute(&Statement::new("SELECT 1")).await?;
        Ok(())
    }

    async fn close(&self) {
        self.db.close().await;
    }

    async fn create_collection(&self, new: &NewCollection) -> Result<Collection, CatalogError> {
        let model = new.embedding_model.as_ref();
        let statement = Statement::new(format!(
            "INSERT INTO collections ({COLLECTION_COLUMNS}, tenant) VALUES ($1, $2, $3, $4, $5, $6, $7) \
             RETURNING {COLLECTION_COLUMNS}"
        ))
        .text(new.name.as_str())
        .opt_text(new.description.as_deref())
        .opt_text(model.map(|m| m.name.as_str()))
        .opt_text(model.map(|m| m.variant.as_str()))
        .opt_int(model.map(|m| m.dimension as i64))
        .time(now())
        .text(new.name.tenant().as_str());
        let row = self.db.fetch_optional(&statement).await?;
        let row = row.ok_or_else(|| CatalogError::Corrupt("an INSERT … RETURNING returned no row".into()))?;
        collection_from_row(&row)
    }

    async fn get_collection(&self, name: &CollectionName) -> Result<Option<Collection>, CatalogError> {
        let statement =
            Statement::new(format!("SELECT {COLLECTION_COLUMNS} FROM collections WHERE name = $1")).text(name.as_str());
        self.db.fetch_optional_as(&statement, collection_from_row).await
    }

    async fn list_collections(&self, tenant: &TenantName) -> Result<Vec<Collection>, CatalogError> {
        let statement = Statement::new(format!(
            "SELECT {COLLECTION_COLUMNS} FROM collections WHERE tenant = $1 ORDER BY name"
        ))
        .text(tenant.as_str());
        self.db.fetch_all_as(&statement, collection_from_row).await
    }

    async fn delete_collection(&self, name: &CollectionName) -> Result<bool, CatalogError> {
        let deleted = self
            .db
            .execute(&Statement::new("DELETE FROM collections WHERE name = $1").text(name.as_str()))
            .await?;
        Ok(deleted > 0)
    }

    async fn insert_document(&self, new: &NewDocument) -> Result<InsertOutcome, CatalogError> {
        let at = now();
        let mut tx = self.db.begin().await?;
        let inserted = tx
            .fetch_optional(
                &Statement::new(format!(
                    "INSERT INTO documents (id, collection, filename, content_type, bytes, sha256, status, \
                     metadata, access, job_id, created_at, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $11) \
                     ON CONFLICT (collection, sha256) DO NOTHING RETURNING {DOCUMENT_COLUMNS}"
                ))
                .id(new.id)
                .text(new.collection.as_str())
                .text(new.filename.as_str())
                .text(new.content_type.mime())
                .int(new.bytes as i64)
                .text(new.sha256.as_str())
                .text(DocumentStatus::Queued.as_str())
                .json(&new.metadata)
                .json(&new.access)
                .id(new.job_id)
                .time(at),
            )
            .await?;
        let Some(row) = inserted else {
            // The row that won is committed (the conflict waited for it), so it is visible.
            let row = tx
                .fetch_one(
                    &Statement::new(format!(
                        "SELECT {DOCUMENT_COLUMNS} FROM documents WHERE collection = $1 AND sha256 = $2"
                    ))
                    .text(new.collection.as_str())
                    .text(new.sha256.as_str()),
                )
                .await?;
            tx.rollback().await?;
            return Ok(InsertOutcome::Duplicate(document_from_row(&row)?));
        };
        tx.execute(
            &Statement::new(
                "INSERT INTO jobs (id, kind, collection, document_id, status, progress, attempts, created_at, updated_at) \
                 VALUES ($1, 'ingest', $2, $3, $4, $5, 0, $6, $6)",
            )
            .id(new.job_id)
            .text(new.collection.as_str())
            .id(new.id)
            .text(JobStatus::Queued.as_str())
            .json(&JobProgress::queued())
            .time(at),
        )
        .await?;
        tx.commit().await?;
        Ok(InsertOutcome::Created(document_from_row(&row)?))
    }

    async fn get_document(
        &self,
        collection: &CollectionName,
        id: DocumentId,
    ) -> Result<Option<Document>, CatalogError> {
        let statement = Statement::new(format!(
            "SELECT {DOCUMENT_COLUMNS} FROM documents WHERE collection = $1 AND id = $2"
        ))
        .text(collection.as_str())
        .id(id);
        self.db.fetch_optional_as(&statement, document_from_row).await
    }

    async fn list_documents(
        &self,
        collection: &CollectionName,
        query: &DocumentQuery,
    ) -> Result<DocumentPage, CatalogError> {
        // One more than asked tells whether there is a next page.
        let statement = Statement::new(format!(
            "SELECT {DOCUMENT_COLUMNS} FROM documents WHERE collection = $1 \
             AND ($2 IS NULL OR status = $2) \
             AND ($3 IS NULL OR (created_at, id) > ($3, $4)) \
             ORDER BY created_at, id LIMIT $5"
        ))
        .text(collection.as_str())
        .opt_text(query.status.map(DocumentStatus::as_str))
        .opt_time(query.after.as_ref().map(|cursor| cursor.created_at))
        .opt_id(query.after.as_ref().map(|cursor| cursor.id.0))
        .int(i64::from(query.limit) + 1);
        let rows = self.db.fetch_all(&statement).await?;
        let documents = rows.iter().map(document_from_row).collect::<Result<Vec<_>, _>>()?;
        Ok(DocumentPage::of(documents, query.limit))
    }

    async fn document_ids(&self, collection: &CollectionName) -> Result<Vec<DocumentId>, CatalogError> {
        let statement = Statement::new("SELECT id FROM documents WHERE collection = $1").text(collection.as_str());
        self.db
            .fetch_all_as(&statement, |row| Ok(DocumentId(row.id("id")?)))
            .await
    }

    async fn has_document(&self, id: DocumentId) -> Result<bool, CatalogError> {
        let statement = Statement::new("SELECT id FROM documents WHERE id = $1").id(id);
        Ok(!self.db.fetch_all(&statement).await?.is_empty())
    }

    async fn delete_document(&self, collection: &CollectionName, id: DocumentId) -> Result<bool, CatalogError> {
        let statement = Statement::new("DELETE FROM documents WHERE collection = $1 AND id = $2")
            .text(collection.as_str())
            .id(id);
        Ok(self.db.execute(&statement).await? > 0)
    }

    async fn replace_chunks(&self, document: DocumentId, chunks: &[Chunk]) -> Result<(), CatalogError> {
        let mut tx = self.db.begin().await?;
        tx.execute(&Statement::new("DELETE FROM chunks WHERE document_id = $1").id(document))
            .await?;
        for batch in chunks.chunks(CHUNKS_PER_INSERT) {
            tx.execute(&insert_chunks(document, batch)).await?;
        }
        tx.commit().await
    }

    async fn chunks_of(&self, document: DocumentId) -> Result<Vec<Chunk>, CatalogError> {
        let statement = Statement::new(format!(
            "SELECT {CHUNK_COLUMNS} FROM chunks WHERE document_id = $1 ORDER BY idx"
        ))
        .id(document);
        self.db.fetch_all_as(&statement, chunk_from_row).await
    }

    async fn get_job(&self, id: JobId) -> Result<Option<Job>, CatalogError> {
        let statement = Statement::new(format!("SELECT {JOB_COLUMNS} FROM jobs WHERE id = $1")).id(id);
        self.db.fetch_optional_as(&statement, job_from_row).await
    }

    async fn enqueue_reindex(&self, collection: &CollectionName) -> Result<Job, CatalogError> {
        let at = now();
        let mut tx = self.db.begin().await?;
        // The check and the insert are one statement, under the claim lock: two
        // requests cannot both insert, nor interleave with a claim.
        tx.lock_job_claims().await?;
        let insert = Statement::new(format!(
            "INSERT INTO jobs (id, kind, collection, status, progress, attempts, created_at, updated_at) \
             SELECT $1, 'reindex', $2, 'queued', $3, 0, $4, $4 WHERE NOT EXISTS (SELECT 1 FROM jobs \
             WHERE collection = $2 AND kind = 'reindex' AND status IN ('queued', 'running')) \
             RETURNING {JOB_COLUMNS}"
        ))
        .id(JobId::new())
        .text(collection.as_str())
        .json(&JobProgress::queued())
        .time(at);
        // The active re-index the insert saw may end before it is read (a worker
        // finishing it does not take the lock): then the insert goes ahead.
        let mut row = None;
        for _ in 0..3 {
            row = match tx.fetch_optional(&insert).await? {
                Some(inserted) => Some(inserted),
                None => tx.fetch_optional(&active_reindex(collection)).await?,
            };
            if row.is_some() {
                break;
            }
        }
        let row = row.ok_or_else(|| CatalogError::Conflict("the active re-index kept changing".into()))?;
        tx.commit().await?;
        job_from_row(&row)
    }

    async fn active_reindex(&self, collection: &CollectionName) -> Result<Option<Job>, CatalogError> {
        self.db
            .fetch_optional_as(&active_reindex(collection), job_from_row)
            .await
    }

    async fn claim_next_job(&self) -> Result<Option<ClaimedJob>, CatalogError> {
        let at = now();
        let mut tx = self.db.begin().await?;
        tx.lock_job_claims().await?;
        let row = tx
            .fetch_optional(
                &Statement::new(format!(
                    "UPDATE jobs SET status = 'running', attempts = attempts + 1, error = NULL, run_after = NULL, \
                     updated_at = $1 WHERE id = ({claimable}) RETURNING {JOB_COLUMNS}",
                    claimable = claimable_job_sql("$1")
                ))
                .time(at),
            )
            .await?;
        let Some(row) = row else {
            tx.rollback().await?;
            return Ok(None);
        };
        let job = job_from_row(&row)?;
        let claimed = match (job.kind, job.document_id) {
            (JobKind::Ingest, Some(document)) => {
                let row = tx
                    .fetch_one(
                        &Statement::new(format!(
                            "UPDATE documents SET status = 'processing', error = NULL, updated_at = $1 WHERE id = $2 \
                             RETURNING {DOCUMENT_COLUMNS}"
                        ))
                        .time(at)
                        .id(document),
                    )
                    .await?;
                ClaimedJob::Ingest {
                    document: document_from_row(&row)?,
                    job,
                }
            }
            (JobKind::Reindex, _) => {
                let row = tx
                    .fetch_one(
                        &Statement::new(format!("SELECT {COLLECTION_COLUMNS} FROM collections WHERE name = $1"))
                            .text(job.collection.as_str()),
                    )
                    .await?;
                ClaimedJob::Reindex {
                    collection: collection_from_row(&row)?,
                    job,
                }
            }
            (JobKind::Ingest, None) => {
                return Err(CatalogError::Corrupt(format!("ingest job {} has no document", job.id)));
            }
        };
        tx.commit().await?;
        Ok(Some(claimed))
    }

    async fn update_job_progress(&self, id: JobId, progress: JobProgress) -> Result<(), CatalogError> {
        let statement = Statement::new("UPDATE jobs SET progress = $1, updated_at = $2 WHERE id = $3")
            .json(&progress)
            .time(now())
            .id(id);
        self.db.execute(&statement).await?;
        Ok(())
    }

    async fn finish_job(&self, id: JobId, outcome: &JobOutcome) -> Result<bool, CatalogError> {
        let at = now();
        let (status, error) = job_ending(outcome);
        let run_after = match outcome {
            JobOutcome::Retry { after, .. } => Some(at + chrono::Duration::from_std(*after).unwrap_or_default()),
            _ => None,
        };
        let progress = match outcome {
            JobOutcome::Ingested { .. } | JobOutcome::Reindexed { .. } => Some(JobProgress::done()),
            // A failed job shows how far it got.
            JobOutcome::Failed { .. } | JobOutcome::Retry { .. } => None,
        };
        let mut tx = self.db.begin().await?;
        let row = tx
            .fetch_optional(
                &Statement::new(
                    "UPDATE jobs SET status = $1, error = $2, progress = COALESCE($3, progress), run_after = $4, \
                     updated_at = $5 WHERE id = $6 RETURNING collection, document_id",
                )
                .text(status.as_str())
                .opt_text(error)
                .opt_json(progress.as_ref())
                .opt_time(run_after)
                .time(at)
                .id(id),
            )
            .await?;
        let Some(row) = row else {
            tx.rollback().await?;
            return Ok(false);
        };
        let document = row.opt_id("document_id")?.map(DocumentId);
        let collection = row.text("collection")?;
        let applied = apply_outcome(&mut tx, id, outcome, &collection, document).await?;
        if applied.is_none_or(|rows| rows > 0) {
            enqueue_webhook_event(&mut tx, id, outcome, &collection, document).await?;
        }
        tx.commit().await?;
        Ok(applied.is_none_or(|rows| rows > 0))
    }

    async fn requeue_interrupted_jobs(&self) -> Result<u64, CatalogError> {
        let at = now();
        let mut tx = self.db.begin().await?;
        tx.execute(
            &Statement::new(
                "UPDATE documents SET status = 'queued', updated_at = $1 \
                 WHERE id IN (SELECT document_id FROM jobs WHERE status = 'running' AND document_id IS NOT NULL)",
            )
            .time(at),
        )
        .await?;
        let requeued = tx
            .execute(
                &Statement::new("UPDATE jobs SET status = 'queued', updated_at = $1 WHERE status = 'running'").time(at),
            )
            .await?;
        tx.commit().await?;
        Ok(requeued)
    }

    async fn retry_job(&self, id: JobId) -> Result<Option<Job>, CatalogError> {
        let at = now();
        let mut tx = self.db.begin().await?;
        let row = tx
            .fetch_optional(
                &Statement::new(format!(
                    "UPDATE jobs SET status = 'queued', error = NULL, run_after = NULL, progress = $1, updated_at = $2 \
                     WHERE id = $3 AND status = 'failed' RETURNING {JOB_COLUMNS}"
                ))
                .json(&JobProgress::queued())
                .time(at)
                .id(id),
            )
            .await?;
        let Some(row) = row else {
            tx.rollback().await?;
            return Ok(None);
        };
        let job = job_from_row(&row)?;
        if let Some(document) = job.document_id {
            tx.execute(
                &Statement::new("UPDATE documents SET status = 'queued', error = NULL, updated_at = $1 WHERE id = $2")
                    .time(at)
                    .id(document),
            )
            .await?;
        }
        tx.commit().await?;
        Ok(Some(job))
    }

    async fn queued_jobs(&self) -> Result<u64, CatalogError> {
        let statement = Statement::new("SELECT COUNT(*) AS n FROM jobs WHERE status = 'queued'");
        let rows = self.db.fetch_all(&statement).await?;
        Ok(rows.first().map(|row| row.int("n")).transpose()?.unwrap_or(0).max(0) as u64)
    }

    async fn tenant_usage(&self, tenant: &TenantName) -> Result<TenantUsage, CatalogError> {
        // Postgres sums BIGINTs into NUMERIC: cast back.
        let statement = Statement::new(
            "SELECT COUNT(*) AS n, CAST(COALESCE(SUM(d.bytes), 0) AS BIGINT) AS bytes \
             FROM documents d JOIN collections c ON c.name = d.collection WHERE c.tenant = $1",
        )
        .text(tenant.as_str());
        let rows = self.db.fetch_all(&statement).await?;
        let Some(row) = rows.first() else {
            return Ok(TenantUsage::default());
        };
        Ok(TenantUsage {
            documents: row.int("n")?.max(0) as u64,
            bytes: row.int("bytes")?.max(0) as u64,
        })
    }

    async fn create_key(&self, new: &NewApiKey) -> Result<ApiKey, CatalogError> {
        let statement = Statement::new(format!(
            "INSERT INTO api_keys (id, tenant, hash, role, rights, collections, principals, name, expires_at, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING {KEY_COLUMNS}"
        ))
        .id(new.id)
        .text(new.tenant.as_str())
        .text(new.hash.as_str())
        .text(new.role.as_str())
        .opt_text(new.rights.map(Role::as_str))
        .json(&new.collections)
        .json(&new.principals)
        .opt_text(new.name.as_deref())
        .opt_time(new.expires_at)
        .time(now());
        let row = self.db.fetch_optional(&statement).await?;
        let row = row.ok_or_else(|| CatalogError::Corrupt("an INSERT … RETURNING returned no row".into()))?;
        key_from_row(&row)
    }

    async fn key_by_hash(&self, hash: &str) -> Result<Option<ApiKey>, CatalogError> {
        let statement = Statement::new(format!("SELECT {KEY_COLUMNS} FROM api_keys WHERE hash = $1")).text(hash);
        self.db.fetch_optional_as(&statement, key_from_row).await
    }

    async fn list_keys(&self, tenant: Option<&TenantName>) -> Result<Vec<ApiKey>, CatalogError> {
        let statement = match tenant {
            Some(tenant) => Statement::new(format!(
                "SELECT {KEY_COLUMNS} FROM api_keys WHERE tenant = $1 ORDER BY created_at, id"
            ))
            .text(tenant.as_str()),
            None => Statement::new(format!("SELECT {KEY_COLUMNS} FROM api_keys ORDER BY created_at, id")),
        };
        self.db.fetch_all_as(&statement, key_from_row).await
    }

    async fn revoke_key(
        &self,
        tenant: Option<&TenantName>,
        id: KeyId,
        at: DateTime<Utc>,
    ) -> Result<bool, CatalogError> {
        let statement = Statement::new(
            "UPDATE api_keys SET revoked_at = COALESCE(revoked_at, $1) WHERE id = $2 AND ($3 IS NULL OR tenant = $3)",
        )
        .time(at)
        .id(id)
        .opt_text(tenant.map(TenantName::as_str));
        Ok(self.db.execute(&statement).await? > 0)
    }

    async fn touch_key(&self, id: KeyId, at: DateTime<Utc>) -> Result<(), CatalogError> {
        let statement = Statement::new("UPDATE api_keys SET last_used_at = $1 WHERE id = $2")
            .time(at)
            .id(id);
        self.db.execute(&statement).await?;
        Ok(())
    }

    async fn append_audit(&self, entries: &[AuditEntry]) -> Result<(), CatalogError> {
        let mut tx = self.db.begin().await?;
        for batch in entries.chunks(AUDIT_PER_INSERT) {
            let mut statement = Statement::new(format!(
                "INSERT INTO audit_log ({AUDIT_COLUMNS}) VALUES {}",
                value_rows(batch.len(), AUDIT_ARGUMENTS)
            ));
            for entry in batch {
                statement = statement
                    .id(entry.id)
                    .time(entry.at)
                    .text(entry.request_id.as_str())
                    .opt_text(entry.tenant.as_ref().map(TenantName::as_str))
                    .opt_id(entry.key_id.map(|k| k.0))
                    .json(&entry.acting_for)
                    .text(entry.action.as_str())
                    .opt_text(entry.collection.as_deref())
                    .opt_text(entry.document_id.as_deref())
                    .int(i64::from(entry.status))
                    .opt_text(entry.user.as_deref())
                    .opt_text(entry.query.as_deref());
            }
            tx.execute(&statement).await?;
        }
        tx.commit().await
    }

    async fn audit_entries(&self, query: &AuditQuery) -> Result<Vec<AuditEntry>, CatalogError> {
        let mut conditions = Vec::new();
        let mut next = 0;
        let mut placeholder = || {
            next += 1;
            format!("${next}")
        };
        if query.tenant.is_some() {
            conditions.push(format!("tenant = {}", placeholder()));
        }
        if query.since.is_some() {
            conditions.push(format!("at >= {}", placeholder()));
        }
        if query.until.is_some() {
            conditions.push(format!("at < {}", placeholder()));
        }
        if query.action.is_some() {
            conditions.push(format!("action = {}", placeholder()));
        }
        if query.after.is_some() {
            conditions.push(format!("(at, id) > ({}, {})", placeholder(), placeholder()));
        }
        let limit = placeholder();
        let filter = match conditions.is_empty() {
            true => String::new(),
            false => format!("WHERE {}", conditions.join(" AND ")),
        };
        let mut statement = Statement::new(format!(
            "SELECT {AUDIT_COLUMNS} FROM audit_log {filter} ORDER BY at, id LIMIT {limit}"
        ));
        if let Some(tenant) = &query.tenant {
            statement = statement.text(tenant.as_str());
        }
        if let Some(since) = query.since {
            statement = statement.time(since);
        }
        if let Some(until) = query.until {
            statement = statement.time(until);
        }
        if let Some(action) = &query.action {
            statement = statement.text(action.as_str());
        }
        if let Some((at, id)) = query.after {
            statement = statement.time(at).id(id);
        }
        statement = statement.int(i64::from(query.limit));
        self.db.fetch_all_as(&statement, audit_from_row).await
    }

    async fn prune_audit(&self, before: DateTime<Utc>) -> Result<u64, CatalogError> {
        self.db
            .execute(&Statement::new("DELETE FROM audit_log WHERE at < $1").time(before))
            .await
    }

    async fn update_document(
        &self,
        collection: &CollectionName,
        id: DocumentId,
        access: Option<&[String]>,
        metadata: Option<&Metadata>,
    ) -> Result<Option<Document>, CatalogError> {
        let statement = Statement::new(format!(
            "UPDATE documents SET access = COALESCE($1, access), metadata = COALESCE($2, metadata), updated_at = $3 \
             WHERE collection = $4 AND id = $5 RETURNING {DOCUMENT_COLUMNS}"
        ))
        .opt_json(access.as_ref())
        .opt_json(metadata)
        .time(now())
        .text(collection.as_str())
        .id(id);
        self.db.fetch_optional_as(&statement, document_from_row).await
    }

    async fn create_tenant(&self, name: &TenantName) -> Result<Tenant, CatalogError> {
        let statement =
            Statement::new("INSERT INTO tenants (name, created_at) VALUES ($1, $2) RETURNING name, created_at")
                .text(name.as_str())
                .time(now());
        let row = self.db.fetch_optional(&statement).await?;
        let row = row.ok_or_else(|| CatalogError::Corrupt("an INSERT … RETURNING returned no row".into()))?;
        tenant_from_row(&row)
    }

    async fn get_tenant(&self, name: &TenantName) -> Result<Option<Tenant>, CatalogError> {
        let statement = Statement::new("SELECT name, created_at FROM tenants WHERE name = $1").text(name.as_str());
        self.db.fetch_optional_as(&statement, tenant_from_row).await
    }

    async fn list_tenants(&self) -> Result<Vec<Tenant>, CatalogError> {
        let statement = Statement::new("SELECT name, created_at FROM tenants ORDER BY name");
        self.db.fetch_all_as(&statement, tenant_from_row).await
    }

    async fn create_conversation(&self, conversation: &Conversation) -> Result<(), CatalogError> {
        let statement = Statement::new(format!(
            "INSERT INTO conversations ({CONVERSATION_COLUMNS}) VALUES ($1, $2, $3, $4, $5)"
        ))
        .id(conversation.id)
        .text(conversation.collection.as_str())
        .text(conversation.owner.as_str())
        .time(conversation.created_at)
        .time(conversation.updated_at);
        self.db.execute(&statement).await?;
        Ok(())
    }

    async fn get_conversation(&self, id: ConversationId) -> Result<Option<Conversation>, CatalogError> {
        let statement = Statement::new(format!(
            "SELECT {CONVERSATION_COLUMNS} FROM conversations WHERE id = $1"
        ))
        .id(id);
        self.db.fetch_optional_as(&statement, conversation_from_row).await
    }

    async fn conversation_turns(&self, id: ConversationId) -> Result<Vec<Turn>, CatalogError> {
        let statement = Statement::new(format!(
            "SELECT {TURN_COLUMNS} FROM conversation_turns WHERE conversation_id = $1 ORDER BY seq"
        ))
        .id(id);
        self.db.fetch_all(&statement).await?.iter().map(turn_from_row).collect()
    }

    async fn append_turn(&self, id: ConversationId, turn: &NewTurn) -> Result<Option<Turn>, CatalogError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.try_append_turn(id, turn).await {
                Err(CatalogError::AlreadyExists) if attempt < TURN_APPEND_ATTEMPTS => continue,
                Err(CatalogError::MissingParent(_)) => return Ok(None),
                other => return other,
            }
        }
    }

    async fn delete_conversation(&self, id: ConversationId) -> Result<bool, CatalogError> {
        let deleted = self
            .db
            .execute(&Statement::new("DELETE FROM conversations WHERE id = $1").id(id))
            .await?;
        Ok(deleted > 0)
    }

    async fn create_webhook(&self, webhook: &Webhook) -> Result<(), CatalogError> {
        let statement = Statement::new(format!(
            "INSERT INTO webhooks ({WEBHOOK_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6)"
        ))
        .id(webhook.id)
        .text(webhook.tenant.as_str())
        .text(webhook.url.as_str())
        .text(events_column(&webhook.events))
        .text(webhook.secret.as_str())
        .time(webhook.created_at);
        self.db.execute(&statement).await?;
        Ok(())
    }

    async fn list_webhooks(&self, tenant: &TenantName) -> Result<Vec<Webhook>, CatalogError> {
        let statement = Statement::new(format!(
            "SELECT {WEBHOOK_COLUMNS} FROM webhooks WHERE tenant = $1 ORDER BY created_at, id"
        ))
        .text(tenant.as_str());
        self.db.fetch_all_as(&statement, webhook_from_row).await
    }

    async fn get_webhook(&self, id: WebhookId) -> Result<Option<Webhook>, CatalogError> {
        let statement = Statement::new(format!("SELECT {WEBHOOK_COLUMNS} FROM webhooks WHERE id = $1")).id(id);
        self.db.fetch_optional_as(&statement, webhook_from_row).await
    }

    async fn delete_webhook(&self, tenant: &TenantName, id: WebhookId) -> Result<bool, CatalogError> {
        let statement = Statement::new("DELETE FROM webhooks WHERE id = $1 AND tenant = $2")
            .id(id)
            .text(tenant.as_str());
        Ok(self.db.execute(&statement).await? > 0)
    }

    async fn webhook_deliveries(&self, id: WebhookId, limit: u32) -> Result<Vec<Delivery>, CatalogError> {
        let statement = Statement::new(format!(
            "SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries WHERE webhook_id = $1 \
             ORDER BY created_at DESC, id DESC LIMIT $2"
        ))
        .id(id)
        .int(i64::from(limit));
        self.db.fetch_all_as(&statement, delivery_from_row).await
    }

    async fn claim_deliveries(
        &self,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<(Delivery, Webhook)>, CatalogError> {
        // The outer condition again: of two dispatchers that picked the same
        // row, the one whose UPDATE comes second finds it leased and skips it.
        let statement = Statement::new(format!(
            "UPDATE webhook_deliveries SET next_attempt_at = $1 \
             WHERE id IN (SELECT id FROM webhook_deliveries WHERE status = 'pending' AND next_attempt_at <= $2 \
                          ORDER BY next_attempt_at, id LIMIT $3) \
             AND status = 'pending' AND next_attempt_at <= $2 RETURNING {DELIVERY_COLUMNS}"
        ))
        .time(lease_until)
        .time(now)
        .int(i64::from(limit));
        let deliveries: Vec<Delivery> = self
            .db
            .fetch_all(&statement)
            .await?
            .iter()
            .map(delivery_from_row)
            .collect::<Result<_, _>>()?;
        let mut claimed = Vec::with_capacity(deliveries.len());
        for delivery in deliveries {
            // Deleted meanwhile: its deliveries went with it.
            if let Some(webhook) = self.get_webhook(delivery.webhook_id).await? {
                claimed.push((delivery, webhook));
            }
        }
        Ok(claimed)
    }

    async fn record_attempt(&self, id: uuid::Uuid, outcome: &AttemptOutcome) -> Result<(), CatalogError> {
        let at = now();
        let statement = match outcome {
            AttemptOutcome::Delivered { status } => Statement::new(
                "UPDATE webhook_deliveries SET status = 'delivered', attempts = attempts + 1, last_status = $1, \
                 last_error = NULL, next_attempt_at = NULL, delivered_at = $2 WHERE id = $3",
            )
            .int(i64::from(*status))
            .time(at)
            .id(id),
            AttemptOutcome::Failed {
                status,
                error,
                retry_at,
            } => Statement::new(
                "UPDATE webhook_deliveries SET status = $1, attempts = attempts + 1, last_status = $2, \
                 last_error = $3, next_attempt_at = $4 WHERE id = $5",
            )
            .text(match retry_at {
                Some(_) => DeliveryStatus::Pending.as_str(),
                None => DeliveryStatus::Failed.as_str(),
            })
            .opt_int(status.map(i64::from))
            .text(error.as_str())
            .opt_time(*retry_at)
            .id(id),
        };
        self.db.execute(&statement).await?;
        Ok(())
    }
}

impl SqlCatalog {
    /// The turn after the conversation's last, and the conversation touched, in
    /// one transaction.
    async fn try_append_turn(&self, id: ConversationId, turn: &NewTurn) -> Result<Option<Turn>, CatalogError> {
        let at = now();
        let mut tx = self.db.begin().await?;
        let touched = tx
            .execute(
                &Statement::new("UPDATE conversations SET updated_at = $1 WHERE id = $2")
                    .time(at)
                    .id(id),
            )
            .await?;
        if touched == 0 {
            tx.rollback().await?;
            return Ok(None);
        }
        let row = tx
            .fetch_one(
                &Statement::new(format!(
                    "INSERT INTO conversation_turns (conversation_id, {TURN_COLUMNS}) \
                     SELECT $1, COALESCE(MAX(seq), 0) + 1, $2, $3, $4, $5 \
                     FROM conversation_turns WHERE conversation_id = $1 RETURNING {TURN_COLUMNS}"
                ))
                .id(id)
                .text(turn.question.as_str())
                .text(turn.retrieval_query.as_str())
                .json(&turn.answer)
                .time(at),
            )
            .await?;
        let turn = turn_from_row(&row)?;
        tx.commit().await?;
        Ok(Some(turn))
    }
}

/// `,document.ready,reindex.done,`: framed by commas, so that `LIKE '%,e,%'` finds an event.
fn events_column(events: &[WebhookEvent]) -> String {
    let names: Vec<&str> = events.iter().map(|e| e.as_str()).collect();
    format!(",{},", names.join(","))
}

fn webhook_from_row(row: &Row) -> Result<Webhook, CatalogError> {
    let events = row
        .text("events")?
        .split(',')
        .filter(|e| !e.is_empty())
        .map(|e| e.parse().map_err(CatalogError::Corrupt))
        .collect::<Result<_, _>>()?;
    Ok(Webhook {
        id: WebhookId(row.id("id")?),
        tenant: row.parsed("tenant")?,
        url: row.text("url")?,
        events,
        secret: row.text("secret")?,
        created_at: row.time("created_at")?,
    })
}

fn delivery_from_row(row: &Row) -> Result<Delivery, CatalogError> {
    Ok(Delivery {
        id: row.id("id")?,
        webhook_id: WebhookId(row.id("webhook_id")?),
        event: row.parsed("event")?,
        payload: row.json("payload")?,
        status: row.parsed("status")?,
        attempts: row.count("attempts")?,
        last_status: row.opt_count("last_status")?,
        last_error: row.opt_text("last_error")?,
        next_attempt_at: row.opt_time("next_attempt_at")?,
        delivered_at: row.opt_time("delivered_at")?,
        created_at: row.time("created_at")?,
    })
}

/// Puts the event a job's end tells of into the outbox of every webhook of
/// the collection's tenant that asked for it, in the job's transaction.
async fn enqueue_webhook_event(
    tx: &mut Transaction,
    job: JobId,
    outcome: &JobOutcome,
    collection: &str,
    document: Option<DocumentId>,
) -> Result<(), CatalogError> {
    let at = now();
    let name = collection_name(collection.to_string())?;
    let (event, details) = match (outcome, document) {
        (JobOutcome::Ingested { pages, chunks, .. }, Some(document)) => (
            WebhookEvent::DocumentReady,
            serde_json::json!({"document_id": document, "pages": pages, "chunks": chunks}),
        ),
        (JobOutcome::Failed { reason }, Some(document)) => (
            WebhookEvent::DocumentFailed,
            serde_json::json!({"document_id": document, "error": reason}),
        ),
        (JobOutcome::Reindexed { model }, None) => (
            WebhookEvent::ReindexDone,
            serde_json::json!({"embedding_model": model.as_ref().map(|m| m.name.clone())}),
        ),
        _ => return Ok(()),
    };
    let subscribers = tx
        .fetch_all(
            &Statement::new(
                "SELECT w.id FROM webhooks w JOIN collections c ON c.tenant = w.tenant \
                 WHERE c.name = $1 AND w.events LIKE $2",
            )
            .text(collection)
            .text(format!("%,{},%", event.as_str())),
        )
        .await?;
    for subscriber in subscribers {
        let delivery = uuid::Uuid::new_v4();
        let mut payload = serde_json::json!({
            "id": delivery,
            "event": event.as_str(),
            "tenant": name.tenant().as_str(),
            "collection": name.name(),
            "job_id": job,
            "at": super::timestamp(at),
        });
        if let (Some(fields), serde_json::Value::Object(details)) = (payload.as_object_mut(), details.clone()) {
            fields.extend(details);
        }
        tx.execute(
            &Statement::new(format!(
                "INSERT INTO webhook_deliveries ({DELIVERY_COLUMNS}) \
                 VALUES ($1, $2, $3, $4, 'pending', 0, NULL, NULL, $5, NULL, $5)"
            ))
            .id(delivery)
            .id(subscriber.id("id")?)
            .text(event.as_str())
            .json(&payload)
            .time(at),
        )
        .await?;
    }
    Ok(())
}

fn conversation_from_row(row: &Row) -> Result<Conversation, CatalogError> {
    Ok(Conversation {
        id: ConversationId(row.id("id")?),
        collection: collection_name(row.text("collection")?)?,
        owner: row.text("owner")?,
        created_at: row.time("created_at")?,
        updated_at: row.time("updated_at")?,
    })
}

fn turn_from_row(row: &Row) -> Result<Turn, CatalogError> {
    Ok(Turn {
        seq: row.count("seq")?,
        question: row.text("question")?,
        retrieval_query: row.text("retrieval_query")?,
        answer: row.json("answer")?,
        created_at: row.time("created_at")?,
    })
}

fn tenant_from_row(row: &Row) -> Result<Tenant, CatalogError> {
    Ok(Tenant {
        name: row.parsed("name")?,
        created_at: row.time("created_at")?,
    })
}
