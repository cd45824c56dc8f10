//! The catalog on SQLite (through sqlx), the embedded default.

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteRow, SqliteSynchronous};
use sqlx::{Row, SqlitePool};

use super::{
    claimable_job_sql, job_ending, now, timestamp, Catalog, CatalogError, ClaimedJob, DocumentPage,
    DocumentQuery, InsertOutcome, JobOutcome, NewCollection,
};
use crate::domain::{
    Chunk, Collection, CollectionName, Document, DocumentId, DocumentStatus, EmbeddingModel, Job,
    JobId, JobKind, JobProgress, JobStatus, Metadata, NewDocument, PageBreak,
};

pub struct SqliteCatalog {
    pool: SqlitePool,
}

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("migrations/sqlite");

const DOCUMENT_COLUMNS: &str = "id, collection, filename, content_type, bytes, sha256, pages, chunks, \
     status, error, metadata, job_id, created_at, updated_at";
const JOB_COLUMNS: &str =
    "id, kind, collection, document_id, status, progress, error, attempts, created_at, updated_at";

impl SqliteCatalog {
    /// Opens (creating if needed) the database and runs the migrations.
    pub async fn connect(url: &str, max_connections: u32) -> Result<Self, CatalogError> {
        let options = SqliteConnectOptions::from_str(url)
            .map_err(|e| CatalogError::Unavailable(format!("bad DATABASE_URL {url:?}: {e}")))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // WAL + NORMAL: a commit survives a process crash; only a power loss can
            // drop the last transactions.
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10));
        let pool = SqlitePoolOptions::new()
            .max_connections(max_connections)
            .connect_with(options)
            .await?;
        MIGRATOR
            .run(&pool)
            .await
            .map_err(|e| CatalogError::Migration(e.to_string()))?;
        Ok(Self { pool })
    }
}

fn now_text() -> String {
    timestamp(now())
}

fn parse_time(raw: &str) -> Result<DateTime<Utc>, CatalogError> {
    DateTime::parse_from_rfc3339(raw)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| CatalogError::Corrupt(format!("timestamp {raw:?}: {e}")))
}

fn parse<T: FromStr>(raw: &str, what: &str) -> Result<T, CatalogError>
where
    T::Err: std::fmt::Display,
{
    raw.parse()
        .map_err(|e| CatalogError::Corrupt(format!("{what} {raw:?}: {e}")))
}

fn json<T: serde::de::DeserializeOwned>(raw: &str, what: &str) -> Result<T, CatalogError> {
    serde_json::from_str(raw).map_err(|e| CatalogError::Corrupt(format!("{what}: {e}")))
}

fn to_json<T: serde::Serialize>(value: &T) -> String {
    // Serializing our own plain types cannot fail.
    serde_json::to_string(value).unwrap_or_else(|_| "null".to_string())
}

fn collection_from_row(row: &SqliteRow) -> Result<Collection, CatalogError> {
    let name: String = row.try_get("name")?;
    let model: Option<String> = row.try_get("embed_model")?;
    let variant: Option<String> = row.try_get("embed_variant")?;
    let dim: Option<i64> = row.try_get("embed_dim")?;
    let embedding_model = match (model, dim) {
        (Some(name), Some(dim)) => Some(EmbeddingModel {
            name,
            variant: variant.unwrap_or_default(),
            dimension: dim as usize,
        }),
        _ => None,
    };
    Ok(Collection {
        name: CollectionName::parse(&name).map_err(|e| CatalogError::Corrupt(e.to_string()))?,
        description: row.try_get("description")?,
        embedding_model,
        created_at: parse_time(&row.try_get::<String, _>("created_at")?)?,
    })
}

fn document_from_row(row: &SqliteRow) -> Result<Document, CatalogError> {
    let collection: String = row.try_get("collection")?;
    Ok(Document {
        id: parse(&row.try_get::<String, _>("id")?, "document id")?,
        collection: CollectionName::parse(&collection).map_err(|e| CatalogError::Corrupt(e.to_string()))?,
        filename: row.try_get("filename")?,
        content_type: parse(&row.try_get::<String, _>("content_type")?, "content type")?,
        bytes: row.try_get::<i64, _>("bytes")? as u64,
        sha256: row.try_get("sha256")?,
        pages: row.try_get::<Option<i64>, _>("pages")?.map(|p| p as u32),
        chunks: row.try_get::<Option<i64>, _>("chunks")?.map(|c| c as u32),
        status: parse(&row.try_get::<String, _>("status")?, "document status")?,
        error: row.try_get("error")?,
        metadata: json::<Metadata>(&row.try_get::<String, _>("metadata")?, "metadata")?,
        job_id: parse(&row.try_get::<String, _>("job_id")?, "job id")?,
        created_at: parse_time(&row.try_get::<String, _>("created_at")?)?,
        updated_at: parse_time(&row.try_get::<String, _>("updated_at")?)?,
    })
}

