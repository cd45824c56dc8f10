//! `/healthz`, `/readyz`, `/metrics`.

use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::json;

use super::MetricsAccess;
use super::problem::AppError;
use crate::auth::Authenticator;
use crate::domain::Access;
use crate::health::{HealthChecks, Metrics, Readiness};

/// Liveness: the process answers.
#[utoipa::path(get, path = "/healthz", operation_id = "healthz", tag = "operations", responses((status = 200, description = "`{\"status\":\"ok\"}`")))]
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

/// Readiness: catalog, index and embedder answer; 503 says which does not.
#[utoipa::path(
    get, path = "/readyz", operation_id = "readyz", tag = "operations",
    responses((status = 200, body = Readiness), (status = 503, body = Readiness))
)]
pub async fn readyz(checks: web::Data<HealthChecks>) -> HttpResponse {
    let readiness = checks.readiness().await;
    if readiness.status == "ready" {
        HttpResponse::Ok().json(readiness)
    } else {
        HttpResponse::ServiceUnavailable().json(readiness)
    }
}

/// Prometheus text. Needs a key (any role) unless `METRICS_PUBLIC=true`.
#[utoipa::path(get, path = "/metrics", operation_id = "metrics", tag = "operations", responses((status = 200, content_type = "text/plain")))]
pub async fn metrics(
    req: HttpRequest,
    access: web::Data<MetricsAccess>,
    auth: Option<web::Data<Authenticator>>,
    metrics: web::Data<Metrics>,
    checks: web::Data<HealthChecks>,
) -> Result<HttpResponse, AppError> {
    if !access.public {
        super::auth::authenticate(auth.as_ref(), req.headers())
            .await?
            .require(Access::Read)?;
    }
    Ok(HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(metrics.render(checks.retrieval_mode())))
}
