//! The seam between the one catalog implementation (`sql.rs`) and its two
//! databases: everything that truly differs between SQLite and Postgres, and
//! nothing else.
//!
//! - **Values.** Queries carry typed arguments ([`Statement`]); each database
//!   binds and reads them in its own column types: ids are TEXT on SQLite and
//!   UUID on Postgres, timestamps TEXT in one fixed sortable RFC 3339 form on
//!   SQLite and TIMESTAMPTZ on Postgres, JSON TEXT or JSONB, counts INTEGER
//!   (64-bit) or INT4/INT8.
//! - **The job-claim lock.** Claims look at other jobs than the one claimed, so
//!   they are serialised: by an advisory transaction lock on Postgres, by
//!   SQLite's single writer on SQLite.
//! - **Connecting and migrating** (`migrations/sqlite`, `migrations/postgres`:
//!   the same tables in each database's types).
//!
//! SQL text is written once, with `$1`-style placeholders, which both accept.

use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgPoolOptions, PgRow};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteRow, SqliteSynchronous};
use sqlx::types::Json;
use sqlx::{Column, PgPool, Postgres, Row as _, Sqlite, SqlitePool, TypeInfo};
use uuid::Uuid;

use super::{CatalogError, timestamp};

static SQLITE_MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("migrations/sqlite");
static POSTGRES_MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("migrations/postgres");

/// Any constant: the key of the advisory lock that serialises job claims on Postgres.
const CLAIM_LOCK: i64 = 0x646f_6371_6a6f_6273; // "docqjobs"

/// A request waits at most this long for a Postgres connection: a database that
/// is down answers 503 quickly instead of hanging the request.
const POSTGRES_ACQUIRE_TIMEOUT: Duration = Duration::from_secs(3);

/// SQL text and its arguments, in order (`$1`, `$2`, …).
#[derive(Debug, Clone)]
pub(crate) struct Statement {
    sql: String,
    args: Vec<Arg>,
}

/// An argument, by what it means rather than how a database stores it.
#[derive(Debug, Clone)]
enum Arg {
    Id(Option<Uuid>),
    Time(Option<DateTime<Utc>>),
    Text(Option<String>),
    Int(Option<i64>),
    Json(Option<serde_json::Value>),
}

impl Statement {
    pub fn new(sql: impl Into<String>) -> Self {
        Self {
            sql: sql.into(),
            args: Vec::new(),
        }
    }

    fn arg(mut self, arg: Arg) -> Self {
        self.args.push(arg);
        self
    }

    pub fn id(self, id: impl Into<Uuid>) -> Self {
        self.arg(Arg::Id(Some(id.into())))
    }

    pub fn opt_id(self, id: Option<Uuid>) -> Self {
        self.arg(Arg::Id(id))
    }

    pub fn time(self, at: DateTime<Utc>) -> Self {
        self.arg(Arg::Time(Some(at)))
    }

    pub fn opt_time(self, at: Option<DateTime<Utc>>) -> Self {
        self.arg(Arg::Time(at))
    }

    pub fn text(self, text: impl Into<String>) -> Self {
        self.arg(Arg::Text(Some(text.into())))
    }

    pub fn opt_text(self, text: Option<impl Into<String>>) -> Self {
        self.arg(Arg::Text(text.map(Into::into)))
    }

    pub fn int(self, n: impl Into<i64>) -> Self {
        self.arg(Arg::Int(Some(n.into())))
    }

    pub fn opt_int(self, n: Option<i64>) -> Self {
        self.arg(Arg::Int(n))
    }

    pub fn json(self, value: &impl serde::Serialize) -> Self {
        // Serializing our own plain types cannot fail.
        self.arg(Arg::Json(Some(
            serde_json::to_value(value).unwrap_or(serde_json::Value::Null),
        )))
    }

    /// JSON, or SQL NULL for `None`.
    pub fn opt_json(self, value: Option<&impl serde::Serialize>) -> Self {
        self.arg(Arg::Json(
            value.map(|v| serde_json::to_value(v).unwrap_or(serde_json::Value::Null)),
        ))
    }

