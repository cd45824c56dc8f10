//! Ingestion: uploads, the job queue, parsing and chunking.

use std::path::PathBuf;
use std::time::Duration;

use super::ConfigError;
use super::vars::Vars;
use crate::domain::TenantQuota;

#[derive(Debug, Clone)]
pub struct IngestSettings {
    /// Jobs that run at once.
    pub workers: usize,
    /// Uploads are refused (429) while this many jobs wait.
    pub queue_max: u64,
    /// A file larger than this is refused (413).
    pub max_upload_bytes: u64,
    /// How long `?wait=true` waits for the documents of an upload.
    pub wait_timeout: Duration,
    /// `TENANT_MAX_BYTES`, `TENANT_MAX_DOCUMENTS` (0 or unset: unlimited).
    pub tenant_quota: TenantQuota,
}

impl IngestSettings {
    pub fn parse(vars: &Vars) -> Result<Self, ConfigError> {
        Ok(Self {
            workers: vars.range("INGEST_WORKERS", 2, 1, 64)?,
            queue_max: vars.range("INGEST_QUEUE_MAX", 10_000, 1, 10_000_000)?,
            max_upload_bytes: vars.range("MAX_UPLOAD_BYTES", 100 * 1024 * 1024, 1, u64::MAX / 2)?,
            wait_timeout: Duration::from_secs(vars.range("DOCQA_WAIT_TIMEOUT_SECS", 600, 1, 86_400)?),
            tenant_quota: TenantQuota {
                max_bytes: Some(vars.range("TENANT_MAX_BYTES", 0, 0, u64::MAX / 2)?).filter(|&n| n > 0),
                max_documents: Some(vars.range("TENANT_MAX_DOCUMENTS", 0, 0, u64::MAX / 2)?).filter(|&n| n > 0),
            },
        })
    }
}

#[derive(Debug, Clone)]
pub struct ChunkSettings {
    pub tokens: usize,
    pub overlap: usize,
}

impl ChunkSettings {
    pub fn parse(vars: &Vars) -> Result<Self, ConfigError> {
        let tokens = vars.range("CHUNK_TOKENS", 200, 16, 8192)?;
        let overlap = vars.range("CHUNK_OVERLAP", 30, 0, 4096)?;
        if overlap >= tokens {
            return Err(ConfigError::Invalid {
                var: "CHUNK_OVERLAP",
                value: overlap.to_string(),
                message: format!("must be smaller than CHUNK_TOKENS ({tokens})"),
            });
        }
        Ok(Self { tokens, overlap })
    }
}

/// Where parsers run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExtractIsolation {
    /// A child process when the docqa executable answers, else a thread (logged).
    Auto,
    /// A child process, or refuse to start.
    Process,
    /// A low-priority thread of the server (a crash that aborts takes it down).
    Thread,
}

#[derive(Debug, Clone)]
pub struct ExtractSettings {
    /// A document whose extraction takes longer fails with `timeout`.
    pub timeout: Duration,
    pub isolation: ExtractIsolation,
    /// Address space a child may use.
    pub memory_mb: u64,
    /// `DOCQA_EXE`: the docqa binary children run (default: this process's own).
    pub exe: Option<PathBuf>,
}

impl ExtractSettings {
    pub fn parse(vars: &Vars) -> Result<Self, ConfigError> {
        Ok(Self {
            timeout: Duration::from_secs(vars.range("EXTRACT_TIMEOUT_SECS", 120, 1, 3600)?),
            isolation: vars.choice(
                "EXTRACT_ISOLATION",
                &[
                    ("auto", ExtractIsolation::Auto),
                    ("process", ExtractIsolation::Process),
                    ("thread", ExtractIsolation::Thread),
                ],
            )?,
            memory_mb: vars.range("EXTRACT_MEMORY_MB", 2048, 64, 1 << 20)?,
            exe: vars.get("DOCQA_EXE").map(PathBuf::from),
        })
    }
}
