//! API keys: made (the secret shown once), listed, revoked. The operator manages
//! every tenant's keys; a tenant admin its own tenant's, never with more rights
//! than it has.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{AuthError, Scope, parse_principal, sha256};
use crate::catalog::{Catalog, CatalogError};
use crate::domain::{Access, ApiKey, CollectionName, KeyId, NewApiKey, Role, TenantName};

/// Every key starts so, which lets secret scanners recognise a leaked one.
const KEY_PREFIX: &str = "dq_";
const MAX_NAME_CHARS: usize = 200;
const MAX_PRINCIPALS: usize = 100;

#[derive(Debug, thiserror::Error)]
pub enum KeysError {
    #[error("no key {0}")]
    NotFound(String),
    #[error("{0}")]
    Invalid(String),
    #[error("no tenant {0:?} (the operator makes tenants: POST /v1/tenants)")]
    UnknownTenant(String),
    #[error("could not draw a random key: {0}")]
    Random(String),
    #[error(transparent)]
    Auth(#[from] AuthError),
    #[error(transparent)]
    Catalog(#[from] CatalogError),
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateKey {
    /// The tenant it belongs to; default: the caller's.
    #[schema(value_type = Option<crate::domain::TenantName>)]
    pub tenant: Option<String>,
    pub role: Role,
    /// For a `service` key: `reader` (default) or `writer`.
    pub rights: Option<Role>,
    /// The collections it may use; absent: all of its tenant.
    #[schema(value_type = Option<Vec<crate::domain::CollectionName>>)]
    pub collections: Option<Vec<String>>,
    /// Principals every request with it acts as: `user:<id>`, `group:<id>`.
    #[schema(value_type = Option<Vec<crate::domain::Principal>>)]
    pub principals: Option<Vec<String>>,
    pub expires_at: Option<DateTime<Utc>>,
    pub name: Option<String>,
}

/// A new key: its record and, this once, its secret.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedKey {
    #[serde(flatten)]
    pub record: ApiKey,
    /// The secret, for `Authorization: Bearer <key>`. Shown only here: the
    /// server keeps its hash alone.
    #[schema(value_type = String, example = "dq_3f1c…")]
    #[serde(serialize_with = "expose")]
    pub key: SecretString,
}

fn expose<S: serde::Serializer>(secret: &SecretString, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(secret.expose_secret())
}

pub struct Keys {
    catalog: Arc<dyn Catalog>,
}

impl Keys {
    pub fn new(catalog: Arc<dyn Catalog>) -> Self {
        Self { catalog }
    }

    pub async fn create(&self, scope: &Scope, request: CreateKey) -> Result<CreatedKey, KeysError> {
        scope.require(Access::Manage)?;
        let new = checked(scope, request)?;
        if self.catalog.get_tenant(&new.tenant).await?.is_none() {
            return Err(KeysError::UnknownTenant(new.tenant.to_string()));
        }
        let (secret, hash) = new_secret()?;
        let record = self.catalog.create_key(&NewApiKey { hash, ..new }).await?;
        tracing::info!(key = %record.id, tenant = %record.tenant, role = record.role.as_str(), "API key created");
        Ok(CreatedKey { record, key: secret })
    }

    /// The keys the caller manages: all for the operator, its tenant's for an admin.
    pub async fn list(&self, scope: &Scope) -> Result<Vec<ApiKey>, KeysError> {
        scope.require(Access::Manage)?;
        Ok(self.catalog.list_keys(managed_tenant(scope)).await?)
    }

    /// Revokes at once: the next request with it is refused.
    pub async fn revoke(&self, scope: &Scope, id: KeyId) -> Result<(), KeysError> {
        scope.require(Access::Manage)?;
        match self.catalog.revoke_key(managed_tenant(scope), id, Utc::now()).await? {
            true => {
                tracing::info!(key = %id, "API key revoked");
                Ok(())
            }
            false => Err(KeysError::NotFound(id.to_string())),
        }
    }
}

fn managed_tenant(scope: &Scope) -> Option<&TenantName> {
    (!scope.is_operator()).then_some(&scope.tenant)
}

/// The request as a key to store (its hash still empty), or why not.
fn checked(scope: &Scope, request: CreateKey) -> Result<NewApiKey, KeysError> {
    let tenant = match &request.tenant {
        Some(raw) => TenantName::parse(raw).map_err(|e| KeysError::Invalid(e.to_string()))?,
        None => scope.tenant.clone(),
    };
    if !scope.is_operator() && tenant != scope.tenant {
        return Err(AuthError::Forbidden("an admin key manages the keys of its own tenant only".into()).into());
    }
    let rights = match (request.role, request.rights) {
        (Role::Service, None) => Some(Role::Reader),
        (Role::Service, Some(rights @ (Role::Reader | Role::Writer))) => Some(rights),
        (Role::Service, Some(_)) => {
            return Err(KeysError::Invalid(
                "rights: a service key has reader or writer rights".into(),
            ));
        }
        (_, Some(_)) => return Err(KeysError::Invalid("rights: only a service key has rights".into())),
        (_, None) => None,
    };
    let collections = request
        .collections
        .map(|names| {
            names
                .iter()
                .map(|name| {
                    CollectionName::in_tenant(&tenant, name)
                        .map_err(|e| KeysError::Invalid(format!("collections: {e}")))
                })
                .collect::<Result<Vec<_>, _>>()
        })
        .transpose()?;
    if let Some(own) = scope.allowed_collections() {
        let within = collections
            .as_ref()
            .is_some_and(|asked| asked.iter().all(|c| own.contains(c)));
        if !within {
            return Err(AuthError::Forbidden(
                "a key limited to some collections can only make keys limited to those".into(),
            )
            .into());
        }
    }
    let principals = request.principals.unwrap_or_default();
    if principals.len() > MAX_PRINCIPALS {
        return Err(KeysError::Invalid(format!("principals: at most {MAX_PRINCIPALS}")));
    }
    let principals = principals
        .iter()
        .map(|p| parse_principal(p).map_err(|e| KeysError::Invalid(format!("principals: {e}"))))
        .collect::<Result<Vec<_>, _>>()?;
    if let Some(at) = request.expires_at
        && at <= Utc::now()
    {
        return Err(KeysError::Invalid("expires_at is in the past".into()));
    }
    if let Some(name) = &request.name
        && (name.trim().is_empty() || name.chars().count() > MAX_NAME_CHARS)
    {
        return Err(KeysError::Invalid(format!("name: 1 to {MAX_NAME_CHARS} characters")));
    }
    Ok(NewApiKey {
        id: KeyId::new(),
        tenant,
        role: request.role,
        rights,
        collections,
        principals,
        name: request.name,
        expires_at: request.expires_at,
        hash: String::new(),
    })
}

/// 256 bits from the operating system's generator, and their hash.
fn new_secret() -> Result<(SecretString, String), KeysError> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| KeysError::Random(e.to_string()))?;
    let secret = format!("{KEY_PREFIX}{}", hex::encode(bytes));
    let hash = hex::encode(sha256(&secret));
    Ok((SecretString::from(secret), hash))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::Identity;

