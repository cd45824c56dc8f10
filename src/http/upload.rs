//! Reading an upload's multipart body: `file` parts streamed to staging files,
//! one optional `metadata` part, one optional `access` part (a JSON array of
//! principals). Anything wrong throws away what was staged. The body is held to
//! its limits as it arrives: its total size, a file's type once its head is in,
//! and its pace (a body that stalls or trickles is cut off).

use std::path::Path;
use std::time::Instant;

use actix_multipart::{Field, Multipart, MultipartError};
use futures_util::TryStreamExt;

use super::problem::AppError;
use crate::config::UploadLimits;
use crate::domain::{MAX_METADATA_BYTES, Metadata};
use crate::ingest::AcceptError;
use crate::ingest::staging::{FileStager, StagedFile, StagingError, clean_filename};
use crate::service::documents::parse_access;

/// More files than this in one request is a mistake, not a batch.
pub const MAX_FILES_PER_REQUEST: usize = 100;

pub struct Upload {
    pub files: Vec<StagedFile>,
    pub metadata: Metadata,
    pub access: Vec<String>,
}

/// The form's small parts.
#[derive(Default)]
struct Fields {
    metadata: Option<Metadata>,
    access: Option<Vec<String>>,
}

/// How much of the body has arrived, and how fast.
struct Pace {
    limits: UploadLimits,
    started: Instant,
    bytes: u64,
}

impl Pace {
    /// The next item of the body, unless nothing comes for the idle timeout.
    async fn next<T>(&self, item: impl Future<Output = T>) -> Result<T, AppError> {
        tokio::time::timeout(self.limits.idle_timeout, item).await.map_err(|_| {
            AppError::BodyTooSlow(format!(
                "no bytes arrived for {} s (UPLOAD_IDLE_TIMEOUT_SECS)",
                self.limits.idle_timeout.as_secs()
            ))
        })
    }

    /// Counts `n` bytes more: past the request's limit, or arriving slower
    /// than the slowest pace allowed, the body is refused.
    fn received(&mut self, n: usize) -> Result<(), AppError> {
        self.bytes += n as u64;
        if self.bytes > self.limits.max_request_bytes {
            return Err(AppError::BodyTooLarge {
                limit: self.limits.max_request_bytes,
            });
        }
        let elapsed = self.started.elapsed();
        if elapsed > UploadLimits::RATE_GRACE
            && (self.bytes as f64) < self.limits.min_bytes_per_sec as f64 * elapsed.as_secs_f64()
        {
            return Err(AppError::BodyTooSlow(format!(
                "{} bytes in {} s is slower than {} bytes a second (UPLOAD_MIN_BYTES_PER_SEC)",
                self.bytes,
                elapsed.as_secs(),
                self.limits.min_bytes_per_sec
            )));
        }
        Ok(())
    }
}

pub async fn read(payload: Multipart, staging: &Path, limits: UploadLimits) -> Result<Upload, AppError> {
    let mut files = Vec::new();
    let mut pace = Pace {
        limits,
        started: Instant::now(),
        bytes: 0,
    };
    match read_parts(payload, staging, &mut pace, &mut files).await {
        Ok(fields) => Ok(Upload {
            files,
            metadata: fields.metadata.unwrap_or_default(),
            access: fields.access.unwrap_or_default(),
        }),
        Err(e) => {
            for file in &files {
                file.discard().await;
            }
            Err(e)
        }
    }
}

