use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{TenantName, WebhookId};

/// What a webhook can be told of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
pub enum WebhookEvent {
    /// A document was ingested and can be searched.
    #[serde(rename = "document.ready")]
    DocumentReady,
    /// A document could not be ingested (its `error` says why).
    #[serde(rename = "document.failed")]
    DocumentFailed,
    /// A collection's re-index finished and was swapped in.
    #[serde(rename = "reindex.done")]
    ReindexDone,
}

text_enum!(WebhookEvent, "webhook event", {
    DocumentReady => "document.ready",
    DocumentFailed => "document.failed",
    ReindexDone => "reindex.done",
});

/// An endpoint of a tenant's that is told of its events. The secret signs
/// every delivery; it is shown once, when the webhook is made.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Webhook {
    pub id: WebhookId,
    #[schema(value_type = String)]
    pub tenant: TenantName,
    pub url: String,
    pub events: Vec<WebhookEvent>,
    #[serde(skip)]
    pub secret: String,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    /// Not delivered yet; tried again at `next_attempt_at`.
    Pending,
    /// The endpoint answered 2xx.
    Delivered,
    /// Every attempt failed (`WEBHOOK_MAX_ATTEMPTS`).
    Failed,
}

text_enum!(DeliveryStatus, "delivery status", {
    Pending => "pending",
    Delivered => "delivered",
    Failed => "failed",
});

/// One event on its way to one webhook: an outbox row, written with the change
/// it tells of, so that it survives a restart.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Delivery {
    #[schema(value_type = String, format = Uuid)]
    pub id: uuid::Uuid,
    pub webhook_id: WebhookId,
    pub event: WebhookEvent,
    /// The JSON body sent.
    #[schema(value_type = Object)]
    pub payload: serde_json::Value,
    pub status: DeliveryStatus,
    pub attempts: u32,
    /// The HTTP status of the last attempt, if the endpoint answered.
    pub last_status: Option<u16>,
    /// Why the last attempt failed.
    pub last_error: Option<String>,
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub delivered_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

/// How one attempt went.
#[derive(Debug, Clone)]
pub enum AttemptOutcome {
    Delivered {
        status: u16,
    },
    /// Tried again at `retry_at`, or failed for good when that is `None`.
    Failed {
        status: Option<u16>,
        error: String,
        retry_at: Option<DateTime<Utc>>,
    },
}
