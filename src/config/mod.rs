//! All settings, read once from the environment (and `.env`), validated at start.
//! Each component's section is parsed by its own function (`storage.rs`,
//! `embed.rs`, …) and hands that component what it needs, no more.
//!
//! Every problem names the variable it comes from, so a bad deployment fails
//! with a message that says what to fix. Secrets (API keys, the database URL)
//! are `SecretString`s: Debug and logs print them redacted.

mod auth;
mod embed;
mod ingest;
mod llm;
mod retrieval;
mod storage;
mod vars;
mod webhooks;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

pub use auth::{AllowedHosts, AuthMode, AuthSettings, CorsOrigins, JwtSettings, RateLimit};
pub use embed::{DEFAULT_EMBED_MODEL, EmbedBackend, EmbedderChoice, EmbedderSettings, HubSettings};
pub use ingest::{ChunkSettings, ExtractIsolation, ExtractSettings, IngestSettings, UploadLimits};
pub use llm::LlmSettings;
pub use retrieval::{HybridSettings, MAX_TOP_K, RetrievalSettings};
pub use storage::{DatabaseSettings, IndexSettings, QdrantSettings};
use vars::Vars;
pub use webhooks::WebhookSettings;

/// The variables this server reads. Anything else starting with `DOCQA_` is a typo.
pub const KNOWN_VARIABLES: &[&str] = &[
    "DOCQA_ADDR",
    "DOCQA_DATA_DIR",
    "DOCQA_LOG",
    "DOCQA_WAIT_TIMEOUT_SECS",
    "DOCQA_STARTUP_TIMEOUT_SECS",
    "DATABASE_URL",
    "DATABASE_MAX_CONNECTIONS",
    "QDRANT_URL",
    "QDRANT_API_KEY",
    "QDRANT_COLLECTION_PREFIX",
    "QDRANT_SHARDS",
    "QDRANT_REPLICATION_FACTOR",
    "QDRANT_WRITE_CONSISTENCY",
    "QDRANT_TIMEOUT_SECS",
    "EMBEDDER",
    "EMBED_MODEL_DIR",
    "EMBED_MODEL",
    "EMBED_BATCH_SIZE",
    "EMBED_BACKEND",
    "EMBED_ONNX_MODEL",
    "EMBED_THREADS",
    "ORT_DYLIB_PATH",
    "LLM_BASE_URL",
    "LLM_API_KEY",
    "OPENAI_API_KEY",
    "LLM_MODEL",
    "LLM_TIMEOUT_SECS",
    "LLM_MAX_RETRIES",
    "LLM_BREAKER_FAILURES",
    "LLM_BREAKER_COOLDOWN_SECS",
    "LLM_MAX_CONCURRENCY",
    "MAX_UPLOAD_BYTES",
    "MAX_REQUEST_BYTES",
    "MAX_CONCURRENT_UPLOADS",
    "UPLOAD_IDLE_TIMEOUT_SECS",
    "UPLOAD_MIN_BYTES_PER_SEC",
    "HTTP_MAX_CONNECTIONS",
    "CHUNK_TOKENS",
    "CHUNK_OVERLAP",
    "TOP_K",
    "RRF_K",
    "HYBRID_BM25_WEIGHT",
    "HYBRID_PREFETCH",
    "INGEST_WORKERS",
    "INGEST_QUEUE_MAX",
    "EXTRACT_TIMEOUT_SECS",
    "EXTRACT_ISOLATION",
    "EXTRACT_MEMORY_MB",
    "DOCQA_EXE",
    "DOCQA_EVAL_DIR",
    "DOCQA_AUTH",
    "DOCQA_ADMIN_KEY",
    "METRICS_PUBLIC",
    "RATE_LIMIT_RPS",
    "RATE_LIMIT_BURST",
    "AUDIT_RETENTION_DAYS",
    "AUDIT_QUERY_TEXT",
    "TENANT_MAX_BYTES",
    "TENANT_MAX_DOCUMENTS",
    "CORS_ALLOWED_ORIGINS",
    "ALLOWED_HOSTS",
    "MAX_COLLECTIONS",
    "MAX_PAGES",
    "MAX_DOCUMENT_CHARS",
    "OCR_COMMAND",
    "OCR_LANGUAGES",
    "OCR_MAX_PAGES",
    "OCR_TIMEOUT_SECS",
    "AUTH_JWT_JWKS_URL",
    "AUTH_JWT_ISSUER",
    "AUTH_JWT_AUDIENCE",
    "AUTH_JWT_GROUPS_CLAIM",
    "AUTH_JWT_TENANT_CLAIM",
    "AUTH_JWT_ROLE_CLAIM",
    "AUTH_JWT_JWKS_REFRESH_SECS",
    "AUTH_JWT_JWKS_MIN_REFETCH_SECS",
    "WEBHOOK_ALLOW_PRIVATE",
    "WEBHOOK_MAX_ATTEMPTS",
    "WEBHOOK_RETRY_BASE_MS",
    "WEBHOOK_TIMEOUT_SECS",
];

