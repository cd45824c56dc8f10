//! The loop that posts the outbox's deliveries: it claims those due (each
//! leased while it is sent, so a crash mid-send retries it after the lease),
//! posts them signed, a few at once, and records each attempt. A failed
//! attempt is retried after `WEBHOOK_RETRY_BASE_MS` × 2^(attempts − 1), with
//! jitter, up to an hour apart, until `WEBHOOK_MAX_ATTEMPTS`.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures_util::future::join_all;
use tokio::task::JoinHandle;

use super::{address, signature};
use crate::catalog::{Catalog, now};
use crate::config::WebhookSettings;
use crate::domain::{AttemptOutcome, Delivery, Webhook};

/// Deliveries claimed (and sent at once) per round.
const BATCH: u32 = 8;
/// How often the outbox is looked at when it had nothing due.
const IDLE_POLL: Duration = Duration::from_millis(250);
/// The longest wait between two attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(3600);
/// An endpoint's answer is read this far, for the record.
const ERROR_BODY_CHARS: usize = 200;

pub struct Dispatcher {
    task: JoinHandle<()>,
}

impl Dispatcher {
    pub fn start(catalog: Arc<dyn Catalog>, settings: WebhookSettings) -> Result<Self, reqwest::Error> {
        let client = reqwest::Client::builder()
            .timeout(settings.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("docqa-webhooks/", env!("CARGO_PKG_VERSION")))
            .build()?;
        let task = tokio::spawn(async move {
            loop {
                let sent = round(catalog.as_ref(), &client, &settings).await;
                if sent == 0 {
                    tokio::time::sleep(IDLE_POLL).await;
                }
            }
        });
        Ok(Self { task })
    }
}

impl Drop for Dispatcher {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// One round: the due deliveries sent and recorded; how many.
async fn round(catalog: &dyn Catalog, client: &reqwest::Client, settings: &WebhookSettings) -> usize {
    let at = now();
    // Longer than one attempt can take: nobody else sends it meanwhile.
    let lease = at + chrono::Duration::from_std(settings.timeout * 2).unwrap_or_default();
    let due = match catalog.claim_deliveries(at, lease, BATCH).await {
        Ok(due) => due,
        Err(e) => {
            tracing::warn!(error = %e, "webhook outbox unavailable; trying again shortly");
            tokio::time::sleep(Duration::from_secs(1)).await;
            return 0;
        }
    };
    let attempts = due.iter().map(|(delivery, webhook)| async move {
        let outcome = attempt(client, settings, delivery, webhook).await;
        if let Err(e) = catalog.record_attempt(delivery.id, &outcome).await {
            // The lease runs out and the delivery is sent again: at least once.
            tracing::warn!(delivery = %delivery.id, error = %e, "a delivery attempt could not be recorded");
        }
    });
    join_all(attempts).await;
    due.len()
}

async fn attempt(
    client: &reqwest::Client,
    settings: &WebhookSettings,
    delivery: &Delivery,
    webhook: &Webhook,
) -> AttemptOutcome {
    let attempts = delivery.attempts + 1;
    let failed = |status: Option<u16>, error: String| {
        let retry_at = (attempts < settings.max_attempts).then(|| retry_at(settings.retry_base, attempts));
        tracing::info!(delivery = %delivery.id, webhook = %webhook.id, attempts, ?status, %error, "webhook delivery failed");
        AttemptOutcome::Failed {
            status,
            error,
            retry_at,
        }
    };
    // Checked again: the name may point elsewhere since the webhook was made.
    let url = match address::check(&webhook.url, settings.allow_private).await {
        Ok(url) => url,
        Err(reason) => return failed(None, reason),
    };
    let body = delivery.payload.to_string().into_bytes();
    let signed = signature::sign(&webhook.secret, Utc::now().timestamp(), &body);
    let response = client
        .post(url)
        .header("content-type", "application/json")
        .header(signature::HEADER, signed)
        .header("docqa-event", delivery.event.as_str())
        .header("docqa-delivery", delivery.id.to_string())
        .body(body)
        .send()
        .await;
    match response {
        Ok(response) if response.status().is_success() => AttemptOutcome::Delivered {
            status: response.status().as_u16(),
        },
        Ok(response) => {
            let status = response.status().as_u16();
            let said: String = response
                .text()
                .await
                .unwrap_or_default()
                .chars()
                .take(ERROR_BODY_CHARS)
                .collect();
            failed(Some(status), format!("the endpoint answered HTTP {status}: {said}"))
        }
        Err(e) if e.is_timeout() => failed(None, format!("no answer within {} s", settings.timeout.as_secs())),
        Err(e) => failed(None, format!("could not post: {e}")),
    }
}

/// When attempt `attempts + 1` is due: the base doubled per attempt made, up
/// to an hour, ±20 % so that many failed deliveries do not return at once.
fn retry_at(base: Duration, attempts: u32) -> DateTime<Utc> {
    let wait = base
        .saturating_mul(2u32.saturating_pow(attempts.saturating_sub(1)))
        .min(MAX_BACKOFF);
    let jittered = wait.mul_f64(0.8 + fastrand::f64() * 0.4);
    now() + chrono::Duration::from_std(jittered).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_back_off_doubling_up_to_an_hour() {
        let base = Duration::from_secs(1);
        let wait = |attempts| (retry_at(base, attempts) - now()).num_milliseconds();
        assert!((700..=1300).contains(&wait(1)), "{}", wait(1));
        assert!((3100..=4900).contains(&wait(3)), "{}", wait(3));
        assert!(wait(40) <= 3600 * 1200, "{}", wait(40));
    }
}
