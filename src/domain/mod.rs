//! Plain types shared by every layer: what a collection, document, chunk, job and
//! answer are. No I/O here.

/// An enum stored and shown as text: `as_str` and `FromStr` from one list.
macro_rules! text_enum {
    ($name:ident, $what:literal, { $($variant:ident => $text:literal),+ $(,)? }) => {
        impl $name {
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $text,)+
                }
            }
        }

        impl std::str::FromStr for $name {
            type Err = String;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($text => Ok(Self::$variant),)+
                    other => Err(format!(concat!("unknown ", $what, " {:?}"), other)),
                }
            }
        }
    };
}

mod access;
mod answer;
mod audit;
mod chunk;
mod collection;
mod conversation;
mod document;
mod filter;
mod fusion;
mod ids;
mod job;
mod layout;
mod webhook;

pub use access::{
    Access, ApiKey, DEFAULT_TENANT, InvalidTenantName, NewApiKey, Principal, QuotaExceeded, Readers, Role, Tenant,
    TenantName, TenantQuota, TenantUsage,
};
pub use answer::{Answer, AnswerMode, Citation, SearchHit, Timings};
pub use audit::{AuditEntry, AuditQuery};
pub use chunk::{Chunk, PageBreak, page_at, page_text};
pub use collection::{
    Collection, CollectionName, DEFAULT_COLLECTION, EmbeddingModel, InvalidCollectionName, ModelMismatch,
};
pub use conversation::{Conversation, NewTurn, Turn};
pub use document::{
    ContentType, Document, DocumentStatus, InvalidMetadata, MAX_METADATA_BYTES, Metadata, NewDocument, is_metadata_key,
};
pub use filter::{Filter, MetadataValue};
pub use fusion::Fusion;
pub use ids::{ChunkId, ConversationId, DocumentId, JobId, KeyId, WebhookId};
pub use job::{Job, JobKind, JobProgress, JobStage, JobStatus};
pub use layout::{ChunkLayout, PageGeometry, PageSize, PageSource, QuoteBox, ReadMethod, Rect, WordBox};
pub use webhook::{AttemptOutcome, Delivery, DeliveryStatus, Webhook, WebhookEvent};
