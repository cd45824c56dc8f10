//! The index on a Qdrant server or cluster, through `qdrant-client` (gRPC),
//! chosen by `QDRANT_URL`.
//!
//! Each docqa collection is a Qdrant alias `<prefix><collection>` pointing at a
//! physical collection `<prefix><collection>_G<generation>` (collection names
//! are lowercase, so the `G` cannot collide with another collection's name).
//! Searches and ingestion go through the alias; a re-index fills the next
//! generation and moves the alias to it, which Qdrant does atomically.
//!
//! The layout is the embedded index's: the same named vectors (`dense` cosine,
//! `bm25` sparse with the IDF modifier, fed by the same `EdgeBm25` tokens), the
//! same payload, the same RRF fusion with the same k.

use std::collections::HashSet;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use qdrant_client::qdrant::{
    Condition, CountPointsBuilder, CreateAliasBuilder, CreateCollectionBuilder, CreateFieldIndexCollectionBuilder,
    DeleteCollectionBuilder, DeletePayloadPointsBuilder, DeletePointsBuilder, Distance, FieldType, Filter, Modifier,
    PointStruct, PrefetchQueryBuilder, Query, QueryPointsBuilder, RrfBuilder, SetPayloadPointsBuilder,
    SparseVectorParamsBuilder, SparseVectorsConfigBuilder, UpsertPointsBuilder, Vector, VectorParamsBuilder,
    VectorsConfigBuilder, VectorsSelector, point_id::PointIdOptions, vector_output, vectors_output::VectorsOptions,
};
use qdrant_client::{Payload, Qdrant, QdrantError};
use secrecy::ExposeSecret;

use super::{
    ACCESS_FIELD, BM25_VECTOR, ChunkPayload, ChunkPoint, DENSE_VECTOR, DOCUMENT_ID_FIELD, HybridQuery, IndexError,
    IndexLayout, PENDING_FIELD, Rebuild, ScoredChunk, VectorIndex,
};
use crate::config::QdrantSettings;
use crate::domain::{CollectionName, DocumentId, Filter as DocFilter, Metadata, MetadataValue, Readers};

/// Points per upsert request: well under Qdrant's request size limit.
const POINTS_PER_REQUEST: usize = 256;

pub struct QdrantIndex {
    client: Qdrant,
    settings: QdrantSettings,
    names: Names,
    /// Payload indexes known to exist, by physical collection and field, so that
    /// each metadata key is indexed once.
    indexed: Mutex<HashSet<(String, String)>>,
}

fn error(e: QdrantError) -> IndexError {
    match &e {
        QdrantError::ResponseError { status } => match status.code() {
            tonic::Code::Unavailable
            | tonic::Code::DeadlineExceeded
            | tonic::Code::Cancelled
            | tonic::Code::Unknown
            | tonic::Code::ResourceExhausted => IndexError::Unavailable(format!("Qdrant: {}", status.message())),
            tonic::Code::NotFound => IndexError::MissingCollection(status.message().to_string()),
            _ => IndexError::Operation(format!("Qdrant: {} {}", status.code(), status.message())),
        },
        QdrantError::ResourceExhaustedError { .. } | QdrantError::Io(_) => {
            IndexError::Unavailable(format!("Qdrant: {e}"))
        }
        _ => IndexError::Operation(format!("Qdrant: {e}")),
    }
}

fn is_already_there(e: &QdrantError) -> bool {
    matches!(e, QdrantError::ResponseError { status }
        if status.code() == tonic::Code::AlreadyExists || status.message().contains("already exists"))
}

fn is_missing(e: &QdrantError) -> bool {
    matches!(e, QdrantError::ResponseError { status }
        if status.code() == tonic::Code::NotFound || status.message().contains("doesn't exist")
            || status.message().contains("not found"))
}

impl QdrantIndex {
    /// Connects and checks that Qdrant answers, waiting up to the startup timeout.
    pub async fn connect(settings: &QdrantSettings) -> Result<Self, IndexError> {
        let client = Qdrant::from_url(&settings.url)
            .api_key(settings.api_key.as_ref().map(|key| key.expose_secret().to_string()))
            .timeout(settings.timeout)
            .connect_timeout(Duration::from_secs(3).min(settings.timeout))
            // The server may be another minor version; the API used here is stable.
            .skip_compatibility_check()
            .build()
            .map_err(|e| IndexError::Unavailable(format!("QDRANT_URL {}: {e}", settings.url)))?;
        let index = Self {
            client,
            names: Names {
                prefix: settings.collection_prefix.clone(),
            },
            settings: settings.clone(),
            indexed: Mutex::new(HashSet::new()),
        };
        let what = format!("Qdrant at {}", settings.url);
        crate::backoff::retry(
            &what,
            settings.startup_timeout,
            |e: &IndexError| matches!(e, IndexError::Unavailable(_)),
            || index.ping(),
        )
        .await?;
        Ok(index)
    }

