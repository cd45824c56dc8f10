//! `/v1/jobs/{job_id}`.

use actix_web::{HttpResponse, web};

use super::auth::{Authorized, Read, Write};
use super::extract::JobIdParam;
use super::problem::{AppError, Problem};
use crate::domain::Job;
use crate::ingest::Ingestor;
use crate::service::documents::Documents;

/// An ingestion job: status and progress per stage.
#[utoipa::path(
    get, path = "/v1/jobs/{job_id}", operation_id = "get_job", tag = "documents",
    params(("job_id" = crate::domain::JobId, Path)),
    responses((status = 200, body = Job))
)]
pub async fn get(
    caller: Authorized<Read>,
    id: JobIdParam,
    documents: web::Data<Documents>,
) -> Result<HttpResponse, AppError> {
    Ok(HttpResponse::Ok().json(documents.job(&caller.scope, id.0).await?))
}

/// Queue a failed job again (its document is processed anew).
#[utoipa::path(
    post, path = "/v1/jobs/{job_id}/retry", operation_id = "retry_job", tag = "documents",
    params(("job_id" = crate::domain::JobId, Path)),
    responses(
        (status = 202, description = "Queued again", body = Job),
        (status = 409, description = "The job has not failed", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn retry(
    caller: Authorized<Write>,
    id: JobIdParam,
    ingestor: web::Data<Ingestor>,
) -> Result<HttpResponse, AppError> {
    Ok(HttpResponse::Accepted().json(ingestor.retry(&caller.scope, id.0).await?))
}
