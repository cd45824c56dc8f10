//! The catalog on Postgres (through sqlx), chosen by a `postgres://` DATABASE_URL.
//! Same tables and behaviour as the SQLite catalog, in Postgres' own types; job
//! claims are serialised with a transaction-scoped advisory lock, because the
//! claim rules look at other jobs than the one claimed.

use std::time::Duration;

use async_trait::async_trait;
use sqlx::postgres::{PgPoolOptions, PgRow};
use sqlx::types::Json;
use sqlx::{PgPool, Row};
use uuid::Uuid;

use super::{
    claimable_job_sql, job_ending, now, Catalog, CatalogError, ClaimedJob, DocumentPage, DocumentQuery, InsertOutcome,
    JobOutcome, NewCollection,
};
use crate::domain::{
    Chunk, Collection, CollectionName, Document, DocumentId, DocumentStatus, EmbeddingModel, Job,
    JobId, JobKind, JobProgress, JobStatus, Metadata, NewDocument, PageBreak,
};

pub struct PostgresCatalog {
    pool: PgPool,
}

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("migrations/postgres");

const DOCUMENT_COLUMNS: &str = "id, collection, filename, content_type, bytes, sha256, pages, chunks, \
     status, error, metadata, job_id, created_at, updated_at";
const JOB_COLUMNS: &str =
    "id, kind, collection, document_id, status, progress, error, attempts, created_at, updated_at";

/// Any constant: the key of the advisory lock that serialises job claims.
const CLAIM_LOCK: i64 = 0x646f_6371_6a6f_6273; // "docqjobs"

/// A request waits at most this long for a connection: a Postgres that is down
/// answers 503 quickly instead of hanging the request.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(3);

impl PostgresCatalog {
    /// Connects (one attempt) without migrating.
    pub async fn connect(url: &str, max_connections: u32) -> Result<Self, CatalogError> {
        let pool = PgPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect(url)
            .await?;
        Ok(Self { pool })
    }

    /// Runs the migrations in `migrations/postgres` (they take a lock, so that
    /// servers starting together migrate once).
    pub async fn migrate(&self) -> Result<(), CatalogError> {
        MIGRATOR
            .run(&self.pool)
            .await
            .map_err(|e| CatalogError::Migration(e.to_string()))
    }
}

fn count(value: i32, what: &str) -> Result<u32, CatalogError> {
    u32::try_from(value).map_err(|_| CatalogError::Corrupt(format!("{what} {value}")))
}

fn parse<T: std::str::FromStr>(raw: &str, what: &str) -> Result<T, CatalogError>
where
    T::Err: std::fmt::Display,
{
    raw.parse()
        .map_err(|e| CatalogError::Corrupt(format!("{what} {raw:?}: {e}")))
}

fn name(raw: &str) -> Result<CollectionName, CatalogError> {
    CollectionName::parse(raw).map_err(|e| CatalogError::Corrupt(e.to_string()))
}

fn collection_from_row(row: &PgRow) -> Result<Collection, CatalogError> {
    let model: Option<String> = row.try_get("embed_model")?;
    let variant: Option<String> = row.try_get("embed_variant")?;
    let dim: Option<i32> = row.try_get("embed_dim")?;
    let embedding_model = match (model, dim) {
        (Some(name), Some(dim)) => Some(EmbeddingModel {
            name,
            variant: variant.unwrap_or_default(),
            dimension: count(dim, "embedding dimension")? as usize,
        }),
        _ => None,
    };
    Ok(Collection {
        name: name(row.try_get("name")?)?,
        description: row.try_get("description")?,
        embedding_model,
        created_at: row.try_get("created_at")?,
    })
}