    fn admin_limited_to(collections: &[&str]) -> Scope {
        let key = ApiKey {
            collections: Some(collections.iter().map(|c| CollectionName::parse(c).unwrap()).collect()),
            ..ApiKey::for_test(Role::Admin, None)
        };
        Scope::of_key(&key, vec![])
    }

    fn request(role: Role) -> CreateKey {
        CreateKey {
            tenant: None,
            role,
            rights: None,
            collections: None,
            principals: None,
            expires_at: None,
            name: None,
        }
    }

    #[test]
    fn secrets_are_random_and_only_their_hash_is_kept() {
        let (a, hash_a) = new_secret().unwrap();
        let (b, _) = new_secret().unwrap();
        assert_ne!(a.expose_secret(), b.expose_secret());
        assert!(a.expose_secret().starts_with("dq_") && a.expose_secret().len() == 3 + 64);
        assert_eq!(hash_a, hex::encode(sha256(a.expose_secret())));
        assert!(!format!("{a:?}").contains(a.expose_secret()));
    }

    #[test]
    fn a_limited_admin_makes_only_keys_within_its_collections() {
        let admin = admin_limited_to(&["a", "b"]);
        assert!(matches!(admin.identity, Identity::Key { .. }));
        let unlimited = checked(&admin, request(Role::Reader));
        assert!(matches!(unlimited, Err(KeysError::Auth(AuthError::Forbidden(_)))));
        let outside = CreateKey {
            collections: Some(vec!["c".into()]),
            ..request(Role::Reader)
        };
        assert!(matches!(checked(&admin, outside), Err(KeysError::Auth(_))));
        let within = CreateKey {
            collections: Some(vec!["a".into()]),
            ..request(Role::Writer)
        };
        assert!(checked(&admin, within).is_ok());
    }

    #[test]
    fn rights_belong_to_service_keys() {
        let operator = Scope::operator();
        let service = checked(&operator, request(Role::Service)).unwrap();
        assert_eq!(service.rights, Some(Role::Reader));
        let bad = CreateKey {
            rights: Some(Role::Writer),
            ..request(Role::Reader)
        };
        assert!(matches!(checked(&operator, bad), Err(KeysError::Invalid(_))));
        let admin_rights = CreateKey {
            rights: Some(Role::Admin),
            ..request(Role::Service)
        };
        assert!(matches!(checked(&operator, admin_rights), Err(KeysError::Invalid(_))));
        let admin = admin_limited_to(&["a"]);
        let elsewhere = CreateKey {
            tenant: Some("other".into()),
            collections: Some(vec!["a".into()]),
            ..request(Role::Reader)
        };
        assert!(matches!(
            checked(&admin, elsewhere),
            Err(KeysError::Auth(AuthError::Forbidden(_)))
        ));
    }
}
