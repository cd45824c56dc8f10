//! Retrying an attempt with exponential backoff until a deadline: how the
//! server waits at start for a Postgres or a Qdrant that is still coming up.

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

const FIRST_PAUSE: Duration = Duration::from_millis(250);
const LONGEST_PAUSE: Duration = Duration::from_secs(5);

/// Runs `attempt` until it succeeds, `retryable` says its error is final, or
/// `patience` has passed; returns the last error then. Each retry is logged with
/// `what` (which backend, where).
pub async fn retry<T, E, F, Fut>(
    what: &str,
    patience: Duration,
    retryable: impl Fn(&E) -> bool,
    mut attempt: F,
) -> Result<T, E>
where
    E: std::fmt::Display,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let deadline = Instant::now() + patience;
    let mut pause = FIRST_PAUSE;
    let mut attempts = 1u32;
    loop {
        match attempt().await {
            Ok(value) => return Ok(value),
            Err(e) if !retryable(&e) => return Err(e),
            Err(e) => {
                let now = Instant::now();
                if now + pause > deadline {
                    return Err(e);
                }
                tracing::warn!(backend = what, attempt = attempts, error = %e,
                    retry_in_ms = pause.as_millis() as u64, "backend not reachable yet");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(LONGEST_PAUSE);
                attempts += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[tokio::test(start_paused = true)]
    async fn retries_until_it_works() {
        let calls = AtomicU32::new(0);
        let result: Result<u32, String> = retry(
            "test",
            Duration::from_secs(10),
            |_| true,
            || async {
                let n = calls.fetch_add(1, Ordering::SeqCst);
                if n < 3 { Err(format!("down {n}")) } else { Ok(n) }
            },
        )
        .await;
        assert_eq!(result, Ok(3));
    }

    #[tokio::test(start_paused = true)]
    async fn gives_up_after_its_patience_with_the_last_error() {
        let started = Instant::now();
        let calls = AtomicU32::new(0);
        let result: Result<(), String> = retry(
            "test",
            Duration::from_secs(3),
            |_| true,
            || async { Err(format!("down {}", calls.fetch_add(1, Ordering::SeqCst))) },
        )
        .await;
        let attempts = calls.load(Ordering::SeqCst);
        assert_eq!(result, Err(format!("down {}", attempts - 1)));
        // 0.25 + 0.5 + 1 + (2 would pass the deadline): four attempts in 1.75 s.
        assert_eq!(attempts, 4);
        assert!(started.elapsed() <= Duration::from_secs(3));
    }

    #[tokio::test(start_paused = true)]
    async fn a_final_error_is_not_retried() {
        let calls = AtomicU32::new(0);
        let result: Result<(), String> = retry(
            "test",
            Duration::from_secs(30),
            |_| false,
            || async {
                calls.fetch_add(1, Ordering::SeqCst);
                Err("bad password".to_string())
            },
        )
        .await;
        assert!(result.is_err());
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }
}
