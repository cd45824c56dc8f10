//! The vector index: chunk points with a `dense` and a `bm25` named vector and
//! their payload; hybrid queries fused with RRF inside the store. Qdrant Edge in
//! process now; a Qdrant server slots in behind the same trait.

mod edge;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

pub use edge::EdgeIndex;

use crate::domain::{ChunkId, CollectionName, DocumentId, Filter, Metadata, PageBreak};
use crate::embed::SparseVector;

pub const DENSE_VECTOR: &str = "dense";
pub const BM25_VECTOR: &str = "bm25";

#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    #[error("no index for collection {0}")]
    MissingCollection(String),
    #[error("index is unavailable: {0}")]
    Unavailable(String),
    #[error("index operation failed: {0}")]
    Operation(String),
    #[error("the index expects {expected} dense dimensions, got {got}")]
    DimensionMismatch { expected: usize, got: usize },
}

/// What a chunk carries in the index: enough to show, filter and cite it without
/// a trip to the catalog.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChunkPayload {
    pub collection: String,
    pub document_id: DocumentId,
    pub chunk_index: u32,
    pub page_start: u32,
    pub page_end: u32,
    pub filename: String,
    pub text: String,
    #[serde(default)]
    pub page_breaks: Vec<PageBreak>,
    #[serde(default)]
    pub metadata: Metadata,
}

#[derive(Debug, Clone)]
pub struct ChunkPoint {
    pub id: ChunkId,
    /// `None` when the collection has no dense vectors (BM25 alone).
    pub dense: Option<Vec<f32>>,
    pub bm25: SparseVector,
    pub payload: ChunkPayload,
}

/// The shape of a collection's index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexLayout {
    /// Dimension of the `dense` vector; `None` for BM25 alone.
    pub dense_dimension: Option<usize>,
}

#[derive(Debug, Clone)]
pub struct HybridQuery {
    pub dense: Option<Vec<f32>>,
    pub bm25: SparseVector,
    pub filter: Filter,
    pub limit: usize,
    /// How many candidates each side contributes before fusion.
    pub prefetch: usize,
    /// Dense candidates below this cosine similarity are not candidates at all, so
    /// that a question about nothing in the documents finds nothing.
    pub min_dense_score: f32,
}

#[derive(Debug, Clone)]
pub struct ScoredChunk {
    pub id: ChunkId,
    /// The fused (RRF) score.
    pub score: f32,
    /// Cosine similarity of the chunk's dense vector to the query's, when the query
    /// had one: an absolute measure of relevance, which a rank-fused score is not.
    pub dense_similarity: Option<f32>,
    pub payload: ChunkPayload,
}

#[async_trait]
pub trait VectorIndex: Send + Sync {
    async fn ping(&self) -> Result<(), IndexError>;
    /// Creates the collection's index if it does not exist yet.
    async fn ensure_collection(&self, collection: &CollectionName, layout: IndexLayout) -> Result<(), IndexError>;
    async fn drop_collection(&self, collection: &CollectionName) -> Result<(), IndexError>;
    /// Inserts or overwrites points; durable when it returns.
    async fn upsert(&self, collection: &CollectionName, points: Vec<ChunkPoint>) -> Result<(), IndexError>;
    async fn delete_document(&self, collection: &CollectionName, document: DocumentId) -> Result<(), IndexError>;
    /// Dense and BM25 candidates fused with reciprocal rank fusion, best first.
    async fn search(&self, collection: &CollectionName, query: HybridQuery) -> Result<Vec<ScoredChunk>, IndexError>;
    /// How many points a document has (for consistency checks and tests).
    async fn count_document(&self, collection: &CollectionName, document: DocumentId) -> Result<usize, IndexError>;
}