    fn alias(&self, collection: &CollectionName) -> String {
        self.names.alias(collection)
    }

    fn physical(&self, collection: &CollectionName, generation: u32) -> String {
        self.names.physical(collection, generation)
    }

    /// The generation the alias points at, if there is one.
    async fn live_generation(&self, collection: &CollectionName) -> Result<Option<u32>, IndexError> {
        let alias = self.alias(collection);
        let aliases = self.client.list_aliases().await.map_err(error)?;
        Ok(aliases
            .aliases
            .iter()
            .find(|a| a.alias_name == alias)
            .and_then(|a| self.names.generation_of(collection, &a.collection_name)))
    }

    /// Every generation that exists for the collection, live or not.
    async fn generations(&self, collection: &CollectionName) -> Result<Vec<u32>, IndexError> {
        let listed = self.client.list_collections().await.map_err(error)?;
        Ok(listed
            .collections
            .iter()
            .filter_map(|c| self.names.generation_of(collection, &c.name))
            .collect())
    }

    /// A physical collection with our layout and the payload indexes every
    /// search and delete uses; an existing one is kept as it is.
    async fn create_physical(&self, name: &str, layout: IndexLayout) -> Result<(), IndexError> {
        let mut sparse = SparseVectorsConfigBuilder::default();
        sparse.add_named_vector_params(
            BM25_VECTOR,
            SparseVectorParamsBuilder::default().modifier(Modifier::Idf),
        );
        let mut create = CreateCollectionBuilder::new(name)
            .sparse_vectors_config(sparse)
            .shard_number(self.settings.shards)
            .replication_factor(self.settings.replication_factor)
            .write_consistency_factor(self.settings.write_consistency);
        if let Some(dimension) = layout.dense_dimension {
            let mut dense = VectorsConfigBuilder::default();
            dense.add_named_vector_params(
                DENSE_VECTOR,
                VectorParamsBuilder::new(dimension as u64, Distance::Cosine),
            );
            create = create.vectors_config(dense);
        }
        match self.client.create_collection(create).await {
            Ok(_) => {}
            Err(e) if is_already_there(&e) => {}
            Err(e) => return Err(error(e)),
        }
        self.ensure_field_index(name, DOCUMENT_ID_FIELD, FieldType::Keyword)
            .await?;
        self.ensure_field_index(name, PENDING_FIELD, FieldType::Bool).await?;
        self.ensure_field_index(name, ACCESS_FIELD, FieldType::Keyword).await
    }

    async fn ensure_field_index(&self, physical: &str, field: &str, kind: FieldType) -> Result<(), IndexError> {
        let key = (physical.to_string(), field.to_string());
        if self.indexed.lock().unwrap_or_else(|p| p.into_inner()).contains(&key) {
            return Ok(());
        }
        let request = CreateFieldIndexCollectionBuilder::new(physical, field, kind).wait(true);
        match self.client.create_field_index(request).await {
            Ok(_) => {}
            Err(e) if is_already_there(&e) => {}
            Err(e) => return Err(error(e)),
        }
        self.indexed.lock().unwrap_or_else(|p| p.into_inner()).insert(key);
        Ok(())
    }

    /// Metadata filters run inside Qdrant: index each metadata key the first time
    /// it is written, by the type of its first value.
    async fn index_metadata(&self, physical: &str, points: &[ChunkPoint]) -> Result<(), IndexError> {
        let mut fields = Vec::new();
        for point in points {
            for (key, value) in &point.payload.metadata.0 {
                let kind = match value {
                    serde_json::Value::String(_) => FieldType::Keyword,
                    serde_json::Value::Bool(_) => FieldType::Bool,
                    serde_json::Value::Number(n) if n.is_i64() => FieldType::Integer,
                    _ => continue,
                };
                let field = format!("metadata.{key}");
                if !fields.iter().any(|(f, _)| f == &field) {
                    fields.push((field, kind));
                }
            }
        }
        for (field, kind) in fields {
            self.ensure_field_index(physical, &field, kind).await?;
        }
        Ok(())
    }

