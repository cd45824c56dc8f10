//! `/v1/collections`.

use actix_web::{HttpResponse, web};
use serde::Serialize;
use utoipa::ToSchema;

use super::auth::{Authorized, InCollection, Manage, Read};
use super::problem::{AppError, Problem};
use crate::domain::Job;
use crate::service::collections::{CollectionView, Collections, CreateCollection};

#[derive(Debug, Serialize, ToSchema)]
pub struct CollectionList {
    pub collections: Vec<CollectionView>,
}

/// Create a collection.
#[utoipa::path(
    post, path = "/v1/collections", operation_id = "create_collection", tag = "collections",
    request_body = CreateCollection,
    responses(
        (status = 201, body = CollectionView),
        (status = 409, description = "The name is taken", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid name", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn create(
    caller: Authorized<Manage>,
    body: web::Json<CreateCollection>,
    collections: web::Data<Collections>,
) -> Result<HttpResponse, AppError> {
    let collection = collections.create(&caller.scope, body.into_inner()).await?;
    Ok(HttpResponse::Created()
        .insert_header(("location", format!("/v1/collections/{}", collection.collection.name)))
        .json(collection))
}

/// List collections.
#[utoipa::path(get, path = "/v1/collections", operation_id = "list_collections", tag = "collections", responses((status = 200, body = CollectionList)))]
pub async fn list(caller: Authorized<Read>, collections: web::Data<Collections>) -> Result<HttpResponse, AppError> {
    Ok(HttpResponse::Ok().json(CollectionList {
        collections: collections.list(&caller.scope).await?,
    }))
}

/// Show a collection.
#[utoipa::path(
    get, path = "/v1/collections/{collection}", operation_id = "get_collection", tag = "collections",
    params(("collection" = crate::domain::CollectionName, Path)),
    responses((status = 200, body = CollectionView))
)]
pub async fn get(target: InCollection<Read>, collections: web::Data<Collections>) -> Result<HttpResponse, AppError> {
    Ok(HttpResponse::Ok().json(collections.get(&target.collection).await?))
}

/// Delete a collection with its documents and vectors.
#[utoipa::path(
    delete, path = "/v1/collections/{collection}", operation_id = "delete_collection", tag = "collections",
    params(("collection" = crate::domain::CollectionName, Path)),
    responses(
        (status = 204, description = "Deleted"),
        (status = 409, description = "`default` cannot be deleted", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn delete(
    target: InCollection<Manage>,
    collections: web::Data<Collections>,
) -> Result<HttpResponse, AppError> {
    let collections = collections.into_inner();
    super::to_completion(async move { Ok(collections.delete(&target.collection).await?) }).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Re-index a collection with the server's embedding model.
///
/// Every chunk is embedded again from the text the catalog keeps, into a fresh
/// index that replaces the old one at once when it is complete; until then the
/// old index keeps serving. Asking again while one is queued or running returns
/// that job.
#[utoipa::path(
    post, path = "/v1/collections/{collection}/reindex", operation_id = "reindex_collection", tag = "collections",
    params(("collection" = crate::domain::CollectionName, Path)),
    responses(
        (status = 202, description = "Queued (or already queued)", body = Job, links(
            ("job" = (operation_id = "get_job", parameters(("job_id" = "$response.body#/id")))),
            ("retry" = (operation_id = "retry_job", parameters(("job_id" = "$response.body#/id")))),
        )),
        (status = 409, description = "The server runs without an embedding model", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn reindex(
    target: InCollection<Manage>,
    collections: web::Data<Collections>,
) -> Result<HttpResponse, AppError> {
    let job = collections.reindex(&target.collection).await?;
    Ok(HttpResponse::Accepted()
        .insert_header(("location", format!("/v1/jobs/{}", job.id)))
        .json(job))
}
