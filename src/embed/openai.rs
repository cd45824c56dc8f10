//! Dense embeddings from an OpenAI-compatible `/embeddings` endpoint.

use async_openai::Client;
use async_openai::config::OpenAIConfig;
use async_openai::types::embeddings::{CreateEmbeddingRequest, EmbeddingInput};
use async_trait::async_trait;

use super::{EmbedError, Embedder};
use crate::config::LlmSettings;
use crate::domain::EmbeddingModel;

pub struct OpenAiEmbedder {
    client: Client<OpenAIConfig>,
    model: EmbeddingModel,
    batch_size: usize,
}

impl OpenAiEmbedder {
    /// Texts per request when `EMBED_BATCH_SIZE` is unset.
    pub const BATCH_SIZE: usize = 8;

    /// Connects and embeds one probe text to learn the dimension, so a wrong
    /// endpoint or model fails at start, not at the first upload.
    pub async fn connect(settings: &LlmSettings, model: &str, batch_size: usize) -> Result<Self, EmbedError> {
        let client =
            crate::openai::client(settings).map_err(|e| EmbedError::ModelUnavailable(format!("http client: {e}")))?;
        let mut embedder = Self {
            client,
            model: EmbeddingModel {
                name: model.to_string(),
                variant: "openai-api".to_string(),
                dimension: 0,
            },
            batch_size,
        };
        let probe = embedder.request(vec!["dimension probe".to_string()]).await?;
        embedder.model.dimension = probe.first().map_or(0, Vec::len);
        if embedder.model.dimension == 0 {
            return Err(EmbedError::ModelUnavailable(format!(
                "{} at {} returned an empty embedding",
                model, settings.base_url
            )));
        }
        Ok(embedder)
    }

    async fn request(&self, texts: Vec<String>) -> Result<Vec<Vec<f32>>, EmbedError> {
        let expected = texts.len();
        let request = CreateEmbeddingRequest {
            model: self.model.name.clone(),
            input: EmbeddingInput::StringArray(texts),
            ..Default::default()
        };
        let response = self
            .client
            .embeddings()
            .create(request)
            .await
            .map_err(|e| EmbedError::Remote(e.to_string()))?;
        let mut data = response.data;
        data.sort_by_key(|e| e.index);
        if data.len() != expected {
            return Err(EmbedError::Remote(format!(
                "asked for {expected} embeddings, got {}",
                data.len()
            )));
        }
        Ok(data.into_iter().map(|e| e.embedding).collect())
    }
}

#[async_trait]
impl Embedder for OpenAiEmbedder {
    fn model(&self) -> &EmbeddingModel {
        &self.model
    }

    async fn embed_passages(&self, texts: Vec<String>) -> Result<Vec<Vec<f32>>, EmbedError> {
        let mut out = Vec::with_capacity(texts.len());
        for batch in texts.chunks(self.batch_size.max(1)) {
            out.extend(self.request(batch.to_vec()).await?);
        }
        Ok(out)
    }

    async fn embed_query(&self, text: &str) -> Result<Vec<f32>, EmbedError> {
        self.request(vec![text.to_string()])
            .await?
            .pop()
            .ok_or_else(|| EmbedError::Remote("no embedding returned".into()))
    }
}
