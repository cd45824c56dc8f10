//! Webhooks: a tenant's endpoints told of its documents and re-indexes
//! (`document.ready`, `document.failed`, `reindex.done`). The events are put in
//! an outbox in the transaction that ends their job (`catalog::finish_job`),
//! and the [`dispatch`] loop posts them, signed ([`signature`]), retrying with
//! backoff; each delivery's attempts can be read back.

pub mod address;
pub mod dispatch;
pub mod signature;

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::auth::Scope;
use crate::catalog::{Catalog, CatalogError, now};
use crate::config::WebhookSettings;
use crate::domain::{Delivery, Webhook, WebhookEvent, WebhookId};

/// A tenant has at most this many webhooks.
pub const MAX_WEBHOOKS: usize = 20;
/// Deliveries listed per webhook, newest first.
pub const DELIVERIES_LISTED: u32 = 100;

#[derive(Debug, thiserror::Error)]
pub enum WebhooksError {
    #[error("{0}")]
    Invalid(String),
    #[error("no webhook {0}")]
    NotFound(String),
    #[error("could not make a secret: {0}")]
    Random(String),
    #[error(transparent)]
    Catalog(#[from] CatalogError),
}

/// `POST /v1/webhooks`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateWebhook {
    /// Where the events are posted (http or https).
    #[schema(example = "https://hooks.example.com/docqa", pattern = "^https?://[^/?#\\s]+")]
    pub url: String,
    /// At least one of `document.ready`, `document.failed`, `reindex.done`.
    #[schema(min_items = 1)]
    pub events: Vec<WebhookEvent>,
    /// Signs each delivery (HMAC-SHA256); made for you when absent. 16 to 256 characters.
    #[schema(min_length = 16, max_length = 256)]
    pub secret: Option<String>,
}

/// A webhook as made: its secret shown this once.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedWebhook {
    #[serde(flatten)]
    pub webhook: Webhook,
    pub secret: String,
}

pub struct Webhooks {
    catalog: Arc<dyn Catalog>,
    settings: WebhookSettings,
}

impl Webhooks {
    pub fn new(catalog: Arc<dyn Catalog>, settings: WebhookSettings) -> Self {
        Self { catalog, settings }
    }

    /// A new webhook of the scope's tenant.
    pub async fn create(&self, scope: &Scope, request: CreateWebhook) -> Result<CreatedWebhook, WebhooksError> {
        let url = address::check(&request.url, self.settings.allow_private)
            .await
            .map_err(WebhooksError::Invalid)?;
        let mut events = request.events;
        events.sort_by_key(|e| e.as_str());
        events.dedup();
        if events.is_empty() {
            return Err(WebhooksError::Invalid("events: name at least one".into()));
        }
        let secret = match request.secret {
            Some(secret) if !(16..=256).contains(&secret.chars().count()) => {
                return Err(WebhooksError::Invalid("secret: 16 to 256 characters".into()));
            }
            Some(secret) => secret,
            None => {
                let mut bytes = [0u8; 32];
                getrandom::fill(&mut bytes).map_err(|e| WebhooksError::Random(e.to_string()))?;
                format!("whsec_{}", hex::encode(bytes))
            }
        };
        if self.catalog.list_webhooks(&scope.tenant).await?.len() >= MAX_WEBHOOKS {
            return Err(WebhooksError::Invalid(format!(
                "a tenant has at most {MAX_WEBHOOKS} webhooks"
            )));
        }
        let webhook = Webhook {
            id: WebhookId::new(),
            tenant: scope.tenant.clone(),
            url: url.to_string(),
            events,
            secret: secret.clone(),
            created_at: now(),
        };
        self.catalog.create_webhook(&webhook).await?;
        tracing::info!(webhook = %webhook.id, tenant = %webhook.tenant, "webhook made");
        Ok(CreatedWebhook { webhook, secret })
    }

    pub async fn list(&self, scope: &Scope) -> Result<Vec<Webhook>, WebhooksError> {
        Ok(self.catalog.list_webhooks(&scope.tenant).await?)
    }

    pub async fn delete(&self, scope: &Scope, id: WebhookId) -> Result<(), WebhooksError> {
        match self.catalog.delete_webhook(&scope.tenant, id).await? {
            true => Ok(()),
            false => Err(WebhooksError::NotFound(id.to_string())),
        }
    }

    /// A webhook's latest deliveries and their attempts.
    pub async fn deliveries(&self, scope: &Scope, id: WebhookId) -> Result<Vec<Delivery>, WebhooksError> {
        self.catalog
            .get_webhook(id)
            .await?
            .filter(|webhook| webhook.tenant == scope.tenant)
            .ok_or_else(|| WebhooksError::NotFound(id.to_string()))?;
        Ok(self.catalog.webhook_deliveries(id, DELIVERIES_LISTED).await?)
    }
}
