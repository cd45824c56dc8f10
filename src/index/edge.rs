//! The embedded index: Qdrant Edge shards under `<data dir>/index`.
//!
//! A collection's generation 0 lives in `index/<collection>`, generation n > 0 in
//! `index/<collection>.g<n>`; `index/<collection>.live` names the live one (no
//! file: 0). A re-index fills the next generation and swaps it in by rewriting
//! that file atomically — the embedded counterpart of a Qdrant alias.
//!
//! Edge 0.7 does not replay its WAL on load, so every write is flushed to the
//! segments before it returns. Its `flush` panics if another writer holds the
//! WAL, so writes to a shard are serialised here.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard};

use async_trait::async_trait;
use qdrant_edge::external::ordered_float::OrderedFloat;
use qdrant_edge::{
    AnyVariants, Condition, CountRequest, CreateIndex, DeletePayloadOp, Distance, EdgeConfigBuilder,
    EdgeShard, EdgeSparseVectorParamsBuilder, EdgeVectorParamsBuilder, FieldCondition,
    FieldIndexOperations, Filter as QdrantFilter, Fusion, JsonPath, Match, MatchAny, MatchValue,
    Modifier, NamedQuery, PayloadFieldSchema, PayloadOps, PayloadSchemaType, PointId,
    PointInsertOperations, PointOperations, PointStruct, Prefetch, QueryEnum, QueryRequest,
    ScoringQuery, UpdateOperation, ValueVariants, Vector, VectorInternal, VectorStructInternal,
    Vectors, WithPayloadInterface, WithVector,
};

use super::{
    BM25_VECTOR, ChunkPayload, ChunkPoint, DENSE_VECTOR, DOCUMENT_ID_FIELD, HybridQuery, IndexError,
    IndexLayout, PENDING_FIELD, Rebuild, ScoredChunk, VectorIndex,
};
use crate::domain::{ChunkId, CollectionName, DocumentId, Filter, MetadataValue};

pub struct EdgeIndex {
    root: PathBuf,
    /// The live shard of each collection opened so far.
    live: RwLock<HashMap<String, Arc<ShardSlot>>>,
    /// Rebuilds in progress, by collection.
    rebuilds: RwLock<HashMap<String, Arc<ShardSlot>>>,
}

/// A shard, its generation, and the lock that lets one writer at a time flush
/// it. `None` once the shard is closed (dropped or swapped out).
struct ShardSlot {
    generation: u32,
    shard: RwLock<Option<EdgeShard>>,
    writer: Mutex<()>,
}

impl ShardSlot {
    fn new(generation: u32, shard: EdgeShard) -> Arc<Self> {
        Arc::new(Self {
            generation,
            shard: RwLock::new(Some(shard)),
            writer: Mutex::new(()),
        })
    }

    /// Waits for readers and the writer, then closes (flushes) the shard.
    fn close(&self) {
        let _writer = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        let shard = self.shard.write().unwrap_or_else(|p| p.into_inner()).take();
        drop(shard);
    }

    /// Applies operations and flushes, as the one writer.
    fn write(&self, operations: Vec<UpdateOperation>, collection: &str) -> Result<(), IndexError> {
        let _writer = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        let guard = read(&self.shard);
        let shard = guard
            .as_ref()
            .ok_or_else(|| IndexError::MissingCollection(collection.to_string()))?;
        for operation in operations {
            shard.update(operation).map_err(op_error)?;
        }
        shard.flush();
        Ok(())
    }
}

fn op_error(e: impl std::fmt::Display) -> IndexError {
    IndexError::Operation(e.to_string())
}

