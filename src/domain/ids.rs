//! Identifiers. Each is its own type so a job id can never be passed where a
//! document id is expected.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

macro_rules! uuid_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ToSchema)]
        #[serde(transparent)]
        #[schema(value_type = String, format = Uuid)]
        pub struct $name(pub Uuid);

        impl $name {
            pub fn new() -> Self {
                Self(Uuid::new_v4())
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl From<$name> for Uuid {
            fn from(id: $name) -> Uuid {
                id.0
            }
        }

        impl FromStr for $name {
            type Err = uuid::Error;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s).map(Self)
            }
        }
    };
}

uuid_id!(
    /// A document: one uploaded file in one collection.
    DocumentId
);
uuid_id!(
    /// An ingestion job: the durable work of turning one document into chunks and vectors.
    JobId
);
uuid_id!(
    /// A chunk, which is also its point id in the vector index.
    ChunkId
);
uuid_id!(
    /// An API key (its record; the secret is never stored).
    KeyId
);
uuid_id!(
    /// A conversation: questions asked one after another in one collection.
    ConversationId
);
uuid_id!(
    /// A webhook: an endpoint told of a tenant's events.
    WebhookId
);

/// Namespace for chunk ids; any fixed UUID works, it only has to never change.
const CHUNK_NAMESPACE: Uuid = Uuid::from_u128(0x6f1c_2a4e_9d3b_4c55_8e2f_d0c9_a1b7_3e64);

impl ChunkId {
    /// Deterministic: the same document and index always give the same id, so a
    /// retried job overwrites its points instead of adding copies.
    pub fn for_chunk(document: DocumentId, index: u32) -> Self {
        let mut name = [0u8; 20];
        name[..16].copy_from_slice(document.0.as_bytes());
        name[16..].copy_from_slice(&index.to_be_bytes());
        Self(Uuid::new_v5(&CHUNK_NAMESPACE, &name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunk_ids_are_deterministic_and_distinct() {
        let doc = DocumentId::new();
        assert_eq!(ChunkId::for_chunk(doc, 3), ChunkId::for_chunk(doc, 3));
        assert_ne!(ChunkId::for_chunk(doc, 3), ChunkId::for_chunk(doc, 4));
        assert_ne!(ChunkId::for_chunk(doc, 3), ChunkId::for_chunk(DocumentId::new(), 3));
        assert_eq!(ChunkId::for_chunk(doc, 0).0.get_version_num(), 5);
    }
}
