//! Tenants: isolated namespaces, made by the operator. Each starts with its own
//! `default` collection.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::collections::{Collections, CollectionsError};
use crate::auth::{AuthError, Scope};
use crate::catalog::{Catalog, CatalogError};
use crate::domain::{Tenant, TenantName};

#[derive(Debug, thiserror::Error)]
pub enum TenantsError {
    #[error("a tenant named {0:?} already exists")]
    Exists(String),
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Auth(#[from] AuthError),
    #[error(transparent)]
    Collections(#[from] CollectionsError),
    #[error(transparent)]
    Catalog(#[from] CatalogError),
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTenant {
    #[schema(value_type = String, pattern = "^[a-z0-9_-]{1,64}$", example = "acme")]
    pub name: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TenantList {
    pub tenants: Vec<Tenant>,
}

pub struct Tenants {
    catalog: Arc<dyn Catalog>,
    collections: Arc<Collections>,
}

impl Tenants {
    pub fn new(catalog: Arc<dyn Catalog>, collections: Arc<Collections>) -> Self {
        Self { catalog, collections }
    }

    pub async fn create(&self, scope: &Scope, request: CreateTenant) -> Result<Tenant, TenantsError> {
        operator_only(scope)?;
        let name = TenantName::parse(&request.name).map_err(|e| TenantsError::Invalid(e.to_string()))?;
        let tenant = match self.catalog.create_tenant(&name).await {
            Ok(tenant) => tenant,
            Err(CatalogError::AlreadyExists) => return Err(TenantsError::Exists(name.to_string())),
            Err(e) => return Err(e.into()),
        };
        self.collections.ensure_default(&name).await?;
        tracing::info!(tenant = %name, "tenant created");
        Ok(tenant)
    }

    pub async fn list(&self, scope: &Scope) -> Result<TenantList, TenantsError> {
        operator_only(scope)?;
        Ok(TenantList {
            tenants: self.catalog.list_tenants().await?,
        })
    }

    /// At start: every tenant has its `default` collection (one made before a
    /// crash between the two writes gets it now).
    pub async fn ensure_defaults(&self) -> Result<(), TenantsError> {
        for tenant in self.catalog.list_tenants().await? {
            self.collections.ensure_default(&tenant.name).await?;
        }
        Ok(())
    }
}

fn operator_only(scope: &Scope) -> Result<(), AuthError> {
    match scope.is_operator() {
        true => Ok(()),
        false => Err(AuthError::Forbidden(
            "only the operator (DOCQA_ADMIN_KEY) manages tenants".into(),
        )),
    }
}
