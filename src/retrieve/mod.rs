//! Hybrid retrieval: the question as a dense vector and as BM25 terms, both
//! searched inside the index and fused there with reciprocal rank fusion.

use std::sync::Arc;
use std::time::Instant;

use serde::Deserialize;
use utoipa::ToSchema;

use crate::catalog::Catalog;
use crate::config::{HybridSettings, MAX_TOP_K};
use crate::domain::{Collection, CollectionName, Filter, ModelMismatch, Readers, SearchHit};
use crate::embed::{Bm25Encoder, EmbedError, Embedder};
use crate::index::{HybridQuery, IndexError, VectorIndex};
use crate::store::{StoreError, errors_through_store, find_collection};

#[derive(Debug, thiserror::Error)]
pub enum RetrieveError {
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    ModelMismatch(#[from] Box<ModelMismatch>),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Embed(#[from] EmbedError),
}

errors_through_store!(RetrieveError);

pub const MAX_QUERY_CHARS: usize = 4096;

/// Candidates per side before fusion: this many times `top_k`, at least `HYBRID_PREFETCH`.
const PREFETCH_FACTOR: usize = 4;
/// Dense candidates less similar than this are no candidates (all-MiniLM-L6-v2
/// puts unrelated text around 0 to 0.15).
const MIN_DENSE_SCORE: f32 = 0.25;

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SearchRequest {
    /// What to look for.
    #[schema(
        example = "How long is the warranty?",
        min_length = 1,
        max_length = 4096,
        pattern = "\\S"
    )]
    pub query: String,
    /// How many chunks to return (1 to 50; default `TOP_K`).
    #[schema(minimum = 1, maximum = 50)]
    pub top_k: Option<usize>,
    pub filter: Option<Filter>,
    /// Which side of the index to search (default `hybrid`; the others are
    /// there to compare, as `docqa eval` does).
    #[serde(default)]
    pub retrieval: Retrieval,
}

/// Dense and BM25 fused, or one of them alone.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Retrieval {
    #[default]
    Hybrid,
    Dense,
    Bm25,
}

/// A search that passed the checks.
#[derive(Debug, Clone)]
pub struct SearchQuery {
    pub text: String,
    pub top_k: usize,
    pub filter: Filter,
    pub retrieval: Retrieval,
}

impl SearchQuery {
    pub fn parse(
        text: &str,
        top_k: Option<usize>,
        filter: Option<Filter>,
        default_top_k: usize,
    ) -> Result<Self, RetrieveError> {
        let text = text.trim();
        if text.is_empty() {
            return Err(RetrieveError::Invalid("the query is empty".into()));
        }
        if text.chars().count() > MAX_QUERY_CHARS {
            return Err(RetrieveError::Invalid(format!(
                "the query is longer than {MAX_QUERY_CHARS} characters"
            )));
        }
        let top_k = top_k.unwrap_or(default_top_k);
        if !(1..=MAX_TOP_K).contains(&top_k) {
            return Err(RetrieveError::Invalid(format!(
                "top_k must be between 1 and {MAX_TOP_K}, got {top_k}"
            )));
        }
        let filter = filter.unwrap_or_default();
        filter.validate().map_err(RetrieveError::Invalid)?;
        Ok(Self {
            text: text.to_string(),
            top_k,
            filter,
            retrieval: Retrieval::Hybrid,
        })
    }
}

/// Ranked chunks and what it took to find them.
#[derive(Debug, Clone)]
pub struct Retrieved {
    pub hits: Vec<SearchHit>,
    pub embed_ms: u64,
    pub search_ms: u64,
    pub warnings: Vec<String>,
}

/// Built once by the app from its parts.
pub struct Retriever {
    pub catalog: Arc<dyn Catalog>,
    pub index: Arc<dyn VectorIndex>,
    /// `None`: BM25 alone.
    pub embedder: Option<Arc<dyn Embedder>>,
    pub bm25: Arc<Bm25Encoder>,
    /// Chunks a request gets unless it says (`TOP_K`).
    pub default_top_k: usize,
    pub hybrid: HybridSettings,
}