fn job_from_row(row: &SqliteRow) -> Result<Job, CatalogError> {
    let collection: String = row.try_get("collection")?;
    Ok(Job {
        id: parse(&row.try_get::<String, _>("id")?, "job id")?,
        kind: parse(&row.try_get::<String, _>("kind")?, "job kind")?,
        collection: CollectionName::parse(&collection).map_err(|e| CatalogError::Corrupt(e.to_string()))?,
        document_id: row
            .try_get::<Option<String>, _>("document_id")?
            .map(|id| parse(&id, "document id"))
            .transpose()?,
        status: parse(&row.try_get::<String, _>("status")?, "job status")?,
        progress: json(&row.try_get::<String, _>("progress")?, "job progress")?,
        error: row.try_get("error")?,
        attempts: row.try_get::<i64, _>("attempts")? as u32,
        created_at: parse_time(&row.try_get::<String, _>("created_at")?)?,
        updated_at: parse_time(&row.try_get::<String, _>("updated_at")?)?,
    })
}

fn chunk_from_row(row: &SqliteRow) -> Result<Chunk, CatalogError> {
    Ok(Chunk {
        document_id: parse(&row.try_get::<String, _>("document_id")?, "document id")?,
        index: row.try_get::<i64, _>("idx")? as u32,
        page_start: row.try_get::<i64, _>("page_start")? as u32,
        page_end: row.try_get::<i64, _>("page_end")? as u32,
        char_start: row.try_get::<i64, _>("char_start")? as u64,
        char_end: row.try_get::<i64, _>("char_end")? as u64,
        text: row.try_get("text")?,
        page_breaks: json::<Vec<PageBreak>>(&row.try_get::<String, _>("page_breaks")?, "page breaks")?,
    })
}

