//! Collections: named sets of documents, each with its own index. `default`
//! always exists.

use std::sync::Arc;

use serde::Deserialize;
use utoipa::ToSchema;

use crate::catalog::{Catalog, CatalogError, NewCollection};
use crate::domain::{Collection, CollectionName, EmbeddingModel};
use crate::error::AppError;
use crate::index::{IndexLayout, VectorIndex};
use crate::ingest::FileStore;

const MAX_DESCRIPTION_CHARS: usize = 1000;

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateCollection {
    #[schema(value_type = String, pattern = "^[a-z0-9_-]{1,64}$", example = "handbooks")]
    pub name: String,
    pub description: Option<String>,
}

pub struct Collections {
    catalog: Arc<dyn Catalog>,
    index: Arc<dyn VectorIndex>,
    files: FileStore,
    /// The model new collections are filled with; `None` means BM25 alone.
    embedding_model: Option<EmbeddingModel>,
}

impl Collections {
    pub fn new(
        catalog: Arc<dyn Catalog>,
        index: Arc<dyn VectorIndex>,
        files: FileStore,
        embedding_model: Option<EmbeddingModel>,
    ) -> Self {
        Self {
            catalog,
            index,
            files,
            embedding_model,
        }
    }

    /// Creates `default` on first start.
    pub async fn ensure_default(&self) -> Result<Collection, AppError> {
        let name = CollectionName::default_collection();
        match self.catalog.get_collection(&name).await? {
            Some(existing) => Ok(existing),
            None => self.create_named(name, Some("Created at first start".into())).await,
        }
    }

    pub async fn create(&self, request: CreateCollection) -> Result<Collection, AppError> {
        let name = CollectionName::parse(&request.name).map_err(|e| AppError::InvalidRequest(e.to_string()))?;
        if let Some(description) = &request.description {
            if description.chars().count() > MAX_DESCRIPTION_CHARS {
                return Err(AppError::InvalidRequest(format!(
                    "description is longer than {MAX_DESCRIPTION_CHARS} characters"
                )));
            }
        }
        self.create_named(name, request.description).await
    }

    async fn create_named(&self, name: CollectionName, description: Option<String>) -> Result<Collection, AppError> {
        let new = NewCollection {
            name: name.clone(),
            description,
            embedding_model: self.embedding_model.clone(),
        };
        let collection = match self.catalog.create_collection(&new).await {
            Ok(collection) => collection,
            Err(CatalogError::AlreadyExists) => return Err(AppError::CollectionExists(name.to_string())),
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

    pub async fn list(&self) -> Result<Vec<Collection>, AppError> {
        Ok(self.catalog.list_collections().await?)
    }

    pub async fn get(&self, name: &CollectionName) -> Result<Collection, AppError> {
        self.catalog
            .get_collection(name)
            .await?
            .ok_or_else(|| AppError::CollectionNotFound(name.to_string()))
    }

    /// Deletes the vectors first, then the rows, then the files: a failure half way
    /// leaves rows that can be deleted again, never vectors without rows.
    pub async fn delete(&self, name: &CollectionName) -> Result<(), AppError> {
        if name.is_default() {
            return Err(AppError::DefaultCollectionIsPermanent);
        }
        self.get(name).await?;
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
