//! all-MiniLM-L6-v2 on ONNX Runtime (an int8 export by default), loaded at run
//! time from `libonnxruntime.so`. Measured here 3.5× faster than candle f32 at
//! the same retrieval quality (benches/embed.rs, README "Performance").
//!
//! Passages are embedded by one single-threaded session per core, each on its own
//! batches (measured faster than one session with a thread per core: ONNX
//! Runtime's intra-op threads synchronise on every small operator), on threads of
//! lowered priority. Queries have sessions of their own, one per core, at normal
//! priority, so a search never waits behind an ingestion batch.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use ort::environment::Environment;
use ort::session::Session;
use ort::session::builder::GraphOptimizationLevel;
use ort::session::builder::PrepackedWeights;
use ort::value::Tensor;
use tokenizers::Tokenizer;

use super::local::{Encoded, encode, load_tokenizer, normalise};
use super::{EmbedError, ModelFiles};
use crate::domain::EmbeddingModel;

/// Where ONNX Runtime and the model file are.
#[derive(Debug, Clone)]
pub struct OnnxFiles {
    pub runtime: PathBuf,
    pub model: PathBuf,
}

/// An ONNX export of the model on ONNX Runtime.
pub type OnnxEmbedder = super::OffThread<OnnxSessions>;

pub struct OnnxSessions {
    /// One per worker thread; `embed` spreads batches over them.
    passages: Vec<Mutex<Session>>,
    /// One per core too, so that concurrent searches embed in parallel.
    queries: Vec<Mutex<Session>>,
    next_query: AtomicUsize,
    tokenizer: Tokenizer,
    batch_size: usize,
    /// Whether the graph takes `token_type_ids` (exports differ).
    token_types: bool,
}

fn unavailable(what: &str, e: impl std::fmt::Display) -> EmbedError {
    EmbedError::ModelUnavailable(format!("{what}: {e}"))
}

fn inference(e: impl std::fmt::Display) -> EmbedError {
    EmbedError::Inference(e.to_string())
}

/// ONNX Runtime is loaded once per process; a second path is ignored.
fn runtime(path: &Path) -> Result<&'static Environment, EmbedError> {
    static LOADED: OnceLock<Result<Environment, String>> = OnceLock::new();
    LOADED
        .get_or_init(|| {
            let builder = ort::init_from(path).map_err(|e| format!("{}: {e}", path.display()))?;
            builder
                .with_name("docqa")
                .build()
                .map_err(|e| format!("{}: {e}", path.display()))
        })
        .as_ref()
        .map_err(|e| unavailable("ONNX Runtime (ORT_DYLIB_PATH)", e))
}

fn session(
    environment: &Environment,
    model: &Path,
    threads: usize,
    shared: &PrepackedWeights,
) -> Result<Session, EmbedError> {
    let build = || -> ort::Result<Session> {
        Session::builder(environment)?
            // The two sessions share their prepacked weights instead of each packing its own.
            .with_prepacked_weights(shared)?
            // scripts/export_onnx.py saves the graph already optimised (fused int8
            // products); optimising again would add ~120 MB per session. The memory
            // arena is worth 25 % of the speed, so it stays.
            .with_optimization_level(GraphOptimizationLevel::Disable)?
            .with_intra_threads(threads)?
            .with_inter_threads(1)?
            // Spinning threads would steal the core that queries and parsing need.
            .with_intra_op_spinning(false)?
            .commit_from_file(model)
    };
    build().map_err(|e| unavailable(&format!("ONNX model {}", model.display()), e))
}

impl super::OffThread<OnnxSessions> {
    /// Texts per forward pass when `EMBED_BATCH_SIZE` is unset. Measured with both
    /// passage sessions busy (benches/embed.rs): on Sapphire Rapids 4 beats 2 and 8
    /// (12.3k, 10.8k, 11.6k tokens/s, graph r2); on Zen 4, 2 and 4 are within 5 %
    /// (14.8k, 14.1k; 8: 13.2k, graph r3). Small batches keep the activations in L2.
    pub const BATCH_SIZE: usize = 4;

    /// Loads the runtime, the model (twice: passages and queries) and the tokenizer
    /// from the model files; blocking.
    pub fn load(
        onnx: &OnnxFiles,
        tokenizer_files: &ModelFiles,
        name: &str,
        batch_size: usize,
        threads: usize,
    ) -> Result<Self, EmbedError> {
        let environment = runtime(&onnx.runtime)?;
        let shared = PrepackedWeights::new();
        let sessions = |n: usize| {
            (0..n.max(1))
                .map(|_| session(environment, &onnx.model, 1, &shared).map(Mutex::new))
                .collect::<Result<Vec<_>, _>>()
        };
        let queries = sessions(threads)?;
        let passages = sessions(threads)?;
        let inputs: Vec<String> = lock(&queries[0])
            .inputs()
            .iter()
            .map(|i| i.name().to_string())
            .collect();
        let token_types = inputs.iter().any(|name| name == "token_type_ids");
        for required in ["input_ids", "attention_mask"] {
            if !inputs.iter().any(|name| name == required) {
                return Err(unavailable("ONNX model", format!("it has no `{required}` input")));
            }
        }
        let tokenizer = load_tokenizer(tokenizer_files)?;
        let mut embedder = Self {
            inner: Arc::new(OnnxSessions {
                passages,
                queries,
                next_query: AtomicUsize::new(0),
                tokenizer,
                batch_size,
                token_types,
            }),
            model: EmbeddingModel {
                name: name.to_string(),
                variant: variant_of(&onnx.model),
                dimension: 0,
            },
        };
        // One probe tells the dimension and proves the graph runs.
        let probe = embedder.inner.embed_query(&["dimension probe"])?;
        embedder.model.dimension = probe.first().map_or(0, Vec::len);
        tracing::info!(model = %embedder.model.name, variant = %embedder.model.variant,
            dimension = embedder.model.dimension, threads, file = %onnx.model.display(), "embedding model loaded (ONNX Runtime)");
        Ok(embedder)
    }
}

