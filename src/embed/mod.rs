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
pub use local::{CandleBert, LocalEmbedder, sizing_tokenizer};
pub use model_files::{ModelFiles, ModelSource};
pub use onnx::{OnnxEmbedder, OnnxFiles, OnnxSessions};
pub use openai::OpenAiEmbedder;

use crate::config::{EmbedBackend, EmbedderChoice, EmbedderSettings, LlmSettings};
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

/// A model that embeds synchronously (candle, ONNX Runtime).
pub trait BlockingModel: Send + Sync + 'static {
    fn passages(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, EmbedError>;
    fn queries(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, EmbedError>;
}

/// The embedder of a synchronous model: its calls run on tokio's blocking pool,
/// never on the async workers.
pub struct OffThread<M> {
    inner: Arc<M>,
    model: EmbeddingModel,
}

impl<M: BlockingModel> OffThread<M> {
    /// Embeds passages on the calling thread; call from a blocking thread.
    pub fn embed_blocking(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, EmbedError> {
        self.inner.passages(texts)
    }
}

#[async_trait]
impl<M: BlockingModel> Embedder for OffThread<M> {
    fn model(&self) -> &EmbeddingModel {
        &self.model
    }

    async fn embed_passages(&self, texts: Vec<String>) -> Result<Vec<Vec<f32>>, EmbedError> {
        let inner = Arc::clone(&self.inner);
        off_the_async_threads(move || {
            let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
            inner.passages(&refs)
        })
        .await
    }

    async fn embed_query(&self, text: &str) -> Result<Vec<f32>, EmbedError> {
        let inner = Arc::clone(&self.inner);
        let text = text.to_string();
        let mut vectors = off_the_async_threads(move || inner.queries(&[text.as_str()])).await?;
        vectors
            .pop()
            .ok_or_else(|| EmbedError::Inference("the model returned no vector".into()))
    }
}

async fn off_the_async_threads<F>(embed: F) -> Result<Vec<Vec<f32>>, EmbedError>
where
    F: FnOnce() -> Result<Vec<Vec<f32>>, EmbedError> + Send + 'static,
{
    tokio::task::spawn_blocking(embed)
        .await
        .map_err(|e| EmbedError::Inference(e.to_string()))?
}

/// What the configuration gave: an embedder, or the reason retrieval runs on BM25 alone.
pub struct EmbedderSetup {
    pub embedder: Option<Arc<dyn Embedder>>,
    /// Set when there is no dense embedder; said in the log, `/readyz` and answers.
    pub bm25_only_reason: Option<String>,
    /// The model's tokenizer, for sizing chunks in its tokens.
    pub tokenizer: Option<tokenizers::Tokenizer>,
}

/// Builds the embedder `EMBEDDER` asks for (`openai` embeds through the LLM's
/// endpoint). `local` without a model is an error; `auto` without one falls back
/// to BM25 alone.
pub async fn from_settings(
    settings: &EmbedderSettings,
    llm: Option<&LlmSettings>,
) -> Result<EmbedderSetup, EmbedError> {
    match settings.choice {
        EmbedderChoice::None => Ok(EmbedderSetup {
            embedder: None,
            bm25_only_reason: Some("EMBEDDER=none: dense retrieval is switched off".into()),
            tokenizer: None,
        }),
        EmbedderChoice::OpenAi => {
            let llm = llm.ok_or_else(|| {
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
            let loaded = match model_files::locate(settings).await {
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
