//! The LLM: any OpenAI-compatible chat endpoint.

use std::time::Duration;

use secrecy::SecretString;

use super::ConfigError;
use super::vars::Vars;

#[derive(Debug, Clone)]
pub struct LlmSettings {
    pub base_url: String,
    pub api_key: Option<SecretString>,
    pub model: String,
    /// For one call, retries included.
    pub timeout: Duration,
    /// Further attempts after a 429, a 5xx or a refused connection.
    pub max_retries: u32,
    /// Failed calls in a row after which the provider is not called…
    pub breaker_failures: u32,
    /// …for this long (then one call probes it).
    pub breaker_cooldown: Duration,
}

/// LLM calls in flight at once, at most, unless `LLM_MAX_CONCURRENCY` says otherwise.
pub const DEFAULT_LLM_MAX_CONCURRENCY: usize = 16;

/// `LLM_MAX_CONCURRENCY`: read whether or not an LLM is configured (one may be
/// injected).
pub fn max_concurrency(vars: &Vars) -> Result<usize, ConfigError> {
    vars.range("LLM_MAX_CONCURRENCY", DEFAULT_LLM_MAX_CONCURRENCY, 1, 100_000)
}

impl LlmSettings {
    /// `None` when neither an endpoint nor a key is set: answers are extractive.
    pub fn parse(vars: &Vars) -> Result<Option<Self>, ConfigError> {
        let api_key = vars.get("LLM_API_KEY").or(vars.get("OPENAI_API_KEY"));
        let timeout = vars.range("LLM_TIMEOUT_SECS", 60, 1, 3600)?;
        let max_retries = vars.range("LLM_MAX_RETRIES", 2, 0, 10)?;
        let breaker_failures = vars.range("LLM_BREAKER_FAILURES", 5, 1, 1000)?;
        let breaker_cooldown = vars.range("LLM_BREAKER_COOLDOWN_SECS", 30, 1, 3600)?;
        let base = match (vars.get("LLM_BASE_URL"), api_key) {
            (None, None) => return Ok(None),
            (base, _) => base.unwrap_or("https://api.openai.com/v1"),
        };
        Ok(Some(Self {
            base_url: vars.http_url("LLM_BASE_URL", base, "")?,
            api_key: api_key.map(|key| key.to_string().into()),
            model: vars.get("LLM_MODEL").unwrap_or("gpt-4o-mini").to_string(),
            timeout: Duration::from_secs(timeout),
            max_retries,
            breaker_failures,
            breaker_cooldown: Duration::from_secs(breaker_cooldown),
        }))
    }
}
