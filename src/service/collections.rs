//! Collections: named sets of documents, each with its own index. `default`
//! always exists.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::auth::Scope;
use crate::catalog::{Catalog, CatalogError, NewCollection};
use crate::domain::TenantName;
use crate::domain::{Collection, CollectionName, EmbeddingModel, Job, JobId};
use crate::index::{IndexLayout, VectorIndex};
use crate::ingest::{FileStore, HoldTarget, InFlight, JobSignals};
use crate::store::{StoreError, errors_through_store, find_collection};

const MAX_DESCRIPTION_CHARS: usize = 1000;

#[derive(Debug, thiserror::Error)]
pub enum CollectionsError {
    #[error("a collection named {0:?} already exists")]
    Exists(String),
    #[error("the default collection always exists and cannot be deleted")]
    DefaultIsPermanent,
    #[error("{0}")]
    Invalid(String),
    #[error("re-indexing needs an embedding model, and the server runs without one (BM25 alone)")]
    ReindexNeedsModel,
    #[error("{0}")]
    Forbidden(String),
    #[error("the tenant has {limit} collections, as many as it may have (MAX_COLLECTIONS)")]
    TooMany { limit: u64 },
    #[error(transparent)]
    Store(#[from] StoreError),
}

errors_through_store!(CollectionsError);

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateCollection {
    #[schema(value_type = String, pattern = "^[a-z0-9_-]{1,64}$", example = "handbooks")]
    pub name: String,
    pub description: Option<String>,
}

/// Whether a collection's index can be used with the server's model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum IndexStatus {
    Ready,
    /// Its vectors come from another model than the server runs: search, query
    /// and upload answer 409 until it is re-indexed.
    NeedsReindex,
    /// A re-index is queued or running; the old index serves until it is done.
    Reindexing,
}

/// A collection as the API shows it: what is stored, and the state of its index.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CollectionView {
    #[serde(flatten)]
    pub collection: Collection,
    pub index_status: IndexStatus,
    /// The re-index job, while one is queued or running.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reindex_job_id: Option<JobId>,
}

/// Built once by the app from its parts.
pub struct Collections {
    pub catalog: Arc<dyn Catalog>,
    pub index: Arc<dyn VectorIndex>,
    pub files: FileStore,
    pub signals: JobSignals,
    pub in_flight: Arc<InFlight>,
    /// The model new collections are filled with; `None` means BM25 alone.
    pub embedding_model: Option<EmbeddingModel>,
    /// `MAX_COLLECTIONS`: how many collections a tenant may have (each is an
    /// index of its own, with open files).
    pub max_collections: u64,
    /// Counting and creating are one step, so that two creates at once cannot
    /// both take the last place.
    pub creating: tokio::sync::Mutex<()>,
}

impl Collections {
    async fn view(&self, collection: Collection) -> Result<CollectionView, CollectionsError> {
        let reindex = self.catalog.active_reindex(&collection.name).await?;
        let index_status = match (&reindex, collection.model_mismatch(self.embedding_model.as_ref())) {
            (Some(_), _) => IndexStatus::Reindexing,
            (None, Some(_)) => IndexStatus::NeedsReindex,
            (None, None) => IndexStatus::Ready,
        };
        Ok(CollectionView {
            collection,
            index_status,
            reindex_job_id: reindex.map(|job| job.id),
        })
    }

    /// Queues a re-index with the server's model (or returns the one already
    /// queued): every chunk is embedded again from the catalog's text into a fresh
    /// index, swapped in when done.
    pub async fn reindex(&self, name: &CollectionName) -> Result<Job, CollectionsError> {
        self.get_stored(name).await?;
        if self.embedding_model.is_none() {
            return Err(CollectionsError::ReindexNeedsModel);
        }
        let job = match self.catalog.enqueue_reindex(name).await {
            Ok(job) => job,
            // Deleted since we looked.
            Err(CatalogError::MissingParent(_)) => return Err(StoreError::CollectionNotFound(name.to_string()).into()),
            Err(e) => return Err(e.into()),
        };
        self.signals.work_available();
        tracing::info!(collection = %name, job = %job.id, "re-index queued");
        Ok(job)
    }

