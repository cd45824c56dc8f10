//! The request scope. A middleware on `/v1` resolves the caller once, before
//! any body is read (401 without valid credentials); routes then name the
//! access they need in their arguments' types (`Authorized<Write>`,
//! `InCollection<Read>`), so a handler cannot run, nor name a collection,
//! without the caller's scope checked.

use std::future::{Ready, ready};
use std::marker::PhantomData;

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderMap};
use actix_web::middleware::Next;
use actix_web::web::Data;
use actix_web::{FromRequest, HttpMessage, HttpRequest, ResponseError};

use super::problem::AppError;
use crate::auth::audit::{AuditLog, route_action};
use crate::auth::{AuthError, Authenticator, Credentials, Scope};
use crate::domain::{Access, CollectionName};
use crate::store::StoreError;

/// The access a route needs, as a type.
pub trait Needs {
    const ACCESS: Access;
    /// Only the operator (`DOCQA_ADMIN_KEY`), over every tenant.
    const OPERATOR_ONLY: bool = false;
}

/// Search, query, list and show.
pub struct Read;
/// Upload, update and delete documents, retry jobs.
pub struct Write;
/// Collections and keys.
pub struct Manage;

impl Needs for Read {
    const ACCESS: Access = Access::Read;
}
impl Needs for Write {
    const ACCESS: Access = Access::Write;
}
impl Needs for Manage {
    const ACCESS: Access = Access::Manage;
}

/// Tenants: the operator's alone.
pub struct Operate;

impl Needs for Operate {
    const ACCESS: Access = Access::Manage;
    const OPERATOR_ONLY: bool = true;
}

/// Resolves the caller's scope and keeps it with the request.
pub async fn middleware(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    let route = route_action(req.method().as_str(), req.path());
    let audit = req.app_data::<Data<AuditLog>>().cloned();
    let record = async |scope: Option<&Scope>, status: u16, query_text: Option<&str>| {
        let refused = matches!(status, 401 | 403 | 429);
        if let Some(audit) = &audit
            && (route.always || refused)
        {
            audit
                .record(super::request_id::current(), scope, &route, status, query_text)
                .await;
        }
    };
    match authenticate(req.app_data::<Data<Authenticator>>(), req.headers()).await {
        Ok(scope) => {
            req.extensions_mut().insert(scope.clone());
            let response = next.call(req).await?;
            let query_text = response.request().extensions().get::<QueryText>().map(|q| q.0.clone());
            record(Some(&scope), response.status().as_u16(), query_text.as_deref()).await;
            Ok(response.map_into_left_body())
        }
        // Answered here, inside the request's id scope, so that the problem carries the id.
        Err(refused) => {
            let response = if super::openai_compat::is_openai_route(req.path()) {
                let response = super::openai_compat::OpenAiError(refused).error_response();
                req.into_response(response)
            } else {
                req.error_response(refused)
            };
            record(None, response.status().as_u16(), None).await;
            Ok(response.map_into_right_body())
        }
    }
}

/// What a search or query asked, left on the request for the audit log.
struct QueryText(String);

/// Leaves a search's or question's text for the audit log (which keeps it only
/// with `AUDIT_QUERY_TEXT`).
pub fn note_query_text(req: &HttpRequest, text: &str) {
    req.extensions_mut().insert(QueryText(text.to_string()));
}

/// The scope of a request with these headers.
pub async fn authenticate(auth: Option<&Data<Authenticator>>, headers: &HeaderMap) -> Result<Scope, AppError> {
    let auth = auth.ok_or_else(|| AppError::Internal("no authenticator configured".into()))?;
    // A header that is not text is as good as a bad one.
    let text = |name: &str| headers.get(name).map(|v| v.to_str().unwrap_or("\u{fffd}"));
    let credentials = Credentials {
        authorization: text(header::AUTHORIZATION.as_str()),
        acting_for: text("x-acting-for"),
    };
    Ok(auth.admit(credentials).await?)
}

/// The scope the middleware resolved; a route outside it is a wiring error.
fn resolved(req: &HttpRequest) -> Result<Scope, AppError> {
    req.extensions()
        .get::<Scope>()
        .cloned()
        .ok_or_else(|| AppError::Internal(format!("{} is not behind the auth middleware", req.path())))
}

/// 403 unless the scope holds `A`'s access.
fn allowed<A: Needs>(scope: &Scope) -> Result<(), AuthError> {
    scope.require(A::ACCESS)?;
    match A::OPERATOR_ONLY && !scope.is_operator() {
        true => Err(AuthError::Forbidden(
            "only the operator (DOCQA_ADMIN_KEY) may do this".into(),
        )),
        false => Ok(()),
    }
}

/// The caller's scope, holding at least `A`'s access (else 403).
pub struct Authorized<A: Needs> {
    pub scope: Scope,
    _access: PhantomData<A>,
}

impl<A: Needs> FromRequest for Authorized<A> {
    type Error = AppError;
    type Future = Ready<Result<Self, AppError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(resolved(req).and_then(|scope| {
            allowed::<A>(&scope)?;
            Ok(Self {
                scope,
                _access: PhantomData,
            })
        }))
    }
}

/// The collection named `raw` in the scope's tenant, if the scope may use it;
/// else "not found", as one that does not exist (checked before the access,
/// so that what one may not see does not exist). A name that cannot exist
/// names no collection.
pub fn collection_in_scope(scope: &Scope, raw: &str) -> Result<CollectionName, StoreError> {
    let not_found = |raw: &str| StoreError::CollectionNotFound(raw.chars().take(80).collect());
    let collection = scope.collection(raw).map_err(|_| not_found(raw))?;
    if !scope.allows(&collection) {
        return Err(not_found(collection.name()));
    }
    Ok(collection)
}

/// The `{collection}` of the path (or `default` on the short routes), one the
/// caller may use, with the caller's scope holding at least `A`'s access. A
/// collection outside the scope is "not found", as one that does not exist.
pub struct InCollection<A: Needs> {
    pub scope: Scope,
    pub collection: CollectionName,
    _access: PhantomData<A>,
}

impl<A: Needs> FromRequest for InCollection<A> {
    type Error = AppError;
    type Future = Ready<Result<Self, AppError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(resolved(req).and_then(|scope| {
            let collection = match req.match_info().get("collection") {
                Some(raw) => collection_in_scope(&scope, raw)?,
                None => collection_in_scope(&scope, crate::domain::DEFAULT_COLLECTION)?,
            };
            allowed::<A>(&scope)?;
            Ok(Self {
                scope,
                collection,
                _access: PhantomData,
            })
        }))
    }
}
