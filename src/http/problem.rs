//! `AppError`: every way a request can fail, and the one place that maps each to
//! an HTTP status and an RFC 9457 `application/problem+json` body with a stable
//! `type`. Services answer with errors of their own, which it wraps (their
//! messages are theirs); what only HTTP knows (a body that is not JSON, a
//! multipart part too large) it says itself.

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;
use utoipa::ToSchema;

use crate::answer::AnswerError;
use crate::auth::AuthError;
use crate::auth::audit::AuditError;
use crate::auth::keys::KeysError;
use crate::catalog::CatalogError;
use crate::domain::{ContentType, QuotaExceeded};
use crate::embed::EmbedError;
use crate::index::IndexError;
use crate::ingest::{AcceptError, UploadedDocument};
use crate::retrieve::RetrieveError;
use crate::service::chat::ChatError;
use crate::service::collections::CollectionsError;
use crate::service::conversations::ConversationsError;
use crate::service::documents::DocumentsError;
use crate::service::tenants::TenantsError;
use crate::store::StoreError;
use crate::webhooks::WebhooksError;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("the body is not valid JSON: {0}")]
    MalformedJson(String),
    #[error("{0}")]
    InvalidRequest(String),
    #[error("no route {0}")]
    RouteNotFound(String),
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
    #[error("internal error: {0}")]
    Internal(String),
    #[error("the client closed the connection before the answer was ready")]
    ClientGone,
    #[error("the body arrived too slowly: {0}")]
    BodyTooSlow(String),
    #[error("this server does not answer to the host name {0:?} (ALLOWED_HOSTS)")]
    HostNotAllowed(String),
    #[error(
        "a request from the web page of {0:?} may not change anything here (same origin or CORS_ALLOWED_ORIGINS only)"
    )]
    CrossOrigin(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Collections(#[from] CollectionsError),
    #[error(transparent)]
    Documents(#[from] DocumentsError),
    #[error(transparent)]
    Accept(#[from] AcceptError),
    #[error(transparent)]
    Retrieve(#[from] RetrieveError),
    #[error(transparent)]
    Answer(#[from] AnswerError),
    #[error(transparent)]
    Auth(#[from] AuthError),
    #[error(transparent)]
    Keys(#[from] KeysError),
    #[error(transparent)]
    Audit(#[from] AuditError),
    #[error(transparent)]
    Tenants(#[from] TenantsError),
    #[error(transparent)]
    Conversations(#[from] ConversationsError),
    #[error(transparent)]
    Webhooks(#[from] WebhooksError),
    #[error(transparent)]
    Chat(#[from] ChatError),
}

/// How an error shows over HTTP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Class {
    status: StatusCode,
    /// Stable, relative URI.
    problem_type: &'static str,
    title: &'static str,
}

const fn class(status: StatusCode, problem_type: &'static str, title: &'static str) -> Class {
    Class {
        status,
        problem_type,
        title,
    }
}

const QUOTA_EXCEEDED: &str = "/problems/quota-exceeded";

const INTERNAL: Class = class(
    StatusCode::INTERNAL_SERVER_ERROR,
    "/problems/internal",
    "Internal error",
);
const UNAVAILABLE: Class = class(
    StatusCode::SERVICE_UNAVAILABLE,
    "/problems/service-unavailable",
    "Service unavailable",
);
const INVALID: Class = class(
    StatusCode::UNPROCESSABLE_ENTITY,
    "/problems/invalid-request",
    "Invalid request",
);
const COLLECTION_NOT_FOUND: Class = class(
    StatusCode::NOT_FOUND,
    "/problems/collection-not-found",
    "Collection not found",
);
const MODEL_MISMATCH: Class = class(
    StatusCode::CONFLICT,
    "/problems/embedding-model-mismatch",
    "Embedding model mismatch",
);

fn store(error: &StoreError) -> Class {
    match error {
        StoreError::CollectionNotFound(_) => COLLECTION_NOT_FOUND,
        StoreError::Catalog(e) => catalog(e),
        StoreError::Index(e) => index(e),
    }
}

fn catalog(error: &CatalogError) -> Class {
    match error {
        CatalogError::Unavailable(_) | CatalogError::Conflict(_) => UNAVAILABLE,
        // What it referred to was deleted meanwhile.
        CatalogError::MissingParent(_) => class(StatusCode::NOT_FOUND, "/problems/not-found", "Not found"),
        // Not an outage: a retry would fail the same way.
        CatalogError::AlreadyExists
        | CatalogError::Corrupt(_)
        | CatalogError::Migration(_)
        | CatalogError::Rejected(_) => INTERNAL,
    }
}

fn index(error: &IndexError) -> Class {
    match error {
        IndexError::Unavailable(_) => UNAVAILABLE,
        // Its index is gone: the collection is being deleted.
        IndexError::MissingCollection(_) => COLLECTION_NOT_FOUND,
        IndexError::Operation(_) | IndexError::DimensionMismatch { .. } => INTERNAL,
    }
}

fn auth(error: &AuthError) -> Class {
    match error {
        AuthError::MissingCredentials | AuthError::InvalidCredentials => {
            class(StatusCode::UNAUTHORIZED, "/problems/unauthorized", "Unauthorized")
        }
        AuthError::Forbidden(_) => class(StatusCode::FORBIDDEN, "/problems/forbidden", "Forbidden"),
        AuthError::InvalidActingFor(_) => INVALID,
        AuthError::RateLimited(_) => class(StatusCode::TOO_MANY_REQUESTS, "/problems/rate-limited", "Rate limited"),
        AuthError::IdentityProviderUnavailable(_) => UNAVAILABLE,
        AuthError::Catalog(e) => catalog(e),
    }
}

fn embed(error: &EmbedError) -> Class {
    match error {
        EmbedError::Remote(_) | EmbedError::ModelUnavailable(_) => UNAVAILABLE,
        EmbedError::Inference(_) => INTERNAL,
    }
}

fn retrieve(error: &RetrieveError) -> Class {
    match error {
        RetrieveError::Store(e) => store(e),
        RetrieveError::Invalid(_) => INVALID,
        RetrieveError::ModelMismatch(_) => MODEL_MISMATCH,
        RetrieveError::Embed(e) => embed(e),
    }
}

fn answer(error: &AnswerError) -> Class {
    use StatusCode as S;
    match error {
        AnswerError::Retrieve(e) => retrieve(e),
        AnswerError::LlmNotConfigured => class(S::BAD_REQUEST, "/problems/llm-not-configured", "No LLM configured"),
        AnswerError::LlmTimeout(_) => class(S::GATEWAY_TIMEOUT, "/problems/llm-timeout", "LLM timeout"),
        AnswerError::LlmFailed(_) => class(S::BAD_GATEWAY, "/problems/llm-error", "LLM error"),
        AnswerError::LlmInvalidOutput(_) => {
            class(S::BAD_GATEWAY, "/problems/llm-invalid-output", "LLM answer unusable")
        }
        AnswerError::LlmUnavailable(_) => class(S::BAD_GATEWAY, "/problems/llm-unavailable", "LLM unavailable"),
        AnswerError::LlmOverloaded { .. } => class(S::SERVICE_UNAVAILABLE, "/problems/overloaded", "LLM busy"),
        AnswerError::NotStored(_) => UNAVAILABLE,
    }
}

impl AppError {
    fn class(&self) -> Class {
        use StatusCode as S;
        match self {
            Self::MalformedJson(_) => class(S::BAD_REQUEST, "/problems/malformed-json", "Malformed JSON"),
            Self::InvalidRequest(_) => INVALID,
            Self::RouteNotFound(_) => class(S::NOT_FOUND, "/problems/not-found", "Not found"),
            Self::NotMultipart(_) | Self::NotJson(_) => class(
                S::UNSUPPORTED_MEDIA_TYPE,
                "/problems/unsupported-media-type",
                "Unsupported media type",
            ),
            Self::PayloadTooLarge { .. } | Self::BodyTooLarge { .. } => {
                class(S::PAYLOAD_TOO_LARGE, "/problems/payload-too-large", "Payload too large")
            }
            Self::InvalidMultipart(_) => class(S::BAD_REQUEST, "/problems/invalid-multipart", "Invalid multipart body"),
            Self::InvalidMetadata(_) => class(
                S::UNPROCESSABLE_ENTITY,
                "/problems/invalid-metadata",
                "Invalid metadata",
            ),
            Self::IngestionFailed { .. } => class(
                S::UNPROCESSABLE_ENTITY,
                "/problems/ingestion-failed",
                "Ingestion failed",
            ),
            Self::Internal(_) => INTERNAL,
            // nginx's "client closed request": logged, never received.
            Self::ClientGone => class(
                StatusCode::from_u16(499).unwrap_or(S::BAD_REQUEST),
                "/problems/client-closed-request",
                "Client closed request",
            ),
            Self::BodyTooSlow(_) => class(S::REQUEST_TIMEOUT, "/problems/request-timeout", "Request timeout"),
            Self::HostNotAllowed(_) => class(S::MISDIRECTED_REQUEST, "/problems/host-not-allowed", "Host not allowed"),
            Self::CrossOrigin(_) => class(S::FORBIDDEN, "/problems/cross-origin", "Cross-origin request refused"),
            Self::Store(e) => store(e),
            Self::Collections(e) => Self::collections(e),
            Self::Documents(e) => match e {
                DocumentsError::DocumentNotFound(_) => {
                    class(S::NOT_FOUND, "/problems/document-not-found", "Document not found")
                }
                DocumentsError::JobNotFound(_) => class(S::NOT_FOUND, "/problems/job-not-found", "Job not found"),
                DocumentsError::Invalid(_) => INVALID,
                DocumentsError::NotReady(_) => class(S::CONFLICT, "/problems/document-not-ready", "Document not ready"),
                DocumentsError::PageNotFound { .. } => {
                    class(S::NOT_FOUND, "/problems/page-not-found", "Page not found")
                }
                DocumentsError::Store(e) => store(e),
            },
            Self::Accept(e) => match e {
                AcceptError::ModelMismatch(_) => MODEL_MISMATCH,
                AcceptError::NoFile => class(S::BAD_REQUEST, "/problems/missing-file", "No file"),
                AcceptError::EmptyFile { .. } => class(S::BAD_REQUEST, "/problems/empty-file", "Empty file"),
                AcceptError::UnsupportedMediaType { .. } => class(
                    S::UNSUPPORTED_MEDIA_TYPE,
                    "/problems/unsupported-media-type",
                    "Unsupported media type",
                ),
                AcceptError::QueueFull { .. } => {
                    class(S::TOO_MANY_REQUESTS, "/problems/queue-full", "Ingestion queue full")
                }
                AcceptError::TooManyUploads { .. } => class(
                    S::SERVICE_UNAVAILABLE,
                    "/problems/overloaded",
                    "Too many uploads at once",
                ),
                AcceptError::QuotaExceeded(exceeded) => match exceeded {
                    QuotaExceeded::Documents { .. } => class(S::FORBIDDEN, QUOTA_EXCEEDED, "Quota exceeded"),
                    QuotaExceeded::Bytes { .. } => class(S::PAYLOAD_TOO_LARGE, QUOTA_EXCEEDED, "Quota exceeded"),
                },
                AcceptError::JobNotFound(_) => class(S::NOT_FOUND, "/problems/job-not-found", "Job not found"),
                AcceptError::JobNotRetryable(_) => class(S::CONFLICT, "/problems/job-not-failed", "Job has not failed"),
                AcceptError::Storage(_) => INTERNAL,
                AcceptError::Store(e) => store(e),
            },
            Self::Retrieve(e) => retrieve(e),
            Self::Answer(e) => answer(e),
            Self::Conversations(e) => match e {
                ConversationsError::NotFound(_) => class(
                    S::NOT_FOUND,
                    "/problems/conversation-not-found",
                    "Conversation not found",
                ),
                ConversationsError::Answer(e) => answer(e),
                ConversationsError::Store(e) => store(e),
            },
            Self::Webhooks(e) => match e {
                WebhooksError::Invalid(_) => INVALID,
                WebhooksError::NotFound(_) => class(S::NOT_FOUND, "/problems/webhook-not-found", "Webhook not found"),
                WebhooksError::Random(_) => INTERNAL,
                WebhooksError::Catalog(e) => catalog(e),
            },
            // Both are requests that hold no question to answer.
            Self::Chat(ChatError::NoQuestion | ChatError::LastNotUser) => INVALID,
            Self::Auth(e) => auth(e),
            Self::Tenants(e) => match e {
                TenantsError::Exists(_) => class(S::CONFLICT, "/problems/tenant-exists", "Tenant exists"),
                TenantsError::Invalid(_) => INVALID,
                TenantsError::Auth(e) => auth(e),
                TenantsError::Collections(e) => Self::collections(e),
                TenantsError::Catalog(e) => catalog(e),
            },
            Self::Audit(e) => match e {
                AuditError::Invalid(_) => INVALID,
                AuditError::Auth(e) => auth(e),
                AuditError::Catalog(e) => catalog(e),
            },
            Self::Keys(e) => match e {
                KeysError::NotFound(_) => class(S::NOT_FOUND, "/problems/key-not-found", "Key not found"),
                KeysError::Invalid(_) | KeysError::UnknownTenant(_) => INVALID,
                KeysError::Random(_) => INTERNAL,
                KeysError::Auth(e) => auth(e),
                KeysError::Catalog(e) => catalog(e),
            },
        }
    }

    fn collections(e: &CollectionsError) -> Class {
        use StatusCode as S;
        match e {
            CollectionsError::Exists(_) => class(S::CONFLICT, "/problems/collection-exists", "Collection exists"),
            CollectionsError::DefaultIsPermanent => {
                class(S::CONFLICT, "/problems/default-collection", "Default collection")
            }
            CollectionsError::Invalid(_) => INVALID,
            CollectionsError::Forbidden(_) => class(S::FORBIDDEN, "/problems/forbidden", "Forbidden"),
            CollectionsError::TooMany { .. } => class(S::FORBIDDEN, QUOTA_EXCEEDED, "Quota exceeded"),
            CollectionsError::ReindexNeedsModel => {
                class(S::CONFLICT, "/problems/reindex-needs-model", "No embedding model")
            }
            CollectionsError::Store(e) => store(e),
        }
    }

    pub fn problem_type(&self) -> &'static str {
        self.class().problem_type
    }

    /// The problem document for this error, logged under the request's id.
    pub fn problem(&self, request_id: &str) -> Problem {
        let Class {
            status,
            problem_type,
            title,
        } = self.class();
        let detail = if status == StatusCode::INTERNAL_SERVER_ERROR {
            // Internals stay in the log; the caller gets the request id to quote.
            "the server failed; the log has details under this request id".to_string()
        } else {
            self.to_string()
        };
        // Its text quotes what the client sent (an id, a field name).
        let error = crate::telemetry::Sanitized(self);
        if status.is_server_error() {
            tracing::error!(%request_id, problem = problem_type, %error, "request failed");
        } else {
            tracing::info!(%request_id, problem = problem_type, %error, "request refused");
        }
        Problem {
            problem_type: problem_type.to_string(),
            title: title.to_string(),
            status: status.as_u16(),
            detail,
            request_id: request_id.to_string(),
            documents: match self {
                Self::IngestionFailed { documents } => Some(documents.clone()),
                _ => None,
            },
            supported_types: matches!(
                self,
                Self::Accept(AcceptError::UnsupportedMediaType { .. }) | Self::NotMultipart(_)
            )
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
        self.class().status
    }

    fn error_response(&self) -> HttpResponse {
        let problem = self.problem(&super::request_id::current());
        let mut response = HttpResponse::build(self.status_code());
        response.insert_header((
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        ));
        let retry_after = match (self, problem.status) {
            (Self::Auth(AuthError::RateLimited(wait)), _) => Some(crate::auth::retry_after_secs(wait)),
            (Self::Answer(AnswerError::LlmOverloaded { .. }), _)
            | (Self::Conversations(ConversationsError::Answer(AnswerError::LlmOverloaded { .. })), _) => Some(1),
            (Self::Accept(AcceptError::TooManyUploads { .. }), _) => Some(1),
            (_, 503) => Some(5),
            (_, 429) => Some(30),
            _ => None,
        };
        if let Some(seconds) = retry_after {
            response.insert_header((header::RETRY_AFTER, HeaderValue::from(seconds)));
        }
        if problem.status == 401 {
            response.insert_header((header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer")));
        }
        response.json(problem)
    }
}
