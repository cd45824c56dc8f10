//! Retries of an OpenAI-compatible call, as a tower policy under async-openai:
//! a 429 or a 5xx (or a refused connection) is tried again after a jittered
//! exponential pause, or after the `Retry-After` the provider asked for. Never
//! past the call's time budget: a wait that would end after it is not taken,
//! and the error goes back to the caller at once.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use async_openai::error::OpenAIError;
use async_openai::middleware::HttpRequestFactory;
use reqwest::{Response, StatusCode};
use tokio::time::Instant;

const FIRST_PAUSE: Duration = Duration::from_millis(250);
const LONGEST_PAUSE: Duration = Duration::from_secs(4);

#[derive(Debug)]
pub struct RetryPolicy {
    max_retries: u32,
    budget: Duration,
    /// Of one request: tower copies the service's policy for each request it
    /// sends (and never again while retrying it), so a copy starts afresh.
    retries: u32,
    deadline: Instant,
}

impl RetryPolicy {
    /// At most `max_retries` more attempts, all within `budget` of the first.
    pub fn new(max_retries: u32, budget: Duration) -> Self {
        Self {
            max_retries,
            budget,
            retries: 0,
            deadline: Instant::now() + budget,
        }
    }
}

impl Clone for RetryPolicy {
    /// A copy is the policy of a new request: no retries yet, the clock starts now.
    fn clone(&self) -> Self {
        Self::new(self.max_retries, self.budget)
    }
}

/// Worth another attempt: rate limited, a server error other than "not
/// implemented", or a connection that was refused.
fn is_transient(result: &Result<Response, OpenAIError>) -> Option<String> {
    match result {
        Ok(response) => {
            let status = response.status();
            let transient = status == StatusCode::TOO_MANY_REQUESTS
                || (status.is_server_error() && status != StatusCode::NOT_IMPLEMENTED);
            transient.then(|| status.to_string())
        }
        Err(OpenAIError::Reqwest(e)) if e.is_connect() => Some(format!("connection failed: {e}")),
        Err(_) => None,
    }
}

/// `Retry-After` in seconds (whole or fractional). An HTTP date is not
/// understood, and then the backoff decides alone.
fn retry_after(result: &Result<Response, OpenAIError>) -> Option<Duration> {
    let value = result.as_ref().ok()?.headers().get(reqwest::header::RETRY_AFTER)?;
    let seconds: f64 = value.to_str().ok()?.trim().parse().ok()?;
    (seconds.is_finite() && seconds >= 0.0).then(|| Duration::from_secs_f64(seconds.min(86_400.0)))
}

/// Equal jitter: half the exponential pause, plus up to as much again at
/// random, so that many clients turned away together do not return together.
fn backoff(retry: u32, unit: f64) -> Duration {
    let full = FIRST_PAUSE
        .saturating_mul(2u32.saturating_pow(retry))
        .min(LONGEST_PAUSE);
    full.mul_f64(0.5 + 0.5 * unit.clamp(0.0, 1.0))
}

/// How long to wait before attempt `retries + 2`, or `None` when the result stands.
fn pause(
    retries: u32,
    max_retries: u32,
    asked: Option<Duration>,
    jittered: Duration,
    remaining: Duration,
) -> Option<Duration> {
    if retries >= max_retries {
        return None;
    }
    let wait = asked.map_or(jittered, |asked| asked.max(jittered));
    // Waiting longer than the budget only delays the same failure.
    (wait < remaining).then_some(wait)
}

impl tower::retry::Policy<HttpRequestFactory, Response, OpenAIError> for RetryPolicy {
    type Future = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

    fn retry(
        &mut self,
        _request: &mut HttpRequestFactory,
        result: &mut Result<Response, OpenAIError>,
    ) -> Option<Self::Future> {
        let reason = is_transient(result)?;
        let now = Instant::now();
        let remaining = self.deadline.saturating_duration_since(now);
        let asked = retry_after(result);
        let Some(wait) = pause(
            self.retries,
            self.max_retries,
            asked,
            backoff(self.retries, fastrand::f64()),
            remaining,
        ) else {
            tracing::warn!(%reason, retries = self.retries, retry_after_ms = asked.map(|d| d.as_millis() as u64),
                "OpenAI-compatible call failed; not retrying (out of retries or of time)");
            return None;
        };
        self.retries += 1;
        tracing::warn!(%reason, attempt = self.retries + 1, wait_ms = wait.as_millis() as u64,
            "OpenAI-compatible call failed; retrying");
        Some(Box::pin(tokio::time::sleep(wait)))
    }

    fn clone_request(&mut self, request: &HttpRequestFactory) -> Option<HttpRequestFactory> {
        // Called again before each retry, on the request's own copy: no reset here.
        Some(request.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: Duration = Duration::from_secs(1);

    #[test]
    fn the_backoff_doubles_with_jitter_and_is_capped() {
        assert_eq!(backoff(0, 0.0), Duration::from_millis(125));
        assert_eq!(backoff(0, 1.0), Duration::from_millis(250));
        assert_eq!(backoff(1, 1.0), Duration::from_millis(500));
        assert_eq!(backoff(10, 1.0), LONGEST_PAUSE);
        assert!(backoff(2, 0.3) > backoff(2, 0.0) && backoff(2, 0.3) < backoff(2, 1.0));
    }

    #[test]
    fn each_copy_is_a_fresh_request() {
        let mut policy = RetryPolicy::new(2, Duration::from_secs(10));
        policy.retries = 2;
        let copy = policy.clone();
        assert_eq!(copy.retries, 0);
        assert!(copy.deadline >= policy.deadline);
    }

    #[test]
    fn retry_after_is_honoured_but_never_past_the_budget() {
        let jitter = Duration::from_millis(200);
        // The provider's wish wins when it is longer than our own pause.
        assert_eq!(pause(0, 2, Some(2 * SECOND), jitter, 10 * SECOND), Some(2 * SECOND));
        assert_eq!(pause(0, 2, Some(Duration::ZERO), jitter, 10 * SECOND), Some(jitter));
        // A wait that would end after the budget is not taken.
        assert_eq!(pause(0, 2, Some(3600 * SECOND), jitter, 10 * SECOND), None);
        assert_eq!(pause(1, 2, None, jitter, Duration::from_millis(100)), None);
        // Out of retries.
        assert_eq!(pause(2, 2, None, jitter, 10 * SECOND), None);
        assert_eq!(pause(0, 0, None, jitter, 10 * SECOND), None);
    }
}