fn read<T>(lock: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    // A panic while holding the lock leaves the shard as Qdrant left it; go on.
    lock.read().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn task_failed(e: tokio::task::JoinError) -> IndexError {
    IndexError::Operation(format!("index task failed: {e}"))
}

impl EdgeIndex {
    pub fn open(root: impl Into<PathBuf>) -> Result<Self, IndexError> {
        let root = root.into();
        std::fs::create_dir_all(&root)
            .map_err(|e| IndexError::Unavailable(format!("{}: {e}", root.display())))?;
        Ok(Self {
            root,
            live: RwLock::new(HashMap::new()),
            rebuilds: RwLock::new(HashMap::new()),
        })
    }

    fn shard_dir(&self, collection: &CollectionName, generation: u32) -> PathBuf {
        match generation {
            0 => self.root.join(collection.as_str()),
            n => self.root.join(format!("{collection}.g{n}")),
        }
    }

    fn live_file(&self, collection: &CollectionName) -> PathBuf {
        self.root.join(format!("{collection}.live"))
    }

    fn live_generation(&self, collection: &CollectionName) -> Result<u32, IndexError> {
        match std::fs::read_to_string(self.live_file(collection)) {
            Ok(text) => text
                .trim()
                .parse()
                .map_err(|_| IndexError::Operation(format!("{collection}.live holds {text:?}"))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(0),
            Err(e) => Err(IndexError::Unavailable(e.to_string())),
        }
    }

    /// Points the collection at `generation`: a new file renamed over the old one,
    /// so that a crash leaves either pointer, never half of one.
    fn set_live_generation(&self, collection: &CollectionName, generation: u32) -> Result<(), IndexError> {
        let path = self.live_file(collection);
        let staged = self.root.join(format!("{collection}.live.new"));
        let write = || -> std::io::Result<()> {
            let mut file = std::fs::File::create(&staged)?;
            file.write_all(generation.to_string().as_bytes())?;
            file.sync_all()?;
            std::fs::rename(&staged, &path)?;
            std::fs::File::open(&self.root)?.sync_all()
        };
        write().map_err(|e| IndexError::Unavailable(format!("{}: {e}", path.display())))
    }

    /// The live shard of a collection, loading it from disk on first use.
    fn slot(&self, collection: &CollectionName) -> Result<Arc<ShardSlot>, IndexError> {
        if let Some(slot) = read(&self.live).get(collection.as_str()) {
            return Ok(Arc::clone(slot));
        }
        let mut live = self.live.write().unwrap_or_else(|p| p.into_inner());
        if let Some(slot) = live.get(collection.as_str()) {
            return Ok(Arc::clone(slot));
        }
        let generation = self.live_generation(collection)?;
        let dir = self.shard_dir(collection, generation);
        if !dir.join("edge_config.json").is_file() {
            return Err(IndexError::MissingCollection(collection.to_string()));
        }
        let slot = ShardSlot::new(generation, EdgeShard::load(&dir, None).map_err(op_error)?);
        live.insert(collection.to_string(), Arc::clone(&slot));
        Ok(slot)
    }

    fn rebuild_slot(&self, rebuild: &Rebuild) -> Result<Arc<ShardSlot>, IndexError> {
        read(&self.rebuilds)
            .get(rebuild.collection.as_str())
            .filter(|slot| slot.generation == rebuild.generation)
            .cloned()
            .ok_or_else(|| IndexError::Operation(format!("no rebuild {} of {}", rebuild.generation, rebuild.collection)))
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
        // Deletes and document filters go through the document id; every search
        // filters out pending points.
        for (field, schema) in [
            (DOCUMENT_ID_FIELD, PayloadSchemaType::Keyword),
            (PENDING_FIELD, PayloadSchemaType::Bool),
        ] {
            let index = CreateIndex {
                field_name: json_path(field)?,
                field_schema: Some(PayloadFieldSchema::FieldType(schema)),
            };
            shard
                .update(UpdateOperation::FieldIndexOperation(FieldIndexOperations::CreateIndex(index)))
                .map_err(op_error)?;
        }
        shard.flush();
        Ok(shard)
    }

    /// Runs a read on the live shard on a blocking thread.
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
        .map_err(task_failed)?
    }

    /// Writes to the live shard, one writer per shard at a time.
    async fn write(&self, collection: &CollectionName, operations: Vec<UpdateOperation>) -> Result<(), IndexError> {
        let slot = self.slot(collection)?;
        let name = collection.to_string();
        tokio::task::spawn_blocking(move || slot.write(operations, &name))
            .await
            .map_err(task_failed)?
    }
}

fn json_path(path: &str) -> Result<JsonPath, IndexError> {
    path.parse()
        .map_err(|_| IndexError::Operation(format!("invalid payload path {path:?}")))
}

fn document_condition(ids: impl IntoIterator<Item = DocumentId>) -> Result<Condition, IndexError> {
    let any = AnyVariants::Strings(ids.into_iter().map(|id| id.to_string()).collect());
    Ok(Condition::Field(FieldCondition::new_match(
        json_path(DOCUMENT_ID_FIELD)?,
        Match::Any(MatchAny { any }),
    )))
}

/// Our filter as Qdrant conditions, all of which must hold, and never a pending point.
fn to_qdrant_filter(filter: &Filter) -> Result<QdrantFilter, IndexError> {
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
    let pending = Condition::Field(FieldCondition::new_match(
        json_path(PENDING_FIELD)?,
        Match::Value(MatchValue {
            value: ValueVariants::Bool(true),
        }),
    ));
    Ok(QdrantFilter {
        must: (!must.is_empty()).then_some(must),
        must_not: Some(vec![pending]),
        ..QdrantFilter::new()
    })
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

fn upsert_operation(points: Vec<ChunkPoint>) -> Result<UpdateOperation, IndexError> {
    let points = points.into_iter().map(to_point).collect::<Result<Vec<_>, _>>()?;
    Ok(UpdateOperation::PointOperation(PointOperations::UpsertPoints(
        PointInsertOperations::PointsList(points.into_iter().map(Into::into).collect()),
    )))
}

fn delete_document_operation(document: DocumentId) -> Result<UpdateOperation, IndexError> {
    let filter = QdrantFilter::new_must(document_condition([document])?);
    Ok(UpdateOperation::PointOperation(PointOperations::DeletePointsByFilter(filter)))
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
            Some(VectorInternal::Dense(v)) => Some(super::cosine(query, v)),
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
        let generation = self.live_generation(collection)?;
        let dir = self.shard_dir(collection, generation);
        let shard = tokio::task::spawn_blocking(move || Self::create_shard(&dir, layout))
            .await
            .map_err(task_failed)??;
        let mut live = self.live.write().unwrap_or_else(|p| p.into_inner());
        live.entry(collection.to_string())
            .or_insert_with(|| ShardSlot::new(generation, shard));
        Ok(())
    }

    async fn drop_collection(&self, collection: &CollectionName) -> Result<(), IndexError> {
        let live = self.live.write().unwrap_or_else(|p| p.into_inner()).remove(collection.as_str());
        let rebuild = self.rebuilds.write().unwrap_or_else(|p| p.into_inner()).remove(collection.as_str());
        let root = self.root.clone();
        let name = collection.to_string();
        tokio::task::spawn_blocking(move || {
            for slot in [live, rebuild].into_iter().flatten() {
                slot.close();
            }
            // Every generation, and the pointer last (a crash half way leaves a
            // collection that is dropped again).
            let entries = std::fs::read_dir(&root).map_err(op_error)?;
            let generation = format!("{name}.g");
            for entry in entries.flatten() {
                let file_name = entry.file_name().to_string_lossy().to_string();
                if file_name == name || file_name.strip_prefix(&generation).is_some_and(|n| n.parse::<u32>().is_ok()) {
                    remove_dir(&entry.path())?;
                }
            }
            for pointer in [format!("{name}.live"), format!("{name}.live.new")] {
                match std::fs::remove_file(root.join(pointer)) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(op_error(e)),
                }
            }
            Ok(())
        })
        .await
        .map_err(task_failed)?
    }

    async fn upsert(&self, collection: &CollectionName, points: Vec<ChunkPoint>) -> Result<(), IndexError> {
        if points.is_empty() {
            return Ok(());
        }
        self.write(collection, vec![upsert_operation(points)?]).await
    }

    async fn publish_document(&self, collection: &CollectionName, document: DocumentId) -> Result<(), IndexError> {
        let operation = UpdateOperation::PayloadOperation(PayloadOps::DeletePayload(DeletePayloadOp {
            keys: vec![json_path(PENDING_FIELD)?],
            points: None,
            filter: Some(QdrantFilter::new_must(document_condition([document])?)),
        }));
        self.write(collection, vec![operation]).await
    }

    async fn delete_document(&self, collection: &CollectionName, document: DocumentId) -> Result<(), IndexError> {
        let rebuild = read(&self.rebuilds).get(collection.as_str()).cloned();
        if let Some(slot) = rebuild {
            let operation = delete_document_operation(document)?;
            let name = collection.to_string();
            tokio::task::spawn_blocking(move || slot.write(vec![operation], &name))
                .await
                .map_err(task_failed)??;
        }
        match self.write(collection, vec![delete_document_operation(document)?]).await {
            Err(IndexError::MissingCollection(_)) => Ok(()),
            other => other,
        }
    }

    async fn search(&self, collection: &CollectionName, query: HybridQuery) -> Result<Vec<ScoredChunk>, IndexError> {
        let filter = Some(to_qdrant_filter(&query.filter)?);
        let query_vector = query.dense.clone();
        let weights = query.fusion.weights(query.dense.is_some(), !query.bm25.is_empty());
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
            query: Some(ScoringQuery::Fusion(Fusion::Rrf {
                k: query.fusion.rrf_k as usize,
                weights: weights.map(|w| w.into_iter().map(OrderedFloat).collect()),
            })),
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

    async fn count_points(&self, collection: &CollectionName) -> Result<usize, IndexError> {
        self.with_shard(collection, |shard| {
            shard
                .count(CountRequest { filter: None, exact: true })
                .map_err(op_error)
        })
        .await
    }

    async fn begin_rebuild(&self, collection: &CollectionName, layout: IndexLayout) -> Result<Rebuild, IndexError> {
        let generation = self.live_generation(collection)? + 1;
        let abandoned = self.rebuilds.write().unwrap_or_else(|p| p.into_inner()).remove(collection.as_str());
        let dir = self.shard_dir(collection, generation);
        let shard = tokio::task::spawn_blocking(move || {
            if let Some(slot) = abandoned {
                slot.close();
            }
            remove_dir(&dir)?;
            Self::create_shard(&dir, layout)
        })
        .await
        .map_err(task_failed)??;
        self.rebuilds
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(collection.to_string(), ShardSlot::new(generation, shard));
        Ok(Rebuild {
            collection: collection.clone(),
            generation,
            layout,
        })
    }

    async fn upsert_rebuild(&self, rebuild: &Rebuild, points: Vec<ChunkPoint>) -> Result<(), IndexError> {
        if points.is_empty() {
            return Ok(());
        }
        let slot = self.rebuild_slot(rebuild)?;
        let operation = upsert_operation(points)?;
        let name = rebuild.collection.to_string();
        tokio::task::spawn_blocking(move || slot.write(vec![operation], &name))
            .await
            .map_err(task_failed)?
    }

    async fn finish_rebuild(&self, rebuild: &Rebuild) -> Result<(), IndexError> {
        let slot = self.rebuild_slot(rebuild)?;
        self.set_live_generation(&rebuild.collection, rebuild.generation)?;
        // From here searches and writes go to the new generation.
        let old = {
            let mut live = self.live.write().unwrap_or_else(|p| p.into_inner());
            self.rebuilds
                .write()
                .unwrap_or_else(|p| p.into_inner())
                .remove(rebuild.collection.as_str());
            live.insert(rebuild.collection.to_string(), slot)
        };
        let old_generation = match &old {
            Some(old) => old.generation,
            None => rebuild.generation.saturating_sub(1),
        };
        let old_dir = self.shard_dir(&rebuild.collection, old_generation);
        tokio::task::spawn_blocking(move || {
            if let Some(old) = old {
                old.close();
            }
            remove_dir(&old_dir)
        })
        .await
        .map_err(task_failed)?
    }
}

fn remove_dir(dir: &Path) -> Result<(), IndexError> {
    match std::fs::remove_dir_all(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(op_error(format!("{}: {e}", dir.display()))),
    }
}
