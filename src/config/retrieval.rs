//! Retrieval: how many chunks, and how hybrid search fuses its two sides.

use super::ConfigError;
use super::vars::Vars;
use crate::domain::Fusion;

pub const MAX_TOP_K: usize = 50;

#[derive(Debug, Clone, Copy)]
pub struct RetrievalSettings {
    /// Chunks a search or an answer uses unless the request says.
    pub top_k: usize,
    pub hybrid: HybridSettings,
    /// Tokens of a conversation's history the LLM gets to rewrite a follow-up
    /// (`CONVERSATION_HISTORY_TOKENS`); the newest turns are kept.
    pub history_tokens: usize,
}

/// How hybrid search gathers and fuses its candidates.
#[derive(Debug, Clone, Copy)]
pub struct HybridSettings {
    pub fusion: Fusion,
    /// Candidates each side brings to fusion, at least (4 × top_k if more).
    pub prefetch: usize,
}

impl RetrievalSettings {
    pub fn parse(vars: &Vars) -> Result<Self, ConfigError> {
        Ok(Self {
            top_k: vars.range("TOP_K", 5, 1, MAX_TOP_K)?,
            hybrid: HybridSettings {
                fusion: Fusion {
                    rrf_k: vars.range("RRF_K", Fusion::default().rrf_k, 1, 10_000)?,
                    bm25_weight: vars.range("HYBRID_BM25_WEIGHT", 1.0, 0.0, 100.0)?,
                },
                prefetch: vars.range("HYBRID_PREFETCH", 32, 1, 1000)?,
            },
            history_tokens: vars.range("CONVERSATION_HISTORY_TOKENS", 1000, 0, 100_000)?,
        })
    }
}
