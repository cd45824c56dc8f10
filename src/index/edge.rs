//! The embedded index: one Qdrant Edge shard per collection under
//! `<data dir>/index/<collection>`.
//!
//! Edge 0.7 does not replay its WAL on load, so every write is flushed to the
//! segments before it returns. Its `flush` panics if another writer holds the
//! WAL, so writes to a shard are serialised here.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard};

use async_trait::async_trait;
use qdrant_edge::external::ordered_float::OrderedFloat;
use qdrant_edge::{
    AnyVariants, Condition, CountRequest, CreateIndex, Distance, EdgeConfigBuilder, EdgeShard,
    EdgeSparseVectorParamsBuilder, EdgeVectorParamsBuilder, FieldCondition, FieldIndexOperations,
    Filter as QdrantFilter, Fusion, JsonPath, Match, MatchAny, MatchValue, Modifier, NamedQuery,
    PayloadFieldSchema, PayloadSchemaType, PointId, PointInsertOperations, PointOperations,
    PointStruct, Prefetch, QueryEnum, QueryRequest, ScoringQuery, UpdateOperation, ValueVariants,
    Vector, VectorInternal, VectorStructInternal, Vectors, WithPayloadInterface, WithVector,
};

use super::{
    BM25_VECTOR, ChunkPayload, ChunkPoint, DENSE_VECTOR, HybridQuery, IndexError, IndexLayout,
    ScoredChunk, VectorIndex,
};
use crate::domain::{ChunkId, CollectionName, DocumentId, Filter, MetadataValue};

/// Reciprocal rank fusion constant: score = Σ 1 / (k + rank).
const RRF_K: usize = 60;

pub struct EdgeIndex {
    root: PathBuf,
    shards: RwLock<HashMap<String, Arc<ShardSlot>>>,
}

/// A shard, and the lock that lets one writer at a time flush it. `None` once the
/// collection is dropped.
struct ShardSlot {
    shard: RwLock<Option<EdgeShard>>,
    writer: Mutex<()>,
}

fn op_error(e: impl std::fmt::Display) -> IndexError {
    IndexError::Operation(e.to_string())
}