    async fn write_points(&self, target: &str, physical: &str, points: Vec<ChunkPoint>) -> Result<(), IndexError> {
        self.index_metadata(physical, &points).await?;
        let points = points.into_iter().map(to_point).collect::<Result<Vec<_>, _>>()?;
        for batch in points.chunks(POINTS_PER_REQUEST) {
            self.client
                .upsert_points(UpsertPointsBuilder::new(target, batch.to_vec()).wait(true))
                .await
                .map_err(error)?;
        }
        Ok(())
    }

    async fn delete_physical(&self, name: &str) -> Result<(), IndexError> {
        match self.client.delete_collection(DeleteCollectionBuilder::new(name)).await {
            Ok(_) => {}
            Err(e) if is_missing(&e) => {}
            Err(e) => return Err(error(e)),
        }
        self.indexed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|(physical, _)| physical != name);
        Ok(())
    }

    /// The physical collection behind the alias, for operations that need it.
    async fn live_physical(&self, collection: &CollectionName) -> Result<String, IndexError> {
        match self.live_generation(collection).await? {
            Some(generation) => Ok(self.physical(collection, generation)),
            None => Err(IndexError::MissingCollection(collection.to_string())),
        }
    }
}

/// How docqa collections and their generations are named in Qdrant.
struct Names {
    prefix: String,
}

impl Names {
    fn alias(&self, collection: &CollectionName) -> String {
        format!("{}{collection}", self.prefix)
    }

    fn physical(&self, collection: &CollectionName, generation: u32) -> String {
        format!("{}{collection}_G{generation}", self.prefix)
    }

    /// The generation a physical collection holds, if it is one of `collection`'s.
    fn generation_of(&self, collection: &CollectionName, physical: &str) -> Option<u32> {
        physical
            .strip_prefix(&format!("{}_G", self.alias(collection)))
            .and_then(|n| n.parse().ok())
    }
}

fn document_condition(document: DocumentId) -> Condition {
    Condition::matches(DOCUMENT_ID_FIELD, document.to_string())
}

/// Our filter as Qdrant conditions, all of which must hold, never a pending
/// point, and only chunks the readers may see.
fn to_qdrant_filter(filter: &DocFilter, readers: &Readers) -> Filter {
    let mut must = Vec::new();
    if let Readers::Principals(principals) = readers {
        let mut either = vec![Condition::is_empty(ACCESS_FIELD)];
        if !principals.is_empty() {
            either.push(Condition::matches(ACCESS_FIELD, principals.clone()));
        }
        must.push(Condition::from(Filter::should(either)));
    }
    if let Some(ids) = &filter.document_ids {
        must.push(Condition::matches(
            DOCUMENT_ID_FIELD,
            ids.iter().map(ToString::to_string).collect::<Vec<String>>(),
        ));
    }
    for (key, value) in filter.metadata.iter().flatten() {
        let field = format!("metadata.{key}");
        must.push(match value {
            MetadataValue::Bool(b) => Condition::matches(field, *b),
            MetadataValue::Integer(i) => Condition::matches(field, *i),
            MetadataValue::String(s) => Condition::matches(field, s.clone()),
        });
    }
    Filter {
        must,
        must_not: vec![Condition::matches(PENDING_FIELD, true)],
        ..Filter::default()
    }
}

fn to_point(point: ChunkPoint) -> Result<PointStruct, IndexError> {
    let mut vectors = std::collections::HashMap::new();
    vectors.insert(
        BM25_VECTOR.to_string(),
        Vector::new_sparse(point.bm25.indices, point.bm25.values),
    );
    if let Some(dense) = point.dense {
        vectors.insert(DENSE_VECTOR.to_string(), Vector::new_dense(dense));
    }
    let payload = serde_json::to_value(&point.payload).map_err(|e| IndexError::Operation(e.to_string()))?;
    let payload = Payload::try_from(payload).map_err(|e| IndexError::Operation(e.to_string()))?;
    Ok(PointStruct::new(point.id.0.to_string(), vectors, payload))
}

