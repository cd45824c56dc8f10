//! What every service asks of storage the same way: looking a collection up (or
//! saying it is not there — the one place, where a request's scope will narrow
//! what it may see), and the storage errors services pass on.

use crate::auth::Scope;
use crate::catalog::{Catalog, CatalogError};
use crate::domain::{Collection, CollectionName, Job, JobId};
use crate::index::IndexError;

/// A storage error as a service passes it on.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("no collection named {0:?}")]
    CollectionNotFound(String),
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    #[error(transparent)]
    Index(#[from] IndexError),
}

pub async fn find_collection(catalog: &dyn Catalog, name: &CollectionName) -> Result<Collection, StoreError> {
    catalog
        .get_collection(name)
        .await?
        .ok_or_else(|| StoreError::CollectionNotFound(name.to_string()))
}

/// A job the scope may see: of a collection it may use and, for a document's
/// job, of a document its principals may read. Any other is `None`, as one that
/// does not exist (a job's error names what its document held).
pub async fn find_job(catalog: &dyn Catalog, scope: &Scope, id: JobId) -> Result<Option<Job>, StoreError> {
    let Some(job) = catalog.get_job(id).await?.filter(|job| scope.allows(&job.collection)) else {
        return Ok(None);
    };
    if let Some(document) = job.document_id {
        let readers = scope.readers();
        let readable = catalog
            .get_document(&job.collection, document)
            .await?
            .is_none_or(|document| readers.may_read(&document.access));
        if !readable {
            return Ok(None);
        }
    }
    Ok(Some(job))
}

/// For a service error with a `Store(StoreError)` variant: the catalog's and the
/// index's errors convert into it, so `?` works on both.
macro_rules! errors_through_store {
    ($error:ty) => {
        impl From<$crate::catalog::CatalogError> for $error {
            fn from(e: $crate::catalog::CatalogError) -> Self {
                Self::Store(e.into())
            }
        }

        impl From<$crate::index::IndexError> for $error {
            fn from(e: $crate::index::IndexError) -> Self {
                Self::Store(e.into())
            }
        }
    };
}
pub(crate) use errors_through_store;