fn read<T>(lock: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    // A panic while holding the lock leaves the shard as Qdrant left it; go on.
    lock.read().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl EdgeIndex {
    pub fn open(root: impl Into<PathBuf>) -> Result<Self, IndexError> {
        let root = root.into();
        std::fs::create_dir_all(&root)
            .map_err(|e| IndexError::Unavailable(format!("{}: {e}", root.display())))?;
        Ok(Self {
            root,
            shards: RwLock::new(HashMap::new()),
        })
    }

    fn shard_dir(&self, collection: &CollectionName) -> PathBuf {
        self.root.join(collection.as_str())
    }

    /// The open shard of a collection, loading it from disk on first use.
    fn slot(&self, collection: &CollectionName) -> Result<Arc<ShardSlot>, IndexError> {
        if let Some(slot) = read(&self.shards).get(collection.as_str()) {
            return Ok(Arc::clone(slot));
        }
        let mut shards = self.shards.write().unwrap_or_else(|p| p.into_inner());
        if let Some(slot) = shards.get(collection.as_str()) {
            return Ok(Arc::clone(slot));
        }
        let dir = self.shard_dir(collection);
        if !dir.join("edge_config.json").is_file() {
            return Err(IndexError::MissingCollection(collection.to_string()));
        }
        let shard = EdgeShard::load(&dir, None).map_err(op_error)?;
        let slot = Arc::new(ShardSlot {
            shard: RwLock::new(Some(shard)),
            writer: Mutex::new(()),
        });
        shards.insert(collection.to_string(), Arc::clone(&slot));
        Ok(slot)
    }

    fn create_shard(dir: &Path, layout: IndexLayout) -> Result<EdgeShard, IndexError> {
        let mut config = EdgeConfigBuilder::new().sparse_vector(
            BM25_VECTOR,
            EdgeSparseVectorParamsBuilder::new().modifier(Modifier::Idf).build(),
        );
        if let Some(dimension) = layout.dense_dimension {
            config = config.vector(
                DENSE_VECTOR,
                EdgeVectorParamsBuilder::new(dimension, Distance::Cosine).build(),
            );
        }
        std::fs::create_dir_all(dir).map_err(op_error)?;
        let shard = EdgeShard::new(dir, config.build()).map_err(op_error)?;
        // Deletes and document filters go through this field.
        let index = CreateIndex {
            field_name: json_path("document_id")?,
            field_schema: Some(PayloadFieldSchema::FieldType(PayloadSchemaType::Keyword)),
        };
        shard
            .update(UpdateOperation::FieldIndexOperation(FieldIndexOperations::CreateIndex(index)))
            .map_err(op_error)?;
        shard.flush();
        Ok(shard)
    }

    /// Runs a read on the shard on a blocking thread.
    async fn with_shard<T, F>(&self, collection: &CollectionName, f: F) -> Result<T, IndexError>
    where
        T: Send + 'static,
        F: FnOnce(&EdgeShard) -> Result<T, IndexError> + Send + 'static,
    {
        let slot = self.slot(collection)?;
        let name = collection.to_string();
        tokio::task::spawn_blocking(move || {
            let guard = read(&slot.shard);
            let shard = guard.as_ref().ok_or(IndexError::MissingCollection(name))?;
            f(shard)
        })
        .await
        .map_err(|e| IndexError::Operation(format!("index task failed: {e}")))?
    }

    /// Runs a write and flushes it, one writer per shard at a time.
    async fn write(&self, collection: &CollectionName, operations: Vec<UpdateOperation>) -> Result<(), IndexError> {
        let slot = self.slot(collection)?;
        let name = collection.to_string();
        tokio::task::spawn_blocking(move || {
            let _writer = slot.writer.lock().unwrap_or_else(|p| p.into_inner());
            let guard = read(&slot.shard);
            let shard = guard.as_ref().ok_or(IndexError::MissingCollection(name))?;
            for operation in operations {
                shard.update(operation).map_err(op_error)?;
            }
            shard.flush();
            Ok(())
        })
        .await
        .map_err(|e| IndexError::Operation(format!("index task failed: {e}")))?
    }
}

fn json_path(path: &str) -> Result<JsonPath, IndexError> {
    path.parse()
        .map_err(|_| IndexError::Operation(format!("invalid payload path {path:?}")))
}

fn document_condition(ids: impl IntoIterator<Item = DocumentId>) -> Result<Condition, IndexError> {
    let any = AnyVariants::Strings(ids.into_iter().map(|id| id.to_string()).collect());
    Ok(Condition::Field(FieldCondition::new_match(
        json_path("document_id")?,
        Match::Any(MatchAny { any }),
    )))
}

/// Our filter as Qdrant conditions, all of which must hold.
fn to_qdrant_filter(filter: &Filter) -> Result<Option<QdrantFilter>, IndexError> {
    let mut must = Vec::new();
    if let Some(ids) = &filter.document_ids {
        must.push(document_condition(ids.iter().copied())?);
    }
    for (key, value) in filter.metadata.iter().flatten() {
        // Keys were checked to be plain identifiers, so the path is unambiguous.
        let value = match value {
            MetadataValue::Bool(b) => ValueVariants::Bool(*b),
            MetadataValue::Integer(i) => ValueVariants::Integer(*i),
            MetadataValue::String(s) => ValueVariants::String(s.clone()),
        };
        must.push(Condition::Field(FieldCondition::new_match(
            json_path(&format!("metadata.{key}"))?,
            Match::Value(MatchValue { value }),
        )));
    }
    Ok((!must.is_empty()).then(|| QdrantFilter {
        must: Some(must),
        ..QdrantFilter::new()
    }))
}

fn to_point(point: ChunkPoint) -> Result<PointStruct, IndexError> {
    let mut vectors = vec![(
        BM25_VECTOR.to_string(),
        Vector::new_sparse(point.bm25.indices, point.bm25.values).map_err(op_error)?,
    )];
    if let Some(dense) = point.dense {
        vectors.push((DENSE_VECTOR.to_string(), Vector::new_dense(dense)));
    }
    let payload = serde_json::to_value(&point.payload).map_err(op_error)?;
    if !payload.is_object() {
        return Err(IndexError::Operation("chunk payload is not a JSON object".into()));
    }
    Ok(PointStruct::new(PointId::Uuid(point.id.0), Vectors::new_named(vectors), payload))
}

fn from_scored(point: qdrant_edge::ScoredPoint, query: Option<&[f32]>) -> Result<ScoredChunk, IndexError> {
    let PointId::Uuid(id) = point.id else {
        return Err(IndexError::Operation(format!("unexpected point id {:?}", point.id)));
    };
    let payload = point
        .payload
        .ok_or_else(|| IndexError::Operation(format!("point {id} has no payload")))?;
    let payload: ChunkPayload =
        serde_json::from_value(serde_json::Value::Object(payload.0)).map_err(op_error)?;
    let dense_similarity = match (query, &point.vector) {
        (Some(query), Some(VectorStructInternal::Named(vectors))) => match vectors.get(DENSE_VECTOR) {
            // Stored vectors are normalised for cosine, so the dot product is the cosine.
            Some(VectorInternal::Dense(v)) => Some(cosine(query, v)),
            _ => None,
        },
        _ => None,
    };
    Ok(ScoredChunk {
        id: ChunkId(id),
        score: point.score,
        dense_similarity,
        payload,
    })
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let norm = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>().sqrt();
    let denominator = norm(a) * norm(b);
    if denominator > 0.0 { dot / denominator } else { 0.0 }
}

#[async_trait]
impl VectorIndex for EdgeIndex {
    async fn ping(&self) -> Result<(), IndexError> {
        let root = self.root.clone();
        tokio::task::spawn_blocking(move || std::fs::metadata(&root).map(|_| ()))
            .await
            .map_err(|e| IndexError::Unavailable(e.to_string()))?
            .map_err(|e| IndexError::Unavailable(format!("{}: {e}", self.root.display())))
    }

    async fn ensure_collection(&self, collection: &CollectionName, layout: IndexLayout) -> Result<(), IndexError> {
        match self.slot(collection) {
            Ok(_) => return Ok(()),
            Err(IndexError::MissingCollection(_)) => {}
            Err(e) => return Err(e),
        }
        let dir = self.shard_dir(collection);
        let shard = tokio::task::spawn_blocking(move || Self::create_shard(&dir, layout))
            .await
            .map_err(op_error)??;
        let mut shards = self.shards.write().unwrap_or_else(|p| p.into_inner());
        shards.entry(collection.to_string()).or_insert_with(|| {
            Arc::new(ShardSlot {
                shard: RwLock::new(Some(shard)),
                writer: Mutex::new(()),
            })
        });
        Ok(())
    }

    async fn drop_collection(&self, collection: &CollectionName) -> Result<(), IndexError> {
        let slot = self
            .shards
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(collection.as_str());
        let dir = self.shard_dir(collection);
        tokio::task::spawn_blocking(move || {
            if let Some(slot) = slot {
                // Wait for readers and the writer, then close (flush) before the files go.
                let _writer = slot.writer.lock().unwrap_or_else(|p| p.into_inner());
                let shard = slot.shard.write().unwrap_or_else(|p| p.into_inner()).take();
                drop(shard);
            }
            match std::fs::remove_dir_all(&dir) {
                Ok(()) => Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                Err(e) => Err(op_error(format!("{}: {e}", dir.display()))),
            }
        })
        .await
        .map_err(op_error)?
    }

    async fn upsert(&self, collection: &CollectionName, points: Vec<ChunkPoint>) -> Result<(), IndexError> {
        if points.is_empty() {
            return Ok(());
        }
        let points = points.into_iter().map(to_point).collect::<Result<Vec<_>, _>>()?;
        let operation = UpdateOperation::PointOperation(PointOperations::UpsertPoints(
            PointInsertOperations::PointsList(points.into_iter().map(Into::into).collect()),
        ));
        self.write(collection, vec![operation]).await
    }

    async fn delete_document(&self, collection: &CollectionName, document: DocumentId) -> Result<(), IndexError> {
        let filter = QdrantFilter::new_must(document_condition([document])?);
        let operation = UpdateOperation::PointOperation(PointOperations::DeletePointsByFilter(filter));
        match self.write(collection, vec![operation]).await {
            Err(IndexError::MissingCollection(_)) => Ok(()),
            other => other,
        }
    }

    async fn search(&self, collection: &CollectionName, query: HybridQuery) -> Result<Vec<ScoredChunk>, IndexError> {
        let filter = to_qdrant_filter(&query.filter)?;
        let query_vector = query.dense.clone();
        let mut prefetches = Vec::new();
        if let Some(dense) = query.dense {
            prefetches.push(Prefetch {
                prefetches: Vec::new(),
                query: Some(ScoringQuery::Vector(QueryEnum::Nearest(NamedQuery {
                    query: VectorInternal::Dense(dense),
                    using: Some(DENSE_VECTOR.into()),
                }))),
                limit: query.prefetch,
                params: None,
                filter: filter.clone(),
                score_threshold: Some(OrderedFloat(query.min_dense_score)),
            });
        }
        if !query.bm25.is_empty() {
            let sparse = Vector::new_sparse(query.bm25.indices, query.bm25.values).map_err(op_error)?;
            prefetches.push(Prefetch {
                prefetches: Vec::new(),
                query: Some(ScoringQuery::Vector(QueryEnum::Nearest(NamedQuery {
                    query: sparse.0,
                    using: Some(BM25_VECTOR.into()),
                }))),
                limit: query.prefetch,
                params: None,
                filter: filter.clone(),
                score_threshold: None,
            });
        }
        if prefetches.is_empty() {
            return Ok(Vec::new());
        }
        let request = QueryRequest {
            prefetches,
            query: Some(ScoringQuery::Fusion(Fusion::Rrf { k: RRF_K, weights: None })),
            filter,
            score_threshold: None,
            limit: query.limit,
            offset: 0,
            params: None,
            // The dense vectors of the few returned points, to measure their similarity.
            with_vector: match query_vector {
                Some(_) => WithVector::Selector(vec![DENSE_VECTOR.into()]),
                None => WithVector::Bool(false),
            },
            with_payload: WithPayloadInterface::Bool(true),
        };
        self.with_shard(collection, move |shard| {
            shard
                .query(request)
                .map_err(op_error)?
                .into_iter()
                .map(|point| from_scored(point, query_vector.as_deref()))
                .collect()
        })
        .await
    }

    async fn count_document(&self, collection: &CollectionName, document: DocumentId) -> Result<usize, IndexError> {
        let filter = QdrantFilter::new_must(document_condition([document])?);
        self.with_shard(collection, move |shard| {
            shard
                .count(CountRequest {
                    filter: Some(filter),
                    exact: true,
                })
                .map_err(op_error)
        })
        .await
    }
}