fn from_scored(point: qdrant_client::qdrant::ScoredPoint, query: Option<&[f32]>) -> Result<ScoredChunk, IndexError> {
    let id = match point.id.and_then(|id| id.point_id_options) {
        Some(PointIdOptions::Uuid(raw)) => raw
            .parse()
            .map_err(|e| IndexError::Operation(format!("point id {raw:?}: {e}")))?,
        other => return Err(IndexError::Operation(format!("unexpected point id {other:?}"))),
    };
    let payload = serde_json::Value::from(Payload::from(point.payload));
    let payload: ChunkPayload = serde_json::from_value(payload).map_err(|e| IndexError::Operation(e.to_string()))?;
    let dense = point
        .vectors
        .and_then(|v| v.vectors_options)
        .and_then(|options| match options {
            VectorsOptions::Vectors(named) => named.vectors.get(DENSE_VECTOR).cloned(),
            VectorsOptions::Vector(_) => None,
        });
    let stored = match dense.map(|v| v.into_vector()) {
        Some(vector_output::Vector::Dense(stored)) => Some(stored.data),
        _ => None,
    };
    Ok(ScoredChunk::found(id, point.score, payload, query, stored.as_deref()))
}

#[async_trait]
impl VectorIndex for QdrantIndex {
    async fn ping(&self) -> Result<(), IndexError> {
        self.client
            .health_check()
            .await
            .map(|_| ())
            .map_err(|e| match error(e) {
                // Whatever fails here, Qdrant is not usable now.
                IndexError::Operation(detail) => IndexError::Unavailable(detail),
                other => other,
            })
    }

    async fn ensure_collection(&self, collection: &CollectionName, layout: IndexLayout) -> Result<(), IndexError> {
        if self.live_generation(collection).await?.is_some() {
            return Ok(());
        }
        // A crash may have left the collection without its alias: keep what exists.
        let generation = self.generations(collection).await?.into_iter().max().unwrap_or(0);
        let physical = self.physical(collection, generation);
        self.create_physical(&physical, layout).await?;
        self.client
            .create_alias(CreateAliasBuilder::new(physical, self.alias(collection)))
            .await
            .map_err(error)?;
        Ok(())
    }

    async fn drop_collection(&self, collection: &CollectionName) -> Result<(), IndexError> {
        match self.client.delete_alias(self.alias(collection)).await {
            Ok(_) => {}
            Err(e) if is_missing(&e) => {}
            Err(e) => return Err(error(e)),
        }
        for generation in self.generations(collection).await? {
            self.delete_physical(&self.physical(collection, generation)).await?;
        }
        Ok(())
    }

    async fn upsert(&self, collection: &CollectionName, points: Vec<ChunkPoint>) -> Result<(), IndexError> {
        if points.is_empty() {
            return Ok(());
        }
        let physical = self.live_physical(collection).await?;
        self.write_points(&self.alias(collection), &physical, points).await
    }

    async fn publish_document(&self, collection: &CollectionName, document: DocumentId) -> Result<(), IndexError> {
        let request = DeletePayloadPointsBuilder::new(self.alias(collection), vec![PENDING_FIELD.to_string()])
            .points_selector(Filter::must([document_condition(document)]))
            .wait(true);
        self.client.delete_payload(request).await.map_err(error)?;
        Ok(())
    }

    async fn set_document_payload(
        &self,
        collection: &CollectionName,
        document: DocumentId,
        access: &[String],
        metadata: &Metadata,
    ) -> Result<(), IndexError> {
        let payload = serde_json::json!({ ACCESS_FIELD: access, "metadata": metadata });
        let payload = Payload::try_from(payload).map_err(|e| IndexError::Operation(e.to_string()))?;
        // The live generation and a rebuild in progress alike.
        for generation in self.generations(collection).await? {
            let request = SetPayloadPointsBuilder::new(self.physical(collection, generation), payload.clone())
                .points_selector(Filter::must([document_condition(document)]))
                .wait(true);
            match self.client.set_payload(request).await {
                Ok(_) => {}
                Err(e) if is_missing(&e) => {}
                Err(e) => return Err(error(e)),
            }
        }
        Ok(())
    }

    async fn delete_document(&self, collection: &CollectionName, document: DocumentId) -> Result<(), IndexError> {
        // The live generation and a rebuild in progress alike.
        for generation in self.generations(collection).await? {
            let request = DeletePointsBuilder::new(self.physical(collection, generation))
                .points(Filter::must([document_condition(document)]))
                .wait(true);
            match self.client.delete_points(request).await {
                Ok(_) => {}
                Err(e) if is_missing(&e) => {}
                Err(e) => return Err(error(e)),
            }
        }
        Ok(())
    }