fn document_from_row(row: &PgRow) -> Result<Document, CatalogError> {
    Ok(Document {
        id: DocumentId(row.try_get("id")?),
        collection: name(row.try_get("collection")?)?,
        filename: row.try_get("filename")?,
        content_type: parse(row.try_get("content_type")?, "content type")?,
        bytes: row.try_get::<i64, _>("bytes")? as u64,
        sha256: row.try_get("sha256")?,
        pages: row.try_get::<Option<i32>, _>("pages")?.map(|p| count(p, "pages")).transpose()?,
        chunks: row.try_get::<Option<i32>, _>("chunks")?.map(|c| count(c, "chunks")).transpose()?,
        status: parse(row.try_get("status")?, "document status")?,
        error: row.try_get("error")?,
        metadata: row.try_get::<Json<Metadata>, _>("metadata")?.0,
        job_id: JobId(row.try_get("job_id")?),
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

fn job_from_row(row: &PgRow) -> Result<Job, CatalogError> {
    Ok(Job {
        id: JobId(row.try_get("id")?),
        kind: parse(row.try_get("kind")?, "job kind")?,
        collection: name(row.try_get("collection")?)?,
        document_id: row.try_get::<Option<Uuid>, _>("document_id")?.map(DocumentId),
        status: parse(row.try_get("status")?, "job status")?,
        progress: row.try_get::<Json<JobProgress>, _>("progress")?.0,
        error: row.try_get("error")?,
        attempts: count(row.try_get("attempts")?, "attempts")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

fn chunk_from_row(row: &PgRow) -> Result<Chunk, CatalogError> {
    Ok(Chunk {
        document_id: DocumentId(row.try_get("document_id")?),
        index: count(row.try_get("idx")?, "chunk index")?,
        page_start: count(row.try_get("page_start")?, "page")?,
        page_end: count(row.try_get("page_end")?, "page")?,
        char_start: row.try_get::<i64, _>("char_start")? as u64,
        char_end: row.try_get::<i64, _>("char_end")? as u64,
        text: row.try_get("text")?,
        page_breaks: row.try_get::<Json<Vec<PageBreak>>, _>("page_breaks")?.0,
    })
}

#[async_trait]
impl Catalog for PostgresCatalog {
    async fn ping(&self) -> Result<(), CatalogError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    async fn close(&self) {
        self.pool.close().await;
    }

    async fn create_collection(&self, new: &NewCollection) -> Result<Collection, CatalogError> {
        let model = new.embedding_model.as_ref();
        let row = sqlx::query(
            "INSERT INTO collections (name, description, embed_model, embed_variant, embed_dim, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING *",
        )
        .bind(new.name.as_str())
        .bind(&new.description)
        .bind(model.map(|m| m.name.clone()))
        .bind(model.map(|m| m.variant.clone()))
        .bind(model.map(|m| m.dimension as i32))
        .bind(now())
        .fetch_one(&self.pool)
        .await?;
        collection_from_row(&row)
    }

    async fn get_collection(&self, name: &CollectionName) -> Result<Option<Collection>, CatalogError> {
        let row = sqlx::query("SELECT * FROM collections WHERE name = $1")
            .bind(name.as_str())
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(collection_from_row).transpose()
    }

    async fn list_collections(&self) -> Result<Vec<Collection>, CatalogError> {
        let rows = sqlx::query("SELECT * FROM collections ORDER BY name")
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(collection_from_row).collect()
    }

    async fn delete_collection(&self, name: &CollectionName) -> Result<bool, CatalogError> {
        let done = sqlx::query("DELETE FROM collections WHERE name = $1")
            .bind(name.as_str())
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn insert_document(&self, new: &NewDocument) -> Result<InsertOutcome, CatalogError> {
        let mut tx = self.pool.begin().await?;
        let at = now();
        let inserted = sqlx::query(&format!(
            "INSERT INTO documents (id, collection, filename, content_type, bytes, sha256, status, \
             metadata, job_id, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10) \
             ON CONFLICT (collection, sha256) DO NOTHING RETURNING {DOCUMENT_COLUMNS}"
        ))
        .bind(new.id.0)
        .bind(new.collection.as_str())
        .bind(&new.filename)
        .bind(new.content_type.mime())
        .bind(new.bytes as i64)
        .bind(&new.sha256)
        .bind(DocumentStatus::Queued.as_str())
        .bind(Json(&new.metadata))
        .bind(new.job_id.0)
        .bind(at)
        .fetch_optional(&mut *tx)
        .await?;

        let Some(row) = inserted else {
            // The row that won is committed (ON CONFLICT waited for it), so it is visible.
            let row = sqlx::query(&format!(
                "SELECT {DOCUMENT_COLUMNS} FROM documents WHERE collection = $1 AND sha256 = $2"
            ))
            .bind(new.collection.as_str())
            .bind(&new.sha256)
            .fetch_one(&mut *tx)
            .await?;
            tx.rollback().await?;
            return Ok(InsertOutcome::Duplicate(document_from_row(&row)?));
        };

        sqlx::query(
            "INSERT INTO jobs (id, kind, collection, document_id, status, progress, attempts, created_at, updated_at) \
             VALUES ($1, 'ingest', $2, $3, $4, $5, 0, $6, $6)",
        )
        .bind(new.job_id.0)
        .bind(new.collection.as_str())
        .bind(new.id.0)
        .bind(JobStatus::Queued.as_str())
        .bind(Json(JobProgress::queued()))
        .bind(at)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(InsertOutcome::Created(document_from_row(&row)?))
    }

    async fn get_document(
        &self,
        collection: &CollectionName,
        id: DocumentId,
    ) -> Result<Option<Document>, CatalogError> {
        let row = sqlx::query(&format!(
            "SELECT {DOCUMENT_COLUMNS} FROM documents WHERE collection = $1 AND id = $2"
        ))
        .bind(collection.as_str())
        .bind(id.0)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(document_from_row).transpose()
    }

    async fn list_documents(
        &self,
        collection: &CollectionName,
        query: &DocumentQuery,
    ) -> Result<DocumentPage, CatalogError> {
        let (after_at, after_id) = match &query.after {
            Some(cursor) => (Some(cursor.created_at), Some(cursor.id.0)),
            None => (None, None),
        };
        // One more than asked tells whether there is a next page.
        let rows = sqlx::query(&format!(
            "SELECT {DOCUMENT_COLUMNS} FROM documents WHERE collection = $1 \
             AND ($2::text IS NULL OR status = $2) \
             AND ($3::timestamptz IS NULL OR (created_at, id) > ($3, $4::uuid)) \
             ORDER BY created_at, id LIMIT $5"
        ))
        .bind(collection.as_str())
        .bind(query.status.map(DocumentStatus::as_str))
        .bind(after_at)
        .bind(after_id)
        .bind(i64::from(query.limit) + 1)
        .fetch_all(&self.pool)
        .await?;
        let documents = rows.iter().map(document_from_row).collect::<Result<Vec<_>, _>>()?;
        Ok(DocumentPage::of(documents, query.limit))
    }

    async fn document_ids(&self, collection: &CollectionName) -> Result<Vec<DocumentId>, CatalogError> {
        let rows = sqlx::query("SELECT id FROM documents WHERE collection = $1")
            .bind(collection.as_str())
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(|row| Ok(DocumentId(row.try_get("id")?))).collect()
    }

    async fn delete_document(
        &self,
        collection: &CollectionName,
        id: DocumentId,
    ) -> Result<bool, CatalogError> {
        let done = sqlx::query("DELETE FROM documents WHERE collection = $1 AND id = $2")
            .bind(collection.as_str())
            .bind(id.0)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn replace_chunks(&self, document: DocumentId, chunks: &[Chunk]) -> Result<(), CatalogError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM chunks WHERE document_id = $1")
            .bind(document.0)
            .execute(&mut *tx)
            .await?;
        // One statement per few hundred chunks instead of a round trip per chunk.
        for batch in chunks.chunks(500) {
            let column = |f: fn(&Chunk) -> i64| batch.iter().map(f).collect::<Vec<i64>>();
            sqlx::query(
                "INSERT INTO chunks (document_id, idx, page_start, page_end, char_start, char_end, text, page_breaks) \
                 SELECT $1::uuid, * FROM UNNEST($2::int8[], $3::int8[], $4::int8[], $5::int8[], $6::int8[], $7::text[], $8::jsonb[])",
            )
            .bind(document.0)
            .bind(column(|c| i64::from(c.index)))
            .bind(column(|c| i64::from(c.page_start)))
            .bind(column(|c| i64::from(c.page_end)))
            .bind(column(|c| c.char_start as i64))
            .bind(column(|c| c.char_end as i64))
            .bind(batch.iter().map(|c| c.text.clone()).collect::<Vec<String>>())
            .bind(batch.iter().map(|c| Json(c.page_breaks.clone())).collect::<Vec<_>>())
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn chunks_of(&self, document: DocumentId) -> Result<Vec<Chunk>, CatalogError> {
        let rows = sqlx::query("SELECT * FROM chunks WHERE document_id = $1 ORDER BY idx")
            .bind(document.0)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(chunk_from_row).collect()
    }

    async fn get_job(&self, id: JobId) -> Result<Option<Job>, CatalogError> {
        let row = sqlx::query(&format!("SELECT {JOB_COLUMNS} FROM jobs WHERE id = $1"))
            .bind(id.0)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(job_from_row).transpose()
    }

    async fn enqueue_reindex(&self, collection: &CollectionName) -> Result<Job, CatalogError> {
        let mut tx = self.pool.begin().await?;
        // The same lock as claims: the check and the insert are not interleaved
        // with another request's, nor with a claim.
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(CLAIM_LOCK)
            .execute(&mut *tx)
            .await?;
        let active = sqlx::query(&format!(
            "SELECT {JOB_COLUMNS} FROM jobs WHERE collection = $1 AND kind = 'reindex' \
             AND status IN ('queued', 'running') ORDER BY created_at LIMIT 1"
        ))
        .bind(collection.as_str())
        .fetch_optional(&mut *tx)
        .await?;
        let row = match active {
            Some(row) => row,
            None => {
                let at = now();
                sqlx::query(&format!(
                    "INSERT INTO jobs (id, kind, collection, status, progress, attempts, created_at, updated_at) \
                     VALUES ($1, 'reindex', $2, 'queued', $3, 0, $4, $4) RETURNING {JOB_COLUMNS}"
                ))
                .bind(JobId::new().0)
                .bind(collection.as_str())
                .bind(Json(JobProgress::queued()))
                .bind(at)
                .fetch_one(&mut *tx)
                .await?
            }
        };
        tx.commit().await?;
        job_from_row(&row)
    }

    async fn active_reindex(&self, collection: &CollectionName) -> Result<Option<Job>, CatalogError> {
        let row = sqlx::query(&format!(
            "SELECT {JOB_COLUMNS} FROM jobs WHERE collection = $1 AND kind = 'reindex' \
             AND status IN ('queued', 'running') ORDER BY created_at LIMIT 1"
        ))
        .bind(collection.as_str())
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(job_from_row).transpose()
    }

    async fn claim_next_job(&self) -> Result<Option<ClaimedJob>, CatalogError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(CLAIM_LOCK)
            .execute(&mut *tx)
            .await?;
        let at = now();
        let row = sqlx::query(&format!(
            "UPDATE jobs SET status = 'running', attempts = attempts + 1, error = NULL, run_after = NULL, \
             updated_at = $1 WHERE id = ({claimable}) RETURNING {JOB_COLUMNS}",
            claimable = claimable_job_sql("$1")
        ))
        .bind(at)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            tx.rollback().await?;
            return Ok(None);
        };
        let job = job_from_row(&row)?;
        let claimed = match (job.kind, job.document_id) {
            (JobKind::Ingest, Some(document_id)) => {
                let row = sqlx::query(&format!(
                    "UPDATE documents SET status = 'processing', error = NULL, updated_at = $1 WHERE id = $2 \
                     RETURNING {DOCUMENT_COLUMNS}"
                ))
                .bind(at)
                .bind(document_id.0)
                .fetch_one(&mut *tx)
                .await?;
                ClaimedJob::Ingest {
                    document: document_from_row(&row)?,
                    job,
                }
            }
            (JobKind::Reindex, _) => {
                let row = sqlx::query("SELECT * FROM collections WHERE name = $1")
                    .bind(job.collection.as_str())
                    .fetch_one(&mut *tx)
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
        sqlx::query("UPDATE jobs SET progress = $1, updated_at = $2 WHERE id = $3")
            .bind(Json(progress))
            .bind(now())
            .bind(id.0)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn finish_job(&self, id: JobId, outcome: &JobOutcome) -> Result<bool, CatalogError> {
        let mut tx = self.pool.begin().await?;
        let at = now();
        let (status, error) = job_ending(outcome);
        let run_after = match outcome {
            JobOutcome::Retry { after, .. } => Some(at + chrono::Duration::from_std(*after).unwrap_or_default()),
            _ => None,
        };
        let progress = match outcome {
            JobOutcome::Ingested { .. } | JobOutcome::Reindexed { .. } => Some(Json(JobProgress::done())),
            // A failed job shows how far it got.
            JobOutcome::Failed { .. } | JobOutcome::Retry { .. } => None,
        };
        let row = sqlx::query(
            "UPDATE jobs SET status = $1, error = $2, progress = COALESCE($3, progress), run_after = $4, \
             updated_at = $5 WHERE id = $6 RETURNING collection, document_id",
        )
        .bind(status.as_str())
        .bind(&error)
        .bind(progress)
        .bind(run_after)
        .bind(at)
        .bind(id.0)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            tx.rollback().await?;
            return Ok(false);
        };
        let collection: String = row.try_get("collection")?;
        let document_id: Option<Uuid> = row.try_get("document_id")?;
        let updated = match (outcome, document_id) {
            (JobOutcome::Reindexed { model }, _) => {
                let model = model.as_ref();
                sqlx::query(
                    "UPDATE collections SET embed_model = $1, embed_variant = $2, embed_dim = $3 WHERE name = $4",
                )
                .bind(model.map(|m| m.name.clone()))
                .bind(model.map(|m| m.variant.clone()))
                .bind(model.map(|m| m.dimension as i32))
                .bind(&collection)
                .execute(&mut *tx)
                .await?
            }
            (JobOutcome::Ingested { pages, chunks }, Some(document_id)) => sqlx::query(
                "UPDATE documents SET status = 'ready', error = NULL, pages = $1, chunks = $2, updated_at = $3 WHERE id = $4",
            )
            .bind(*pages as i32)
            .bind(*chunks as i32)
            .bind(at)
            .bind(document_id)
            .execute(&mut *tx)
            .await?,
            (JobOutcome::Failed { reason }, Some(document_id)) => {
                sqlx::query("UPDATE documents SET status = 'failed', error = $1, updated_at = $2 WHERE id = $3")
                    .bind(reason)
                    .bind(at)
                    .bind(document_id)
                    .execute(&mut *tx)
                    .await?
            }
            (JobOutcome::Retry { .. }, Some(document_id)) => {
                sqlx::query("UPDATE documents SET status = 'queued', updated_at = $1 WHERE id = $2")
                    .bind(at)
                    .bind(document_id)
                    .execute(&mut *tx)
                    .await?
            }
            // A re-index that failed or waits changes nothing but its job.
            (JobOutcome::Failed { .. } | JobOutcome::Retry { .. }, None) => {
                tx.commit().await?;
                return Ok(true);
            }
            (JobOutcome::Ingested { .. }, None) => {
                return Err(CatalogError::Corrupt(format!("job {id} has no document to be ready")));
            }
        };
        tx.commit().await?;
        Ok(updated.rows_affected() > 0)
    }

    async fn requeue_interrupted_jobs(&self) -> Result<u64, CatalogError> {
        let mut tx = self.pool.begin().await?;
        let at = now();
        sqlx::query(
            "UPDATE documents SET status = 'queued', updated_at = $1 \
             WHERE id IN (SELECT document_id FROM jobs WHERE status = 'running' AND document_id IS NOT NULL)",
        )
        .bind(at)
        .execute(&mut *tx)
        .await?;
        let done = sqlx::query("UPDATE jobs SET status = 'queued', updated_at = $1 WHERE status = 'running'")
            .bind(at)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(done.rows_affected())
    }

    async fn retry_job(&self, id: JobId) -> Result<Option<Job>, CatalogError> {
        let mut tx = self.pool.begin().await?;
        let at = now();
        let row = sqlx::query(&format!(
            "UPDATE jobs SET status = 'queued', error = NULL, run_after = NULL, progress = $1, updated_at = $2 \
             WHERE id = $3 AND status = 'failed' RETURNING {JOB_COLUMNS}"
        ))
        .bind(Json(JobProgress::queued()))
        .bind(&at)
        .bind(id.0)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            tx.rollback().await?;
            return Ok(None);
        };
        let job = job_from_row(&row)?;
        if let Some(document) = row.try_get::<Option<Uuid>, _>("document_id")? {
            sqlx::query("UPDATE documents SET status = 'queued', error = NULL, updated_at = $1 WHERE id = $2")
                .bind(&at)
                .bind(document)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(Some(job))
    }

    async fn queued_jobs(&self) -> Result<u64, CatalogError> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM jobs WHERE status = 'queued'")
            .fetch_one(&self.pool)
            .await?;
        Ok(row.try_get::<i64, _>("n")?.max(0) as u64)
    }
}
