use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::TenantName;

/// A collection's name within its tenant: `[a-z0-9_-]{1,64}`. Parsed once at
/// the edge, trusted after. It is stored and indexed under its key: the name
/// itself in tenant `default` (so data written before tenants existed is that
/// tenant's, unchanged), `<tenant>~<name>` in any other. No name holds a `~`, so
/// two tenants' keys never meet, in the catalog or in the index. The API shows
/// the name alone.
#[derive(Debug, Clone, PartialEq, Eq, Hash, ToSchema)]
#[schema(value_type = String, pattern = "^[a-z0-9_-]{1,64}$", example = "default")]
pub struct CollectionName(Key);

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    key: String,
    /// Where the name starts in the key (0 in tenant `default`).
    name_start: usize,
}

pub const DEFAULT_COLLECTION: &str = "default";
const TENANT_SEPARATOR: char = '~';

#[derive(Debug, thiserror::Error)]
#[error("collection names are 1 to 64 characters of a-z, 0-9, '_' and '-'; got {0:?}")]
pub struct InvalidCollectionName(pub String);

/// The syntax of collection and tenant names.
pub(crate) fn is_name(raw: &str) -> bool {
    (1..=64).contains(&raw.len())
        && raw
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

impl CollectionName {
    /// A name in tenant `default`.
    pub fn parse(raw: &str) -> Result<Self, InvalidCollectionName> {
        Self::in_tenant(&TenantName::default_tenant(), raw)
    }

    /// A name in `tenant`.
    pub fn in_tenant(tenant: &TenantName, raw: &str) -> Result<Self, InvalidCollectionName> {
        if !is_name(raw) {
            return Err(InvalidCollectionName(raw.chars().take(80).collect()));
        }
        Ok(Self(if tenant.is_default() {
            Key {
                key: raw.to_string(),
                name_start: 0,
            }
        } else {
            Key {
                key: format!("{tenant}{TENANT_SEPARATOR}{raw}"),
                name_start: tenant.as_str().len() + 1,
            }
        }))
    }

    /// A collection by its stored key.
    pub fn from_key(key: &str) -> Result<Self, InvalidCollectionName> {
        match key.split_once(TENANT_SEPARATOR) {
            None => Self::parse(key),
            Some((tenant, name)) => {
                let tenant =
                    TenantName::parse(tenant).map_err(|_| InvalidCollectionName(key.chars().take(80).collect()))?;
                Self::in_tenant(&tenant, name)
            }
        }
    }

    /// `default` of tenant `default`.
    pub fn default_collection() -> Self {
        Self::default_in(&TenantName::default_tenant())
    }

    /// The `default` collection every tenant has.
    pub fn default_in(tenant: &TenantName) -> Self {
        Self::in_tenant(tenant, DEFAULT_COLLECTION).unwrap_or_else(|_| unreachable!("`default` is a valid name"))
    }

    pub fn is_default(&self) -> bool {
        self.name() == DEFAULT_COLLECTION
    }

    /// The stored key: what the catalog and the index know it by.
    pub fn as_str(&self) -> &str {
        &self.0.key
    }

    /// The name within its tenant, as the API shows it.
    pub fn name(&self) -> &str {
        &self.0.key[self.0.name_start..]
    }

    pub fn tenant(&self) -> TenantName {
        match self.0.name_start {
            0 => TenantName::default_tenant(),
            n => TenantName::parse(&self.0.key[..n - 1]).unwrap_or_else(|_| unreachable!("checked when made")),
        }
    }
}

impl Serialize for CollectionName {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.name())
    }
}

/// A bare name, in tenant `default`; callers that know the tenant re-qualify it.
impl<'de> Deserialize<'de> for CollectionName {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(deserializer)?;
        Self::parse(&raw).map_err(serde::de::Error::custom)
    }
}

/// The key, for storage names and logs.
impl fmt::Display for CollectionName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.key)
    }
}

/// Which embedding model produced a collection's dense vectors. Vectors of two
/// models must never be mixed in one index.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct EmbeddingModel {
    /// e.g. `sentence-transformers/all-MiniLM-L6-v2`
    pub name: String,
    /// How it runs, e.g. `candle-f32`.
    pub variant: String,
    pub dimension: usize,
}

impl EmbeddingModel {
    /// Vectors of `other` can be searched together with ours: same model, same
    /// dimension. The variant (f32 on candle, int8 on ONNX Runtime) only nudges
    /// the vectors (cosine > 0.98 between them here), so it may differ.
    pub fn same_space(&self, other: &EmbeddingModel) -> bool {
        self.name == other.name && self.dimension == other.dimension
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Collection {
    pub name: CollectionName,
    pub description: Option<String>,
    /// `null` when the collection was created without dense vectors (BM25 alone).
    pub embedding_model: Option<EmbeddingModel>,
    pub created_at: DateTime<Utc>,
}

impl Collection {
    /// The stored model and the server's, when the server's cannot search or fill
    /// this collection's vectors. A server without a model is no mismatch: it
    /// works on BM25 alone.
    pub fn model_mismatch(&self, current: Option<&EmbeddingModel>) -> Option<Box<ModelMismatch>> {
        match (&self.embedding_model, current) {
            (Some(stored), Some(current)) if !stored.same_space(current) => Some(Box::new(ModelMismatch {
                collection: self.name.clone(),
                stored: stored.clone(),
                current: current.clone(),
            })),
            _ => None,
        }
    }
}

/// A collection whose vectors come from another model than the server runs: it
/// cannot be searched or filled until it is re-indexed. The one rule and its
/// message, for requests (409) and for jobs (a failed document).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error(
    "collection {:?} holds vectors of {} ({} dims), but the server runs {} ({} dims); re-index it \
     (POST /v1/collections/{}/reindex) or start the server with its model",
    .collection.name(), .stored.name, .stored.dimension, .current.name, .current.dimension, .collection.name()
)]
pub struct ModelMismatch {
    pub collection: CollectionName,
    pub stored: EmbeddingModel,
    pub current: EmbeddingModel,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_documented_pattern() {
        for good in ["default", "a", "team-1_docs", &"x".repeat(64)] {
            assert!(CollectionName::parse(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "Upper",
            "with space",
            "dot.ted",
            "ü",
            &"x".repeat(65),
            "../etc",
            "a~b",
        ] {
            assert!(CollectionName::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn tenants_keep_their_collections_apart_by_key() {
        let acme = TenantName::parse("acme").unwrap();
        let theirs = CollectionName::in_tenant(&acme, "docs").unwrap();
        let ours = CollectionName::parse("docs").unwrap();
        assert_ne!(theirs, ours);
        assert_eq!((theirs.as_str(), theirs.name()), ("acme~docs", "docs"));
        assert_eq!(ours.as_str(), "docs");
        assert_eq!(theirs.tenant(), acme);
        assert_eq!(CollectionName::from_key("acme~docs").unwrap(), theirs);
        assert_eq!(CollectionName::from_key("docs").unwrap(), ours);
        assert!(CollectionName::from_key("Acme~docs").is_err());
        assert_eq!(serde_json::to_string(&theirs).unwrap(), "\"docs\"");
        assert!(CollectionName::default_in(&acme).is_default());
        // A default-tenant collection named like a tenant is not that tenant's.
        let named_acme = CollectionName::parse("acme").unwrap();
        assert_eq!(named_acme.tenant(), TenantName::default_tenant());
    }
}