#[async_trait]
impl Catalog for SqliteCatalog {
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
             VALUES (?, ?, ?, ?, ?, ?) RETURNING *",
        )
        .bind(new.name.as_str())
        .bind(&new.description)
        .bind(model.map(|m| m.name.clone()))
        .bind(model.map(|m| m.variant.clone()))
        .bind(model.map(|m| m.dimension as i64))
        .bind(now_text())
        .fetch_one(&self.pool)
        .await?;
        collection_from_row(&row)
    }

    async fn get_collection(&self, name: &CollectionName) -> Result<Option<Collection>, CatalogError> {
        let row = sqlx::query("SELECT * FROM collections WHERE name = ?")
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
        let done = sqlx::query("DELETE FROM collections WHERE name = ?")
            .bind(name.as_str())
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn insert_document(&self, new: &NewDocument) -> Result<InsertOutcome, CatalogError> {
        let mut tx = self.pool.begin().await?;
        let at = now_text();
        let inserted = sqlx::query(&format!(
            "INSERT INTO documents (id, collection, filename, content_type, bytes, sha256, status, \
             metadata, job_id, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) \
             ON CONFLICT (collection, sha256) DO NOTHING RETURNING {DOCUMENT_COLUMNS}"
        ))
        .bind(new.id.to_string())
        .bind(new.collection.as_str())
        .bind(&new.filename)
        .bind(new.content_type.mime())
        .bind(new.bytes as i64)
        .bind(&new.sha256)
        .bind(DocumentStatus::Queued.as_str())
        .bind(to_json(&new.metadata))
        .bind(new.job_id.to_string())
        .bind(&at)
        .bind(&at)
        .fetch_optional(&mut *tx)
        .await?;

        let Some(row) = inserted else {
            let row = sqlx::query(&format!(
                "SELECT {DOCUMENT_COLUMNS} FROM documents WHERE collection = ? AND sha256 = ?"
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
             VALUES (?, 'ingest', ?, ?, ?, ?, 0, ?, ?)",
        )
        .bind(new.job_id.to_string())
        .bind(new.collection.as_str())
        .bind(new.id.to_string())
        .bind(JobStatus::Queued.as_str())
        .bind(to_json(&JobProgress::queued()))
        .bind(&at)
        .bind(&at)
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
            "SELECT {DOCUMENT_COLUMNS} FROM documents WHERE collection = ? AND id = ?"
        ))
        .bind(collection.as_str())
        .bind(id.to_string())
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
            Some(cursor) => (timestamp(cursor.created_at), cursor.id.to_string()),
            None => (String::new(), String::new()),
        };
        // One more than asked tells whether there is a next page.
        let rows = sqlx::query(&format!(
            "SELECT {DOCUMENT_COLUMNS} FROM documents WHERE collection = ? \
             AND (? IS NULL OR status = ?) AND (created_at, id) > (?, ?) \
             ORDER BY created_at, id LIMIT ?"
        ))
        .bind(collection.as_str())
        .bind(query.status.map(DocumentStatus::as_str))
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
        let rows = sqlx::query("SELECT id FROM documents WHERE collection = ?")
            .bind(collection.as_str())
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|row| parse(&row.try_get::<String, _>("id")?, "document id"))
            .collect()
    }

    async fn delete_document(
        &self,
        collection: &CollectionName,
        id: DocumentId,
    ) -> Result<bool, CatalogError> {
        let done = sqlx::query("DELETE FROM documents WHERE collection = ? AND id = ?")
            .bind(collection.as_str())
            .bind(id.to_string())
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn replace_chunks(&self, document: DocumentId, chunks: &[Chunk]) -> Result<(), CatalogError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM chunks WHERE document_id = ?")
            .bind(document.to_string())
            .execute(&mut *tx)
            .await?;
        for chunk in chunks {
            sqlx::query(
                "INSERT INTO chunks (document_id, idx, page_start, page_end, char_start, char_end, text, page_breaks) \
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            )
            .bind(document.to_string())
            .bind(i64::from(chunk.index))
            .bind(i64::from(chunk.page_start))
            .bind(i64::from(chunk.page_end))
            .bind(chunk.char_start as i64)
            .bind(chunk.char_end as i64)
            .bind(&chunk.text)
            .bind(to_json(&chunk.page_breaks))
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn chunks_of(&self, document: DocumentId) -> Result<Vec<Chunk>, CatalogError> {
        let rows = sqlx::query("SELECT * FROM chunks WHERE document_id = ? ORDER BY idx")
            .bind(document.to_string())
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(chunk_from_row).collect()
    }

    async fn get_job(&self, id: JobId) -> Result<Option<Job>, CatalogError> {
        let row = sqlx::query(&format!("SELECT {JOB_COLUMNS} FROM jobs WHERE id = ?"))
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(job_from_row).transpose()
    }

    async fn enqueue_reindex(&self, collection: &CollectionName) -> Result<Job, CatalogError> {
        // The check and the insert are one statement, and SQLite has one writer at a
        // time: two requests cannot both insert.
        let mut tx = self.pool.begin().await?;
        let at = now_text();
        let inserted = sqlx::query(&format!(
            "INSERT INTO jobs (id, kind, collection, status, progress, attempts, created_at, updated_at) \
             SELECT ?, 'reindex', ?, 'queued', ?, 0, ?, ? WHERE NOT EXISTS (SELECT 1 FROM jobs \
             WHERE collection = ? AND kind = 'reindex' AND status IN ('queued', 'running')) \
             RETURNING {JOB_COLUMNS}"
        ))
        .bind(JobId::new().to_string())
        .bind(collection.as_str())
        .bind(to_json(&JobProgress::queued()))
        .bind(&at)
        .bind(&at)
        .bind(collection.as_str())
        .fetch_optional(&mut *tx)
        .await?;
        let row = match inserted {
            Some(row) => row,
            None => {
                sqlx::query(&format!(
                    "SELECT {JOB_COLUMNS} FROM jobs WHERE collection = ? AND kind = 'reindex' \
                     AND status IN ('queued', 'running') ORDER BY created_at LIMIT 1"
                ))
                .bind(collection.as_str())
                .fetch_one(&mut *tx)
                .await?
            }
        };
        tx.commit().await?;
        job_from_row(&row)
    }

    async fn active_reindex(&self, collection: &CollectionName) -> Result<Option<Job>, CatalogError> {
        let row = sqlx::query(&format!(
            "SELECT {JOB_COLUMNS} FROM jobs WHERE collection = ? AND kind = 'reindex' \
             AND status IN ('queued', 'running') ORDER BY created_at LIMIT 1"
        ))
        .bind(collection.as_str())
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(job_from_row).transpose()
    }

    async fn claim_next_job(&self) -> Result<Option<ClaimedJob>, CatalogError> {
        let mut tx = self.pool.begin().await?;
        let at = now_text();
        let row = sqlx::query(&format!(
            "UPDATE jobs SET status = 'running', attempts = attempts + 1, error = NULL, run_after = NULL, \
             updated_at = ?1 WHERE id = ({claimable}) RETURNING {JOB_COLUMNS}",
            claimable = claimable_job_sql("?1")
        ))
        .bind(&at)
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
                    "UPDATE documents SET status = 'processing', error = NULL, updated_at = ? WHERE id = ? \
                     RETURNING {DOCUMENT_COLUMNS}"
                ))
                .bind(&at)
                .bind(document_id.to_string())
                .fetch_one(&mut *tx)
                .await?;
                ClaimedJob::Ingest {
                    document: document_from_row(&row)?,
                    job,
                }
            }
            (JobKind::Reindex, _) => {
                let row = sqlx::query("SELECT * FROM collections WHERE name = ?")
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
        sqlx::query("UPDATE jobs SET progress = ?, updated_at = ? WHERE id = ?")
            .bind(to_json(&progress))
            .bind(now_text())
            .bind(id.to_string())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn finish_job(&self, id: JobId, outcome: &JobOutcome) -> Result<bool, CatalogError> {
        let mut tx = self.pool.begin().await?;
        let at = now();
        let (status, error) = job_ending(outcome);
        let run_after = match outcome {
            JobOutcome::Retry { after, .. } => Some(timestamp(at + chrono::Duration::from_std(*after).unwrap_or_default())),
            _ => None,
        };
        let progress = match outcome {
            JobOutcome::Ingested { .. } | JobOutcome::Reindexed { .. } => Some(to_json(&JobProgress::done())),
            // A failed job shows how far it got.
            JobOutcome::Failed { .. } | JobOutcome::Retry { .. } => None,
        };
        let at = timestamp(at);
        let row = sqlx::query(
            "UPDATE jobs SET status = ?, error = ?, progress = COALESCE(?, progress), run_after = ?, \
             updated_at = ? WHERE id = ? RETURNING collection, document_id",
        )
        .bind(status.as_str())
        .bind(&error)
        .bind(progress)
        .bind(run_after)
        .bind(&at)
        .bind(id.to_string())
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            tx.rollback().await?;
            return Ok(false);
        };
        let collection: String = row.try_get("collection")?;
        let document_id: Option<String> = row.try_get("document_id")?;
        let updated = match (outcome, document_id) {
            (JobOutcome::Reindexed { model }, _) => {
                let model = model.as_ref();
                sqlx::query(
                    "UPDATE collections SET embed_model = ?, embed_variant = ?, embed_dim = ? WHERE name = ?",
                )
                .bind(model.map(|m| m.name.clone()))
                .bind(model.map(|m| m.variant.clone()))
                .bind(model.map(|m| m.dimension as i64))
                .bind(&collection)
                .execute(&mut *tx)
                .await?
            }
            (JobOutcome::Ingested { pages, chunks }, Some(document_id)) => sqlx::query(
                "UPDATE documents SET status = 'ready', error = NULL, pages = ?, chunks = ?, updated_at = ? WHERE id = ?",
            )
            .bind(i64::from(*pages))
            .bind(i64::from(*chunks))
            .bind(&at)
            .bind(&document_id)
            .execute(&mut *tx)
            .await?,
            (JobOutcome::Failed { reason }, Some(document_id)) => {
                sqlx::query("UPDATE documents SET status = 'failed', error = ?, updated_at = ? WHERE id = ?")
                    .bind(reason)
                    .bind(&at)
                    .bind(&document_id)
                    .execute(&mut *tx)
                    .await?
            }
            (JobOutcome::Retry { .. }, Some(document_id)) => {
                sqlx::query("UPDATE documents SET status = 'queued', updated_at = ? WHERE id = ?")
                    .bind(&at)
                    .bind(&document_id)
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
        let at = now_text();
        sqlx::query(
            "UPDATE documents SET status = 'queued', updated_at = ? \
             WHERE id IN (SELECT document_id FROM jobs WHERE status = 'running' AND document_id IS NOT NULL)",
        )
        .bind(&at)
        .execute(&mut *tx)
        .await?;
        let done = sqlx::query("UPDATE jobs SET status = 'queued', updated_at = ? WHERE status = 'running'")
            .bind(&at)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(done.rows_affected())
    }

    async fn retry_job(&self, id: JobId) -> Result<Option<Job>, CatalogError> {
        let mut tx = self.pool.begin().await?;
        let at = now_text();
        let row = sqlx::query(&format!(
            "UPDATE jobs SET status = 'queued', error = NULL, run_after = NULL, progress = ?, updated_at = ? \
             WHERE id = ? AND status = 'failed' RETURNING {JOB_COLUMNS}"
        ))
        .bind(to_json(&JobProgress::queued()))
        .bind(&at)
        .bind(id.to_string())
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            tx.rollback().await?;
            return Ok(None);
        };
        let job = job_from_row(&row)?;
        if let Some(document) = row.try_get::<Option<String>, _>("document_id")? {
            sqlx::query("UPDATE documents SET status = 'queued', error = NULL, updated_at = ? WHERE id = ?")
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
