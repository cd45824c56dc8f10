//! Turning text into vectors: the dense `Embedder` (a trait, so that faster
//! backends slot in) and the sparse BM25 encoder every backend shares.

pub mod bm25;
mod local;
mod model_files;
mod onnx;
mod openai;

use std::sync::Arc;

use async_trait::async_trait;

pub use bm25::{Bm25Encoder, SparseVector};
pub use local::{LocalEmbedder, sizing_tokenizer};
pub use model_files::{ModelFiles, ModelSource};
pub use onnx::{OnnxEmbedder, OnnxFiles};
pub use openai::OpenAiEmbedder;

use crate::config::{Config, EmbedBackend, EmbedderChoice, EmbedderSettings};
use crate::domain::EmbeddingModel;

#[derive(Debug, thiserror::Error)]
pub enum EmbedError {
    #[error("embedding model unavailable: {0}")]
    ModelUnavailable(String),
    #[error("embedding failed: {0}")]
    Inference(String),
    #[error("embedding service failed: {0}")]
    Remote(String),
}

/// Dense embeddings. Implementations run heavy work off the async threads.
#[async_trait]
pub trait Embedder: Send + Sync {
    /// Name, variant and dimension: stored with every collection it fills.
    fn model(&self) -> &EmbeddingModel;

    /// Embeds many passages, in the order given.
    async fn embed_passages(&self, texts: Vec<String>) -> Result<Vec<Vec<f32>>, EmbedError>;

    /// Embeds one search query.
    async fn embed_query(&self, text: &str) -> Result<Vec<f32>, EmbedError>;
}

/// Runs a blocking embedding call on tokio's blocking pool, never on the async workers.
pub(crate) async fn off_the_async_threads<F>(embed: F) -> Result<Vec<Vec<f32>>, EmbedError>
where
    F: FnOnce() -> Result<Vec<Vec<f32>>, EmbedError> + Send + 'static,
{
    tokio::task::spawn_blocking(embed)
        .await
        .map_err(|e| EmbedError::Inference(e.to_string()))?
}

/// The one vector of a one-text call.
pub(crate) fn single(mut vectors: Vec<Vec<f32>>) -> Result<Vec<f32>, EmbedError> {
    vectors.pop().ok_or_else(|| EmbedError::Inference("the model returned no vector".into()))
}

/// What the configuration gave: an embedder, or the reason retrieval runs on BM25 alone.
pub struct EmbedderSetup {
    pub embedder: Option<Arc<dyn Embedder>>,
    /// Set when there is no dense embedder; said in the log, `/readyz` and answers.
    pub bm25_only_reason: Option<String>,
    /// The model's tokenizer, for sizing chunks in its tokens.
    pub tokenizer: Option<tokenizers::Tokenizer>,
}

/// Builds the embedder `EMBEDDER` asks for. `local` without a model is an error;
/// `auto` without one falls back to BM25 alone.
pub async fn from_config(config: &Config) -> Result<EmbedderSetup, EmbedError> {
    let settings = &config.embedder;
    match settings.choice {
        EmbedderChoice::None => Ok(EmbedderSetup {
            embedder: None,
            bm25_only_reason: Some("EMBEDDER=none: dense retrieval is switched off".into()),
            tokenizer: None,
        }),
        EmbedderChoice::OpenAi => {
            let llm = config.llm.as_ref().ok_or_else(|| {
                EmbedError::ModelUnavailable("EMBEDDER=openai needs LLM_BASE_URL or an API key".into())
            })?;
            let batch_size = settings.batch_size.unwrap_or(OpenAiEmbedder::BATCH_SIZE);
            let embedder = OpenAiEmbedder::connect(llm, &settings.model, batch_size).await?;
            Ok(EmbedderSetup {
                embedder: Some(Arc::new(embedder)),
                bm25_only_reason: None,
                tokenizer: None,
            })
        }
        EmbedderChoice::Local | EmbedderChoice::Auto => {
            let loaded = match model_files::locate(settings, &config.data_dir).await {
                Ok(files) => {
                    let settings = settings.clone();
                    tokio::task::spawn_blocking(move || load_local(&settings, &files))
                        .await
                        .map_err(|e| EmbedError::ModelUnavailable(format!("model loading panicked: {e}")))
                        .and_then(|r| r)
                }
                Err(e) => Err(e),
            };
            match loaded {
                Ok((embedder, tokenizer)) => Ok(EmbedderSetup {
                    embedder: Some(embedder),
                    bm25_only_reason: None,
                    tokenizer: Some(tokenizer),
                }),
                Err(e) if settings.choice == EmbedderChoice::Auto => Ok(EmbedderSetup {
                    embedder: None,
                    bm25_only_reason: Some(format!(
                        "no embedding model ({e}); retrieval is BM25 alone. Set EMBED_MODEL_DIR to a \
                         folder with config.json, model.safetensors and tokenizer.json"
                    )),
                    tokenizer: None,
                }),
                Err(e) => Err(e),
            }
        }
    }
}

/// The local model on the backend `EMBED_BACKEND` asks for, and its tokenizer for
/// sizing chunks. `auto` takes ONNX Runtime when it is configured and loads, and
/// says why not when it falls back to candle.
fn load_local(
    settings: &EmbedderSettings,
    files: &ModelFiles,
) -> Result<(Arc<dyn Embedder>, tokenizers::Tokenizer), EmbedError> {
    let onnx = match (&settings.onnx_runtime, &settings.onnx_model) {
        (Some(runtime), Some(model)) => Some(OnnxFiles {
            runtime: runtime.clone(),
            model: model.clone(),
        }),
        _ => None,
    };
    let tokenizer = sizing_tokenizer(&local::load_tokenizer(files)?);
    let candle_batch = settings.batch_size.unwrap_or(LocalEmbedder::BATCH_SIZE);
    match (settings.backend, onnx) {
        (EmbedBackend::Onnx, None) => Err(EmbedError::ModelUnavailable(
            "EMBED_BACKEND=onnx needs ORT_DYLIB_PATH and EMBED_ONNX_MODEL".into(),
        )),
        (EmbedBackend::Onnx | EmbedBackend::Auto, Some(onnx)) => {
            let onnx_batch = settings.batch_size.unwrap_or(OnnxEmbedder::BATCH_SIZE);
            match OnnxEmbedder::load(&onnx, files, &settings.model, onnx_batch, settings.threads) {
                Ok(embedder) => Ok((Arc::new(embedder), tokenizer)),
                Err(e) if settings.backend == EmbedBackend::Auto => {
                    tracing::warn!(error = %e, "ONNX Runtime unavailable, embedding with candle");
                    let embedder = LocalEmbedder::load(files, &settings.model, candle_batch)?;
                    Ok((Arc::new(embedder), tokenizer))
                }
                Err(e) => Err(e),
            }
        }
        (EmbedBackend::Candle | EmbedBackend::Auto, None) | (EmbedBackend::Candle, Some(_)) => {
            let embedder = LocalEmbedder::load(files, &settings.model, candle_batch)?;
            Ok((Arc::new(embedder), tokenizer))
        }
    }
}
