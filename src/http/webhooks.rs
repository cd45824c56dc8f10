//! `/v1/webhooks`: a tenant's webhooks (its admins'), and their deliveries.

use actix_web::{HttpResponse, web};
use serde::Serialize;
use utoipa::ToSchema;

use super::auth::{Authorized, Manage};
use super::extract::WebhookIdParam;
use super::problem::{AppError, Problem};
use crate::domain::{Delivery, Webhook};
use crate::webhooks::{CreateWebhook, CreatedWebhook, Webhooks};

#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookList {
    pub webhooks: Vec<Webhook>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryList {
    /// Newest first (the latest 100).
    pub deliveries: Vec<Delivery>,
}

/// Make a webhook: the tenant's events posted to `url`, signed with its secret
/// (shown this once).
#[utoipa::path(
    post, path = "/v1/webhooks", operation_id = "create_webhook", tag = "webhooks",
    request_body = CreateWebhook,
    responses(
        (status = 201, body = CreatedWebhook, links(
            ("deliveries" = (operation_id = "list_deliveries", parameters(("webhook_id" = "$response.body#/id")))),
            ("delete" = (operation_id = "delete_webhook", parameters(("webhook_id" = "$response.body#/id")))),
        )),
        (status = 422, description = "A URL that is not http(s), does not resolve, or points into the server's network; no events", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn create(
    caller: Authorized<Manage>,
    body: web::Json<CreateWebhook>,
    webhooks: web::Data<Webhooks>,
) -> Result<HttpResponse, AppError> {
    let created = webhooks.create(&caller.scope, body.into_inner()).await?;
    Ok(HttpResponse::Created()
        .insert_header(("cache-control", "no-store"))
        .json(created))
}

/// The tenant's webhooks (no secrets).
#[utoipa::path(get, path = "/v1/webhooks", operation_id = "list_webhooks", tag = "webhooks", responses((status = 200, body = WebhookList)))]
pub async fn list(caller: Authorized<Manage>, webhooks: web::Data<Webhooks>) -> Result<HttpResponse, AppError> {
    Ok(HttpResponse::Ok().json(WebhookList {
        webhooks: webhooks.list(&caller.scope).await?,
    }))
}

/// Delete a webhook with its deliveries.
#[utoipa::path(
    delete, path = "/v1/webhooks/{webhook_id}", operation_id = "delete_webhook", tag = "webhooks",
    params(("webhook_id" = crate::domain::WebhookId, Path)),
    responses((status = 204, description = "Deleted"))
)]
pub async fn delete(
    caller: Authorized<Manage>,
    id: WebhookIdParam,
    webhooks: web::Data<Webhooks>,
) -> Result<HttpResponse, AppError> {
    webhooks.delete(&caller.scope, id.0).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// A webhook's deliveries: each event, its attempts, the endpoint's last answer.
#[utoipa::path(
    get, path = "/v1/webhooks/{webhook_id}/deliveries", operation_id = "list_deliveries", tag = "webhooks",
    params(("webhook_id" = crate::domain::WebhookId, Path)),
    responses((status = 200, body = DeliveryList))
)]
pub async fn deliveries(
    caller: Authorized<Manage>,
    id: WebhookIdParam,
    webhooks: web::Data<Webhooks>,
) -> Result<HttpResponse, AppError> {
    Ok(HttpResponse::Ok().json(DeliveryList {
        deliveries: webhooks.deliveries(&caller.scope, id.0).await?,
    }))
}