    async fn search(&self, collection: &CollectionName, query: HybridQuery) -> Result<Vec<ScoredChunk>, IndexError> {
        let filter = to_qdrant_filter(&query.filter, &query.readers);
        let query_vector = query.dense.clone();
        let weights = query.fusion.weights(query.dense.is_some(), !query.bm25.is_empty());
        let mut request = QueryPointsBuilder::new(self.alias(collection));
        let mut sides = 0;
        if let Some(dense) = query.dense {
            request = request.add_prefetch(
                PrefetchQueryBuilder::default()
                    .query(Query::new_nearest(dense))
                    .using(DENSE_VECTOR)
                    .filter(filter.clone())
                    .score_threshold(query.min_dense_score)
                    .limit(query.prefetch as u64),
            );
            sides += 1;
        }
        if !query.bm25.is_empty() {
            let sparse: Vec<(u32, f32)> = query.bm25.indices.into_iter().zip(query.bm25.values).collect();
            request = request.add_prefetch(
                PrefetchQueryBuilder::default()
                    .query(Query::new_nearest(sparse.as_slice()))
                    .using(BM25_VECTOR)
                    .filter(filter.clone())
                    .limit(query.prefetch as u64),
            );
            sides += 1;
        }
        if sides == 0 {
            return Ok(Vec::new());
        }
        let mut request = request
            .query(Query::new_rrf(match weights {
                Some(weights) => RrfBuilder::with_k(query.fusion.rrf_k).weights(weights),
                None => RrfBuilder::with_k(query.fusion.rrf_k),
            }))
            .filter(filter)
            .limit(query.limit as u64)
            .with_payload(true);
        request = match query_vector {
            // The dense vectors of the few returned points, to measure their similarity.
            Some(_) => request.with_vectors(VectorsSelector {
                names: vec![DENSE_VECTOR.to_string()],
            }),
            None => request.with_vectors(false),
        };
        let response = self.client.query(request).await.map_err(error)?;
        response
            .result
            .into_iter()
            .map(|point| from_scored(point, query_vector.as_deref()))
            .collect()
    }

    async fn count_document(&self, collection: &CollectionName, document: DocumentId) -> Result<usize, IndexError> {
        let request = CountPointsBuilder::new(self.alias(collection))
            .filter(Filter::must([document_condition(document)]))
            .exact(true);
        let response = self.client.count(request).await.map_err(error)?;
        Ok(response.result.map_or(0, |r| r.count as usize))
    }

    async fn count_points(&self, collection: &CollectionName) -> Result<usize, IndexError> {
        let request = CountPointsBuilder::new(self.alias(collection)).exact(true);
        let response = self.client.count(request).await.map_err(error)?;
        Ok(response.result.map_or(0, |r| r.count as usize))
    }

    async fn begin_rebuild(&self, collection: &CollectionName, layout: IndexLayout) -> Result<Rebuild, IndexError> {
        let live = self.live_generation(collection).await?;
        let generation = live.map_or(0, |g| g + 1);
        let physical = self.physical(collection, generation);
        // What an interrupted rebuild left is started over.
        self.delete_physical(&physical).await?;
        self.create_physical(&physical, layout).await?;
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
        let physical = self.physical(&rebuild.collection, rebuild.generation);
        self.write_points(&physical, &physical, points).await
    }

    async fn finish_rebuild(&self, rebuild: &Rebuild) -> Result<(), IndexError> {
        let physical = self.physical(&rebuild.collection, rebuild.generation);
        // Creating an alias that exists moves it: one atomic switch for every reader.
        self.client
            .create_alias(CreateAliasBuilder::new(physical, self.alias(&rebuild.collection)))
            .await
            .map_err(error)?;
        for generation in self.generations(&rebuild.collection).await? {
            if generation != rebuild.generation {
                self.delete_physical(&self.physical(&rebuild.collection, generation))
                    .await?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generations_are_recognised_only_for_their_own_collection() {
        let names = Names {
            prefix: "docqa_".into(),
        };
        let name = |s: &str| CollectionName::parse(s).unwrap();
        assert_eq!(names.alias(&name("a")), "docqa_a");
        assert_eq!(names.physical(&name("a"), 7), "docqa_a_G7");
        assert_eq!(names.generation_of(&name("a"), &names.physical(&name("a"), 7)), Some(7));
        // Names are lowercase: collection "a_g1" is not a generation of "a".
        assert_eq!(names.generation_of(&name("a"), &names.physical(&name("a_g1"), 0)), None);
        assert_eq!(names.generation_of(&name("a"), "docqa_a"), None);
        assert_eq!(names.generation_of(&name("a"), "other_a_G1"), None);
    }
}