impl Retriever {
    pub fn default_top_k(&self) -> usize {
        self.default_top_k
    }

    /// The best chunks for the request among the documents `readers` may see.
    pub async fn search(
        &self,
        collection: &CollectionName,
        request: SearchRequest,
        readers: &Readers,
    ) -> Result<Retrieved, RetrieveError> {
        let mut query = SearchQuery::parse(&request.query, request.top_k, request.filter, self.default_top_k)?;
        query.retrieval = request.retrieval;
        self.retrieve(collection, &query, readers).await
    }

    /// Ranked chunks of the documents `readers` may see: the permission is a
    /// condition of the index's filter, so `top_k` permitted chunks come back
    /// when there are that many.
    pub async fn retrieve(
        &self,
        collection: &CollectionName,
        query: &SearchQuery,
        readers: &Readers,
    ) -> Result<Retrieved, RetrieveError> {
        let collection = find_collection(self.catalog.as_ref(), collection).await?;
        let mut warnings = Vec::new();

        let started = Instant::now();
        let dense = match self.dense_embedder(&collection)? {
            _ if query.retrieval == Retrieval::Bm25 => None,
            Some(embedder) => Some(embedder.embed_query(&query.text).await?),
            None if query.retrieval == Retrieval::Dense => {
                return Err(RetrieveError::Invalid(
                    "dense retrieval needs dense vectors, and this collection or server has none".into(),
                ));
            }
            None if collection.embedding_model.is_none() => {
                warnings.push("retrieval used BM25 alone: this collection has no dense vectors".to_string());
                None
            }
            None => {
                warnings.push("retrieval used BM25 alone: no embedding model is loaded".to_string());
                None
            }
        };
        let embed_ms = started.elapsed().as_millis() as u64;

        let started = Instant::now();
        let prefetch = (query.top_k * PREFETCH_FACTOR).max(self.hybrid.prefetch);
        let found = self
            .index
            .search(
                &collection.name,
                HybridQuery {
                    dense,
                    bm25: match query.retrieval {
                        Retrieval::Dense => Default::default(),
                        Retrieval::Hybrid | Retrieval::Bm25 => self.bm25.query(&query.text),
                    },
                    filter: query.filter.clone(),
                    readers: readers.clone(),
                    limit: query.top_k,
                    prefetch,
                    fusion: self.hybrid.fusion,
                    min_dense_score: MIN_DENSE_SCORE,
                },
            )
            .await;
        let found = match found {
            Ok(found) => found,
            // Nothing was ever indexed in this collection.
            Err(IndexError::MissingCollection(_)) => Vec::new(),
            Err(e) => return Err(e.into()),
        };
        let search_ms = started.elapsed().as_millis() as u64;

        let hits = found
            .into_iter()
            .map(|point| SearchHit {
                chunk_id: point.id,
                document_id: point.payload.document_id,
                filename: point.payload.filename,
                page_start: point.payload.page_start,
                page_end: point.payload.page_end,
                text: point.payload.text,
                score: point.score,
                page_breaks: point.payload.page_breaks,
                dense_similarity: point.dense_similarity,
                layout: point.payload.layout,
            })
            .collect();
        Ok(Retrieved {
            hits,
            embed_ms,
            search_ms,
            warnings,
        })
    }

    /// The embedder for this collection's vectors, if it has any and one is loaded
    /// (without, BM25 alone still works). A collection filled by another model is
    /// refused rather than searched with vectors of the wrong space.
    fn dense_embedder(&self, collection: &Collection) -> Result<Option<&Arc<dyn Embedder>>, RetrieveError> {
        if let Some(mismatch) = collection.model_mismatch(self.embedder.as_ref().map(|e| e.model())) {
            return Err(mismatch.into());
        }
        Ok(match collection.embedding_model {
            Some(_) => self.embedder.as_ref(),
            None => None,
        })
    }
}
