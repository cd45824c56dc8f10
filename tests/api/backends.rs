//! The storage backends a test can run on, each provisioned fresh for that test
//! (its own Postgres database, its own Qdrant collection prefix) and removed
//! after it, so that tests run in parallel.
//!
//! Postgres: `DOCQA_TEST_POSTGRES_URL` (default `postgres://postgres@127.0.0.1:5432/postgres`,
//! the machine's Postgres, which `scripts/test` starts if it is down). Qdrant:
//! `QDRANT_URL`; without it the Qdrant variants print that they were skipped.

use std::collections::HashMap;

use sqlx::Connection;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    SqliteEdge,
    PostgresEdge,
    PostgresQdrant,
    SqliteQdrant,
}

impl Backend {
    fn uses_postgres(self) -> bool {
        matches!(self, Self::PostgresEdge | Self::PostgresQdrant)
    }

    fn uses_qdrant(self) -> bool {
        matches!(self, Self::PostgresQdrant | Self::SqliteQdrant)
    }
}

pub fn postgres_admin_url() -> String {
    std::env::var("DOCQA_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_string())
}

pub fn qdrant_url() -> Option<String> {
    std::env::var("QDRANT_URL").ok().filter(|url| !url.trim().is_empty())
}

/// What a backend adds to a test app's settings, and removes again when dropped.
pub struct Provisioned {
    pub vars: HashMap<String, String>,
    database: Option<String>,
    qdrant_prefix: Option<(String, String)>,
}

impl Backend {
    /// Provisions the backend for one test, or `None` (after saying so) when it
    /// is not available here.
    pub async fn provision(self, test: &str) -> Option<Provisioned> {
        let mut provisioned = Provisioned {
            vars: HashMap::new(),
            database: None,
            qdrant_prefix: None,
        };
        let tag = uuid::Uuid::new_v4().simple().to_string()[..12].to_string();
        if self.uses_qdrant() {
            let Some(url) = qdrant_url() else {
                eprintln!("SKIPPED {test} on {self:?}: QDRANT_URL is not set (no Qdrant server to test against)");
                return None;
            };
            let prefix = format!("t{tag}_");
            provisioned.vars.insert("QDRANT_URL".into(), url.clone());
            provisioned
                .vars
                .insert("QDRANT_COLLECTION_PREFIX".into(), prefix.clone());
            provisioned.qdrant_prefix = Some((url, prefix));
        }
        if self.uses_postgres() {
            let database = format!("docqa_test_{tag}");
            let admin = postgres_admin_url();
            let mut connection = sqlx::PgConnection::connect(&admin).await.unwrap_or_else(|e| {
                panic!("Postgres at {admin} (DOCQA_TEST_POSTGRES_URL): {e}; scripts/test starts it")
            });
            sqlx::query(&format!("CREATE DATABASE {database}"))
                .execute(&mut connection)
                .await
                .expect("create test database");
            let _ = connection.close().await;
            provisioned
                .vars
                .insert("DATABASE_URL".into(), database_url(&admin, &database));
            provisioned.database = Some(database);
        }
        Some(provisioned)
    }
}

/// The admin URL with another database name.
pub fn database_url(admin: &str, database: &str) -> String {
    match admin.rsplit_once('/') {
        Some((server, _)) => format!("{server}/{database}"),
        None => format!("{admin}/{database}"),
    }
}

impl Drop for Provisioned {
    fn drop(&mut self) {
        let database = self.database.take();
        let qdrant = self.qdrant_prefix.take();
        let cleanup = async move {
            if let Some(database) = database {
                let admin = postgres_admin_url();
                if let Ok(mut connection) = sqlx::PgConnection::connect(&admin).await {
                    let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {database} WITH (FORCE)"))
                        .execute(&mut connection)
                        .await;
                    let _ = connection.close().await;
                }
            }
            if let Some((url, prefix)) = qdrant {
                drop_qdrant_collections(&url, &prefix).await;
            }
        };
        match tokio::runtime::Handle::try_current() {
            Ok(handle) => tokio::task::block_in_place(|| handle.block_on(cleanup)),
            Err(_) => {
                if let Ok(runtime) = tokio::runtime::Runtime::new() {
                    runtime.block_on(cleanup);
                }
            }
        }
    }
}

/// Deletes every Qdrant collection (with its aliases) a test created.
pub async fn drop_qdrant_collections(url: &str, prefix: &str) {
    let Ok(client) = qdrant_client::Qdrant::from_url(url).skip_compatibility_check().build() else {
        return;
    };
    if let Ok(listed) = client.list_collections().await {
        for collection in listed.collections.iter().filter(|c| c.name.starts_with(prefix)) {
            let _ = client.delete_collection(collection.name.clone()).await;
        }
    }
}

/// Generates, for each named `async fn test(backend: Backend)`, one test per
/// backend: `sqlite_edge::test`, `postgres_edge::test`, `postgres_qdrant::test`,
/// `sqlite_qdrant::test`.
macro_rules! on_every_backend {
    ($($test:ident),* $(,)?) => {
        mod sqlite_edge {
            $( #[tokio::test(flavor = "multi_thread")] async fn $test() { super::$test(crate::backends::Backend::SqliteEdge).await } )*
        }
        mod postgres_edge {
            $( #[tokio::test(flavor = "multi_thread")] async fn $test() { super::$test(crate::backends::Backend::PostgresEdge).await } )*
        }
        mod postgres_qdrant {
            $( #[tokio::test(flavor = "multi_thread")] async fn $test() { super::$test(crate::backends::Backend::PostgresQdrant).await } )*
        }
        mod sqlite_qdrant {
            $( #[tokio::test(flavor = "multi_thread")] async fn $test() { super::$test(crate::backends::Backend::SqliteQdrant).await } )*
        }
    };
}
pub(crate) use on_every_backend;