    fn sqlite(&self) -> sqlx::query::Query<'_, Sqlite, sqlx::sqlite::SqliteArguments<'_>> {
        let mut query = sqlx::query(&self.sql);
        for arg in &self.args {
            query = match arg {
                Arg::Id(id) => query.bind(id.map(|id| id.to_string())),
                Arg::Time(at) => query.bind(at.map(timestamp)),
                Arg::Text(text) => query.bind(text.as_deref()),
                Arg::Int(n) => query.bind(*n),
                Arg::Json(value) => query.bind(value.as_ref().map(|v| v.to_string())),
            };
        }
        query
    }

    fn postgres(&self) -> sqlx::query::Query<'_, Postgres, sqlx::postgres::PgArguments> {
        let mut query = sqlx::query(&self.sql);
        for arg in &self.args {
            query = match arg {
                Arg::Id(id) => query.bind(*id),
                Arg::Time(at) => query.bind(*at),
                Arg::Text(text) => query.bind(text.as_deref()),
                Arg::Int(n) => query.bind(*n),
                Arg::Json(value) => query.bind(value.as_ref().map(Json)),
            };
        }
        query
    }
}

/// The database: a pool of either kind.
pub(crate) enum Db {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

impl Db {
    /// Opens (creating if needed) a SQLite database and brings its schema up to date.
    pub async fn open_sqlite(url: &str, max_connections: u32) -> Result<Self, CatalogError> {
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
        SQLITE_MIGRATOR
            .run(&pool)
            .await
            .map_err(|e| CatalogError::Migration(e.to_string()))?;
        Ok(Self::Sqlite(pool))
    }

    /// Connects to Postgres (one attempt), without migrating.
    pub async fn connect_postgres(url: &str, max_connections: u32) -> Result<Self, CatalogError> {
        let pool = PgPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(POSTGRES_ACQUIRE_TIMEOUT)
            .connect(url)
            .await?;
        Ok(Self::Postgres(pool))
    }

    /// Brings the schema up to date (on Postgres the migrations take a lock, so
    /// that servers starting together migrate once).
    pub async fn migrate(&self) -> Result<(), CatalogError> {
        let migrated = match self {
            Self::Sqlite(pool) => SQLITE_MIGRATOR.run(pool).await,
            Self::Postgres(pool) => POSTGRES_MIGRATOR.run(pool).await,
        };
        migrated.map_err(|e| CatalogError::Migration(e.to_string()))
    }

    pub async fn close(&self) {
        match self {
            Self::Sqlite(pool) => pool.close().await,
            Self::Postgres(pool) => pool.close().await,
        }
    }

    pub async fn begin(&self) -> Result<Transaction, CatalogError> {
        Ok(match self {
            Self::Sqlite(pool) => Transaction::Sqlite(pool.begin().await?),
            Self::Postgres(pool) => Transaction::Postgres(pool.begin().await?),
        })
    }

    async fn connection(&self) -> Result<Connection, CatalogError> {
        Ok(match self {
            Self::Sqlite(pool) => Connection::Sqlite(pool.acquire().await?),
            Self::Postgres(pool) => Connection::Postgres(pool.acquire().await?),
        })
    }

    /// Runs one statement alone; the rows it changed.
    pub async fn execute(&self, statement: &Statement) -> Result<u64, CatalogError> {
        self.connection().await?.on().execute(statement).await
    }

    pub async fn fetch_optional(&self, statement: &Statement) -> Result<Option<Row>, CatalogError> {
        self.connection().await?.on().fetch_optional(statement).await
    }

    pub async fn fetch_all(&self, statement: &Statement) -> Result<Vec<Row>, CatalogError> {
        self.connection().await?.on().fetch_all(statement).await
    }

    /// The row, if any, as a domain value.
    pub async fn fetch_optional_as<T>(
        &self,
        statement: &Statement,
        from_row: impl Fn(&Row) -> Result<T, CatalogError>,
    ) -> Result<Option<T>, CatalogError> {
        self.fetch_optional(statement).await?.as_ref().map(from_row).transpose()
    }

    /// Every row, as domain values.
    pub async fn fetch_all_as<T>(
        &self,
        statement: &Statement,
        from_row: impl Fn(&Row) -> Result<T, CatalogError>,
    ) -> Result<Vec<T>, CatalogError> {
        self.fetch_all(statement).await?.iter().map(from_row).collect()
    }
}

enum Connection {
    Sqlite(PoolConnection<Sqlite>),
    Postgres(PoolConnection<Postgres>),
}

impl Connection {
    fn on(&mut self) -> On<'_> {
        match self {
            Self::Sqlite(connection) => On::Sqlite(connection),
            Self::Postgres(connection) => On::Postgres(connection),
        }
    }
}

