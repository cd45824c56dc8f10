//! Sign-in with the company's identity provider: a Bearer JWT, its signature
//! checked (RS256 or ES256 only, so neither `none` nor an HMAC made with a
//! public key passes) against the provider's JWKS, then `iss`, `aud`, `exp`
//! and `nbf`. The verified claims name the user, their groups, tenant and role.
//!
//! Keys are fetched at the first token and kept for
//! `AUTH_JWT_JWKS_REFRESH_SECS`; a token signed by a key not yet known (the
//! provider rotated) fetches them again, at most every
//! `AUTH_JWT_JWKS_MIN_REFETCH_SECS` (30), so forged `kid`s cannot make us hammer
//! the provider. A provider that does not answer is asked again at most every
//! [`RETRY_AFTER`]; meanwhile its tokens get 503, and keys fetched before stay
//! in use.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use serde_json::{Map, Value};
use tokio::sync::{Mutex, RwLock};

use crate::config::JwtSettings;
use crate::domain::{Role, TenantName};

/// Between attempts while there are no usable keys (never fetched, or stale).
const RETRY_AFTER: Duration = Duration::from_secs(5);
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// Clock skew between the provider and us that `exp` and `nbf` tolerate.
const LEEWAY_SECS: u64 = 60;
/// The most groups one token may bring (each becomes a principal in the filter).
const MAX_GROUPS: usize = 256;

#[derive(Debug, thiserror::Error)]
pub enum JwtError {
    /// Said to the client as any bad credential; the reason goes to the log.
    #[error("{0}")]
    Invalid(String),
    /// The provider's keys cannot be had, and none is known for this token.
    #[error("the identity provider's signing keys could not be fetched: {0}")]
    KeysUnavailable(String),
}

/// Who a verified token says the caller is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenUser {
    /// `user:<sub>`
    pub user: String,
    /// `group:<g>` for each group of the groups claim.
    pub groups: Vec<String>,
    /// From the tenant claim; `None` when none is configured.
    pub tenant: Option<TenantName>,
    pub role: Role,
}

/// A verifying key, with the one algorithm it may verify.
struct SigningKey {
    key: DecodingKey,
    algorithm: Algorithm,
}

#[derive(Default)]
struct KeySet {
    by_kid: HashMap<String, SigningKey>,
    /// Keys published without a `kid` (used for tokens without one).
    unnamed: Vec<SigningKey>,
    fetched_at: Option<Instant>,
}

impl KeySet {
    fn find(&self, kid: Option<&str>, algorithm: Algorithm) -> Option<&SigningKey> {
        let fits = |key: &&SigningKey| key.algorithm == algorithm;
        match kid {
            Some(kid) => self.by_kid.get(kid).filter(fits),
            None => self.unnamed.iter().find(fits),
        }
    }
}

pub struct JwtVerifier {
    settings: JwtSettings,
    http: reqwest::Client,
    keys: RwLock<KeySet>,
    /// One fetch at a time; the last attempt's time, whatever its outcome.
    fetching: Mutex<Option<Instant>>,
}

impl JwtVerifier {
    pub fn new(settings: JwtSettings) -> Result<Self, JwtError> {
        crate::openai::install_crypto_provider();
        let http = reqwest::Client::builder()
            .timeout(FETCH_TIMEOUT)
            .connect_timeout(FETCH_TIMEOUT)
            .build()
            .map_err(|e| JwtError::KeysUnavailable(format!("http client: {e}")))?;
        Ok(Self {
            settings,
            http,
            keys: RwLock::new(KeySet::default()),
            fetching: Mutex::new(None),
        })
    }

    /// Whether a bearer token is a JWT (three dot-separated parts) rather than an API key.
    pub fn is_jwt(token: &str) -> bool {
        token.split('.').count() == 3
    }

    pub async fn verify(&self, token: &str) -> Result<TokenUser, JwtError> {
        let header = jsonwebtoken::decode_header(token).map_err(|e| JwtError::Invalid(format!("not a JWT: {e}")))?;
        if !matches!(header.alg, Algorithm::RS256 | Algorithm::ES256) {
            return Err(JwtError::Invalid(format!(
                "{:?} tokens are not accepted (RS256 or ES256)",
                header.alg
            )));
        }
        let kid = header.kid.as_deref();
        let claims = {
            let keys = self.keys_for(kid, header.alg).await?;
            let key = keys
                .find(kid, header.alg)
                .ok_or_else(|| JwtError::Invalid(format!("no {:?} signing key with kid {kid:?}", header.alg)))?;
            jsonwebtoken::decode::<Map<String, Value>>(token, &key.key, &self.validation(header.alg))
                .map_err(|e| JwtError::Invalid(e.to_string()))?
                .claims
        };
        self.user(&claims)
    }

