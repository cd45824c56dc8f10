//! All settings, read once from the environment (and `.env`), validated at start.
//!
//! Every problem names the variable it comes from, so a bad deployment fails
//! with a message that says what to fix.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

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
    "MAX_UPLOAD_BYTES",
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
];

/// `DOCQA_` variables of the scripts and tests, not of the server: set in a
/// developer's shell, they must not stop it.
pub const TOOLING_VARIABLES: &[&str] = &["DOCQA_SHARED_DIR", "DOCQA_CACHE_DIR", "DOCQA_TEST_POSTGRES_URL"];

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

/// How the embedding model is chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EmbedderChoice {
    /// The local model if it can be had (dir, hub cache, download), else BM25 alone.
    Auto,
    /// The local model or refuse to start.
    Local,
    /// An OpenAI-compatible embeddings endpoint (`LLM_BASE_URL`, `EMBED_MODEL`).
    OpenAi,
    /// No dense vectors: BM25 alone.
    None,
}

/// What runs the local model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EmbedBackend {
    /// ONNX Runtime when `ORT_DYLIB_PATH` and `EMBED_ONNX_MODEL` are set and load, else candle.
    Auto,
    /// candle, f32 safetensors (the reference).
    Candle,
    /// ONNX Runtime, or refuse to start.
    Onnx,
}

#[derive(Debug, Clone)]
pub struct EmbedderSettings {
    pub choice: EmbedderChoice,
    pub backend: EmbedBackend,
    pub model_dir: Option<PathBuf>,
    pub model: String,
    /// `EMBED_BATCH_SIZE`; unset, each backend takes the size measured best for it.
    pub batch_size: Option<usize>,
    /// `EMBED_ONNX_MODEL`: the .onnx file (an export of `model`).
    pub onnx_model: Option<PathBuf>,
    /// `ORT_DYLIB_PATH`: libonnxruntime.so.
    pub onnx_runtime: Option<PathBuf>,
    /// Threads one embedding batch may use (default: all cores).
    pub threads: usize,
    pub hub: HubSettings,
}

/// Where models come from when `EMBED_MODEL_DIR` is not set, read from the
/// variables the Hugging Face libraries use.
#[derive(Debug, Clone)]
pub struct HubSettings {
    /// `HF_ENDPOINT`, default `https://huggingface.co`.
    pub endpoint: String,
    /// `HF_HUB_CACHE`, else `$HF_HOME/hub`, else `~/.cache/huggingface/hub`.
    pub cache_dir: Option<PathBuf>,
    /// `HF_HUB_OFFLINE=1`: never download.
    pub offline: bool,
}

#[derive(Debug, Clone)]
pub struct LlmSettings {
    pub base_url: String,
    pub api_key: Option<String>,
    pub model: String,
    /// For one call, retries included.
    pub timeout: Duration,
    /// Further attempts after a 429, a 5xx or a refused connection.
    pub max_retries: u32,
    /// Failed calls in a row after which the provider is not called…
    pub breaker_failures: u32,
    /// …for this long (then one call probes it).
    pub breaker_cooldown: Duration,
}

/// Where parsers run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExtractIsolation {
    /// A child process when the docqa executable answers, else a thread (logged).
    Auto,
    /// A child process, or refuse to start.
    Process,
    /// A low-priority thread of the server (a crash that aborts takes it down).
    Thread,
}

#[derive(Debug, Clone)]
pub struct ExtractSettings {
    /// A document whose extraction takes longer fails with `timeout`.
    pub timeout: Duration,
    pub isolation: ExtractIsolation,
    /// Address space a child may use.
    pub memory_mb: u64,
    /// `DOCQA_EXE`: the docqa binary children run (default: this process's own).
    pub exe: Option<PathBuf>,
}

/// How hybrid search gathers and fuses its candidates.
#[derive(Debug, Clone, Copy)]
pub struct HybridSettings {
    pub fusion: crate::index::Fusion,
    /// Candidates each side brings to fusion, at least (4 × top_k if more).
    pub prefetch: usize,
}