/// A text's vector with the text's place in the request.
type Indexed = (usize, Vec<f32>);

/// A poisoned lock only means another batch panicked; the session is intact.
fn lock(session: &Mutex<Session>) -> MutexGuard<'_, Session> {
    session.lock().unwrap_or_else(|p| p.into_inner())
}

/// `onnx-int8` for a quantised export (by its file name), else `onnx`.
fn variant_of(model: &Path) -> String {
    let name = model.to_string_lossy().to_ascii_lowercase();
    if name.contains("int8") || name.contains("quant") || name.contains("qint") {
        "onnx-int8".to_string()
    } else {
        "onnx".to_string()
    }
}

impl OnnxSessions {
    /// Embeds with a free query session, or waits for the next in turn.
    fn embed_query(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, EmbedError> {
        let free = self.queries.iter().find_map(|session| session.try_lock().ok());
        let session = free.unwrap_or_else(|| {
            let turn = self.next_query.fetch_add(1, Ordering::Relaxed) % self.queries.len();
            lock(&self.queries[turn])
        });
        self.embed_with(texts, session)
    }

    /// Batches of similar length (they pad less), spread over the passage
    /// sessions, each worker on its own thread.
    fn embed_passages(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, EmbedError> {
        let mut order: Vec<usize> = (0..texts.len()).collect();
        order.sort_by_key(|&i| texts[i].len());
        let batches: Vec<&[usize]> = order.chunks(self.batch_size.max(1)).collect();
        let workers = self.passages.len().min(batches.len()).max(1);
        let results: Vec<Result<Vec<Indexed>, EmbedError>> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..workers)
                .map(|w| {
                    let mine: Vec<&[usize]> = batches.iter().skip(w).step_by(workers).copied().collect();
                    let session = &self.passages[w];
                    scope.spawn(move || {
                        crate::background::lower_current_thread_priority();
                        let mut done = Vec::new();
                        for batch in mine {
                            let batch_texts: Vec<&str> = batch.iter().map(|&i| texts[i]).collect();
                            let vectors = self.run_batch(&batch_texts, &mut lock(session))?;
                            done.extend(batch.iter().copied().zip(vectors));
                        }
                        Ok(done)
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join()
                        .unwrap_or_else(|_| Err(inference("an embedding thread panicked")))
                })
                .collect()
        });
        let mut out = vec![Vec::new(); texts.len()];
        for result in results {
            for (i, v) in result? {
                out[i] = v;
            }
        }
        Ok(out)
    }

    /// All texts through one session, on the calling thread.
    fn embed_with(&self, texts: &[&str], mut session: MutexGuard<'_, Session>) -> Result<Vec<Vec<f32>>, EmbedError> {
        texts
            .chunks(self.batch_size.max(1))
            .map(|batch| self.run_batch(batch, &mut session))
            .try_fold(Vec::with_capacity(texts.len()), |mut all, vectors| {
                all.extend(vectors?);
                Ok(all)
            })
    }

    fn run_batch(&self, texts: &[&str], session: &mut Session) -> Result<Vec<Vec<f32>>, EmbedError> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let Encoded { rows, cols, ids, mask } = encode(&self.tokenizer, texts, i64::from)?;
        let shape = [rows, cols];
        let ids_tensor = Tensor::from_array((shape, ids)).map_err(inference)?;
        let mask_tensor = Tensor::from_array((shape, mask.clone())).map_err(inference)?;
        let outputs = if self.token_types {
            let types = Tensor::from_array((shape, vec![0i64; rows * cols])).map_err(inference)?;
            session.run(ort::inputs![
                "input_ids" => ids_tensor,
                "attention_mask" => mask_tensor,
                "token_type_ids" => types,
            ])
        } else {
            session.run(ort::inputs!["input_ids" => ids_tensor, "attention_mask" => mask_tensor])
        }
        .map_err(inference)?;
        let (out_shape, hidden) = outputs[0].try_extract_tensor::<f32>().map_err(inference)?;
        match out_shape.len() {
            // Token states: mean over the tokens the mask keeps.
            3 => {
                let dim = out_shape[2] as usize;
                Ok((0..rows)
                    .map(|r| {
                        let mut pooled = vec![0f32; dim];
                        let mut kept = 0f32;
                        for c in 0..cols {
                            if mask[r * cols + c] == 0 {
                                continue;
                            }
                            kept += 1.0;
                            let token = &hidden[(r * cols + c) * dim..(r * cols + c + 1) * dim];
                            pooled.iter_mut().zip(token).for_each(|(p, t)| *p += t);
                        }
                        pooled.iter_mut().for_each(|p| *p /= kept.max(1e-9));
                        normalise(pooled)
                    })
                    .collect())
            }
            // Already pooled sentence embeddings.
            2 => {
                let dim = out_shape[1] as usize;
                Ok(hidden.chunks(dim).map(|v| normalise(v.to_vec())).collect())
            }
            n => Err(inference(format!("unexpected output of rank {n}"))),
        }
    }
}

impl super::BlockingModel for OnnxSessions {
    fn passages(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, EmbedError> {
        self.embed_passages(texts)
    }

    fn queries(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, EmbedError> {
        self.embed_query(texts)
    }
}
