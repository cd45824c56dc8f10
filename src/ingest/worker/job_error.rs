//! Why a job did not succeed, and how cancellation stops it between steps.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::extract;
use crate::catalog::CatalogError;
use crate::domain::ModelMismatch;
use crate::embed::EmbedError;
use crate::index::IndexError;

const LONGEST_RETRY_PAUSE: Duration = Duration::from_secs(300);

/// Why a job did not succeed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum JobError {
    /// For good: the input or the setup is wrong. The reason is shown to users.
    #[error("{0}")]
    Failed(String),
    /// Something the job needs is down: worth another try later.
    #[error("{0}")]
    Unavailable(String),
    /// A delete of its document or collection stopped it.
    #[error("interrupted by a delete")]
    Cancelled,
}

impl JobError {
    pub(crate) fn failed(e: impl std::fmt::Display) -> Self {
        Self::Failed(e.to_string())
    }
}

/// Runs `work` unless the job is cancelled first; for work that changes nothing
/// outside the job (extracting, embedding), so that dropping it half way is safe.
pub(super) async fn unless_cancelled<T, E: Into<JobError>>(
    cancel: &CancellationToken,
    work: impl Future<Output = Result<T, E>>,
) -> Result<T, JobError> {
    tokio::select! {
        result = work => result.map_err(Into::into),
        () = cancel.cancelled() => Err(JobError::Cancelled),
    }
}

/// Stops at a step boundary when the job is cancelled: index and catalog writes
/// are never cut in half, so a delete that waits for the job finds them done.
pub(super) fn checkpoint(cancel: &CancellationToken) -> Result<(), JobError> {
    if cancel.is_cancelled() {
        Err(JobError::Cancelled)
    } else {
        Ok(())
    }
}

impl From<extract::ExtractError> for JobError {
    fn from(e: extract::ExtractError) -> Self {
        Self::failed(e)
    }
}

impl From<CatalogError> for JobError {
    fn from(e: CatalogError) -> Self {
        match e {
            CatalogError::Unavailable(detail) | CatalogError::Conflict(detail) => {
                Self::Unavailable(format!("catalog unavailable: {detail}"))
            }
            other => Self::Failed(format!("catalog: {other}")),
        }
    }
}

impl From<IndexError> for JobError {
    fn from(e: IndexError) -> Self {
        match e {
            IndexError::Unavailable(detail) => Self::Unavailable(format!("vector index unavailable: {detail}")),
            other => Self::Failed(format!("indexing: {other}")),
        }
    }
}

impl From<EmbedError> for JobError {
    fn from(e: EmbedError) -> Self {
        match e {
            EmbedError::Remote(detail) => Self::Unavailable(format!("embedding service unavailable: {detail}")),
            other => Self::Failed(other.to_string()),
        }
    }
}

impl From<Box<ModelMismatch>> for JobError {
    fn from(e: Box<ModelMismatch>) -> Self {
        Self::failed(format!("{e}, then upload this document again"))
    }
}

/// Backoff for a job that met a backend that is down: 5 s, 10 s, 20 s, … up to 5 min.
pub(super) fn retry_pause(attempts: u32) -> Duration {
    let exponent = attempts.saturating_sub(1).min(10);
    (Duration::from_secs(5) * 2u32.pow(exponent)).min(LONGEST_RETRY_PAUSE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_back_off_up_to_five_minutes() {
        assert_eq!(retry_pause(1), Duration::from_secs(5));
        assert_eq!(retry_pause(2), Duration::from_secs(10));
        assert_eq!(retry_pause(4), Duration::from_secs(40));
        assert_eq!(retry_pause(7), Duration::from_secs(300));
        assert_eq!(retry_pause(u32::MAX), Duration::from_secs(300));
    }
}
