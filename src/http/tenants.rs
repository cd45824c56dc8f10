//! `/v1/tenants`: the operator's.

use actix_web::{HttpResponse, web};

use super::auth::{Authorized, Operate};
use super::problem::{AppError, Problem};
use crate::domain::Tenant;
use crate::service::tenants::{CreateTenant, TenantList, Tenants};

/// Create a tenant, with its `default` collection.
#[utoipa::path(
    post, path = "/v1/tenants", operation_id = "create_tenant", tag = "keys",
    request_body = CreateTenant,
    responses(
        (status = 201, body = Tenant),
        (status = 409, description = "The name is taken", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid name", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn create(
    caller: Authorized<Operate>,
    body: web::Json<CreateTenant>,
    tenants: web::Data<Tenants>,
) -> Result<HttpResponse, AppError> {
    let tenant = tenants.create(&caller.scope, body.into_inner()).await?;
    Ok(HttpResponse::Created().json(tenant))
}

/// Every tenant.
#[utoipa::path(get, path = "/v1/tenants", operation_id = "list_tenants", tag = "keys", responses((status = 200, body = TenantList)))]
pub async fn list(caller: Authorized<Operate>, tenants: web::Data<Tenants>) -> Result<HttpResponse, AppError> {
    Ok(HttpResponse::Ok().json(tenants.list(&caller.scope).await?))
}
