use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A collection name: `[a-z0-9_-]{1,64}`. Parsed once at the edge, trusted after.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(try_from = "String", into = "String")]
#[schema(value_type = String, pattern = "^[a-z0-9_-]{1,64}$", example = "default")]
pub struct CollectionName(String);

pub const DEFAULT_COLLECTION: &str = "default";

#[derive(Debug, thiserror::Error)]
#[error("collection names are 1 to 64 characters of a-z, 0-9, '_' and '-'; got {0:?}")]
pub struct InvalidCollectionName(pub String);

impl CollectionName {
    pub fn parse(raw: &str) -> Result<Self, InvalidCollectionName> {
        let valid = (1..=64).contains(&raw.len())
            && raw
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
        if valid {
            Ok(Self(raw.to_string()))
        } else {
            Err(InvalidCollectionName(raw.chars().take(80).collect()))
        }
    }

    pub fn default_collection() -> Self {
        Self(DEFAULT_COLLECTION.to_string())
    }

    pub fn is_default(&self) -> bool {
        self.0 == DEFAULT_COLLECTION
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for CollectionName {
    type Error = InvalidCollectionName;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<CollectionName> for String {
    fn from(value: CollectionName) -> Self {
        value.0
    }
}

impl fmt::Display for CollectionName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Which embedding model produced a collection's dense vectors. Vectors of two
/// models must never be mixed in one index.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct EmbeddingModel {
    /// e.g. `sentence-transformers/all-MiniLM-L6-v2`
    pub name: String,
    /// How it runs, e.g. `candle-f32`.
    pub variant: String,
    pub dimension: usize,
}

impl EmbeddingModel {
    /// Vectors of `other` can be searched together with ours: same model, same
    /// dimension. The variant (f32 on candle, int8 on ONNX Runtime) only nudges
    /// the vectors (cosine > 0.98 between them here), so it may differ.
    pub fn same_space(&self, other: &EmbeddingModel) -> bool {
        self.name == other.name && self.dimension == other.dimension
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Collection {
    pub name: CollectionName,
    pub description: Option<String>,
    /// `null` when the collection was created without dense vectors (BM25 alone).
    pub embedding_model: Option<EmbeddingModel>,
    pub created_at: DateTime<Utc>,
}

impl Collection {
    /// The stored model and the server's, when the server's cannot search or fill
    /// this collection's vectors. A server without a model is no mismatch: it
    /// works on BM25 alone.
    pub fn model_mismatch(&self, current: Option<&EmbeddingModel>) -> Option<Box<ModelMismatch>> {
        match (&self.embedding_model, current) {
            (Some(stored), Some(current)) if !stored.same_space(current) => Some(Box::new(ModelMismatch {
                collection: self.name.clone(),
                stored: stored.clone(),
                current: current.clone(),
            })),
            _ => None,
        }
    }
}

/// A collection whose vectors come from another model than the server runs: it
/// cannot be searched or filled until it is re-indexed. The one rule and its
/// message, for requests (409) and for jobs (a failed document).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error(
    "collection {:?} holds vectors of {} ({} dims), but the server runs {} ({} dims); re-index it \
     (POST /v1/collections/{}/reindex) or start the server with its model",
    .collection.as_str(), .stored.name, .stored.dimension, .current.name, .current.dimension, .collection
)]
pub struct ModelMismatch {
    pub collection: CollectionName,
    pub stored: EmbeddingModel,
    pub current: EmbeddingModel,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_documented_pattern() {
        for good in ["default", "a", "team-1_docs", &"x".repeat(64)] {
            assert!(CollectionName::parse(good).is_ok(), "{good}");
        }
        for bad in ["", "Upper", "with space", "dot.ted", "ü", &"x".repeat(65), "../etc"] {
            assert!(CollectionName::parse(bad).is_err(), "{bad}");
        }
    }
}
