use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{CollectionName, DocumentId, JobId};

/// What a job does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum JobKind {
    /// Extract, chunk, embed and index one uploaded document.
    Ingest,
    /// Re-embed every chunk of a collection into a fresh index and swap it in.
    Reindex,
}

text_enum!(JobKind, "job kind", {
    Ingest => "ingest",
    Reindex => "reindex",
});

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum JobStatus {
    Queued,
    Running,
    Succeeded,
    Failed,
}

text_enum!(JobStatus, "job status", {
    Queued => "queued",
    Running => "running",
    Succeeded => "succeeded",
    Failed => "failed",
});

impl JobStatus {
    pub fn is_final(self) -> bool {
        matches!(self, Self::Succeeded | Self::Failed)
    }
}

/// The stage a job is in, in the order they run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum JobStage {
    Queued,
    Extract,
    Chunk,
    Embed,
    Index,
    Done,
}

/// How far a job got: the current stage and its units (pages for extract,
/// chunks for embed and index).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct JobProgress {
    pub stage: JobStage,
    pub done: u64,
    pub total: u64,
    /// 0.0 to 1.0 over the whole job.
    pub fraction: f32,
}

impl JobProgress {
    pub fn queued() -> Self {
        Self::at(JobStage::Queued, 0, 0)
    }

    pub fn done() -> Self {
        Self::at(JobStage::Done, 1, 1)
    }

    /// Progress within a stage, mapped onto the job as a whole: extraction is the
    /// first tenth, chunking the next, embedding most of the rest.
    pub fn at(stage: JobStage, done: u64, total: u64) -> Self {
        let (start, span) = match stage {
            JobStage::Queued => (0.0, 0.0),
            JobStage::Extract => (0.0, 0.1),
            JobStage::Chunk => (0.1, 0.05),
            JobStage::Embed => (0.15, 0.75),
            JobStage::Index => (0.9, 0.1),
            JobStage::Done => (1.0, 0.0),
        };
        let within = if total == 0 { 0.0 } else { done as f32 / total as f32 };
        Self {
            stage,
            done,
            total,
            fraction: (start + span * within).min(1.0),
        }
    }
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Job {
    pub id: JobId,
    pub kind: JobKind,
    pub collection: CollectionName,
    /// The document an ingest job processes; `null` for a re-index.
    pub document_id: Option<DocumentId>,
    pub status: JobStatus,
    pub progress: JobProgress,
    pub error: Option<String>,
    /// How many times a worker started it (more than one after a crash or a retry).
    pub attempts: u32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}
