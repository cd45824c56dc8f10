//! `AppError`: every way a request can fail, and the one place that maps each to
//! an HTTP status and an RFC 9457 `application/problem+json` body with a stable
//! `type`.

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;
use utoipa::ToSchema;

use crate::catalog::CatalogError;
use crate::domain::{ContentType, EmbeddingModel};
use crate::embed::EmbedError;
use crate::index::IndexError;
use crate::ingest::UploadedDocument;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("the body is not valid JSON: {0}")]
    MalformedJson(String),
    #[error("{0}")]
    InvalidRequest(String),
    #[error("no collection named {0:?}")]
    CollectionNotFound(String),
    #[error("no document {0} in this collection")]
    DocumentNotFound(String),
    #[error("no job {0}")]
    JobNotFound(String),
    #[error("no route {0}")]
    RouteNotFound(String),
    #[error("a collection named {0:?} already exists")]
    CollectionExists(String),
    #[error("the default collection always exists and cannot be deleted")]
    DefaultCollectionIsPermanent,
    #[error("the request has no `file` part")]
    NoFile,
    #[error("{filename:?} is empty")]
    EmptyFile { filename: String },
    #[error("{filename:?} looks like {detected}, which is not supported")]
    UnsupportedMediaType { filename: String, detected: String },
    #[error("expected multipart/form-data: {0}")]
    NotMultipart(String),
    #[error("expected a JSON body: {0}")]
    NotJson(String),
    #[error("a file is larger than the {limit}-byte limit (MAX_UPLOAD_BYTES)")]
    PayloadTooLarge { limit: u64 },
    #[error("the body is larger than the {limit}-byte limit")]
    BodyTooLarge { limit: u64 },
    #[error("invalid multipart body: {0}")]
    InvalidMultipart(String),
    #[error("invalid metadata: {0}")]
    InvalidMetadata(String),
    #[error("no file of the request could be processed")]
    IngestionFailed { documents: Vec<UploadedDocument> },
    #[error(
        "collection {collection:?} holds vectors of {stored}, but the server runs {current}; re-index it (POST /v1/collections/{collection}/reindex) or start the server with its model"
    )]
    EmbeddingModelMismatch {
        collection: String,
        stored: String,
        current: String,
    },
    #[error("job {0} has not failed; only a failed job can be retried")]
    JobNotRetryable(String),
    #[error("the ingestion queue is full ({queued} jobs waiting, INGEST_QUEUE_MAX {limit}); retry later")]
    QueueFull { queued: u64, limit: u64 },
    #[error("re-indexing needs an embedding model, and the server runs without one (BM25 alone)")]
    ReindexNeedsModel,
    #[error("generative answers need an LLM: set LLM_BASE_URL or LLM_API_KEY, or ask with mode \"extractive\"")]
    LlmNotConfigured,
    #[error("the LLM did not answer within {0} s")]
    LlmTimeout(u64),
    #[error("the LLM call failed: {0}")]
    LlmFailed(String),
    #[error("the LLM's answer was not the structured answer asked for: {0}")]
    LlmInvalidOutput(String),
    #[error("{0}")]
    LlmUnavailable(String),
    #[error("{what} is unavailable: {detail}")]
    Unavailable { what: &'static str, detail: String },
    #[error("internal error: {0}")]
    Internal(String),
}

impl AppError {
    /// The collection's vectors come from another model than the server's.
    pub fn model_mismatch(collection: &crate::domain::Collection, stored: &EmbeddingModel, current: &EmbeddingModel) -> Self {
        Self::EmbeddingModelMismatch {
            collection: collection.name.to_string(),
            stored: format!("{} ({} dims)", stored.name, stored.dimension),
            current: format!("{} ({} dims)", current.name, current.dimension),
        }
    }

    /// The stable problem type (a relative URI) and its short title.
    fn kind(&self) -> (&'static str, &'static str) {
        match self {
            Self::MalformedJson(_) => ("/problems/malformed-json", "Malformed JSON"),
            Self::InvalidRequest(_) => ("/problems/invalid-request", "Invalid request"),
            Self::CollectionNotFound(_) => ("/problems/collection-not-found", "Collection not found"),
            Self::DocumentNotFound(_) => ("/problems/document-not-found", "Document not found"),
            Self::JobNotFound(_) => ("/problems/job-not-found", "Job not found"),
            Self::RouteNotFound(_) => ("/problems/not-found", "Not found"),
            Self::CollectionExists(_) => ("/problems/collection-exists", "Collection exists"),
            Self::DefaultCollectionIsPermanent => ("/problems/default-collection", "Default collection"),
            Self::NoFile => ("/problems/missing-file", "No file"),
            Self::EmptyFile { .. } => ("/problems/empty-file", "Empty file"),
            Self::UnsupportedMediaType { .. } | Self::NotMultipart(_) | Self::NotJson(_) => {
                ("/problems/unsupported-media-type", "Unsupported media type")
            }
            Self::PayloadTooLarge { .. } | Self::BodyTooLarge { .. } => {
                ("/problems/payload-too-large", "Payload too large")
            }
            Self::InvalidMultipart(_) => ("/problems/invalid-multipart", "Invalid multipart body"),
            Self::InvalidMetadata(_) => ("/problems/invalid-metadata", "Invalid metadata"),
            Self::IngestionFailed { .. } => ("/problems/ingestion-failed", "Ingestion failed"),
            Self::EmbeddingModelMismatch { .. } => {
                ("/problems/embedding-model-mismatch", "Embedding model mismatch")
            }
            Self::ReindexNeedsModel => ("/problems/reindex-needs-model", "No embedding model"),
            Self::JobNotRetryable(_) => ("/problems/job-not-failed", "Job has not failed"),
            Self::QueueFull { .. } => ("/problems/queue-full", "Ingestion queue full"),
            Self::LlmNotConfigured => ("/problems/llm-not-configured", "No LLM configured"),
            Self::LlmTimeout(_) => ("/problems/llm-timeout", "LLM timeout"),
            Self::LlmFailed(_) => ("/problems/llm-error", "LLM error"),
            Self::LlmInvalidOutput(_) => ("/problems/llm-invalid-output", "LLM answer unusable"),
            Self::LlmUnavailable(_) => ("/problems/llm-unavailable", "LLM unavailable"),
            Self::Unavailable { .. } => ("/problems/service-unavailable", "Service unavailable"),
            Self::Internal(_) => ("/problems/internal", "Internal error"),
        }
    }

