//! Who is asking and what they may do. Every request is resolved once into a
//! [`Scope`] (tenant, key, access, allowed collections, principals) by the
//! [`Authenticator`]; routes get it from the HTTP layer's extractor and check
//! it before any data is read or written.
//!
//! Credentials: `Authorization: Bearer <key>`, where the key is either
//! `DOCQA_ADMIN_KEY` (the operator, over all tenants) or an API key stored as
//! its SHA-256 (keys are 256 random bits, so a plain hash is as strong as the
//! key; a lookup by hash reveals nothing about other keys), or a JWT from the
//! company's identity provider when `AUTH_JWT_*` is set (`jwt`).

pub mod audit;
pub mod jwt;
pub mod keys;
mod limits;

pub use limits::RequestLimiter;

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::catalog::{Catalog, CatalogError};
use crate::config::RateLimit;
use crate::domain::{Access, ApiKey, CollectionName, KeyId, Readers, Role, TenantName};
use jwt::{JwtError, JwtVerifier, TokenUser};

/// `last_used_at` is written at most this often per key: a search must not
/// become a catalog write.
const TOUCH_EVERY: Duration = Duration::from_secs(60);

/// The most principals an `X-Acting-For` header may name.
const MAX_ACTING_FOR: usize = 64;

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("this route needs an API key: send Authorization: Bearer <key>")]
    MissingCredentials,
    /// Malformed, unknown, revoked or expired: said alike, so that the answer
    /// tells nothing about which keys exist.
    #[error("the API key is not valid (unknown, revoked or expired)")]
    InvalidCredentials,
    #[error("{0}")]
    Forbidden(String),
    #[error("X-Acting-For: {0}")]
    InvalidActingFor(String),
    /// The identity provider's keys cannot be had: not the caller's fault.
    #[error("{0}")]
    IdentityProviderUnavailable(String),
    #[error("too many requests with this key (RATE_LIMIT_RPS); retry after {} s", retry_after_secs(.0))]
    RateLimited(Duration),
    #[error(transparent)]
    Catalog(#[from] CatalogError),
}

/// Whose request this is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Identity {
    /// `DOCQA_ADMIN_KEY`, or anyone when authentication is off.
    Operator,
    Key {
        id: KeyId,
        role: Role,
    },
    /// A user signed in through the identity provider (a JWT).
    User {
        /// `user:<sub>`
        user: String,
        role: Role,
    },
}

/// What one request may see and do, resolved once per request.
#[derive(Debug, Clone)]
pub struct Scope {
    pub tenant: TenantName,
    pub identity: Identity,
    access: Access,
    /// `None`: every collection of the tenant.
    collections: Option<Vec<CollectionName>>,
    /// The key's fixed principals and those a service key acts for.
    pub principals: Vec<String>,
    /// Those a service key acts for (`X-Acting-For`), for the audit log.
    pub acting_for: Vec<String>,
}

impl Scope {
    /// The operator in tenant `default` (also every request when auth is off).
    pub fn operator() -> Self {
        Self {
            tenant: TenantName::default_tenant(),
            identity: Identity::Operator,
            access: Access::Manage,
            collections: None,
            principals: Vec::new(),
            acting_for: Vec::new(),
        }
    }

    fn of_key(key: &ApiKey, acting_for: Vec<String>) -> Self {
        let mut principals = key.principals.clone();
        principals.extend(acting_for.iter().cloned());
        Self {
            tenant: key.tenant.clone(),
            identity: Identity::Key {
                id: key.id,
                role: key.role,
            },
            access: key.access(),
            collections: key.collections.clone(),
            principals,
            acting_for,
        }
    }

    fn of_user(user: TokenUser, tenant: TenantName) -> Self {
        let access = match user.role {
            Role::Reader | Role::Service => Access::Read,
            Role::Writer => Access::Write,
            Role::Admin => Access::Manage,
        };
        let mut principals = vec![user.user.clone()];
        principals.extend(user.groups);
        Self {
            tenant,
            identity: Identity::User {
                user: user.user,
                role: user.role,
            },
            access,
            collections: None,
            principals,
            acting_for: Vec::new(),
        }
    }

    pub fn is_operator(&self) -> bool {
        self.identity == Identity::Operator
    }

    pub fn key_id(&self) -> Option<KeyId> {
        match self.identity {
            Identity::Key { id, .. } => Some(id),
            Identity::Operator | Identity::User { .. } => None,
        }
    }

    /// Who a conversation belongs to: a key with the principals it acts for,
    /// a signed-in user, or the operator.
    pub fn owner(&self) -> String {
        match &self.identity {
            Identity::Operator => "operator".into(),
            Identity::User { user, .. } => user.clone(),
            Identity::Key { id, .. } if self.acting_for.is_empty() => format!("key:{id}"),
            Identity::Key { id, .. } => {
                let mut acting_for = self.acting_for.clone();
                acting_for.sort();
                acting_for.dedup();
                format!("key:{id} for {}", acting_for.join(","))
            }
        }
    }

