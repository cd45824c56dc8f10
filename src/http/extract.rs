//! Extractors that parse path ids into domain types (the collection, with the
//! caller's scope, is `auth::InCollection`), and the handlers that turn actix's
//! own body errors into problems.

use std::future::{Ready, ready};

use actix_web::dev::Payload;
use actix_web::error::{JsonPayloadError, QueryPayloadError};
use actix_web::{FromRequest, HttpRequest};

use super::problem::AppError;
use crate::auth::keys::KeysError;
use crate::domain::{ConversationId, DocumentId, JobId, KeyId, WebhookId};
use crate::service::conversations::ConversationsError;
use crate::service::documents::DocumentsError;
use crate::webhooks::WebhooksError;

/// The `{document_id}` of the path.
pub struct DocumentIdParam(pub DocumentId);

/// The `{job_id}` of the path.
pub struct JobIdParam(pub JobId);

/// The `{key_id}` of the path.
pub struct KeyIdParam(pub KeyId);

/// The `{webhook_id}` of the path.
pub struct WebhookIdParam(pub WebhookId);

/// The `{page}` of the path: 1 or more (anything else names no page).
pub struct PageParam(pub u32);

/// The `{conversation_id}` of the path.
pub struct ConversationIdParam(pub ConversationId);

/// A path id that does not parse names nothing, so it is "not found".
fn path_id<T: std::str::FromStr, E: Into<AppError>>(
    req: &HttpRequest,
    name: &str,
    not_found: fn(String) -> E,
) -> Result<T, AppError> {
    let raw = req.match_info().get(name).unwrap_or_default();
    raw.parse()
        .map_err(|_| not_found(raw.chars().take(80).collect()).into())
}

/// An id path segment's extractor: an id that does not parse is the same
/// not-found as an unknown one.
macro_rules! path_id_extractors {
    ($($param:ident from $name:literal else $not_found:path),+ $(,)?) => {$(
        impl FromRequest for $param {
            type Error = AppError;
            type Future = Ready<Result<Self, AppError>>;

            fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
                ready(path_id(req, $name, $not_found).map(Self))
            }
        }
    )+};
}

path_id_extractors!(
    DocumentIdParam from "document_id" else DocumentsError::DocumentNotFound,
    KeyIdParam from "key_id" else KeysError::NotFound,
    JobIdParam from "job_id" else DocumentsError::JobNotFound,
    WebhookIdParam from "webhook_id" else WebhooksError::NotFound,
    ConversationIdParam from "conversation_id" else ConversationsError::NotFound,
);

impl FromRequest for PageParam {
    type Error = AppError;
    type Future = Ready<Result<Self, AppError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let raw = req.match_info().get("page").unwrap_or_default();
        ready(match raw.parse::<u32>() {
            Ok(page) if page >= 1 => Ok(Self(page)),
            _ => Err(AppError::InvalidRequest(format!(
                "page must be a number from 1, got {:?}",
                raw.chars().take(20).collect::<String>()
            ))),
        })
    }
}

/// Syntax errors are 400; well-formed JSON of the wrong shape is 422.
pub fn json_error(err: JsonPayloadError, _req: &HttpRequest) -> actix_web::Error {
    let app = match &err {
        JsonPayloadError::Deserialize(e) if e.is_data() => AppError::InvalidRequest(e.to_string()),
        JsonPayloadError::Deserialize(e) => AppError::MalformedJson(e.to_string()),
        JsonPayloadError::OverflowKnownLength { limit, .. } | JsonPayloadError::Overflow { limit } => {
            AppError::BodyTooLarge { limit: *limit as u64 }
        }
        JsonPayloadError::ContentType => AppError::NotJson("send the body with Content-Type: application/json".into()),
        other => AppError::MalformedJson(other.to_string()),
    };
    app.into()
}

pub fn query_error(err: QueryPayloadError, _req: &HttpRequest) -> actix_web::Error {
    AppError::InvalidRequest(format!("query string: {err}")).into()
}