    fn validation(&self, algorithm: Algorithm) -> Validation {
        let mut validation = Validation::new(algorithm);
        validation.set_issuer(&[&self.settings.issuer]);
        validation.set_audience(&[&self.settings.audience]);
        validation.set_required_spec_claims(&["exp", "sub", "iss", "aud"]);
        validation.validate_nbf = true;
        validation.leeway = LEEWAY_SECS;
        validation
    }

    /// The key set, fetched first when it is stale or lacks this token's key.
    async fn keys_for(
        &self,
        kid: Option<&str>,
        algorithm: Algorithm,
    ) -> Result<tokio::sync::RwLockReadGuard<'_, KeySet>, JwtError> {
        {
            let keys = self.keys.read().await;
            let fresh = keys
                .fetched_at
                .is_some_and(|at| at.elapsed() < self.settings.jwks_refresh);
            if fresh && keys.find(kid, algorithm).is_some() {
                return Ok(keys);
            }
        }
        let mut last_attempt = self.fetching.lock().await;
        // Another request may have fetched while this one waited.
        let stale = self
            .keys
            .read()
            .await
            .fetched_at
            .is_none_or(|at| at.elapsed() >= self.settings.jwks_refresh);
        let pause = match stale {
            true => RETRY_AFTER,
            false => self.settings.jwks_min_refetch,
        };
        if last_attempt.is_none_or(|at| at.elapsed() >= pause) {
            *last_attempt = Some(Instant::now());
            match self.fetch().await {
                Ok(fetched) => *self.keys.write().await = fetched,
                Err(e) => {
                    // Keys fetched before stay in use while the provider is away.
                    let known = self.keys.read().await.find(kid, algorithm).is_some();
                    if !known {
                        return Err(e);
                    }
                    tracing::warn!(error = %e, "the identity provider's keys could not be refreshed; using the known ones");
                }
            }
        }
        drop(last_attempt);
        let keys = self.keys.read().await;
        if keys.fetched_at.is_none() {
            return Err(JwtError::KeysUnavailable("not fetched yet; retrying".into()));
        }
        Ok(keys)
    }

    async fn fetch(&self) -> Result<KeySet, JwtError> {
        #[derive(Deserialize)]
        struct Document {
            keys: Vec<Value>,
        }
        let unavailable =
            |e: &dyn std::fmt::Display| JwtError::KeysUnavailable(format!("{}: {e}", self.settings.jwks_url));
        let response = self
            .http
            .get(&self.settings.jwks_url)
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(|e| unavailable(&e))?;
        let document: Document = response.json().await.map_err(|e| unavailable(&e))?;
        let mut set = KeySet {
            fetched_at: Some(Instant::now()),
            ..KeySet::default()
        };
        // A key we cannot use (encryption keys, other curves) is skipped, not fatal.
        for raw in document.keys {
            let Ok(jwk) = serde_json::from_value::<Jwk>(raw) else {
                continue;
            };
            let Some(key) = signing_key(&jwk) else {
                continue;
            };
            match jwk.common.key_id {
                Some(kid) => {
                    set.by_kid.insert(kid, key);
                }
                None => set.unnamed.push(key),
            }
        }
        tracing::info!(url = %self.settings.jwks_url, keys = set.by_kid.len() + set.unnamed.len(),
            "identity provider signing keys fetched");
        Ok(set)
    }

    fn user(&self, claims: &Map<String, Value>) -> Result<TokenUser, JwtError> {
        let invalid = |why: String| JwtError::Invalid(why);
        let subject = claims
            .get("sub")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| invalid("no `sub`".into()))?;
        let user = crate::auth::parse_principal(&format!("user:{subject}")).map_err(invalid)?;
        let groups = match claims.get(&self.settings.groups_claim) {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::String(one)) => vec![one.clone()],
            Some(Value::Array(many)) => many
                .iter()
                .map(|g| g.as_str().map(str::to_string))
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| {
                    invalid(format!(
                        "`{}` holds something else than names",
                        self.settings.groups_claim
                    ))
                })?,
            Some(_) => {
                return Err(invalid(format!(
                    "`{}` is not a list of names",
                    self.settings.groups_claim
                )));
            }
        };
        if groups.len() > MAX_GROUPS {
            return Err(invalid(format!("more than {MAX_GROUPS} groups")));
        }
        let groups = groups
            .iter()
            .map(|g| crate::auth::parse_principal(&format!("group:{g}")))
            .collect::<Result<Vec<_>, _>>()
            .map_err(invalid)?;
        let text_claim = |name: &Option<String>| -> Result<Option<&str>, JwtError> {
            match name.as_ref().map(|n| claims.get(n)) {
                None | Some(None) | Some(Some(Value::Null)) => Ok(None),
                Some(Some(Value::String(s))) => Ok(Some(s.as_str())),
                Some(Some(_)) => Err(invalid(format!(
                    "`{}` is not a string",
                    name.as_deref().unwrap_or_default()
                ))),
            }
        };
        let tenant = match (&self.settings.tenant_claim, text_claim(&self.settings.tenant_claim)?) {
            (None, _) => None,
            (Some(name), None) => return Err(invalid(format!("no `{name}` (the tenant claim)"))),
            (Some(_), Some(raw)) => Some(raw.parse::<TenantName>().map_err(|e| invalid(e.to_string()))?),
        };
        let role = match text_claim(&self.settings.role_claim)? {
            None => Role::Reader,
            Some("reader") => Role::Reader,
            Some("writer") => Role::Writer,
            Some("admin") => Role::Admin,
            Some(other) => {
                return Err(invalid(format!(
                    "role {:?} is not reader, writer or admin",
                    other.chars().take(40).collect::<String>()
                )));
            }
        };
        Ok(TokenUser {
            user,
            groups,
            tenant,
            role,
        })
    }
}

