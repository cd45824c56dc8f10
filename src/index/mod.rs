//! The vector index: chunk points with a `dense` and a `bm25` named vector and
//! their payload; hybrid queries fused with RRF inside the store. Qdrant Edge in
//! process (the embedded default) or a Qdrant server or cluster, behind one trait
//! and one conformance suite.
//!
//! Each collection's index has generations: searches and ingestion use the live
//! one, a re-index fills the next one beside it and swaps it in at once (an alias
//! on Qdrant, a pointer file on Edge).

mod edge;
mod qdrant;

use std::sync::Arc;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

pub use edge::EdgeIndex;
pub use qdrant::QdrantIndex;

use crate::config::IndexSettings;
pub use crate::domain::Fusion;
use crate::domain::{ChunkId, ChunkLayout, CollectionName, DocumentId, Filter, Metadata, PageBreak, Readers};
use crate::embed::SparseVector;

pub const DENSE_VECTOR: &str = "dense";
pub const BM25_VECTOR: &str = "bm25";
/// Payload fields filters and deletes go through; both backends index them.
pub const DOCUMENT_ID_FIELD: &str = "document_id";
pub const PENDING_FIELD: &str = "pending";
/// The principals who may read a chunk's document; empty or absent: everyone.
pub const ACCESS_FIELD: &str = "access";
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
    /// Its document's `access`: searches see the chunk only when it is empty or
    /// shares a principal with the request (inside the index filter).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub access: Vec<String>,
    /// Written while its document is being ingested: searches skip the point
    /// until the document is published, so no half-indexed document is seen.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub pending: bool,
    /// Its words' rectangles, for citation boxes (PDF and image pages only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub layout: Option<ChunkLayout>,
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
    /// Whose documents the request may see, applied inside the index filter.
    pub readers: Readers,
    pub limit: usize,
    /// How many candidates each side contributes before fusion.
    pub prefetch: usize,
    pub fusion: Fusion,
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

impl ScoredChunk {
    /// A found point; its similarity to the query is measured when both have a
    /// dense vector.
    pub(crate) fn found(
        id: uuid::Uuid,
        score: f32,
        payload: ChunkPayload,
        query: Option<&[f32]>,
        stored: Option<&[f32]>,
    ) -> Self {
        Self {
            id: ChunkId(id),
            score,
            dense_similarity: query.zip(stored).map(|(query, stored)| cosine(query, stored)),
            payload,
        }
    }
}

/// A re-index in progress: the generation being filled beside the live one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rebuild {
    pub collection: CollectionName,
    pub generation: u32,
    pub layout: IndexLayout,
}

#[async_trait]
pub trait VectorIndex: Send + Sync {
    async fn ping(&self) -> Result<(), IndexError>;
    /// Creates the collection's index if it does not exist yet.
    async fn ensure_collection(&self, collection: &CollectionName, layout: IndexLayout) -> Result<(), IndexError>;
    /// Removes every generation of the collection's index.
    async fn drop_collection(&self, collection: &CollectionName) -> Result<(), IndexError>;
    /// Inserts or overwrites points in the live index; durable when it returns.
    async fn upsert(&self, collection: &CollectionName, points: Vec<ChunkPoint>) -> Result<(), IndexError>;
    /// Makes a document's `pending` points searchable.
    async fn publish_document(&self, collection: &CollectionName, document: DocumentId) -> Result<(), IndexError>;
    /// Removes a document's points from the live index and from a rebuild in progress.
    async fn delete_document(&self, collection: &CollectionName, document: DocumentId) -> Result<(), IndexError>;
    /// Sets a document's `access` and `metadata` on every one of its points, in
    /// place (no re-embedding); in effect for the next search.
    async fn set_document_payload(
        &self,
        collection: &CollectionName,
        document: DocumentId,
        access: &[String],
        metadata: &Metadata,
    ) -> Result<(), IndexError>;
    /// Dense and BM25 candidates fused with reciprocal rank fusion, best first;
    /// pending points are never found.
    async fn search(&self, collection: &CollectionName, query: HybridQuery) -> Result<Vec<ScoredChunk>, IndexError>;
    /// How many points a document has, pending or not (for consistency checks and tests).
    async fn count_document(&self, collection: &CollectionName, document: DocumentId) -> Result<usize, IndexError>;
    /// How many points the collection's live index holds, pending or not.
    async fn count_points(&self, collection: &CollectionName) -> Result<usize, IndexError>;

    /// Starts a fresh, empty generation of the collection's index beside the live
    /// one (replacing what an interrupted rebuild left).
    async fn begin_rebuild(&self, collection: &CollectionName, layout: IndexLayout) -> Result<Rebuild, IndexError>;
    /// Writes points into the rebuild; durable when it returns.
    async fn upsert_rebuild(&self, rebuild: &Rebuild, points: Vec<ChunkPoint>) -> Result<(), IndexError>;
    /// Swaps the rebuild in for searches and writes at once, then drops the old
    /// generation.
    async fn finish_rebuild(&self, rebuild: &Rebuild) -> Result<(), IndexError>;
}

/// The index the settings ask for: a Qdrant server, or Qdrant Edge in the data dir.
pub async fn open(settings: &IndexSettings) -> Result<Arc<dyn VectorIndex>, IndexError> {
    match settings {
        IndexSettings::Qdrant(qdrant) => Ok(Arc::new(QdrantIndex::connect(qdrant).await?)),
        IndexSettings::Edge { dir } => Ok(Arc::new(EdgeIndex::open(dir)?)),
    }
}

/// Cosine similarity of a query and a stored vector: an absolute relevance
/// measure next to the rank-fused score.
pub(crate) fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let norm = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>().sqrt();
    let denominator = norm(a) * norm(b);
    if denominator > 0.0 { dot / denominator } else { 0.0 }
}