    /// Creates the tenant's `default` collection if it is not there (on first
    /// start, and for each new tenant).
    pub async fn ensure_default(&self, tenant: &TenantName) -> Result<Collection, CollectionsError> {
        let name = CollectionName::default_in(tenant);
        match self.catalog.get_collection(&name).await? {
            Some(existing) => Ok(existing),
            None => self.create_named(name, Some("Created at first start".into())).await,
        }
    }

    /// A new collection; a key limited to some collections makes none.
    pub async fn create(&self, scope: &Scope, request: CreateCollection) -> Result<CollectionView, CollectionsError> {
        if scope.allowed_collections().is_some() {
            return Err(CollectionsError::Forbidden(
                "a key limited to some collections cannot create collections".into(),
            ));
        }
        let name = scope
            .collection(&request.name)
            .map_err(|e| CollectionsError::Invalid(e.to_string()))?;
        if let Some(description) = &request.description
            && description.chars().count() > MAX_DESCRIPTION_CHARS
        {
            return Err(CollectionsError::Invalid(format!(
                "description is longer than {MAX_DESCRIPTION_CHARS} characters"
            )));
        }
        let creating = self.creating.lock().await;
        let existing = self.catalog.list_collections(&scope.tenant).await?.len() as u64;
        if existing >= self.max_collections {
            return Err(CollectionsError::TooMany {
                limit: self.max_collections,
            });
        }
        let collection = self.create_named(name, request.description).await?;
        drop(creating);
        self.view(collection).await
    }

    async fn create_named(
        &self,
        name: CollectionName,
        description: Option<String>,
    ) -> Result<Collection, CollectionsError> {
        let new = NewCollection {
            name: name.clone(),
            description,
            embedding_model: self.embedding_model.clone(),
        };
        let collection = match self.catalog.create_collection(&new).await {
            Ok(collection) => collection,
            Err(CatalogError::AlreadyExists) => return Err(CollectionsError::Exists(name.to_string())),
            Err(e) => return Err(e.into()),
        };
        let layout = IndexLayout {
            dense_dimension: collection.embedding_model.as_ref().map(|m| m.dimension),
        };
        if let Err(e) = self.index.ensure_collection(&name, layout).await {
            // Without its index the collection is of no use: take the row back.
            let _ = self.catalog.delete_collection(&name).await;
            return Err(e.into());
        }
        tracing::info!(collection = %name, "collection created");
        Ok(collection)
    }

    /// The collections the scope may use.
    pub async fn list(&self, scope: &Scope) -> Result<Vec<CollectionView>, CollectionsError> {
        let mut views = Vec::new();
        let collections = self.catalog.list_collections(&scope.tenant).await?;
        for collection in collections.into_iter().filter(|c| scope.allows(&c.name)) {
            views.push(self.view(collection).await?);
        }
        Ok(views)
    }

    pub async fn get(&self, name: &CollectionName) -> Result<CollectionView, CollectionsError> {
        let collection = self.get_stored(name).await?;
        self.view(collection).await
    }

    async fn get_stored(&self, name: &CollectionName) -> Result<Collection, CollectionsError> {
        Ok(find_collection(self.catalog.as_ref(), name).await?)
    }

    /// Stops the collection's jobs (re-index and ingest) and waits until they let
    /// go; then deletes the vectors, then the rows, then the files: a failure half
    /// way leaves rows that can be deleted again, never vectors without rows.
    pub async fn delete(&self, name: &CollectionName) -> Result<(), CollectionsError> {
        if name.is_default() {
            return Err(CollectionsError::DefaultIsPermanent);
        }
        self.get_stored(name).await?;
        let _hold = self.in_flight.hold(HoldTarget::Collection(name.clone())).await;
        // Another delete may have finished while we waited.
        self.get_stored(name).await?;
        let documents = self.catalog.document_ids(name).await?;
        self.index.drop_collection(name).await?;
        self.catalog.delete_collection(name).await?;
        for document in documents {
            self.files.remove(document).await;
        }
        tracing::info!(collection = %name, "collection deleted");
        Ok(())
    }
}
