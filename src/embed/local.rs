//! all-MiniLM-L6-v2 (or any BERT sentence-transformer) in process, on candle:
//! mean pooling over the attention mask, then L2 normalisation, as
//! sentence-transformers does it.

use std::sync::Arc;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{BertModel, Config as BertConfig};
use tokenizers::{PaddingParams, PaddingStrategy, Tokenizer, TruncationParams};

use super::{EmbedError, ModelFiles};
use crate::domain::EmbeddingModel;

/// sentence-transformers' `max_seq_length` for MiniLM: longer input is cut.
const MAX_SEQUENCE_TOKENS: usize = 256;

/// all-MiniLM-L6-v2 on candle, f32: the reference embedder.
pub type LocalEmbedder = super::OffThread<CandleBert>;

pub struct CandleBert {
    bert: BertModel,
    tokenizer: Tokenizer,
    batch_size: usize,
}

fn inference(e: impl std::fmt::Display) -> EmbedError {
    EmbedError::Inference(e.to_string())
}

impl super::OffThread<CandleBert> {
    /// Texts per forward pass when `EMBED_BATCH_SIZE` is unset.
    pub const BATCH_SIZE: usize = 8;

    /// Loads weights and tokenizer; blocking (reads ~90 MB).
    pub fn load(files: &ModelFiles, name: &str, batch_size: usize) -> Result<Self, EmbedError> {
        let unavailable = |what: &str, e: &dyn std::fmt::Display| {
            EmbedError::ModelUnavailable(format!("{what} in {}: {e}", files.dir.display()))
        };
        let config_text =
            std::fs::read_to_string(files.path("config.json")).map_err(|e| unavailable("config.json", &e))?;
        let config: BertConfig = serde_json::from_str(&config_text).map_err(|e| unavailable("config.json", &e))?;
        let tokenizer = load_tokenizer(files)?;
        let device = Device::Cpu;
        // SAFETY: the weights file is memory-mapped read-only and not modified while
        // the server runs.
        let vb =
            unsafe { VarBuilder::from_mmaped_safetensors(&[files.path("model.safetensors")], DType::F32, &device) }
                .map_err(|e| unavailable("model.safetensors", &e))?;
        let bert = BertModel::load(vb, &config).map_err(|e| unavailable("model.safetensors", &e))?;
        let model = EmbeddingModel {
            name: name.to_string(),
            variant: "candle-f32".to_string(),
            dimension: config.hidden_size,
        };
        tracing::info!(model = %model.name, dir = %files.dir.display(), source = ?files.source, "embedding model loaded");
        Ok(Self {
            inner: Arc::new(CandleBert {
                bert,
                tokenizer,
                batch_size,
            }),
            model,
        })
    }

    /// The model's tokenizer without truncation or padding, for sizing chunks.
    pub fn sizing_tokenizer(&self) -> Tokenizer {
        sizing_tokenizer(&self.inner.tokenizer)
    }
}

impl CandleBert {
    fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, EmbedError> {
        // Batches of similar length pad less: sort by length, embed, restore order.
        let mut order: Vec<usize> = (0..texts.len()).collect();
        order.sort_by_key(|&i| texts[i].len());
        let mut out = vec![Vec::new(); texts.len()];
        for batch in order.chunks(self.batch_size.max(1)) {
            let batch_texts: Vec<&str> = batch.iter().map(|&i| texts[i]).collect();
            let vectors = self.embed_batch(&batch_texts)?;
            for (&i, v) in batch.iter().zip(vectors) {
                out[i] = v;
            }
        }
        Ok(out)
    }

    fn embed_batch(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, EmbedError> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let Encoded { rows, cols, ids, mask } = encode(&self.tokenizer, texts, |x| x)?;
        let device = &self.bert.device;
        let ids = Tensor::from_vec(ids, (rows, cols), device).map_err(inference)?;
        let mask = Tensor::from_vec(mask, (rows, cols), device).map_err(inference)?;
        let type_ids = ids.zeros_like().map_err(inference)?;
        let hidden = self.bert.forward(&ids, &type_ids, Some(&mask)).map_err(inference)?;
        pool_and_normalise(&hidden, &mask).map_err(inference)
    }
}

/// A batch tokenized for the model: ids and attention mask, row after row,
/// padded to the longest text.
pub(super) struct Encoded<T> {
    pub rows: usize,
    pub cols: usize,
    pub ids: Vec<T>,
    pub mask: Vec<T>,
}

/// Tokenizes a batch, each id and mask value as the runtime wants it.
pub(super) fn encode<T>(
    tokenizer: &Tokenizer,
    texts: &[&str],
    to: impl Fn(u32) -> T,
) -> Result<Encoded<T>, EmbedError> {
    let encodings = tokenizer.encode_batch(texts.to_vec(), true).map_err(inference)?;
    let rows = encodings.len();
    let cols = encodings.first().map_or(0, |e| e.get_ids().len());
    let mut ids = Vec::with_capacity(rows * cols);
    let mut mask = Vec::with_capacity(rows * cols);
    for encoding in &encodings {
        ids.extend(encoding.get_ids().iter().map(|&x| to(x)));
        mask.extend(encoding.get_attention_mask().iter().map(|&x| to(x)));
    }
    Ok(Encoded { rows, cols, ids, mask })
}

/// The model's tokenizer as the model reads: cut at 256 tokens, batches padded
/// to their longest text.
pub(super) fn load_tokenizer(files: &ModelFiles) -> Result<Tokenizer, EmbedError> {
    let unavailable = |e: &dyn std::fmt::Display| {
        EmbedError::ModelUnavailable(format!("tokenizer.json in {}: {e}", files.dir.display()))
    };
    let mut tokenizer = Tokenizer::from_file(files.path("tokenizer.json")).map_err(|e| unavailable(&e))?;
    tokenizer
        .with_truncation(Some(TruncationParams {
            max_length: MAX_SEQUENCE_TOKENS,
            ..Default::default()
        }))
        .map_err(|e| unavailable(&e))?;
    tokenizer.with_padding(Some(PaddingParams {
        strategy: PaddingStrategy::BatchLongest,
        ..Default::default()
    }));
    Ok(tokenizer)
}

/// Without truncation or padding: counts every token of a text.
pub fn sizing_tokenizer(tokenizer: &Tokenizer) -> Tokenizer {
    let mut tokenizer = tokenizer.clone();
    tokenizer.with_padding(None);
    // Removing truncation cannot fail.
    let _ = tokenizer.with_truncation(None);
    tokenizer
}

/// Unit length (cosine similarity becomes a dot product).
pub(super) fn normalise(mut v: Vec<f32>) -> Vec<f32> {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
    v.iter_mut().for_each(|x| *x /= norm);
    v
}

/// Mean over the tokens the mask keeps, then unit length.
fn pool_and_normalise(hidden: &Tensor, mask: &Tensor) -> candle_core::Result<Vec<Vec<f32>>> {
    let mask = mask.to_dtype(DType::F32)?.unsqueeze(2)?;
    let summed = hidden.broadcast_mul(&mask)?.sum(1)?;
    let counts = mask.sum(1)?.clamp(1e-9, f32::MAX)?;
    let mean = summed.broadcast_div(&counts)?;
    let norms = mean.sqr()?.sum_keepdim(1)?.sqrt()?.clamp(1e-12, f32::MAX)?;
    mean.broadcast_div(&norms)?.to_vec2::<f32>()
}

impl super::BlockingModel for CandleBert {
    fn passages(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, EmbedError> {
        self.embed(texts)
    }

    fn queries(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, EmbedError> {
        self.embed(texts)
    }
}