    pub fn problem_type(&self) -> &'static str {
        self.kind().0
    }

    /// The problem document for this error, logged under the current request id.
    pub fn problem(&self) -> Problem {
        let status = self.status_code();
        let (problem_type, title) = self.kind();
        let request_id = crate::http::request_id::current();
        let detail = match self {
            // Internals stay in the log; the caller gets the request id to quote.
            Self::Internal(_) => "the server failed; the log has details under this request id".to_string(),
            other => other.to_string(),
        };
        if status.is_server_error() {
            tracing::error!(%request_id, problem = problem_type, error = %self, "request failed");
        } else {
            tracing::info!(%request_id, problem = problem_type, error = %self, "request refused");
        }
        Problem {
            problem_type: problem_type.to_string(),
            title: title.to_string(),
            status: status.as_u16(),
            detail,
            request_id,
            documents: match self {
                Self::IngestionFailed { documents } => Some(documents.clone()),
                _ => None,
            },
            supported_types: matches!(self, Self::UnsupportedMediaType { .. } | Self::NotMultipart(_))
                .then(|| ContentType::SUPPORTED.iter().map(|s| s.to_string()).collect()),
            limit_bytes: match self {
                Self::PayloadTooLarge { limit } | Self::BodyTooLarge { limit } => Some(*limit),
                _ => None,
            },
        }
    }
}

/// An RFC 9457 problem document.
#[derive(Debug, Serialize, ToSchema)]
pub struct Problem {
    /// Stable, relative URI naming the kind of problem, e.g. `/problems/collection-not-found`.
    #[serde(rename = "type")]
    pub problem_type: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    /// Also in the `x-request-id` header and in the server log.
    pub request_id: String,
    /// For `ingestion-failed`: every document of the request and why it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub documents: Option<Vec<UploadedDocument>>,
    /// For `unsupported-media-type`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub supported_types: Option<Vec<String>>,
    /// For `payload-too-large`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit_bytes: Option<u64>,
}

impl ResponseError for AppError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::MalformedJson(_)
            | Self::NoFile
            | Self::EmptyFile { .. }
            | Self::InvalidMultipart(_)
            | Self::LlmNotConfigured => StatusCode::BAD_REQUEST,
            Self::InvalidRequest(_) | Self::InvalidMetadata(_) | Self::IngestionFailed { .. } => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            Self::CollectionNotFound(_)
            | Self::DocumentNotFound(_)
            | Self::JobNotFound(_)
            | Self::RouteNotFound(_) => StatusCode::NOT_FOUND,
            Self::CollectionExists(_)
            | Self::DefaultCollectionIsPermanent
            | Self::EmbeddingModelMismatch { .. }
            | Self::ReindexNeedsModel
            | Self::JobNotRetryable(_) => StatusCode::CONFLICT,
            Self::QueueFull { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::UnsupportedMediaType { .. } | Self::NotMultipart(_) | Self::NotJson(_) => {
                StatusCode::UNSUPPORTED_MEDIA_TYPE
            }
            Self::PayloadTooLarge { .. } | Self::BodyTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::LlmTimeout(_) => StatusCode::GATEWAY_TIMEOUT,
            Self::LlmFailed(_) | Self::LlmInvalidOutput(_) | Self::LlmUnavailable(_) => StatusCode::BAD_GATEWAY,
            Self::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let status = self.status_code();
        let problem = self.problem();
        let mut response = HttpResponse::build(status);
        response.insert_header((header::CONTENT_TYPE, HeaderValue::from_static("application/problem+json")));
        match self {
            Self::Unavailable { .. } => {
                response.insert_header((header::RETRY_AFTER, HeaderValue::from_static("5")));
            }
            Self::QueueFull { .. } => {
                response.insert_header((header::RETRY_AFTER, HeaderValue::from_static("30")));
            }
            _ => {}
        }
        response.json(problem)
    }
}

impl From<CatalogError> for AppError {
    fn from(err: CatalogError) -> Self {
        match err {
            CatalogError::Unavailable(detail) | CatalogError::Conflict(detail) => Self::Unavailable {
                what: "the catalog",
                detail,
            },
            other => Self::Internal(other.to_string()),
        }
    }
}

impl From<IndexError> for AppError {
    fn from(err: IndexError) -> Self {
        match err {
            IndexError::Unavailable(detail) => Self::Unavailable {
                what: "the vector index",
                detail,
            },
            // Its index is gone: the collection is being deleted.
            IndexError::MissingCollection(name) => Self::CollectionNotFound(name),
            other => Self::Internal(other.to_string()),
        }
    }
}

impl From<EmbedError> for AppError {
    fn from(err: EmbedError) -> Self {
        match err {
            EmbedError::Remote(detail) | EmbedError::ModelUnavailable(detail) => Self::Unavailable {
                what: "the embedding model",
                detail,
            },
            EmbedError::Inference(detail) => Self::Internal(detail),
        }
    }
}