/// `DOCQA_` variables of the scripts and tests, not of the server: set in a
/// developer's shell, they must not stop it.
pub const TOOLING_VARIABLES: &[&str] = &[
    "DOCQA_SHARED_DIR",
    "DOCQA_CACHE_DIR",
    "DOCQA_TEST_POSTGRES_URL",
    // The Python with the openai and mcp clients the compatibility tests drive.
    "DOCQA_TEST_CLIENTS_PYTHON",
    // The key `docqa ingest --url` and `docqa eval --url` send.
    "DOCQA_API_KEY",
];

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{var}: {message} (got {value:?})")]
    Invalid {
        var: &'static str,
        value: String,
        message: String,
    },
    #[error("{var}: {message}")]
    Unsupported { var: &'static str, message: String },
    #[error("unknown setting {0}; known settings are listed in .env.example")]
    Unknown(String),
}

#[derive(Debug, Clone)]
pub struct Config {
    pub addr: SocketAddr,
    pub data_dir: PathBuf,
    pub database: DatabaseSettings,
    pub index: IndexSettings,
    pub embedder: EmbedderSettings,
    /// `None`: no LLM, answers are extractive.
    pub llm: Option<LlmSettings>,
    /// `LLM_MAX_CONCURRENCY`: LLM calls in flight at once, at most.
    pub llm_max_concurrency: usize,
    /// `HTTP_MAX_CONNECTIONS`: open client connections, at most (over all
    /// server threads); past it new connections wait in the accept backlog.
    pub http_max_connections: usize,
    pub ingest: IngestSettings,
    pub chunk: ChunkSettings,
    pub extract: ExtractSettings,
    pub retrieval: RetrievalSettings,
    pub auth: AuthSettings,
    pub webhooks: WebhookSettings,
}

impl Config {
    /// Reads the process environment, after loading `.env` if there is one.
    pub fn from_env() -> Result<Self, ConfigError> {
        let _ = dotenvy::dotenv();
        let vars: HashMap<String, String> = std::env::vars().collect();
        Self::from_vars(&vars)
    }