async fn read_parts(
    mut payload: Multipart,
    staging: &Path,
    pace: &mut Pace,
    files: &mut Vec<StagedFile>,
) -> Result<Fields, AppError> {
    let mut fields = Fields::default();
    while let Some(field) = pace.next(payload.try_next()).await?.map_err(multipart_error)? {
        let name = field.name().unwrap_or_default().to_string();
        match name.as_str() {
            "file" => {
                if files.len() == MAX_FILES_PER_REQUEST {
                    return Err(AppError::InvalidMultipart(format!(
                        "at most {MAX_FILES_PER_REQUEST} files per request"
                    )));
                }
                files.push(stage_file(field, staging, pace).await?);
            }
            "metadata" => {
                if fields.metadata.is_some() {
                    return Err(AppError::InvalidMultipart("more than one `metadata` part".into()));
                }
                let raw = read_small(field, MAX_METADATA_BYTES, pace).await?;
                fields.metadata = Some(Metadata::parse(&raw).map_err(|e| AppError::InvalidMetadata(e.to_string()))?);
            }
            "access" => {
                if fields.access.is_some() {
                    return Err(AppError::InvalidMultipart("more than one `access` part".into()));
                }
                let raw = read_small(field, MAX_METADATA_BYTES, pace).await?;
                let principals: Vec<String> = serde_json::from_slice(&raw).map_err(|e| {
                    AppError::InvalidRequest(format!("access: a JSON array of principals is expected: {e}"))
                })?;
                fields.access = Some(parse_access(&principals).map_err(AppError::InvalidRequest)?);
            }
            other => {
                return Err(AppError::InvalidMultipart(format!(
                    "unexpected part {:?}; send files as `file` parts, an optional `metadata` and an optional `access` part",
                    other.chars().take(64).collect::<String>()
                )));
            }
        }
    }
    Ok(fields)
}

async fn stage_file(mut field: Field, staging: &Path, pace: &mut Pace) -> Result<StagedFile, AppError> {
    let filename = clean_filename(field.content_disposition().and_then(|cd| cd.get_filename()));
    let mut stager = FileStager::create(staging, pace.limits.max_file_bytes)
        .await
        .map_err(staging_error)?;
    loop {
        let received = pace
            .next(field.try_next())
            .await
            .and_then(|chunk| chunk.map_err(multipart_error))
            .and_then(|chunk| {
                if let Some(chunk) = &chunk {
                    pace.received(chunk.len())?;
                }
                Ok(chunk)
            });
        let chunk = match received {
            Ok(Some(chunk)) => chunk,
            Ok(None) => break,
            Err(e) => {
                stager.abort().await;
                return Err(e);
            }
        };
        if let Err(e) = stager.write(&chunk).await {
            stager.abort().await;
            return Err(staging_error(e));
        }
        // Refused by its first bytes, before the rest is read.
        if let Some(detected) = stager.refused_early() {
            stager.abort().await;
            return Err(AcceptError::UnsupportedMediaType {
                filename,
                detected: detected.to_string(),
            }
            .into());
        }
    }
    stager.finish(filename).await.map_err(staging_error)
}

async fn read_small(mut field: Field, limit: usize, pace: &mut Pace) -> Result<Vec<u8>, AppError> {
    let mut bytes = Vec::new();
    while let Some(chunk) = pace.next(field.try_next()).await?.map_err(multipart_error)? {
        pace.received(chunk.len())?;
        bytes.extend_from_slice(&chunk);
        if bytes.len() > limit {
            return Err(AppError::InvalidMetadata(format!(
                "metadata is limited to {limit} bytes"
            )));
        }
    }
    Ok(bytes)
}

fn staging_error(e: StagingError) -> AppError {
    match e {
        StagingError::TooLarge { limit } => AppError::PayloadTooLarge { limit },
        StagingError::Io(e) => AppError::Internal(format!("staging an upload: {e}")),
    }
}

fn multipart_error(e: MultipartError) -> AppError {
    match e {
        MultipartError::ContentTypeMissing
        | MultipartError::ContentTypeParse
        | MultipartError::ContentTypeIncompatible
        | MultipartError::BoundaryMissing => {
            AppError::NotMultipart(format!("{e}; upload files as multipart/form-data `file` parts"))
        }
        other => AppError::InvalidMultipart(other.to_string()),
    }
}
