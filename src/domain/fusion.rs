//! How the two sides of a hybrid search are fused.

/// How the two sides of a hybrid query are fused, on both backends: Qdrant's
/// weighted reciprocal rank fusion, score = Σ 1 / (rank / weight + k − 1)
/// (rank from 1), the dense side weighing 1. A weight scales ranks, so it
/// moves the fused order little unless k is small.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Fusion {
    pub rrf_k: u32,
    pub bm25_weight: f32,
}

/// k = 5 and equal weights: the best of a grid on the tuning splits (SciFact
/// train nDCG@10 0.731 against 0.721 at the customary k = 60; SQuAD dev
/// paragraph recall@5 0.982 against 0.970), `bench/tune_fusion.sh`.
impl Default for Fusion {
    fn default() -> Self {
        Self {
            rrf_k: 5,
            bm25_weight: 1.0,
        }
    }
}

impl Fusion {
    /// The per-prefetch weights for a query with these sides (dense first):
    /// `None` where they are all equal, as unweighted RRF is.
    pub fn weights(&self, dense: bool, bm25: bool) -> Option<Vec<f32>> {
        (dense && bm25 && self.bm25_weight != 1.0).then(|| vec![1.0, self.bm25_weight])
    }
}