    /// The signed-in user (`user:<sub>`) of a JWT.
    pub fn user(&self) -> Option<&str> {
        match &self.identity {
            Identity::User { user, .. } => Some(user),
            Identity::Operator | Identity::Key { .. } => None,
        }
    }

    /// Refuses (403) what this scope's role may not do.
    pub fn require(&self, needed: Access) -> Result<(), AuthError> {
        if self.access >= needed {
            return Ok(());
        }
        Err(AuthError::Forbidden(format!(
            "this key may {} but this request needs {} access",
            self.access.as_str(),
            needed.as_str()
        )))
    }

    /// Whether the collection is one this scope may use. A collection outside
    /// it is answered as if it did not exist.
    pub fn allows(&self, collection: &CollectionName) -> bool {
        collection.tenant() == self.tenant
            && self
                .collections
                .as_ref()
                .is_none_or(|allowed| allowed.contains(collection))
    }

    /// The collection of this scope's tenant named `raw`.
    pub fn collection(&self, raw: &str) -> Result<CollectionName, crate::domain::InvalidCollectionName> {
        CollectionName::in_tenant(&self.tenant, raw)
    }

    /// The documents this scope may read: all for the operator and a tenant
    /// admin, else those open to the tenant or to one of its principals.
    pub fn readers(&self) -> Readers {
        match self.identity {
            Identity::Operator | Identity::Key { role: Role::Admin, .. } | Identity::User { role: Role::Admin, .. } => {
                Readers::All
            }
            Identity::Key { .. } | Identity::User { .. } => Readers::Principals(self.principals.clone()),
        }
    }

    /// The allow-list, if this scope has one.
    pub fn allowed_collections(&self) -> Option<&[CollectionName]> {
        self.collections.as_deref()
    }
}

/// What a request presents.
#[derive(Debug, Default, Clone, Copy)]
pub struct Credentials<'a> {
    /// The `Authorization` header, as sent.
    pub authorization: Option<&'a str>,
    /// The `X-Acting-For` header, as sent.
    pub acting_for: Option<&'a str>,
}

/// Turns credentials into a scope. Built once by the app.
pub struct Authenticator {
    catalog: Arc<dyn Catalog>,
    required: bool,
    operator_key: Option<[u8; 32]>,
    jwt: Option<JwtVerifier>,
    limiter: Option<RequestLimiter>,
}

impl Authenticator {
    /// `required: false` makes every request the operator's (auth off).
    pub fn new(
        catalog: Arc<dyn Catalog>,
        required: bool,
        operator_key: Option<&SecretString>,
        jwt: Option<JwtVerifier>,
        rate_limit: Option<RateLimit>,
    ) -> Self {
        Self {
            catalog,
            required,
            operator_key: operator_key.map(|key| sha256(key.expose_secret())),
            jwt,
            limiter: rate_limit.map(RequestLimiter::new),
        }
    }

    /// The caller's scope, once its request is counted against its rate limit.
    pub async fn admit(&self, credentials: Credentials<'_>) -> Result<Scope, AuthError> {
        let scope = self.authenticate(credentials).await?;
        if let Some(limiter) = &self.limiter {
            limiter.check(&scope).map_err(AuthError::RateLimited)?;
        }
        Ok(scope)
    }

    pub async fn authenticate(&self, credentials: Credentials<'_>) -> Result<Scope, AuthError> {
        if !self.required {
            return Ok(Scope::operator());
        }
        let token = bearer_token(credentials.authorization)?;
        let digest = sha256(token);
        if let Some(operator) = &self.operator_key
            && bool::from(operator.as_slice().ct_eq(digest.as_slice()))
        {
            if credentials.acting_for.is_some() {
                return Err(only_service_keys_act_for_users());
            }
            return Ok(Scope::operator());
        }
        if let Some(jwt) = &self.jwt
            && JwtVerifier::is_jwt(token)
        {
            return self.signed_in(jwt, token, credentials).await;
        }
        let now = Utc::now();
        let key = self
            .catalog
            .key_by_hash(&hex::encode(digest))
            .await?
            .filter(|key| key.is_live(now))
            .ok_or(AuthError::InvalidCredentials)?;
        let acting_for = match credentials.acting_for {
            None => Vec::new(),
            Some(_) if key.role != Role::Service => return Err(only_service_keys_act_for_users()),
            Some(header) => parse_principals(header).map_err(AuthError::InvalidActingFor)?,
        };
        let stale = key
            .last_used_at
            .is_none_or(|at| (now - at).to_std().unwrap_or_default() >= TOUCH_EVERY);
        if stale && let Err(e) = self.catalog.touch_key(key.id, now).await {
            // Bookkeeping: the request goes on.
            tracing::warn!(key = %key.id, error = %e, "could not record the key's last use");
        }
        Ok(Scope::of_key(&key, acting_for))
    }
}

