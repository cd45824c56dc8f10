//! Turning text into vectors: the dense `Embedder` (a trait, so that faster
//! backends slot in) and the sparse BM25 encoder every backend shares.

pub mod bm25;
mod local;
mod model_files;
mod openai;

use std::sync::Arc;

use async_trait::async_trait;

pub use bm25::{Bm25Encoder, SparseVector};
pub use local::LocalEmbedder;
pub use model_files::{ModelFiles, ModelSource};
pub use openai::OpenAiEmbedder;

use crate::config::{Config, EmbedderChoice};
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
            let embedder = OpenAiEmbedder::connect(llm, &settings.model, settings.batch_size).await?;
            Ok(EmbedderSetup {
                embedder: Some(Arc::new(embedder)),
                bm25_only_reason: None,
                tokenizer: None,
            })
        }
        EmbedderChoice::Local | EmbedderChoice::Auto => {
            let files = model_files::locate(settings, &config.data_dir).await;
            let loaded = match files {
                Ok(files) => {
                    let batch = settings.batch_size;
                    let name = settings.model.clone();
                    tokio::task::spawn_blocking(move || LocalEmbedder::load(&files, &name, batch))
                        .await
                        .map_err(|e| EmbedError::ModelUnavailable(format!("model loading panicked: {e}")))
                        .and_then(|r| r)
                }
                Err(e) => Err(e),
            };
            match loaded {
                Ok(embedder) => {
                    let tokenizer = embedder.sizing_tokenizer();
                    Ok(EmbedderSetup {
                        embedder: Some(Arc::new(embedder)),
                        bm25_only_reason: None,
                        tokenizer: Some(tokenizer),
                    })
                }
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
