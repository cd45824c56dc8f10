use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{CollectionName, DocumentId, JobId};

/// The formats docqa reads, recognised by content, never by file name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub enum ContentType {
    #[serde(rename = "application/pdf")]
    Pdf,
    #[serde(rename = "text/plain")]
    PlainText,
    #[serde(rename = "text/markdown")]
    Markdown,
    #[serde(rename = "text/html")]
    Html,
    #[serde(rename = "text/csv")]
    Csv,
    #[serde(rename = "application/vnd.openxmlformats-officedocument.wordprocessingml.document")]
    Docx,
    #[serde(rename = "application/vnd.openxmlformats-officedocument.presentationml.presentation")]
    Pptx,
    #[serde(rename = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")]
    Xlsx,
    #[serde(rename = "application/msword")]
    Doc,
    #[serde(rename = "application/vnd.ms-powerpoint")]
    Ppt,
    #[serde(rename = "application/vnd.ms-excel")]
    Xls,
    #[serde(rename = "application/vnd.oasis.opendocument.text")]
    Odt,
    #[serde(rename = "application/vnd.oasis.opendocument.presentation")]
    Odp,
    #[serde(rename = "application/vnd.oasis.opendocument.spreadsheet")]
    Ods,
    #[serde(rename = "image/png")]
    Png,
    #[serde(rename = "image/jpeg")]
    Jpeg,
    #[serde(rename = "image/tiff")]
    Tiff,
    #[serde(rename = "image/webp")]
    Webp,
}

impl ContentType {
    pub const SUPPORTED: &'static [&'static str] = &[
        "application/pdf",
        "text/plain",
        "text/markdown",
        "text/html",
        "text/csv",
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        "application/vnd.openxmlformats-officedocument.presentationml.presentation",
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        "application/msword",
        "application/vnd.ms-powerpoint",
        "application/vnd.ms-excel",
        "application/vnd.oasis.opendocument.text",
        "application/vnd.oasis.opendocument.presentation",
        "application/vnd.oasis.opendocument.spreadsheet",
        "image/png",
        "image/jpeg",
        "image/tiff",
        "image/webp",
    ];

    pub fn mime(self) -> &'static str {
        self.as_str()
    }

    /// Whether reading it runs a parser (PDF, HTML, Office, OpenDocument), which
    /// may crash or hang on hostile input, rather than a UTF-8 decode.
    pub fn needs_parser(self) -> bool {
        !matches!(self, Self::PlainText | Self::Markdown)
    }

    /// Images: their text is got by OCR.
    pub fn is_image(self) -> bool {
        matches!(self, Self::Png | Self::Jpeg | Self::Tiff | Self::Webp)
    }
}

impl fmt::Display for ContentType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.mime())
    }
}

text_enum!(ContentType, "content type", {
    Pdf => "application/pdf",
    PlainText => "text/plain",
    Markdown => "text/markdown",
    Html => "text/html",
    Csv => "text/csv",
    Docx => "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    Pptx => "application/vnd.openxmlformats-officedocument.presentationml.presentation",
    Xlsx => "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    Doc => "application/msword",
    Ppt => "application/vnd.ms-powerpoint",
    Xls => "application/vnd.ms-excel",
    Odt => "application/vnd.oasis.opendocument.text",
    Odp => "application/vnd.oasis.opendocument.presentation",
    Ods => "application/vnd.oasis.opendocument.spreadsheet",
    Png => "image/png",
    Jpeg => "image/jpeg",
    Tiff => "image/tiff",
    Webp => "image/webp",
});

/// Where a document is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DocumentStatus {
    /// Accepted and stored, waiting for a worker.
    Queued,
    /// A worker is extracting, chunking and indexing it.
    Processing,
    /// Searchable.
    Ready,
    /// Could not be processed; `error` says why.
    Failed,
}

text_enum!(DocumentStatus, "document status", {
    Queued => "queued",
    Processing => "processing",
    Ready => "ready",
    Failed => "failed",
});

impl DocumentStatus {
    pub fn is_final(self) -> bool {
        matches!(self, Self::Ready | Self::Failed)
    }
}

