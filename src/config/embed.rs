//! The embedding model: which, where from, on what.

use std::path::{Path, PathBuf};

use super::ConfigError;
use super::vars::Vars;

pub const DEFAULT_EMBED_MODEL: &str = "sentence-transformers/all-MiniLM-L6-v2";

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
    /// Where a downloaded model is kept (`<data dir>/models`).
    pub download_dir: PathBuf,
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

impl EmbedderSettings {
    pub fn parse(vars: &Vars, data_dir: &Path) -> Result<Self, ConfigError> {
        let choice = vars.choice(
            "EMBEDDER",
            &[
                ("auto", EmbedderChoice::Auto),
                ("local", EmbedderChoice::Local),
                ("openai", EmbedderChoice::OpenAi),
                ("none", EmbedderChoice::None),
            ],
        )?;
        let backend = vars.choice(
            "EMBED_BACKEND",
            &[
                ("auto", EmbedBackend::Auto),
                ("candle", EmbedBackend::Candle),
                ("onnx", EmbedBackend::Onnx),
            ],
        )?;
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        Ok(Self {
            choice,
            backend,
            onnx_model: vars.get("EMBED_ONNX_MODEL").map(PathBuf::from),
            onnx_runtime: vars.get("ORT_DYLIB_PATH").map(PathBuf::from),
            threads: vars.range("EMBED_THREADS", cores, 1, 256)?,
            model_dir: vars.get("EMBED_MODEL_DIR").map(PathBuf::from),
            model: vars.get("EMBED_MODEL").unwrap_or(DEFAULT_EMBED_MODEL).to_string(),
            batch_size: vars
                .get("EMBED_BATCH_SIZE")
                .map(|_| vars.range("EMBED_BATCH_SIZE", 1, 1, 512))
                .transpose()?,
            hub: HubSettings {
                endpoint: vars
                    .get("HF_ENDPOINT")
                    .unwrap_or("https://huggingface.co")
                    .trim_end_matches('/')
                    .to_string(),
                cache_dir: vars
                    .get("HF_HUB_CACHE")
                    .map(PathBuf::from)
                    .or_else(|| vars.get("HF_HOME").map(|h| PathBuf::from(h).join("hub")))
                    .or_else(|| {
                        vars.get("HOME")
                            .map(|h| PathBuf::from(h).join(".cache/huggingface/hub"))
                    }),
                offline: vars
                    .get("HF_HUB_OFFLINE")
                    .is_some_and(|v| v == "1" || v.eq_ignore_ascii_case("true")),
            },
            download_dir: data_dir.join("models"),
        })
    }
}