    /// Builds the configuration from a map of variables (the environment in production,
    /// a plain map in tests).
    pub fn from_vars(vars: &HashMap<String, String>) -> Result<Self, ConfigError> {
        if let Some(unknown) = vars.keys().find(|key| {
            key.starts_with("DOCQA_")
                && !KNOWN_VARIABLES.contains(&key.as_str())
                && !TOOLING_VARIABLES.contains(&key.as_str())
        }) {
            return Err(ConfigError::Unknown(unknown.clone()));
        }
        let vars = Vars(vars);
        let addr = vars.parse_or("DOCQA_ADDR", "127.0.0.1:8080".parse().ok())?;
        let data_dir = PathBuf::from(vars.get("DOCQA_DATA_DIR").unwrap_or("./data"));
        let startup_timeout = Duration::from_secs(vars.range("DOCQA_STARTUP_TIMEOUT_SECS", 60, 0, 3600)?);
        let embedder = EmbedderSettings::parse(&vars, &data_dir)?;
        let llm = LlmSettings::parse(&vars)?;
        if embedder.choice == EmbedderChoice::OpenAi && llm.is_none() {
            return Err(ConfigError::Unsupported {
                var: "EMBEDDER",
                message: "openai embeddings need LLM_BASE_URL or LLM_API_KEY / OPENAI_API_KEY".into(),
            });
        }
        Ok(Self {
            addr,
            database: DatabaseSettings::parse(&vars, &data_dir, startup_timeout)?,
            index: IndexSettings::parse(&vars, &data_dir, startup_timeout)?,
            embedder,
            llm,
            llm_max_concurrency: llm::max_concurrency(&vars)?,
            http_max_connections: vars.range("HTTP_MAX_CONNECTIONS", 1024, 1, 1_000_000)?,
            ingest: IngestSettings::parse(&vars)?,
            chunk: ChunkSettings::parse(&vars)?,
            extract: ExtractSettings::parse(&vars)?,
            retrieval: RetrievalSettings::parse(&vars)?,
            auth: AuthSettings::parse(&vars, addr)?,
            webhooks: WebhookSettings::parse(&vars)?,
            data_dir,
        })
    }

    /// A configuration for tests and tools: everything under `data_dir`, no LLM.
    pub fn for_data_dir(data_dir: impl Into<PathBuf>) -> Self {
        let data_dir = data_dir.into();
        let mut vars = HashMap::new();
        vars.insert("DOCQA_DATA_DIR".to_string(), data_dir.display().to_string());
        vars.insert("DOCQA_ADDR".to_string(), "127.0.0.1:0".to_string());
        Self::from_vars(&vars).expect("the defaults are a valid configuration")
    }
}

#[cfg(test)]
mod tests {
    use secrecy::ExposeSecret;

    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn defaults_are_the_embedded_setup() {
        let config = Config::from_vars(&vars(&[])).unwrap();
        assert_eq!(config.addr.to_string(), "127.0.0.1:8080");
        assert!(config.database.url.expose_secret().starts_with("sqlite://"));
        assert!(matches!(config.index, IndexSettings::Edge { .. }));
        assert!(config.llm.is_none());
        assert_eq!(config.embedder.choice, EmbedderChoice::Auto);
        assert_eq!(config.ingest.uploads.max_file_bytes, 100 * 1024 * 1024);
    }

    #[test]
    fn hybrid_fusion_is_configurable() {
        let config = Config::from_vars(&vars(&[
            ("RRF_K", "20"),
            ("HYBRID_BM25_WEIGHT", "1.5"),
            ("HYBRID_PREFETCH", "64"),
        ]))
        .unwrap();
        assert_eq!(
            config.retrieval.hybrid.fusion,
            crate::domain::Fusion {
                rrf_k: 20,
                bm25_weight: 1.5
            }
        );
        assert_eq!(config.retrieval.hybrid.prefetch, 64);
        assert_eq!(config.retrieval.hybrid.fusion.weights(true, true), Some(vec![1.0, 1.5]));
        assert_eq!(
            config.retrieval.hybrid.fusion.weights(false, true),
            None,
            "one side has no one to weigh against"
        );
        let defaults = Config::from_vars(&vars(&[])).unwrap();
        assert_eq!(defaults.retrieval.hybrid.fusion.weights(true, true), None);
        assert!(Config::from_vars(&vars(&[("HYBRID_BM25_WEIGHT", "-1")])).is_err());
    }

    #[test]
    fn the_embedding_batch_is_the_backends_own_unless_set() {
        let defaults = Config::from_vars(&vars(&[])).unwrap();
        assert_eq!(defaults.embedder.batch_size, None);
        let set = Config::from_vars(&vars(&[("EMBED_BATCH_SIZE", "16")])).unwrap();
        assert_eq!(set.embedder.batch_size, Some(16));
        let err = Config::from_vars(&vars(&[("EMBED_BATCH_SIZE", "0")])).unwrap_err();
        assert!(err.to_string().starts_with("EMBED_BATCH_SIZE:"), "{err}");
    }

