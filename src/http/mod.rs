//! The HTTP surface: routes, extractors, problem mapping. Handlers parse, call
//! one service function and shape the response; no business logic lives here.

mod audit;
pub mod auth;
mod collections;
mod conversations;
pub mod cors;
mod docs;
mod documents;
pub mod extract;
mod files;
mod health;
mod jobs;
mod keys;
pub mod mcp;
pub mod openai_compat;
pub mod openapi;
pub mod origin;
pub mod peer;
pub mod problem;
pub mod request_id;
mod search;
mod sse;
mod tenants;
mod ui;
mod upload;
mod webhooks;

use actix_web::middleware::from_fn;
use actix_web::web::{self, ServiceConfig};
use actix_web::{HttpRequest, HttpResponse};

use problem::AppError;

/// JSON bodies (search, query, collections) are small; files go through multipart.
const JSON_LIMIT_BYTES: usize = 256 * 1024;

/// Whether `/metrics` is served without a key (`METRICS_PUBLIC`).
pub struct MetricsAccess {
    pub public: bool,
}

/// All routes, for `App::new().configure(routes)`. Everything under `/v1`
/// goes through the request scope (`auth::middleware`); `/metrics` checks it
/// itself unless it is public; health and the API document are open.
pub fn routes(cfg: &mut ServiceConfig) {
    cfg.app_data(
        web::JsonConfig::default()
            .limit(JSON_LIMIT_BYTES)
            .error_handler(extract::json_error),
    )
    .app_data(web::QueryConfig::default().error_handler(extract::query_error))
    .route("/healthz", web::get().to(health::healthz))
    .route("/readyz", web::get().to(health::readyz))
    .route("/metrics", web::get().to(health::metrics))
    .route("/openapi.json", web::get().to(openapi::openapi_json))
    .configure(docs::routes)
    .configure(ui::routes)
    .service(
        web::scope("/v1")
            .wrap(from_fn(auth::middleware))
            .service(
                web::resource("/collections")
                    .route(web::post().to(collections::create))
                    .route(web::get().to(collections::list)),
            )
            .service(
                web::resource("/collections/{collection}")
                    .route(web::get().to(collections::get))
                    .route(web::delete().to(collections::delete)),
            )
            .configure(|cfg| document_routes(cfg, "/collections/{collection}"))
            // The same on `default`.
            .configure(|cfg| document_routes(cfg, ""))
            .service(
                web::resource("/conversations/{conversation_id}")
                    .route(web::get().to(conversations::get))
                    .route(web::delete().to(conversations::delete)),
            )
            .route(
                "/conversations/{conversation_id}/messages",
                web::post().to(conversations::ask),
            )
            // OpenAI-compatible: refusals in OpenAI's error shape.
            .service(
                web::resource("/models")
                    .wrap(from_fn(openai_compat::error_shape))
                    .route(web::get().to(openai_compat::list_models)),
            )
            .service(
                web::resource("/models/{model}")
                    .wrap(from_fn(openai_compat::error_shape))
                    .route(web::get().to(openai_compat::get_model)),
            )
            .service(
                web::resource("/chat/completions")
                    .wrap(from_fn(openai_compat::error_shape))
                    .route(web::post().to(openai_compat::chat_completions)),
            )
            .route("/jobs/{job_id}", web::get().to(jobs::get))
            .route("/jobs/{job_id}/retry", web::post().to(jobs::retry))
            .service(
                web::resource("/keys")
                    .route(web::post().to(keys::create))
                    .route(web::get().to(keys::list)),
            )
            .route("/keys/{key_id}", web::delete().to(keys::revoke))
            .route("/audit", web::get().to(audit::read))
            .service(
                web::resource("/webhooks")
                    .route(web::post().to(webhooks::create))
                    .route(web::get().to(webhooks::list)),
            )
            .route("/webhooks/{webhook_id}", web::delete().to(webhooks::delete))
            .route("/webhooks/{webhook_id}/deliveries", web::get().to(webhooks::deliveries))
            .service(
                web::resource("/tenants")
                    .route(web::post().to(tenants::create))
                    .route(web::get().to(tenants::list)),
            ),
    )
    .default_service(web::to(not_found));
}

fn document_routes(cfg: &mut ServiceConfig, prefix: &str) {
    cfg.service(
        web::resource(format!("{prefix}/documents"))
            .route(web::post().to(documents::upload))
            .route(web::get().to(documents::list)),
    )
    .service(
        web::resource(format!("{prefix}/documents/{{document_id}}"))
            .route(web::get().to(documents::get))
            .route(web::patch().to(documents::update))
            .route(web::delete().to(documents::delete)),
    )
    .route(
        &format!("{prefix}/documents/{{document_id}}/file"),
        web::get().to(documents::file),
    )
    .route(
        &format!("{prefix}/documents/{{document_id}}/pages/{{page}}"),
        web::get().to(documents::page),
    )
    .route(&format!("{prefix}/reindex"), web::post().to(collections::reindex))
    .route(&format!("{prefix}/search"), web::post().to(search::search))
    .route(&format!("{prefix}/query"), web::post().to(search::query))
    .route(
        &format!("{prefix}/conversations"),
        web::post().to(conversations::create),
    );
}

/// Runs a service call that must not stop half way when the client goes away
/// (a delete), under the request's id.
async fn to_completion<T, F>(work: F) -> Result<T, AppError>
where
    T: Send + 'static,
    F: Future<Output = Result<T, AppError>> + Send + 'static,
{
    let id = request_id::current();
    tokio::spawn(request_id::scope(id, work))
        .await
        .map_err(|e| AppError::Internal(format!("request task failed: {e}")))?
}

async fn not_found(req: HttpRequest) -> Result<HttpResponse, AppError> {
    Err(AppError::RouteNotFound(format!("{} {}", req.method(), req.path())))
}
