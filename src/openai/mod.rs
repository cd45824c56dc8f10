//! One way to reach any OpenAI-compatible endpoint (OpenAI, vLLM, Ollama, …):
//! an async-openai client on our own reqwest client, so timeouts are ours, and
//! our retry policy under it (429 and 5xx, `Retry-After`, jittered backoff).

pub mod retry;

use async_openai::Client;
use async_openai::config::OpenAIConfig;
use async_openai::middleware::ReqwestService;

use secrecy::ExposeSecret;

use crate::config::LlmSettings;

/// rustls needs one process-wide crypto provider; ring is the one we build.
pub fn install_crypto_provider() {
    // Fails only when a provider is already installed, which is what we want.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

pub fn client(settings: &LlmSettings) -> Result<Client<OpenAIConfig>, reqwest::Error> {
    install_crypto_provider();
    let http = reqwest::Client::builder()
        .timeout(settings.timeout)
        .connect_timeout(settings.timeout.min(std::time::Duration::from_secs(10)))
        .build()?;
    let mut config = OpenAIConfig::new().with_api_base(settings.base_url.clone());
    if let Some(key) = &settings.api_key {
        config = config.with_api_key(key.expose_secret());
    }
    let service = tower::ServiceBuilder::new()
        .retry(retry::RetryPolicy::new(settings.max_retries, settings.timeout))
        .service(ReqwestService::new(http));
    Ok(Client::with_config(config).with_http_service(service))
}