impl Authenticator {
    /// The scope of a user with a verified JWT.
    async fn signed_in(
        &self,
        jwt: &JwtVerifier,
        token: &str,
        credentials: Credentials<'_>,
    ) -> Result<Scope, AuthError> {
        if credentials.acting_for.is_some() {
            return Err(only_service_keys_act_for_users());
        }
        let user = jwt.verify(token).await.map_err(|e| match e {
            JwtError::Invalid(reason) => {
                // The reason helps whoever set up the provider; the client hears only "not valid".
                tracing::info!(%reason, "a JWT was refused");
                AuthError::InvalidCredentials
            }
            JwtError::KeysUnavailable(reason) => {
                tracing::warn!(%reason, "JWT sign-in unavailable");
                AuthError::IdentityProviderUnavailable(
                    "the identity provider's signing keys cannot be fetched; retry later".into(),
                )
            }
        })?;
        let tenant = user.tenant.clone().unwrap_or_else(TenantName::default_tenant);
        if !tenant.is_default() && self.catalog.get_tenant(&tenant).await?.is_none() {
            tracing::info!(%tenant, "a JWT names a tenant that does not exist");
            return Err(AuthError::InvalidCredentials);
        }
        Ok(Scope::of_user(user, tenant))
    }
}

/// Whole seconds to wait, at least one.
pub fn retry_after_secs(wait: &Duration) -> u64 {
    wait.as_secs() + u64::from(wait.subsec_nanos() > 0)
}

fn only_service_keys_act_for_users() -> AuthError {
    AuthError::Forbidden("only a service key may act for end users (X-Acting-For)".into())
}

fn bearer_token(header: Option<&str>) -> Result<&str, AuthError> {
    let header = header.ok_or(AuthError::MissingCredentials)?;
    let (scheme, token) = header.trim().split_once(' ').ok_or(AuthError::InvalidCredentials)?;
    let token = token.trim();
    if !scheme.eq_ignore_ascii_case("bearer") || token.is_empty() {
        return Err(AuthError::InvalidCredentials);
    }
    Ok(token)
}

pub(crate) fn sha256(text: &str) -> [u8; 32] {
    Sha256::digest(text.as_bytes()).into()
}

/// A principal: `user:<id>` or `group:<id>`, 3 to 256 characters, no spaces or commas.
pub fn parse_principal(raw: &str) -> Result<String, String> {
    let raw = raw.trim();
    let valid_id = |id: &str| !id.is_empty() && !id.contains(|c: char| c.is_whitespace() || c == ',');
    let valid = raw.len() <= 256
        && (raw.strip_prefix("user:").is_some_and(valid_id) || raw.strip_prefix("group:").is_some_and(valid_id));
    if valid {
        Ok(raw.to_string())
    } else {
        Err(format!(
            "{:?} is not a principal (user:<id> or group:<id>)",
            raw.chars().take(80).collect::<String>()
        ))
    }
}

/// A comma-separated list of principals, as in `X-Acting-For`.
pub fn parse_principals(header: &str) -> Result<Vec<String>, String> {
    let principals: Vec<String> = header
        .split(',')
        .filter(|p| !p.trim().is_empty())
        .map(parse_principal)
        .collect::<Result<_, _>>()?;
    if principals.is_empty() {
        return Err("names no principal".into());
    }
    if principals.len() > MAX_ACTING_FOR {
        return Err(format!("names more than {MAX_ACTING_FOR} principals"));
    }
    Ok(principals)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bearer_token_is_read_from_the_header() {
        assert_eq!(bearer_token(Some("Bearer abc")).unwrap(), "abc");
        assert_eq!(bearer_token(Some("bearer  abc ")).unwrap(), "abc");
        assert!(matches!(bearer_token(None), Err(AuthError::MissingCredentials)));
        for bad in ["Basic abc", "Bearer", "Bearer ", "abc"] {
            assert!(
                matches!(bearer_token(Some(bad)), Err(AuthError::InvalidCredentials)),
                "{bad}"
            );
        }
    }

    #[test]
    fn principals_are_users_or_groups() {
        assert_eq!(
            parse_principals("user:alice@corp, group:legal").unwrap(),
            vec!["user:alice@corp", "group:legal"]
        );
        assert!(parse_principals("alice").is_err());
        assert!(parse_principals("user:").is_err());
        assert!(parse_principals(" , ").is_err());
        assert!(parse_principals("group:a b").is_err());
    }

    #[test]
    fn a_scope_refuses_more_than_its_access() {
        let operator = Scope::operator();
        assert!(operator.require(Access::Manage).is_ok());
        let reader = Scope {
            access: Access::Read,
            ..Scope::operator()
        };
        assert!(reader.require(Access::Read).is_ok());
        assert!(matches!(reader.require(Access::Write), Err(AuthError::Forbidden(_))));
    }
}