/// User metadata attached to a document at upload: a JSON object whose keys are
/// `[A-Za-z0-9_-]{1,64}` (they become payload paths in the index).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(transparent)]
#[schema(value_type = Object, example = json!({"team": "legal", "year": 2024}))]
pub struct Metadata(pub serde_json::Map<String, serde_json::Value>);

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum InvalidMetadata {
    #[error("metadata must be a JSON object: {0}")]
    NotJson(String),
    #[error("metadata must be a JSON object, not {0}")]
    NotAnObject(&'static str),
    #[error("metadata key {0:?} must be 1 to 64 characters of A-Z, a-z, 0-9, '_' and '-'")]
    BadKey(String),
    #[error("metadata is limited to {MAX_METADATA_BYTES} bytes")]
    TooLarge,
    /// A database text column (Postgres) cannot hold U+0000, and no reader needs it.
    #[error("metadata values must not contain the NUL character (\\u0000)")]
    Nul,
}

pub const MAX_METADATA_BYTES: usize = 16 * 1024;

impl Metadata {
    pub fn parse(raw: &[u8]) -> Result<Self, InvalidMetadata> {
        if raw.len() > MAX_METADATA_BYTES {
            return Err(InvalidMetadata::TooLarge);
        }
        let value: serde_json::Value =
            serde_json::from_slice(raw).map_err(|e| InvalidMetadata::NotJson(e.to_string()))?;
        let serde_json::Value::Object(map) = value else {
            return Err(InvalidMetadata::NotAnObject(json_kind(&value)));
        };
        if let Some(bad) = map.keys().find(|k| !is_metadata_key(k)) {
            return Err(InvalidMetadata::BadKey(bad.chars().take(80).collect()));
        }
        if map.values().any(holds_nul) {
            return Err(InvalidMetadata::Nul);
        }
        Ok(Self(map))
    }
}

fn holds_nul(value: &serde_json::Value) -> bool {
    match value {
        serde_json::Value::String(s) => s.contains('\0'),
        serde_json::Value::Array(items) => items.iter().any(holds_nul),
        serde_json::Value::Object(map) => map.iter().any(|(k, v)| k.contains('\0') || holds_nul(v)),
        _ => false,
    }
}

pub fn is_metadata_key(key: &str) -> bool {
    (1..=64).contains(&key.len()) && key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

fn json_kind(value: &serde_json::Value) -> &'static str {
    match value {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Document {
    pub id: DocumentId,
    pub collection: CollectionName,
    pub filename: String,
    pub content_type: ContentType,
    pub bytes: u64,
    /// Hex sha256 of the uploaded bytes; one collection holds each content once.
    pub sha256: String,
    /// Known once extracted.
    pub pages: Option<u32>,
    /// Known once chunked.
    pub chunks: Option<u32>,
    pub status: DocumentStatus,
    pub error: Option<String>,
    pub metadata: Metadata,
    /// The principals (`user:…`, `group:…`) who may read it; empty: everyone
    /// of the tenant.
    pub access: Vec<String>,
    /// The ingestion job that processes this document.
    pub job_id: JobId,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// How the text of its pages was got (text layer or OCR), once ready.
    pub page_sources: Vec<super::PageSource>,
}

/// What the upload hands to the catalog: a file already on disk, not yet a row.
#[derive(Debug, Clone)]
pub struct NewDocument {
    pub id: DocumentId,
    pub job_id: JobId,
    pub collection: CollectionName,
    pub filename: String,
    pub content_type: ContentType,
    pub bytes: u64,
    pub sha256: String,
    pub metadata: Metadata,
    pub access: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_must_be_an_object_with_plain_keys() {
        assert!(Metadata::parse(br#"{"team":"legal","year":2024}"#).is_ok());
        assert_eq!(Metadata::parse(b"[1,2]"), Err(InvalidMetadata::NotAnObject("an array")));
        assert!(matches!(Metadata::parse(b"{nope"), Err(InvalidMetadata::NotJson(_))));
        assert!(matches!(
            Metadata::parse(br#"{"a.b":1}"#),
            Err(InvalidMetadata::BadKey(_))
        ));
        assert_eq!(
            Metadata::parse(br#"{"team":{"tags":["ok","a\u0000b"]}}"#),
            Err(InvalidMetadata::Nul)
        );
    }
}
