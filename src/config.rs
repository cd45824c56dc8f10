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
    "DATABASE_URL",
    "QDRANT_URL",
    "QDRANT_API_KEY",
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
    "MAX_UPLOAD_BYTES",
    "CHUNK_TOKENS",
    "CHUNK_OVERLAP",
    "TOP_K",
    "INGEST_WORKERS",
    "EXTRACT_TIMEOUT_SECS",
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
    pub batch_size: usize,
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
    pub timeout: Duration,
}

#[derive(Debug, Clone)]
pub struct ChunkSettings {
    pub tokens: usize,
    pub overlap: usize,
}

#[derive(Debug, Clone)]
pub struct Config {
    pub addr: SocketAddr,
    pub data_dir: PathBuf,
    /// `sqlite://…` (default: in the data dir). Postgres arrives with P3.
    pub database_url: String,
    pub qdrant_url: Option<String>,
    pub qdrant_api_key: Option<String>,
    pub embedder: EmbedderSettings,
    /// `None`: no LLM, answers are extractive.
    pub llm: Option<LlmSettings>,
    pub max_upload_bytes: u64,
    pub chunk: ChunkSettings,
    pub top_k: usize,
    pub ingest_workers: usize,
    pub extract_timeout: Duration,
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
            if key.starts_with("DOCQA_") && !KNOWN_VARIABLES.contains(&key.as_str()) {
                return Err(ConfigError::Unknown(key.clone()));
            }
        }
        let get = |var: &'static str| vars.get(var).map(|v| v.trim()).filter(|v| !v.is_empty());

        let addr = parse_or(get("DOCQA_ADDR"), "DOCQA_ADDR", "127.0.0.1:8080".parse().ok())?;
        let data_dir = PathBuf::from(get("DOCQA_DATA_DIR").unwrap_or("./data"));
        let database_url = match get("DATABASE_URL") {
            None => format!("sqlite://{}", data_dir.join("docqa.sqlite").display()),
            Some(url) if url.starts_with("sqlite:") => url.to_string(),
            Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
                return Err(ConfigError::Unsupported {
                    var: "DATABASE_URL",
                    message: "the Postgres catalog is not built yet (issue P3); unset it to use \
                              SQLite in the data dir"
                        .into(),
                });
            }
            Some(url) => {
                return Err(ConfigError::Invalid {
                    var: "DATABASE_URL",
                    value: url.to_string(),
                    message: "expected a sqlite: or postgres:// URL".into(),
                });
            }
        };
        let qdrant_url = get("QDRANT_URL").map(str::to_string);
        if qdrant_url.is_some() {
            return Err(ConfigError::Unsupported {
                var: "QDRANT_URL",
                message: "the Qdrant server index is not built yet (issue P3); unset it to use \
                          the embedded Qdrant Edge shard in the data dir"
                    .into(),
            });
        }

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
            batch_size: parse_range(get("EMBED_BATCH_SIZE"), "EMBED_BATCH_SIZE", 8, 1, 512)?,
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
            database_url,
            qdrant_url,
            qdrant_api_key: get("QDRANT_API_KEY").map(str::to_string),
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
            ingest_workers: parse_range(get("INGEST_WORKERS"), "INGEST_WORKERS", 1, 1, 64)?,
            extract_timeout: Duration::from_secs(parse_range(
                get("EXTRACT_TIMEOUT_SECS"),
                "EXTRACT_TIMEOUT_SECS",
                120,
                1,
                3600,
            )?),
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
        assert!(config.database_url.starts_with("sqlite://"));
        assert!(config.llm.is_none());
        assert_eq!(config.embedder.choice, EmbedderChoice::Auto);
        assert_eq!(config.max_upload_bytes, 100 * 1024 * 1024);
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
    fn an_unknown_docqa_variable_stops_the_start() {
        let err = Config::from_vars(&vars(&[("DOCQA_ADRR", "x")])).unwrap_err();
        assert!(err.to_string().contains("DOCQA_ADRR"));
    }

    #[test]
    fn an_api_key_alone_enables_the_openai_llm() {
        let config = Config::from_vars(&vars(&[("OPENAI_API_KEY", "sk-test")])).unwrap();
        let llm = config.llm.unwrap();
        assert_eq!(llm.base_url, "https://api.openai.com/v1");
        assert_eq!(llm.api_key.as_deref(), Some("sk-test"));
    }
}
