//! Who may do what, as stored: tenants, roles, API keys. The checks made on
//! every request live in `crate::auth`.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{CollectionName, KeyId};

/// A tenant: an isolated namespace (a team, an organisation). Same syntax as a
/// collection name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(try_from = "String", into = "String")]
#[schema(value_type = String, pattern = "^[a-z0-9_-]{1,64}$", example = "default")]
pub struct TenantName(String);

pub const DEFAULT_TENANT: &str = "default";

#[derive(Debug, thiserror::Error)]
#[error("tenant names are 1 to 64 characters of a-z, 0-9, '_' and '-'; got {0:?}")]
pub struct InvalidTenantName(pub String);

impl TenantName {
    pub fn parse(raw: &str) -> Result<Self, InvalidTenantName> {
        // The same alphabet as collection names, checked by the same rule.
        match super::collection::is_name(raw) {
            true => Ok(Self(raw.to_string())),
            false => Err(InvalidTenantName(raw.chars().take(80).collect())),
        }
    }

    pub fn is_default(&self) -> bool {
        self.0 == DEFAULT_TENANT
    }

    pub fn default_tenant() -> Self {
        Self(DEFAULT_TENANT.to_string())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::str::FromStr for TenantName {
    type Err = InvalidTenantName;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl TryFrom<String> for TenantName {
    type Error = InvalidTenantName;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<TenantName> for String {
    fn from(value: TenantName) -> Self {
        value.0
    }
}

impl fmt::Display for TenantName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A tenant as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct Tenant {
    pub name: TenantName,
    pub created_at: DateTime<Utc>,
}

/// A key's role. `service` has reader or writer rights (its `rights`) and is the
/// one role that may act for end users.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Reader,
    Writer,
    Admin,
    Service,
}

text_enum!(Role, "role", { Reader => "reader", Writer => "writer", Admin => "admin", Service => "service" });

/// A principal as the API documents it: `user:<id>` or `group:<id>`, at most
/// 256 characters, no spaces or commas (the rule itself is
/// `crate::auth::parse_principal`). Only a schema: requests carry principals as
/// strings, checked where they are used.
#[derive(ToSchema)]
#[schema(value_type = String, pattern = "^(user|group):[^\\s,]+$", example = "group:legal")]
pub struct Principal(#[allow(dead_code)] String);

/// What a request may do, each level including the ones below it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Access {
    /// Search, query, list and show documents, collections and jobs.
    Read,
    /// Upload, update and delete documents; retry jobs.
    Write,
    /// Create, re-index and delete collections; manage keys (within a tenant).
    Manage,
}

impl Access {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Read => "read",
            Self::Write => "write",
            Self::Manage => "manage",
        }
    }
}

/// Which documents a request may read, by their `access` lists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Readers {
    /// Every document of the tenant (its admins, the operator).
    All,
    /// Documents whose `access` is empty or names one of these.
    Principals(Vec<String>),
}

impl Readers {
    pub fn may_read(&self, access: &[String]) -> bool {
        match self {
            Self::All => true,
            Self::Principals(principals) => access.is_empty() || access.iter().any(|a| principals.contains(a)),
        }
    }
}

/// Per-tenant limits on what is stored (`TENANT_MAX_BYTES`,
/// `TENANT_MAX_DOCUMENTS`); `None`: unlimited.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TenantQuota {
    pub max_bytes: Option<u64>,
    pub max_documents: Option<u64>,
}

impl TenantQuota {
    pub fn is_unlimited(&self) -> bool {
        self.max_bytes.is_none() && self.max_documents.is_none()
    }

    /// What `usage` plus `incoming` would break, if anything.
    pub fn exceeded(&self, usage: TenantUsage, incoming: TenantUsage) -> Option<QuotaExceeded> {
        let over = |limit: Option<u64>, used: u64, more: u64| limit.filter(|&max| used.saturating_add(more) > max);
        if let Some(limit) = over(self.max_documents, usage.documents, incoming.documents) {
            return Some(QuotaExceeded::Documents {
                limit,
                stored: usage.documents,
            });
        }
        over(self.max_bytes, usage.bytes, incoming.bytes).map(|limit| QuotaExceeded::Bytes {
            limit,
            stored: usage.bytes,
        })
    }
}

/// What a tenant stores: its documents and their bytes as uploaded.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TenantUsage {
    pub documents: u64,
    pub bytes: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum QuotaExceeded {
    #[error("the tenant's document quota is reached: {stored} of TENANT_MAX_DOCUMENTS {limit} stored")]
    Documents { limit: u64, stored: u64 },
    #[error("the upload would exceed the tenant's storage quota: {stored} of TENANT_MAX_BYTES {limit} bytes stored")]
    Bytes { limit: u64, stored: u64 },
}

