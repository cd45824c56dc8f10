//! Sparse BM25 vectors from Qdrant's own tokenizer (`EdgeBm25`: English
//! stopwords and stemming), so the embedded and the server index see the same
//! terms. The IDF half of BM25 is applied by the index (the `idf` modifier).

use qdrant_edge::bm25_embed::{EdgeBm25, EdgeBm25Config};

/// Term ids and weights.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SparseVector {
    pub indices: Vec<u32>,
    pub values: Vec<f32>,
}

impl SparseVector {
    pub fn is_empty(&self) -> bool {
        self.indices.is_empty()
    }
}

pub struct Bm25Encoder {
    model: EdgeBm25,
}

impl std::fmt::Debug for Bm25Encoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bm25Encoder").finish_non_exhaustive()
    }
}

impl Bm25Encoder {
    pub fn new() -> Self {
        // The default configuration is valid by construction (k=1.2, b=0.75, English).
        let model = EdgeBm25::new(EdgeBm25Config::default())
            .unwrap_or_else(|e| unreachable!("default BM25 configuration rejected: {e}"));
        Self { model }
    }

    /// Term frequencies of a passage, length-normalised.
    pub fn passage(&self, text: &str) -> SparseVector {
        let v = self.model.embed_document(text);
        SparseVector {
            indices: v.indices,
            values: v.values,
        }
    }

    /// The query's terms, each weighted 1.
    pub fn query(&self, text: &str) -> SparseVector {
        let v = self.model.embed_query(text);
        SparseVector {
            indices: v.indices,
            values: v.values,
        }
    }
}

impl Default for Bm25Encoder {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stemming_and_stopwords_make_matching_terms() {
        let bm25 = Bm25Encoder::new();
        let q = bm25.query("the warranties");
        let d = bm25.passage("a warranty of two years");
        assert_eq!(q.indices.len(), 1, "stopword dropped");
        assert!(d.indices.contains(&q.indices[0]), "warranties ~ warranty");
    }
}