pub(crate) enum Transaction {
    Sqlite(sqlx::Transaction<'static, Sqlite>),
    Postgres(sqlx::Transaction<'static, Postgres>),
}

impl Transaction {
    fn on(&mut self) -> On<'_> {
        match self {
            Self::Sqlite(tx) => On::Sqlite(tx),
            Self::Postgres(tx) => On::Postgres(tx),
        }
    }

    pub async fn commit(self) -> Result<(), CatalogError> {
        match self {
            Self::Sqlite(tx) => tx.commit().await?,
            Self::Postgres(tx) => tx.commit().await?,
        }
        Ok(())
    }

    pub async fn rollback(self) -> Result<(), CatalogError> {
        match self {
            Self::Sqlite(tx) => tx.rollback().await?,
            Self::Postgres(tx) => tx.rollback().await?,
        }
        Ok(())
    }

    /// Serialises this transaction with every other that claims or queues jobs,
    /// until it ends.
    pub async fn lock_job_claims(&mut self) -> Result<(), CatalogError> {
        match self {
            // One writer at a time: a write transaction is already alone.
            Self::Sqlite(_) => Ok(()),
            Self::Postgres(tx) => {
                sqlx::query("SELECT pg_advisory_xact_lock($1)")
                    .bind(CLAIM_LOCK)
                    .execute(&mut **tx)
                    .await?;
                Ok(())
            }
        }
    }

    pub async fn execute(&mut self, statement: &Statement) -> Result<u64, CatalogError> {
        self.on().execute(statement).await
    }

    pub async fn fetch_optional(&mut self, statement: &Statement) -> Result<Option<Row>, CatalogError> {
        self.on().fetch_optional(statement).await
    }

    pub async fn fetch_all(&mut self, statement: &Statement) -> Result<Vec<Row>, CatalogError> {
        self.on().fetch_all(statement).await
    }

    pub async fn fetch_one(&mut self, statement: &Statement) -> Result<Row, CatalogError> {
        self.on().fetch_optional(statement).await?.ok_or_else(|| {
            CatalogError::Corrupt(format!(
                "expected a row from {}",
                statement.sql.split_whitespace().take(6).collect::<Vec<_>>().join(" ")
            ))
        })
    }
}

/// A connection a statement runs on: pooled, or a transaction's.
enum On<'a> {
    Sqlite(&'a mut sqlx::SqliteConnection),
    Postgres(&'a mut sqlx::PgConnection),
}

impl On<'_> {
    async fn execute(self, statement: &Statement) -> Result<u64, CatalogError> {
        Ok(match self {
            Self::Sqlite(c) => statement.sqlite().execute(c).await?.rows_affected(),
            Self::Postgres(c) => statement.postgres().execute(c).await?.rows_affected(),
        })
    }

    async fn fetch_optional(self, statement: &Statement) -> Result<Option<Row>, CatalogError> {
        Ok(match self {
            Self::Sqlite(c) => statement.sqlite().fetch_optional(c).await?.map(Row::Sqlite),
            Self::Postgres(c) => statement.postgres().fetch_optional(c).await?.map(Row::Postgres),
        })
    }

    async fn fetch_all(self, statement: &Statement) -> Result<Vec<Row>, CatalogError> {
        fn rows<R>(rows: Vec<R>, row: fn(R) -> Row) -> Vec<Row> {
            rows.into_iter().map(row).collect()
        }
        Ok(match self {
            Self::Sqlite(c) => rows(statement.sqlite().fetch_all(c).await?, Row::Sqlite),
            Self::Postgres(c) => rows(statement.postgres().fetch_all(c).await?, Row::Postgres),
        })
    }
}

/// A result row, read by what its columns mean.
pub(crate) enum Row {
    Sqlite(SqliteRow),
    Postgres(PgRow),
}

impl Row {
    pub fn id(&self, column: &str) -> Result<Uuid, CatalogError> {
        self.opt_id(column)?
            .ok_or_else(|| CatalogError::Corrupt(format!("{column} is null")))
    }

