//! The OpenAPI 3.1 document, generated from the handlers and types.

use actix_web::HttpResponse;
use utoipa::OpenApi;

use super::{collections, documents, health, jobs, search};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "docqa",
        description = "Upload documents, ask questions, get answers that cite document, page and quote.\n\n\
            Every route under `/v1/collections/{collection}/…` also exists without the collection part \
            (`POST /v1/documents`, `POST /v1/search`, `POST /v1/query`, …), acting on the collection `default`.\n\n\
            Errors are `application/problem+json` (RFC 9457) with a stable `type`."
    ),
    paths(
        health::healthz, health::readyz, health::metrics,
        collections::create, collections::list, collections::get, collections::delete, collections::reindex,
        documents::upload, documents::list, documents::get, documents::delete,
        jobs::get, jobs::retry,
        search::search, search::query,
    ),
    tags(
        (name = "documents", description = "Uploading and managing documents and their ingestion jobs"),
        (name = "search", description = "Retrieval and answers"),
        (name = "collections", description = "Named sets of documents"),
        (name = "operations", description = "Health and metrics"),
    )
)]
pub struct ApiDoc;

pub async fn openapi_json() -> HttpResponse {
    HttpResponse::Ok().json(ApiDoc::openapi())
}
