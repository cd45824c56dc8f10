//! `/v1/keys`: API keys, for the operator (every tenant) and tenant admins
//! (their own).

use actix_web::{HttpResponse, web};
use serde::Serialize;
use utoipa::ToSchema;

use super::auth::{Authorized, Manage};
use super::extract::KeyIdParam;
use super::problem::{AppError, Problem};
use crate::auth::keys::{CreateKey, CreatedKey, Keys};
use crate::domain::ApiKey;

#[derive(Debug, Serialize, ToSchema)]
pub struct KeyList {
    pub keys: Vec<ApiKey>,
}

/// Create an API key; its secret is in this response only.
#[utoipa::path(
    post, path = "/v1/keys", operation_id = "create_key", tag = "keys",
    request_body = CreateKey,
    responses(
        (status = 201, body = CreatedKey),
        (status = 422, description = "Bad role, rights, collections, principals or expiry", body = Problem, content_type = "application/problem+json"),
    ),
)]
pub async fn create(
    caller: Authorized<Manage>,
    body: web::Json<CreateKey>,
    keys: web::Data<Keys>,
) -> Result<HttpResponse, AppError> {
    let created = keys.create(&caller.scope, body.into_inner()).await?;
    Ok(HttpResponse::Created()
        .insert_header(("location", format!("/v1/keys/{}", created.record.id)))
        // A secret must not sit in a cache.
        .insert_header(("cache-control", "no-store"))
        .json(created))
}

/// The keys the caller manages, without their secrets.
#[utoipa::path(
    get, path = "/v1/keys", operation_id = "list_keys", tag = "keys",
    responses((status = 200, body = KeyList)),
)]
pub async fn list(caller: Authorized<Manage>, keys: web::Data<Keys>) -> Result<HttpResponse, AppError> {
    Ok(HttpResponse::Ok().json(KeyList {
        keys: keys.list(&caller.scope).await?,
    }))
}

/// Revoke a key, in effect for the next request.
#[utoipa::path(
    delete, path = "/v1/keys/{key_id}", operation_id = "revoke_key", tag = "keys",
    params(("key_id" = crate::domain::KeyId, Path)),
    responses((status = 204, description = "Revoked")),
)]
pub async fn revoke(
    caller: Authorized<Manage>,
    id: KeyIdParam,
    keys: web::Data<Keys>,
) -> Result<HttpResponse, AppError> {
    keys.revoke(&caller.scope, id.0).await?;
    Ok(HttpResponse::NoContent().finish())
}
