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
    /// How long `?wait=true` waits for the documents of an upload.
    pub wait_timeout: Duration,
    /// `TENANT_MAX_BYTES`, `TENANT_MAX_DOCUMENTS` (0 or unset: unlimited).
    pub tenant_quota: TenantQuota,
    /// `MAX_COLLECTIONS`: collections per tenant, `default` included.
    pub max_collections: u64,
    /// How upload bodies are received.
    pub uploads: UploadLimits,
}

/// What an upload request may take of the server while its body arrives.
#[derive(Debug, Clone, Copy)]
pub struct UploadLimits {
    /// `MAX_UPLOAD_BYTES`: one file.
    pub max_file_bytes: u64,
    /// `MAX_REQUEST_BYTES`: the whole body, all its parts; a larger declared
    /// `Content-Length` is refused before anything is read.
    pub max_request_bytes: u64,
    /// `MAX_CONCURRENT_UPLOADS`: bodies being received at once; more get 503.
    pub max_concurrent: usize,
    /// `UPLOAD_IDLE_TIMEOUT_SECS`: longest wait for the next bytes of a body.
    pub idle_timeout: Duration,
    /// `UPLOAD_MIN_BYTES_PER_SEC`: the slowest average a body may arrive at,
    /// judged after [`UploadLimits::RATE_GRACE`].
    pub min_bytes_per_sec: u64,
}

impl UploadLimits {
    /// A body is not judged by its rate in its first seconds (TCP slow start,
    /// a client that computes the next part).
    pub const RATE_GRACE: Duration = Duration::from_secs(10);
}

impl IngestSettings {
    pub fn parse(vars: &Vars) -> Result<Self, ConfigError> {
        Ok(Self {
            workers: vars.range("INGEST_WORKERS", 2, 1, 64)?,
            queue_max: vars.range("INGEST_QUEUE_MAX", 10_000, 1, 10_000_000)?,
            wait_timeout: Duration::from_secs(vars.range("DOCQA_WAIT_TIMEOUT_SECS", 600, 1, 86_400)?),
            tenant_quota: TenantQuota {
                max_bytes: Some(vars.range("TENANT_MAX_BYTES", 0, 0, u64::MAX / 2)?).filter(|&n| n > 0),
                max_documents: Some(vars.range("TENANT_MAX_DOCUMENTS", 0, 0, u64::MAX / 2)?).filter(|&n| n > 0),
            },
            max_collections: vars.range("MAX_COLLECTIONS", 1_000, 1, 1_000_000)?,
            uploads: UploadLimits {
                max_file_bytes: vars.range("MAX_UPLOAD_BYTES", 100 * 1024 * 1024, 1, u64::MAX / 2)?,
                max_request_bytes: vars.range("MAX_REQUEST_BYTES", 256 * 1024 * 1024, 1, u64::MAX / 2)?,
                max_concurrent: vars.range("MAX_CONCURRENT_UPLOADS", 32, 1, 100_000)?,
                idle_timeout: Duration::from_secs(vars.range("UPLOAD_IDLE_TIMEOUT_SECS", 30, 1, 3600)?),
                min_bytes_per_sec: vars.range("UPLOAD_MIN_BYTES_PER_SEC", 1024, 0, u64::MAX / 2)?,
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
    /// `MAX_PAGES`: a PDF with more pages fails before any is read.
    pub max_pages: usize,
    /// `MAX_DOCUMENT_CHARS`: a document whose text is longer fails.
    pub max_chars: usize,
    /// `OCR_COMMAND`: Tesseract's command-line program.
    pub ocr_command: PathBuf,
    /// `OCR_LANGUAGES`: Tesseract language codes joined by `+` ("eng", "eng+deu").
    pub ocr_languages: String,
    /// `OCR_MAX_PAGES`: pages of one document OCR reads, at most.
    pub ocr_max_pages: usize,
    /// `OCR_TIMEOUT_SECS`: all the OCR of one document, at most.
    pub ocr_timeout: Duration,
}

/// Language codes as Tesseract names its data files, joined by `+`.
fn ocr_languages(raw: &str) -> Result<String, ConfigError> {
    let valid = |code: &str| !code.is_empty() && code.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if raw.split('+').all(valid) {
        Ok(raw.to_string())
    } else {
        Err(ConfigError::Invalid {
            var: "OCR_LANGUAGES",
            value: raw.to_string(),
            message: "expected Tesseract language codes joined by '+', e.g. eng or eng+deu".into(),
        })
    }
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
            max_pages: vars.range("MAX_PAGES", 5_000, 1, 10_000_000)?,
            max_chars: vars.range("MAX_DOCUMENT_CHARS", 20_000_000, 1_000, 1_000_000_000)?,
            ocr_command: PathBuf::from(vars.get("OCR_COMMAND").unwrap_or("tesseract")),
            ocr_languages: ocr_languages(vars.get("OCR_LANGUAGES").unwrap_or("eng"))?,
            ocr_max_pages: vars.range("OCR_MAX_PAGES", 500, 1, 1_000_000)?,
            ocr_timeout: Duration::from_secs(vars.range("OCR_TIMEOUT_SECS", 1800, 1, 86_400)?),
        })
    }
}