/// The key of a JWK we accept: RSA for RS256, P-256 for ES256; its `alg`, when
/// given, must agree.
fn signing_key(jwk: &Jwk) -> Option<SigningKey> {
    if jwk
        .common
        .public_key_use
        .as_ref()
        .is_some_and(|u| *u != jsonwebtoken::jwk::PublicKeyUse::Signature)
    {
        return None;
    }
    let algorithm = match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => Algorithm::RS256,
        AlgorithmParameters::EllipticCurve(ec) if ec.curve == EllipticCurve::P256 => Algorithm::ES256,
        _ => return None,
    };
    let declared = jwk.common.key_algorithm.map(|a| format!("{a:?}"));
    if declared.is_some_and(|declared| declared != format!("{algorithm:?}")) {
        return None;
    }
    Some(SigningKey {
        key: DecodingKey::from_jwk(jwk).ok()?,
        algorithm,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verifier(tenant_claim: Option<&str>, role_claim: Option<&str>) -> JwtVerifier {
        JwtVerifier::new(JwtSettings {
            jwks_url: "http://127.0.0.1:9/jwks".into(),
            issuer: "https://idp".into(),
            audience: "docqa".into(),
            groups_claim: "groups".into(),
            tenant_claim: tenant_claim.map(str::to_string),
            role_claim: role_claim.map(str::to_string),
            jwks_refresh: Duration::from_secs(600),
            jwks_min_refetch: Duration::from_secs(30),
        })
        .unwrap()
    }

    fn claims(value: Value) -> Map<String, Value> {
        value.as_object().unwrap().clone()
    }

    #[test]
    fn claims_become_principals_tenant_and_role() {
        let v = verifier(Some("org"), Some("docqa_role"));
        let user = v
            .user(&claims(serde_json::json!({
                "sub": "alice@corp", "groups": ["legal", "hr"], "org": "acme", "docqa_role": "writer"
            })))
            .unwrap();
        assert_eq!(user.user, "user:alice@corp");
        assert_eq!(user.groups, vec!["group:legal", "group:hr"]);
        assert_eq!(user.tenant, Some(TenantName::parse("acme").unwrap()));
        assert_eq!(user.role, Role::Writer);

        let minimal = verifier(None, None)
            .user(&claims(serde_json::json!({"sub": "bob"})))
            .unwrap();
        assert_eq!(
            (minimal.role, minimal.tenant, minimal.groups.len()),
            (Role::Reader, None, 0)
        );
    }

    #[test]
    fn claims_that_do_not_fit_are_refused() {
        let v = verifier(Some("org"), Some("role"));
        for bad in [
            serde_json::json!({"org": "acme"}),
            serde_json::json!({"sub": "a", "role": "admin"}),
            serde_json::json!({"sub": "a", "org": "Not A Tenant"}),
            serde_json::json!({"sub": "a", "org": "acme", "role": "service"}),
            serde_json::json!({"sub": "a", "org": "acme", "groups": [1, 2]}),
            serde_json::json!({"sub": "a b", "org": "acme"}),
        ] {
            assert!(
                matches!(v.user(&claims(bad.clone())), Err(JwtError::Invalid(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn only_three_part_tokens_are_jwts() {
        assert!(JwtVerifier::is_jwt("a.b.c"));
        assert!(!JwtVerifier::is_jwt("dq_0123abcd"));
        assert!(!JwtVerifier::is_jwt("a.b"));
    }
}
