//! Plain types shared by every layer: what a collection, document, chunk, job and
//! answer are. No I/O here.

mod answer;
mod chunk;
mod collection;
mod document;
mod filter;
mod ids;
mod job;

pub use answer::{Answer, AnswerMode, Citation, SearchHit, Timings};
pub use chunk::{page_at, Chunk, PageBreak};
pub use collection::{
    Collection, CollectionName, EmbeddingModel, InvalidCollectionName, DEFAULT_COLLECTION,
};
pub use document::{
    is_metadata_key, ContentType, Document, DocumentStatus, InvalidMetadata, Metadata, NewDocument,
    MAX_METADATA_BYTES,
};
pub use filter::{Filter, MetadataValue};
pub use ids::{ChunkId, DocumentId, JobId};
pub use job::{Job, JobKind, JobProgress, JobStage, JobStatus};
