//! The workers: each claims the oldest job that may run, runs it unless a
//! delete holds what it works on, and records the outcome.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::FutureExt;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::Pipeline;
use crate::catalog::{CatalogError, ClaimedJob, JobOutcome};
use crate::domain::Document;
use crate::ingest::JobSignals;

/// The workers, running until cancelled.
pub struct WorkerPool {
    handles: Vec<JoinHandle<()>>,
    cancel: CancellationToken,
}

impl WorkerPool {
    /// Requeues interrupted jobs, then starts `workers` loops.
    pub async fn start(pipeline: Arc<Pipeline>, signals: JobSignals, workers: usize) -> Result<Self, CatalogError> {
        let requeued = pipeline.catalog.requeue_interrupted_jobs().await?;
        if requeued > 0 {
            tracing::info!(requeued, "resuming jobs interrupted by the last shutdown");
        }
        let cancel = CancellationToken::new();
        let handles = (0..workers)
            .map(|worker| {
                let pipeline = Arc::clone(&pipeline);
                let signals = signals.clone();
                let cancel = cancel.clone();
                tokio::spawn(async move {
                    tokio::select! {
                        () = cancel.cancelled() => {}
                        () = work_loop(worker, pipeline, signals) => {}
                    }
                })
            })
            .collect();
        signals.work_available();
        Ok(Self { handles, cancel })
    }

    /// Stops taking jobs. A job cut off here stays `running` and is resumed at the
    /// next start.
    pub async fn stop(self) {
        self.cancel.cancel();
        for handle in self.handles {
            let _ = handle.await;
        }
    }
}

async fn work_loop(worker: usize, pipeline: Arc<Pipeline>, signals: JobSignals) {
    loop {
        match pipeline.catalog.claim_next_job().await {
            Ok(Some(claimed)) => {
                run_claimed(worker, &pipeline, &claimed).await;
                signals.job_finished(claimed.job().id);
            }
            Ok(None) => signals.wait_for_work(Duration::from_secs(2)).await,
            Err(e) => {
                tracing::error!(worker, error = %e, "could not claim a job");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

/// Runs a claimed job unless a delete holds what it works on, stops it when a
/// delete asks, and records how it ended.
async fn run_claimed(worker: usize, pipeline: &Pipeline, claimed: &ClaimedJob) {
    let job = claimed.job();
    let Some(running) = pipeline.in_flight.start(job) else {
        // Its collection or document is being deleted, the job with it; should
        // that delete fail, the job runs later.
        let outcome = JobOutcome::Retry {
            reason: "waiting for a delete to finish".into(),
            after: Duration::from_secs(1),
        };
        if let Err(e) = pipeline.catalog.finish_job(job.id, &outcome).await {
            tracing::error!(job = %job.id, error = %e, "could not record job outcome");
        }
        return;
    };
    // A delete that ended between the claim and the line above took the job with
    // it; one that starts from here waits for this job.
    match pipeline.catalog.get_job(job.id).await {
        Ok(Some(_)) => {}
        Ok(None) => {
            tracing::info!(job = %job.id, "job deleted before it started");
            return;
        }
        Err(e) => tracing::warn!(job = %job.id, error = %e, "could not check the job before starting it"),
    }
    let started = Instant::now();
    tracing::info!(worker, job = %job.id, kind = job.kind.as_str(), collection = %job.collection,
        document = ?job.document_id, attempt = job.attempts, "job started");
    let cancel = running.cancellation();
    let run = std::panic::AssertUnwindSafe(pipeline.run(claimed, &cancel)).catch_unwind();
    let outcome = run.await.unwrap_or_else(|panic| {
        let reason = format!(
            "internal error: the job panicked ({})",
            crate::background::panic_message(&*panic)
        );
        tracing::error!(job = %job.id, reason = %crate::telemetry::Sanitized(&reason), "job panicked");
        JobOutcome::Failed { reason }
    });
    if cancel.is_cancelled() {
        // A delete stopped it and removes what it wrote once we let go; should the
        // delete fail, the job (queued again) runs anew.
        drop(running);
        tracing::info!(job = %job.id, document = ?job.document_id, "job stopped by a delete");
        if let Err(e) = pipeline.catalog.finish_job(job.id, &outcome).await {
            tracing::error!(job = %job.id, error = %e, "could not record job outcome");
        }
        return;
    }
    if let ClaimedJob::Ingest { document, .. } = claimed
        && matches!(outcome, JobOutcome::Failed { .. })
    {
        // A failed document leaves no vectors behind.
        remove_vectors(pipeline, document).await;
    }
    match pipeline.catalog.finish_job(job.id, &outcome).await {
        Ok(true) => {}
        Ok(false) => {
            // Deleted while we worked: take back the vectors we wrote.
            if let ClaimedJob::Ingest { document, .. } = claimed {
                remove_vectors(pipeline, document).await;
            }
        }
        Err(e) => tracing::error!(job = %job.id, error = %e, "could not record job outcome"),
    }
    drop(running);
    let ms = started.elapsed().as_millis() as u64;
    match &outcome {
        JobOutcome::Ingested { pages, chunks, .. } => {
            tracing::info!(job = %job.id, document = ?job.document_id, pages, chunks, ms, "job succeeded")
        }
        JobOutcome::Reindexed { model } => {
            tracing::info!(job = %job.id, collection = %job.collection, model = ?model.as_ref().map(|m| &m.name), ms, "job succeeded")
        }
        JobOutcome::Failed { reason } => {
            // A parser's reason may quote the document.
            let reason = crate::telemetry::Sanitized(reason);
            tracing::warn!(job = %job.id, document = ?job.document_id, %reason, "job failed")
        }
        JobOutcome::Retry { reason, after } => tracing::warn!(job = %job.id, document = ?job.document_id,
            reason = %crate::telemetry::Sanitized(reason), retry_in_s = after.as_secs(), "job postponed: a backend is down"),
    }
}

async fn remove_vectors(pipeline: &Pipeline, document: &Document) {
    if let Err(e) = pipeline.index.delete_document(&document.collection, document.id).await {
        tracing::warn!(document = %document.id, error = %e, "could not remove the vectors of a document");
    }
}
