//! Webhooks: where deliveries may go, and how they are retried.

use std::time::Duration;

use super::ConfigError;
use super::vars::Vars;

#[derive(Debug, Clone, Copy)]
pub struct WebhookSettings {
    /// Whether a webhook's URL may resolve to a loopback, private or link-local
    /// address (`WEBHOOK_ALLOW_PRIVATE`; off: no reaching into the server's network).
    pub allow_private: bool,
    /// Attempts per delivery, the first included (`WEBHOOK_MAX_ATTEMPTS`).
    pub max_attempts: u32,
    /// The wait before the first retry; it doubles each time, up to an hour
    /// (`WEBHOOK_RETRY_BASE_MS`).
    pub retry_base: Duration,
    /// One attempt, connecting included (`WEBHOOK_TIMEOUT_SECS`).
    pub timeout: Duration,
}

impl WebhookSettings {
    pub fn parse(vars: &Vars) -> Result<Self, ConfigError> {
        Ok(Self {
            allow_private: vars.flag("WEBHOOK_ALLOW_PRIVATE", false)?,
            max_attempts: vars.range("WEBHOOK_MAX_ATTEMPTS", 8, 1, 100)?,
            retry_base: Duration::from_millis(vars.range("WEBHOOK_RETRY_BASE_MS", 1000, 10, 3_600_000)?),
            timeout: Duration::from_secs(vars.range("WEBHOOK_TIMEOUT_SECS", 10, 1, 300)?),
        })
    }
}