    #[test]
    fn a_bad_value_names_its_variable() {
        let err = Config::from_vars(&vars(&[("TOP_K", "0")])).unwrap_err();
        assert!(err.to_string().starts_with("TOP_K:"), "{err}");
        let err = Config::from_vars(&vars(&[("EMBEDDER", "magic")])).unwrap_err();
        assert!(err.to_string().starts_with("EMBEDDER:"), "{err}");
        let err = Config::from_vars(&vars(&[("CHUNK_TOKENS", "100"), ("CHUNK_OVERLAP", "100")])).unwrap_err();
        assert!(err.to_string().starts_with("CHUNK_OVERLAP:"), "{err}");
    }

    #[test]
    fn postgres_and_qdrant_are_chosen_by_their_urls() {
        let config = Config::from_vars(&vars(&[
            ("DATABASE_URL", "postgres://docqa:secret@db:5432/kb"),
            ("QDRANT_URL", "http://qdrant:6334/"),
            ("QDRANT_SHARDS", "3"),
            ("QDRANT_REPLICATION_FACTOR", "2"),
        ]))
        .unwrap();
        assert!(config.database.is_postgres());
        assert_eq!(config.database.max_connections, 10);
        assert_eq!(config.database.describe(), "Postgres at db:5432/kb");
        let IndexSettings::Qdrant(qdrant) = config.index else {
            panic!("QDRANT_URL chooses a Qdrant server")
        };
        assert_eq!(qdrant.url, "http://qdrant:6334");
        assert_eq!(
            (qdrant.shards, qdrant.replication_factor, qdrant.write_consistency),
            (3, 2, 1)
        );
        assert_eq!(qdrant.collection_prefix, "docqa_");

        let err = Config::from_vars(&vars(&[("QDRANT_URL", "qdrant:6334")])).unwrap_err();
        assert!(err.to_string().starts_with("QDRANT_URL:"), "{err}");
        let err = Config::from_vars(&vars(&[
            ("QDRANT_URL", "http://q:6334"),
            ("QDRANT_WRITE_CONSISTENCY", "2"),
        ]))
        .unwrap_err();
        assert!(err.to_string().starts_with("QDRANT_WRITE_CONSISTENCY:"), "{err}");
        let err = Config::from_vars(&vars(&[("DATABASE_URL", "mysql://db/kb")])).unwrap_err();
        assert!(err.to_string().starts_with("DATABASE_URL:"), "{err}");
    }

    #[test]
    fn an_unknown_docqa_variable_stops_the_start() {
        let err = Config::from_vars(&vars(&[("DOCQA_ADRR", "x")])).unwrap_err();
        assert!(err.to_string().contains("DOCQA_ADRR"));
        // The scripts' own variables are not the server's business.
        assert!(Config::from_vars(&vars(&[("DOCQA_SHARED_DIR", "../shared")])).is_ok());
    }

    #[test]
    fn an_api_key_alone_enables_the_openai_llm() {
        let config = Config::from_vars(&vars(&[("OPENAI_API_KEY", "sk-test")])).unwrap();
        let llm = config.llm.unwrap();
        assert_eq!(llm.base_url, "https://api.openai.com/v1");
        assert_eq!(llm.api_key.as_ref().map(|k| k.expose_secret()), Some("sk-test"));
    }
}

#[cfg(test)]
mod secret_tests {
    use super::*;

    #[test]
    fn secrets_never_show_in_debug_output() {
        let vars: HashMap<String, String> = [
            ("LLM_API_KEY", "sk-very-secret"),
            ("QDRANT_URL", "http://q:6334"),
            ("QDRANT_API_KEY", "qdrant-very-secret"),
            ("DATABASE_URL", "postgres://docqa:db-very-secret@db:5432/kb"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let config = Config::from_vars(&vars).unwrap();
        let debug = format!("{config:?}");
        for secret in ["sk-very-secret", "qdrant-very-secret", "db-very-secret"] {
            assert!(!debug.contains(secret), "{secret} in {debug}");
        }
        assert_eq!(config.database.describe(), "Postgres at db:5432/kb");
    }
}
