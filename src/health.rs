//! Readiness (are the catalog, the index and the embedder answering?) and the
//! counters `/metrics` exposes.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde::Serialize;
use utoipa::ToSchema;

use crate::catalog::Catalog;
use crate::embed::Embedder;
use crate::index::VectorIndex;
use crate::ingest::extract::Ocr;

/// A check that takes longer than this counts as down.
const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// How long a good embedder check is reused: `/readyz` is open to everyone
/// and polled often, and each check is a model inference.
const EMBEDDER_CHECK_REUSE: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ComponentStatus {
    pub ok: bool,
    pub detail: String,
    /// When the check ran, for a check whose good result is reused a few seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub checked_at: Option<chrono::DateTime<chrono::Utc>>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Readiness {
    /// `ready` or `unavailable`.
    pub status: String,
    pub catalog: ComponentStatus,
    pub index: ComponentStatus,
    pub embedder: ComponentStatus,
    /// `hybrid` (dense + BM25) or `bm25-only`.
    pub retrieval: String,
    /// `available` or `unavailable`: images and scanned pages need it, the rest
    /// of the server does not (it is ready without).
    pub ocr: String,
    /// The OCR engine and its languages, or why there is none.
    pub ocr_detail: String,
}

pub struct HealthChecks {
    catalog: Arc<dyn Catalog>,
    index: Arc<dyn VectorIndex>,
    embedder: Option<Arc<dyn Embedder>>,
    bm25_only_reason: Option<String>,
    ocr: Arc<Ocr>,
    /// The last good embedder check, and when it ran. Callers that arrive while
    /// a check runs wait for it instead of starting their own.
    embedder_checked: tokio::sync::Mutex<Option<(Instant, ComponentStatus)>>,
}

impl HealthChecks {
    pub fn new(
        catalog: Arc<dyn Catalog>,
        index: Arc<dyn VectorIndex>,
        embedder: Option<Arc<dyn Embedder>>,
        bm25_only_reason: Option<String>,
        ocr: Arc<Ocr>,
    ) -> Self {
        Self {
            catalog,
            index,
            embedder,
            bm25_only_reason,
            ocr,
            embedder_checked: tokio::sync::Mutex::new(None),
        }
    }

    pub fn retrieval_mode(&self) -> &'static str {
        if self.embedder.is_some() { "hybrid" } else { "bm25-only" }
    }

    pub async fn readiness(&self) -> Readiness {
        let ok = |()| "ok".to_string();
        let catalog = status(CHECK_TIMEOUT, async { self.catalog.ping().await.map(ok) }).await;
        let index = status(CHECK_TIMEOUT, async { self.index.ping().await.map(ok) }).await;
        let embedder = match (&self.embedder, &self.bm25_only_reason) {
            (Some(embedder), _) => self.embedder_status(embedder.as_ref()).await,
            // Running without a model was chosen or allowed: not down, but said.
            (None, reason) => ComponentStatus {
                ok: true,
                detail: reason.clone().unwrap_or_else(|| "no dense embedder".into()),
                checked_at: None,
            },
        };
        let ready = catalog.ok && index.ok && embedder.ok;
        Readiness {
            status: if ready { "ready" } else { "unavailable" }.to_string(),
            catalog,
            index,
            embedder,
            retrieval: self.retrieval_mode().to_string(),
            ocr: if self.ocr.status().is_ok() {
                "available"
            } else {
                "unavailable"
            }
            .to_string(),
            ocr_detail: match self.ocr.status() {
                Ok(engine) | Err(engine) => engine.to_string(),
            },
        }
    }
}

impl HealthChecks {
    /// One inference, unless a good one ran in the last [`EMBEDDER_CHECK_REUSE`];
    /// a failed check is never reused, so recovery shows at the next call.
    async fn embedder_status(&self, embedder: &dyn Embedder) -> ComponentStatus {
        let mut checked = self.embedder_checked.lock().await;
        if let Some((at, status)) = checked.as_ref()
            && at.elapsed() < EMBEDDER_CHECK_REUSE
        {
            return status.clone();
        }
        let model = embedder.model();
        let embedded = async {
            let vector = embedder.embed_query("ping").await.map_err(|e| e.to_string())?;
            match vector.len() == model.dimension {
                true => Ok(format!("{} ({}, {} dims)", model.name, model.variant, model.dimension)),
                false => Err(format!("returned {} dims, expected {}", vector.len(), model.dimension)),
            }
        };
        let mut status = status(CHECK_TIMEOUT * 5, embedded).await;
        status.checked_at = Some(chrono::Utc::now());
        *checked = status.ok.then(|| (Instant::now(), status.clone()));
        status
    }
}

/// A component's check within `limit`: its detail, or why it failed.
async fn status<E: std::fmt::Display>(
    limit: Duration,
    check: impl Future<Output = Result<String, E>>,
) -> ComponentStatus {
    let (ok, detail) = match tokio::time::timeout(limit, check).await {
        Ok(Ok(detail)) => (true, detail),
        Ok(Err(e)) => (false, e.to_string()),
        Err(_) => (false, "timed out".to_string()),
    };
    ComponentStatus {
        ok,
        detail,
        checked_at: None,
    }
}

/// Request counters, rendered in the Prometheus text format.
pub struct Metrics {
    started: Instant,
    by_class: [AtomicU64; 5],
    duration_micros: AtomicU64,
}

impl Default for Metrics {
    fn default() -> Self {
        Self {
            started: Instant::now(),
            by_class: Default::default(),
            duration_micros: AtomicU64::new(0),
        }
    }
}

impl Metrics {
    pub fn record(&self, status: u16, elapsed: Duration) {
        let class = (status / 100).clamp(1, 5) as usize - 1;
        self.by_class[class].fetch_add(1, Ordering::Relaxed);
        self.duration_micros
            .fetch_add(elapsed.as_micros() as u64, Ordering::Relaxed);
    }

    pub fn render(&self, retrieval_mode: &str) -> String {
        let mut out = String::new();
        out.push_str("# HELP docqa_http_requests_total HTTP requests by status class.\n");
        out.push_str("# TYPE docqa_http_requests_total counter\n");
        let mut total = 0;
        for (i, counter) in self.by_class.iter().enumerate() {
            let n = counter.load(Ordering::Relaxed);
            total += n;
            out.push_str(&format!("docqa_http_requests_total{{status=\"{}xx\"}} {n}\n", i + 1));
        }
        out.push_str("# HELP docqa_http_request_duration_seconds Time spent in requests.\n");
        out.push_str("# TYPE docqa_http_request_duration_seconds summary\n");
        out.push_str(&format!(
            "docqa_http_request_duration_seconds_sum {}\n",
            self.duration_micros.load(Ordering::Relaxed) as f64 / 1e6
        ));
        out.push_str(&format!("docqa_http_request_duration_seconds_count {total}\n"));
        out.push_str("# HELP docqa_uptime_seconds Seconds since the server started.\n");
        out.push_str("# TYPE docqa_uptime_seconds gauge\n");
        out.push_str(&format!("docqa_uptime_seconds {}\n", self.started.elapsed().as_secs()));
        out.push_str("# HELP docqa_retrieval_mode 1 for the retrieval mode in use.\n");
        out.push_str("# TYPE docqa_retrieval_mode gauge\n");
        out.push_str(&format!("docqa_retrieval_mode{{mode=\"{retrieval_mode}\"}} 1\n"));
        out
    }
}
