//! `/v1/audit`: the audit log, for tenant admins (their tenant) and the operator
//! (every tenant, or one by `tenant`).

use actix_web::{HttpResponse, web};

use super::auth::{Authorized, Manage};
use super::problem::{AppError, Problem};
use crate::auth::audit::{AuditLog, AuditPage, ReadAudit};

/// Audit entries, oldest first: every upload, delete, search, query, key and
/// collection change, and every refused request.
#[utoipa::path(
    get, path = "/v1/audit", operation_id = "read_audit", tag = "keys",
    params(ReadAudit),
    responses(
        (status = 200, body = AuditPage),
        (status = 422, description = "Bad limit, cursor, time or tenant", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn read(
    caller: Authorized<Manage>,
    params: web::Query<ReadAudit>,
    audit: web::Data<AuditLog>,
) -> Result<HttpResponse, AppError> {
    Ok(HttpResponse::Ok().json(audit.read(&caller.scope, params.into_inner()).await?))
}