    pub fn opt_id(&self, column: &str) -> Result<Option<Uuid>, CatalogError> {
        match self {
            Self::Sqlite(row) => row
                .try_get::<Option<String>, _>(column)?
                .map(|raw| parse(&raw, column))
                .transpose(),
            Self::Postgres(row) => Ok(row.try_get(column)?),
        }
    }

    pub fn time(&self, column: &str) -> Result<DateTime<Utc>, CatalogError> {
        self.opt_time(column)?
            .ok_or_else(|| CatalogError::Corrupt(format!("{column} is null")))
    }

    pub fn opt_time(&self, column: &str) -> Result<Option<DateTime<Utc>>, CatalogError> {
        match self {
            Self::Sqlite(row) => row
                .try_get::<Option<String>, _>(column)?
                .map(|raw| {
                    DateTime::parse_from_rfc3339(&raw)
                        .map(|t| t.with_timezone(&Utc))
                        .map_err(|e| CatalogError::Corrupt(format!("{column} {raw:?}: {e}")))
                })
                .transpose(),
            Self::Postgres(row) => Ok(row.try_get(column)?),
        }
    }

    pub fn text(&self, column: &str) -> Result<String, CatalogError> {
        Ok(match self {
            Self::Sqlite(row) => row.try_get(column)?,
            Self::Postgres(row) => row.try_get(column)?,
        })
    }

    pub fn opt_text(&self, column: &str) -> Result<Option<String>, CatalogError> {
        Ok(match self {
            Self::Sqlite(row) => row.try_get(column)?,
            Self::Postgres(row) => row.try_get(column)?,
        })
    }

    /// A text column holding a value of ours (a status, a kind, a name).
    pub fn parsed<T: FromStr>(&self, column: &str) -> Result<T, CatalogError>
    where
        T::Err: std::fmt::Display,
    {
        parse(&self.text(column)?, column)
    }

    pub fn opt_int(&self, column: &str) -> Result<Option<i64>, CatalogError> {
        Ok(match self {
            Self::Sqlite(row) => row.try_get(column)?,
            Self::Postgres(row) => {
                let kind = row.try_column(column)?.type_info().name().to_string();
                match kind.as_str() {
                    "INT4" => row.try_get::<Option<i32>, _>(column)?.map(i64::from),
                    "INT2" => row.try_get::<Option<i16>, _>(column)?.map(i64::from),
                    _ => row.try_get(column)?,
                }
            }
        })
    }

    pub fn int(&self, column: &str) -> Result<i64, CatalogError> {
        self.opt_int(column)?
            .ok_or_else(|| CatalogError::Corrupt(format!("{column} is null")))
    }

    /// A count or position: a non-negative integer that fits `T`.
    pub fn count<T: TryFrom<i64>>(&self, column: &str) -> Result<T, CatalogError> {
        let n = self.int(column)?;
        T::try_from(n).map_err(|_| CatalogError::Corrupt(format!("{column} {n}")))
    }

    pub fn opt_count<T: TryFrom<i64>>(&self, column: &str) -> Result<Option<T>, CatalogError> {
        self.opt_int(column)?
            .map(|n| T::try_from(n).map_err(|_| CatalogError::Corrupt(format!("{column} {n}"))))
            .transpose()
    }

    pub fn json<T: DeserializeOwned>(&self, column: &str) -> Result<T, CatalogError> {
        match self {
            Self::Sqlite(row) => {
                let raw: String = row.try_get(column)?;
                serde_json::from_str(&raw).map_err(|e| CatalogError::Corrupt(format!("{column}: {e}")))
            }
            Self::Postgres(row) => Ok(row.try_get::<Json<T>, _>(column)?.0),
        }
    }
}

fn parse<T: FromStr>(raw: &str, what: &str) -> Result<T, CatalogError>
where
    T::Err: std::fmt::Display,
{
    raw.parse()
        .map_err(|e| CatalogError::Corrupt(format!("{what} {raw:?}: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_and_arguments_keep_their_order() {
        let statement = Statement::new("SELECT $1, $2, $3")
            .id(Uuid::nil())
            .text("a")
            .opt_int(None);
        assert_eq!(statement.args.len(), 3);
        assert!(matches!(statement.args[0], Arg::Id(Some(_))));
        assert!(matches!(statement.args[2], Arg::Int(None)));
    }
}