/// An API key as stored: never its secret, which only its hash stands for.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ApiKey {
    pub id: KeyId,
    pub tenant: TenantName,
    pub role: Role,
    /// For a `service` key: `reader` or `writer`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rights: Option<Role>,
    /// The collections it may use; absent: every collection of its tenant.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub collections: Option<Vec<CollectionName>>,
    /// Principals every request with this key acts as (`user:…`, `group:…`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub principals: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_used_at: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<DateTime<Utc>>,
}

impl ApiKey {
    /// The most this key may do.
    pub fn access(&self) -> Access {
        match (self.role, self.rights) {
            (Role::Reader, _) | (Role::Service, None | Some(Role::Reader)) => Access::Read,
            (Role::Writer, _) | (Role::Service, Some(_)) => Access::Write,
            (Role::Admin, _) => Access::Manage,
        }
    }

    /// Usable now: not revoked, not expired.
    pub fn is_live(&self, now: DateTime<Utc>) -> bool {
        self.revoked_at.is_none() && self.expires_at.is_none_or(|at| at > now)
    }

    /// Whether a request with this key may use `collection` (by its allow-list).
    pub fn allows(&self, collection: &CollectionName) -> bool {
        self.collections
            .as_ref()
            .is_none_or(|allowed| allowed.contains(collection))
    }
}

/// A key to store: what the caller asked for, checked, and its secret's hash.
#[derive(Debug, Clone)]
pub struct NewApiKey {
    pub id: KeyId,
    pub tenant: TenantName,
    pub role: Role,
    pub rights: Option<Role>,
    pub collections: Option<Vec<CollectionName>>,
    pub principals: Vec<String>,
    pub name: Option<String>,
    pub expires_at: Option<DateTime<Utc>>,
    /// Hex SHA-256 of the secret.
    pub hash: String,
}

/// A key of the default tenant with this role, for unit tests.
#[cfg(test)]
impl ApiKey {
    pub(crate) fn for_test(role: Role, rights: Option<Role>) -> Self {
        ApiKey {
            id: KeyId::new(),
            tenant: TenantName::default_tenant(),
            role,
            rights,
            collections: None,
            principals: vec![],
            name: None,
            expires_at: None,
            created_at: Utc::now(),
            last_used_at: None,
            revoked_at: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(role: Role, rights: Option<Role>) -> ApiKey {
        ApiKey::for_test(role, rights)
    }

    #[test]
    fn each_role_has_its_access() {
        assert_eq!(key(Role::Reader, None).access(), Access::Read);
        assert_eq!(key(Role::Writer, None).access(), Access::Write);
        assert_eq!(key(Role::Admin, None).access(), Access::Manage);
        assert_eq!(key(Role::Service, None).access(), Access::Read);
        assert_eq!(key(Role::Service, Some(Role::Writer)).access(), Access::Write);
        assert!(Access::Read < Access::Write && Access::Write < Access::Manage);
    }

    #[test]
    fn revoked_or_expired_keys_are_not_live() {
        let now = Utc::now();
        let mut live = key(Role::Reader, None);
        assert!(live.is_live(now));
        live.expires_at = Some(now + chrono::Duration::seconds(5));
        assert!(live.is_live(now));
        live.expires_at = Some(now);
        assert!(!live.is_live(now));
        let mut revoked = key(Role::Reader, None);
        revoked.revoked_at = Some(now);
        assert!(!revoked.is_live(now));
    }

    #[test]
    fn a_quota_refuses_what_would_pass_it() {
        let quota = TenantQuota {
            max_bytes: Some(100),
            max_documents: Some(2),
        };
        let usage = TenantUsage {
            documents: 1,
            bytes: 60,
        };
        let one = |bytes| TenantUsage { documents: 1, bytes };
        assert_eq!(quota.exceeded(usage, one(40)), None, "exactly at the limit is allowed");
        assert_eq!(
            quota.exceeded(usage, one(41)),
            Some(QuotaExceeded::Bytes { limit: 100, stored: 60 })
        );
        assert_eq!(
            quota.exceeded(usage, TenantUsage { documents: 2, bytes: 1 }),
            Some(QuotaExceeded::Documents { limit: 2, stored: 1 })
        );
        assert_eq!(TenantQuota::default().exceeded(usage, one(u64::MAX)), None);
        assert!(TenantQuota::default().is_unlimited());
    }

    #[test]
    fn an_allow_list_limits_the_collections() {
        let mut limited = key(Role::Writer, None);
        let a = CollectionName::parse("a").unwrap();
        let b = CollectionName::parse("b").unwrap();
        assert!(limited.allows(&a));
        limited.collections = Some(vec![a.clone()]);
        assert!(limited.allows(&a) && !limited.allows(&b));
        assert!(TenantName::parse("Team A").is_err());
    }
}