#[derive(Debug, Clone)]
pub struct ChunkSettings {
    pub tokens: usize,
    pub overlap: usize,
}

/// The catalog's database.
#[derive(Debug, Clone)]
pub struct DatabaseSettings {
    /// `sqlite:…` (default: in the data dir) or `postgres://…`.
    pub url: String,
    /// `DATABASE_MAX_CONNECTIONS`: the pool's size.
    pub max_connections: u32,
    /// How long to wait at start for a database that does not answer yet.
    pub startup_timeout: Duration,
}

impl DatabaseSettings {
    pub fn is_postgres(&self) -> bool {
        self.url.starts_with("postgres://") || self.url.starts_with("postgresql://")
    }

    /// Where the database is, without a password: `Postgres at host:port/db`.
    pub fn describe(&self) -> String {
        if !self.is_postgres() {
            return format!("SQLite at {}", self.url.trim_start_matches("sqlite://"));
        }
        match self.url.parse::<sqlx::postgres::PgConnectOptions>() {
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

/// A Qdrant server or cluster as the vector index (`QDRANT_URL`).
#[derive(Debug, Clone)]
pub struct QdrantSettings {
    /// The gRPC endpoint, e.g. `http://localhost:6334`.
    pub url: String,
    pub api_key: Option<String>,
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

#[derive(Debug, Clone)]
pub struct Config {
    pub addr: SocketAddr,
    pub data_dir: PathBuf,
    pub database: DatabaseSettings,
    /// `None`: the embedded Qdrant Edge index in the data dir.
    pub qdrant: Option<QdrantSettings>,
    pub embedder: EmbedderSettings,
    /// `None`: no LLM, answers are extractive.
    pub llm: Option<LlmSettings>,
    pub max_upload_bytes: u64,
    pub chunk: ChunkSettings,
    pub top_k: usize,
    pub hybrid: HybridSettings,
    pub ingest_workers: usize,
    /// Uploads are refused (429) while this many jobs wait.
    pub ingest_queue_max: u64,
    pub extract: ExtractSettings,
    pub wait_timeout: Duration,
}

pub const DEFAULT_EMBED_MODEL: &str = "sentence-transformers/all-MiniLM-L6-v2";
pub const MAX_TOP_K: usize = 50;

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
        for key in vars.keys() {
            if key.starts_with("DOCQA_")
                && !KNOWN_VARIABLES.contains(&key.as_str())
                && !TOOLING_VARIABLES.contains(&key.as_str())
            {
                return Err(ConfigError::Unknown(key.clone()));
            }
        }
        let get = |var: &'static str| vars.get(var).map(|v| v.trim()).filter(|v| !v.is_empty());

        let addr = parse_or(get("DOCQA_ADDR"), "DOCQA_ADDR", "127.0.0.1:8080".parse().ok())?;
        let data_dir = PathBuf::from(get("DOCQA_DATA_DIR").unwrap_or("./data"));
        let startup_timeout = Duration::from_secs(parse_range(
            get("DOCQA_STARTUP_TIMEOUT_SECS"),
            "DOCQA_STARTUP_TIMEOUT_SECS",
            60,
            0,
            3600,
        )?);
        let database_url = match get("DATABASE_URL") {
            None => format!("sqlite://{}", data_dir.join("docqa.sqlite").display()),
            Some(url)
                if url.starts_with("sqlite:") || url.starts_with("postgres://") || url.starts_with("postgresql://") =>
            {
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
        if database_url.starts_with("postgres") && database_url.parse::<sqlx::postgres::PgConnectOptions>().is_err() {
            return Err(ConfigError::Unsupported {
                var: "DATABASE_URL",
                message: "is not a valid postgres:// URL".into(),
            });
        }
        let postgres = database_url.starts_with("postgres");
        let database = DatabaseSettings {
            max_connections: parse_range(
                get("DATABASE_MAX_CONNECTIONS"),
                "DATABASE_MAX_CONNECTIONS",
                if postgres { 10 } else { 4 },
                1,
                1000,
            )?,
            url: database_url,
            startup_timeout,
        };
        let qdrant = match get("QDRANT_URL") {
            None => None,
            Some(url) => {
                if !(url.starts_with("http://") || url.starts_with("https://")) {
                    return Err(ConfigError::Invalid {
                        var: "QDRANT_URL",
                        value: url.into(),
                        message: "expected the gRPC endpoint as an http:// or https:// URL, e.g. http://localhost:6334"
                            .into(),
                    });
                }
                let collection_prefix = get("QDRANT_COLLECTION_PREFIX").unwrap_or("docqa_").to_string();
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
                let replication_factor =
                    parse_range(get("QDRANT_REPLICATION_FACTOR"), "QDRANT_REPLICATION_FACTOR", 1, 1, 100)?;
                let write_consistency =
                    parse_range(get("QDRANT_WRITE_CONSISTENCY"), "QDRANT_WRITE_CONSISTENCY", 1, 1, 100)?;
                if write_consistency > replication_factor {
                    return Err(ConfigError::Invalid {
                        var: "QDRANT_WRITE_CONSISTENCY",
                        value: write_consistency.to_string(),
                        message: format!("cannot exceed QDRANT_REPLICATION_FACTOR ({replication_factor})"),
                    });
                }
                Some(QdrantSettings {
                    url: url.trim_end_matches('/').to_string(),
                    api_key: get("QDRANT_API_KEY").map(str::to_string),
                    collection_prefix,
                    shards: parse_range(get("QDRANT_SHARDS"), "QDRANT_SHARDS", 1, 1, 1000)?,
                    replication_factor,
                    write_consistency,
                    timeout: Duration::from_secs(parse_range(
                        get("QDRANT_TIMEOUT_SECS"),
                        "QDRANT_TIMEOUT_SECS",
                        10,
                        1,
                        600,
                    )?),
                    startup_timeout,
                })
            }
        };

        let choice = match get("EMBEDDER").unwrap_or("auto").to_ascii_lowercase().as_str() {
            "auto" => EmbedderChoice::Auto,
            "local" => EmbedderChoice::Local,
            "openai" => EmbedderChoice::OpenAi,
            "none" => EmbedderChoice::None,
            other => {
                return Err(ConfigError::Invalid {
                    var: "EMBEDDER",
                    value: other.into(),
                    message: "expected one of auto, local, openai, none".into(),
                });
            }
        };
        let backend = match get("EMBED_BACKEND").unwrap_or("auto").to_ascii_lowercase().as_str() {
            "auto" => EmbedBackend::Auto,
            "candle" => EmbedBackend::Candle,
            "onnx" => EmbedBackend::Onnx,
            other => {
                return Err(ConfigError::Invalid {
                    var: "EMBED_BACKEND",
                    value: other.into(),
                    message: "expected one of auto, candle, onnx".into(),
                });
            }
        };
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let embedder = EmbedderSettings {
            choice,
            backend,
            onnx_model: get("EMBED_ONNX_MODEL").map(PathBuf::from),
            onnx_runtime: get("ORT_DYLIB_PATH").map(PathBuf::from),
            threads: parse_range(get("EMBED_THREADS"), "EMBED_THREADS", cores, 1, 256)?,
            model_dir: get("EMBED_MODEL_DIR").map(PathBuf::from),
            model: get("EMBED_MODEL").unwrap_or(DEFAULT_EMBED_MODEL).to_string(),
            batch_size: get("EMBED_BATCH_SIZE")
                .map(|raw| parse_range(Some(raw), "EMBED_BATCH_SIZE", 1, 1, 512))
                .transpose()?,
            hub: HubSettings {
                endpoint: get("HF_ENDPOINT")
                    .unwrap_or("https://huggingface.co")
                    .trim_end_matches('/')
                    .to_string(),
                cache_dir: get("HF_HUB_CACHE")
                    .map(PathBuf::from)
                    .or_else(|| get("HF_HOME").map(|h| PathBuf::from(h).join("hub")))
                    .or_else(|| get("HOME").map(|h| PathBuf::from(h).join(".cache/huggingface/hub"))),
                offline: get("HF_HUB_OFFLINE").is_some_and(|v| v == "1" || v.eq_ignore_ascii_case("true")),
            },
        };

        let api_key = get("LLM_API_KEY").or(get("OPENAI_API_KEY")).map(str::to_string);
        let llm_timeout = parse_range(get("LLM_TIMEOUT_SECS"), "LLM_TIMEOUT_SECS", 60, 1, 3600)?;
        let llm_max_retries = parse_range::<u32>(get("LLM_MAX_RETRIES"), "LLM_MAX_RETRIES", 2, 0, 10)?;
        let breaker_failures = parse_range::<u32>(get("LLM_BREAKER_FAILURES"), "LLM_BREAKER_FAILURES", 5, 1, 1000)?;
        let breaker_cooldown =
            parse_range::<u64>(get("LLM_BREAKER_COOLDOWN_SECS"), "LLM_BREAKER_COOLDOWN_SECS", 30, 1, 3600)?;
        let llm = match (get("LLM_BASE_URL"), &api_key) {
            (None, None) => None,
            (base, _) => {
                let base_url = base.unwrap_or("https://api.openai.com/v1").trim_end_matches('/');
                if !(base_url.starts_with("http://") || base_url.starts_with("https://")) {
                    return Err(ConfigError::Invalid {
                        var: "LLM_BASE_URL",
                        value: base_url.into(),
                        message: "expected an http:// or https:// URL".into(),
                    });
                }
                Some(LlmSettings {
                    base_url: base_url.to_string(),
                    api_key: api_key.clone(),
                    model: get("LLM_MODEL").unwrap_or("gpt-4o-mini").to_string(),
                    timeout: Duration::from_secs(llm_timeout),
                    max_retries: llm_max_retries,
                    breaker_failures,
                    breaker_cooldown: Duration::from_secs(breaker_cooldown),
                })
            }
        };
        if choice == EmbedderChoice::OpenAi && llm.is_none() {
            return Err(ConfigError::Unsupported {
                var: "EMBEDDER",
                message: "openai embeddings need LLM_BASE_URL or LLM_API_KEY / OPENAI_API_KEY".into(),
            });
        }

        let chunk_tokens = parse_range(get("CHUNK_TOKENS"), "CHUNK_TOKENS", 200, 16, 8192)?;
        let chunk_overlap = parse_range(get("CHUNK_OVERLAP"), "CHUNK_OVERLAP", 30, 0, 4096)?;
        if chunk_overlap >= chunk_tokens {
            return Err(ConfigError::Invalid {
                var: "CHUNK_OVERLAP",
                value: chunk_overlap.to_string(),
                message: format!("must be smaller than CHUNK_TOKENS ({chunk_tokens})"),
            });
        }

        Ok(Self {
            addr,
            data_dir,
            database,
            qdrant,
            embedder,
            llm,
            max_upload_bytes: parse_range(
                get("MAX_UPLOAD_BYTES"),
                "MAX_UPLOAD_BYTES",
                100 * 1024 * 1024,
                1,
                u64::MAX / 2,
            )?,
            chunk: ChunkSettings {
                tokens: chunk_tokens,
                overlap: chunk_overlap,
            },
            top_k: parse_range(get("TOP_K"), "TOP_K", 5, 1, MAX_TOP_K)?,
            hybrid: HybridSettings {
                fusion: crate::index::Fusion {
                    rrf_k: parse_range(get("RRF_K"), "RRF_K", crate::index::Fusion::default().rrf_k, 1, 10_000)?,
                    bm25_weight: parse_range(get("HYBRID_BM25_WEIGHT"), "HYBRID_BM25_WEIGHT", 1.0, 0.0, 100.0)?,
                },
                prefetch: parse_range(get("HYBRID_PREFETCH"), "HYBRID_PREFETCH", 32, 1, 1000)?,
            },
            ingest_workers: parse_range(get("INGEST_WORKERS"), "INGEST_WORKERS", 2, 1, 64)?,
            ingest_queue_max: parse_range(get("INGEST_QUEUE_MAX"), "INGEST_QUEUE_MAX", 10_000, 1, 10_000_000)?,
            extract: ExtractSettings {
                timeout: Duration::from_secs(parse_range(
                    get("EXTRACT_TIMEOUT_SECS"),
                    "EXTRACT_TIMEOUT_SECS",
                    120,
                    1,
                    3600,
                )?),
                isolation: match get("EXTRACT_ISOLATION").unwrap_or("auto").to_ascii_lowercase().as_str() {
                    "auto" => ExtractIsolation::Auto,
                    "process" => ExtractIsolation::Process,
                    "thread" => ExtractIsolation::Thread,
                    other => {
                        return Err(ConfigError::Invalid {
                            var: "EXTRACT_ISOLATION",
                            value: other.into(),
                            message: "expected one of auto, process, thread".into(),
                        });
                    }
                },
                memory_mb: parse_range(get("EXTRACT_MEMORY_MB"), "EXTRACT_MEMORY_MB", 2048, 64, 1 << 20)?,
                exe: get("DOCQA_EXE").map(PathBuf::from),
            },
            wait_timeout: Duration::from_secs(parse_range(
                get("DOCQA_WAIT_TIMEOUT_SECS"),
                "DOCQA_WAIT_TIMEOUT_SECS",
                600,
                1,
                86_400,
            )?),
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

fn parse_or<T: std::str::FromStr>(
    raw: Option<&str>,
    var: &'static str,
    default: Option<T>,
) -> Result<T, ConfigError>
where
    T::Err: std::fmt::Display,
{
    match raw {
        Some(raw) => raw.parse().map_err(|e: T::Err| ConfigError::Invalid {
            var,
            value: raw.into(),
            message: e.to_string(),
        }),
        None => default.ok_or(ConfigError::Unsupported {
            var,
            message: "is required".into(),
        }),
    }
}

fn parse_range<T>(raw: Option<&str>, var: &'static str, default: T, min: T, max: T) -> Result<T, ConfigError>
where
    T: std::str::FromStr + PartialOrd + std::fmt::Display + Copy,
    T::Err: std::fmt::Display,
{
    let value = parse_or(raw, var, Some(default))?;
    if value < min || value > max {
        return Err(ConfigError::Invalid {
            var,
            value: value.to_string(),
            message: format!("must be between {min} and {max}"),
        });
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn defaults_are_the_embedded_setup() {
        let config = Config::from_vars(&vars(&[])).unwrap();
        assert_eq!(config.addr.to_string(), "127.0.0.1:8080");
        assert!(config.database.url.starts_with("sqlite://"));
        assert!(config.qdrant.is_none());
        assert!(config.llm.is_none());
        assert_eq!(config.embedder.choice, EmbedderChoice::Auto);
        assert_eq!(config.max_upload_bytes, 100 * 1024 * 1024);
    }

    #[test]
    fn hybrid_fusion_is_configurable() {
        let config = Config::from_vars(&vars(&[("RRF_K", "20"), ("HYBRID_BM25_WEIGHT", "1.5"), ("HYBRID_PREFETCH", "64")])).unwrap();
        assert_eq!(config.hybrid.fusion, crate::index::Fusion { rrf_k: 20, bm25_weight: 1.5 });
        assert_eq!(config.hybrid.prefetch, 64);
        assert_eq!(config.hybrid.fusion.weights(true, true), Some(vec![1.0, 1.5]));
        assert_eq!(config.hybrid.fusion.weights(false, true), None, "one side has no one to weigh against");
        let defaults = Config::from_vars(&vars(&[])).unwrap();
        assert_eq!(defaults.hybrid.fusion.weights(true, true), None);
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
        let err = Config::from_vars(&vars(&[("CHUNK_TOKENS", "100"), ("CHUNK_OVERLAP", "100")]))
            .unwrap_err();
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
        let qdrant = config.qdrant.unwrap();
        assert_eq!(qdrant.url, "http://qdrant:6334");
        assert_eq!((qdrant.shards, qdrant.replication_factor, qdrant.write_consistency), (3, 2, 1));
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
        assert_eq!(llm.api_key.as_deref(), Some("sk-test"));
    }
}
