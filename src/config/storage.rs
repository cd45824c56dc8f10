//! Where the catalog and the vectors live: SQLite or Postgres, Qdrant Edge in
//! the data dir or a Qdrant server.

use std::path::{Path, PathBuf};
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};

use super::ConfigError;
use super::vars::Vars;

/// The catalog's database.
#[derive(Debug, Clone)]
pub struct DatabaseSettings {
    /// `sqlite:…` (default: in the data dir) or `postgres://…`; may hold a password.
    pub url: SecretString,
    /// `DATABASE_MAX_CONNECTIONS`: the pool's size.
    pub max_connections: u32,
    /// How long to wait at start for a database that does not answer yet.
    pub startup_timeout: Duration,
}

impl DatabaseSettings {
    pub fn parse(vars: &Vars, data_dir: &Path, startup_timeout: Duration) -> Result<Self, ConfigError> {
        let url = match vars.get("DATABASE_URL") {
            None => format!("sqlite://{}", data_dir.join("docqa.sqlite").display()),
            Some(url) if url.starts_with("sqlite:") => url.to_string(),
            Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
                if url.parse::<sqlx::postgres::PgConnectOptions>().is_err() {
                    return Err(ConfigError::Unsupported {
                        var: "DATABASE_URL",
                        message: "is not a valid postgres:// URL".into(),
                    });
                }
                url.to_string()
            }
            Some(url) => {
                return Err(ConfigError::Invalid {
                    var: "DATABASE_URL",
                    value: url.to_string(),
                    message: "expected a sqlite: or postgres:// URL".into(),
                });
            }
        };
        let postgres = url.starts_with("postgres");
        Ok(Self {
            max_connections: vars.range("DATABASE_MAX_CONNECTIONS", if postgres { 10 } else { 4 }, 1, 1000)?,
            url: url.into(),
            startup_timeout,
        })
    }

    pub fn is_postgres(&self) -> bool {
        let url = self.url.expose_secret();
        url.starts_with("postgres://") || url.starts_with("postgresql://")
    }

    /// Where the database is, without a password: `Postgres at host:port/db`.
    pub fn describe(&self) -> String {
        let url = self.url.expose_secret();
        if !self.is_postgres() {
            return format!("SQLite at {}", url.trim_start_matches("sqlite://"));
        }
        match url.parse::<sqlx::postgres::PgConnectOptions>() {
            Ok(options) => format!(
                "Postgres at {}:{}/{}",
                options.get_host(),
                options.get_port(),
                options.get_database().unwrap_or("")
            ),
            Err(_) => "Postgres (DATABASE_URL does not parse)".to_string(),
        }
    }
}

/// The vector index: Qdrant Edge shards in the data dir, or a Qdrant server.
#[derive(Debug, Clone)]
pub enum IndexSettings {
    Edge { dir: PathBuf },
    Qdrant(QdrantSettings),
}

impl IndexSettings {
    pub fn parse(vars: &Vars, data_dir: &Path, startup_timeout: Duration) -> Result<Self, ConfigError> {
        Ok(match vars.get("QDRANT_URL") {
            None => Self::Edge {
                dir: data_dir.join("index"),
            },
            Some(url) => Self::Qdrant(QdrantSettings::parse(vars, url, startup_timeout)?),
        })
    }

    /// Where the index is, for the log and errors.
    pub fn describe(&self) -> String {
        match self {
            Self::Edge { dir } => format!("Qdrant Edge in {}", dir.display()),
            Self::Qdrant(qdrant) => format!("Qdrant at {} (QDRANT_URL)", qdrant.url),
        }
    }
}

/// A Qdrant server or cluster as the vector index (`QDRANT_URL`).
#[derive(Debug, Clone)]
pub struct QdrantSettings {
    /// The gRPC endpoint, e.g. `http://localhost:6334`.
    pub url: String,
    pub api_key: Option<SecretString>,
    /// Qdrant collections are named `<prefix><docqa collection>`, so that several
    /// docqa deployments (or tests) can share one Qdrant.
    pub collection_prefix: String,
    /// `shard_number` of each new collection.
    pub shards: u32,
    pub replication_factor: u32,
    /// Replicas that must acknowledge a write.
    pub write_consistency: u32,
    /// Longest wait for one request; a Qdrant that is down answers 503 after it.
    pub timeout: Duration,
    /// How long to wait at start for a Qdrant that does not answer yet.
    pub startup_timeout: Duration,
}

impl QdrantSettings {
    fn parse(vars: &Vars, url: &str, startup_timeout: Duration) -> Result<Self, ConfigError> {
        let url = vars.http_url("QDRANT_URL", url, " for the gRPC endpoint, e.g. http://localhost:6334")?;
        let collection_prefix = vars.get("QDRANT_COLLECTION_PREFIX").unwrap_or("docqa_").to_string();
        if collection_prefix.len() > 64
            || !collection_prefix
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        {
            return Err(ConfigError::Invalid {
                var: "QDRANT_COLLECTION_PREFIX",
                value: collection_prefix,
                message: "up to 64 characters of A-Z, a-z, 0-9, '_' and '-'".into(),
            });
        }
        let replication_factor = vars.range("QDRANT_REPLICATION_FACTOR", 1, 1, 100)?;
        let write_consistency = vars.range("QDRANT_WRITE_CONSISTENCY", 1, 1, 100)?;
        if write_consistency > replication_factor {
            return Err(ConfigError::Invalid {
                var: "QDRANT_WRITE_CONSISTENCY",
                value: write_consistency.to_string(),
                message: format!("cannot exceed QDRANT_REPLICATION_FACTOR ({replication_factor})"),
            });
        }
        Ok(Self {
            url,
            api_key: vars.get("QDRANT_API_KEY").map(|key| key.to_string().into()),
            collection_prefix,
            shards: vars.range("QDRANT_SHARDS", 1, 1, 1000)?,
            replication_factor,
            write_consistency,
            timeout: Duration::from_secs(vars.range("QDRANT_TIMEOUT_SECS", 10, 1, 600)?),
            startup_timeout,
        })
    }
}
