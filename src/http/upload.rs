//! Reading an upload's multipart body: `file` parts streamed to staging files,
//! one optional `metadata` part, one optional `access` part (a JSON array of
//! principals). Anything wrong throws away what was staged.

use std::path::Path;

use actix_multipart::{Field, Multipart, MultipartError};
use futures_util::TryStreamExt;

use super::problem::AppError;
use crate::domain::{MAX_METADATA_BYTES, Metadata};
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

pub async fn read(payload: Multipart, staging: &Path, max_file_bytes: u64) -> Result<Upload, AppError> {
    let mut files = Vec::new();
    match read_parts(payload, staging, max_file_bytes, &mut files).await {
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
    max_file_bytes: u64,
    files: &mut Vec<StagedFile>,
) -> Result<Fields, AppError> {
    let mut fields = Fields::default();
    while let Some(field) = payload.try_next().await.map_err(multipart_error)? {
        let name = field.name().unwrap_or_default().to_string();
        match name.as_str() {
            "file" => {
                if files.len() == MAX_FILES_PER_REQUEST {
                    return Err(AppError::InvalidMultipart(format!(
                        "at most {MAX_FILES_PER_REQUEST} files per request"
                    )));
                }
                files.push(stage_file(field, staging, max_file_bytes).await?);
            }
            "metadata" => {
                if fields.metadata.is_some() {
                    return Err(AppError::InvalidMultipart("more than one `metadata` part".into()));
                }
                let raw = read_small(field, MAX_METADATA_BYTES).await?;
                fields.metadata = Some(Metadata::parse(&raw).map_err(|e| AppError::InvalidMetadata(e.to_string()))?);
            }
            "access" => {
                if fields.access.is_some() {
                    return Err(AppError::InvalidMultipart("more than one `access` part".into()));
                }
                let raw = read_small(field, MAX_METADATA_BYTES).await?;
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

async fn stage_file(mut field: Field, staging: &Path, limit: u64) -> Result<StagedFile, AppError> {
    let filename = clean_filename(field.content_disposition().and_then(|cd| cd.get_filename()));
    let mut stager = FileStager::create(staging, limit).await.map_err(staging_error)?;
    loop {
        let chunk = match field.try_next().await {
            Ok(Some(chunk)) => chunk,
            Ok(None) => break,
            Err(e) => {
                stager.abort().await;
                return Err(multipart_error(e));
            }
        };
        if let Err(e) = stager.write(&chunk).await {
            stager.abort().await;
            return Err(staging_error(e));
        }
    }
    stager.finish(filename).await.map_err(staging_error)
}

async fn read_small(mut field: Field, limit: usize) -> Result<Vec<u8>, AppError> {
    let mut bytes = Vec::new();
    while let Some(chunk) = field.try_next().await.map_err(multipart_error)? {
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
