//! `docqa ingest PATH…`: walks files and folders and sends every file through
//! the HTTP API — of a running server (`--url`), or of one started in this
//! process on a loopback port, so both go through exactly the same pipeline —
//! with a progress bar, then a summary. Uploads are kept a bounded number ahead
//! of the workers, and a full queue (429) is waited out as it asks.

use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::domain::{DocumentId, JobId, JobStatus};

/// Uploaded but not finished, at most: enough to keep the workers busy.
const IN_FLIGHT: usize = 16;

#[derive(Debug, thiserror::Error)]
pub enum BulkError {
    #[error("{0}: {1}")]
    Walk(PathBuf, std::io::Error),
    #[error("the server at {url}: {detail}")]
    Server { url: String, detail: String },
}

/// The parts of the API's answers this client reads.
#[derive(Deserialize)]
struct UploadAnswer {
    documents: Vec<UploadedRow>,
}

#[derive(Deserialize)]
struct UploadedRow {
    status: String,
    job_id: JobId,
}

#[derive(Deserialize)]
struct ProblemView {
    #[serde(default)]
    detail: String,
}

#[derive(Deserialize)]
struct JobView {
    status: JobStatus,
    error: Option<String>,
    document_id: Option<DocumentId>,
}

#[derive(Deserialize)]
struct DocumentView {
    pages: Option<u64>,
}

/// How each file ended.
#[derive(Debug, Default)]
pub struct Summary {
    pub ready: usize,
    pub duplicate: usize,
    pub pages: u64,
    /// File and reason.
    pub failed: Vec<(PathBuf, String)>,
    pub elapsed: Duration,
}

impl Summary {
    pub fn print(&self) {
        let secs = self.elapsed.as_secs_f64().max(1e-3);
        println!(
            "{} ready, {} duplicate, {} failed; {} pages in {:.1} s ({:.1} pages/s)",
            self.ready,
            self.duplicate,
            self.failed.len(),
            self.pages,
            secs,
            self.pages as f64 / secs
        );
        let mut by_reason: BTreeMap<&str, Vec<&Path>> = BTreeMap::new();
        for (path, reason) in &self.failed {
            by_reason.entry(reason.as_str()).or_default().push(path);
        }
        for (reason, paths) in by_reason {
            println!("failed ({}): {reason}", paths.len());
            for path in paths {
                println!("  {}", path.display());
            }
        }
    }
}

/// Every file under the paths, in a stable order; hidden files are skipped.
pub fn walk(paths: &[PathBuf]) -> Result<Vec<PathBuf>, BulkError> {
    let mut files = Vec::new();
    let mut pending: Vec<PathBuf> = paths.to_vec();
    while let Some(path) = pending.pop() {
        let meta = std::fs::metadata(&path).map_err(|e| BulkError::Walk(path.clone(), e))?;
        if meta.is_dir() {
            let entries = std::fs::read_dir(&path).map_err(|e| BulkError::Walk(path.clone(), e))?;
            for entry in entries {
                let entry = entry.map_err(|e| BulkError::Walk(path.clone(), e))?;
                if !entry.file_name().to_string_lossy().starts_with('.') {
                    pending.push(entry.path());
                }
            }
        } else if meta.is_file() {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

struct Pending {
    path: PathBuf,
    job: JobId,
}

/// An HTTP client for a docqa server; with `DOCQA_API_KEY` set, every request
/// carries that key (for a server that needs one).
pub fn api_client() -> reqwest::Client {
    crate::openai::install_crypto_provider();
    let mut headers = reqwest::header::HeaderMap::new();
    if let Ok(key) = std::env::var("DOCQA_API_KEY")
        && let Ok(mut value) = reqwest::header::HeaderValue::from_str(&format!("Bearer {}", key.trim()))
    {
        value.set_sensitive(true);
        headers.insert(reqwest::header::AUTHORIZATION, value);
    }
    reqwest::Client::builder()
        .default_headers(headers)
        .build()
        .unwrap_or_default()
}

/// Sends every file to `base` (e.g. `http://127.0.0.1:8080`) into `collection`.
pub async fn ingest(base: &str, collection: &str, files: Vec<PathBuf>, progress: bool) -> Result<Summary, BulkError> {
    let client = api_client();
    let server = |detail: String| BulkError::Server {
        url: base.to_string(),
        detail,
    };
    let bar = if progress {
        ProgressBar::new(files.len() as u64)
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(
        ProgressStyle::with_template("{bar:30} {pos}/{len} files · {msg} · {elapsed_precise}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let started = Instant::now();
    let mut summary = Summary::default();
    let mut queue: VecDeque<PathBuf> = files.into();
    let mut in_flight: Vec<Pending> = Vec::new();
    let uploads = format!("{base}/v1/collections/{collection}/documents");
    while !queue.is_empty() || !in_flight.is_empty() {
        while in_flight.len() < IN_FLIGHT {
            let Some(path) = queue.pop_front() else { break };
            match upload(&client, &uploads, &path).await.map_err(&server)? {
                Uploaded::Job(job) => in_flight.push(Pending { path, job }),
                Uploaded::Duplicate => {
                    summary.duplicate += 1;
                    bar.inc(1);
                }
                Uploaded::Refused(reason) => {
                    summary.failed.push((path, reason));
                    bar.inc(1);
                }
                Uploaded::Later(wait) => {
                    queue.push_front(path);
                    tokio::time::sleep(wait).await;
                    break;
                }
            }
        }
        let mut still = Vec::new();
        for pending in in_flight.drain(..) {
            let job: JobView = get_json(&client, &format!("{base}/v1/jobs/{}", pending.job))
                .await
                .map_err(&server)?;
            match job.status {
                JobStatus::Succeeded => {
                    let id = job.document_id.map(|id| id.to_string()).unwrap_or_default();
                    let url = format!("{base}/v1/collections/{collection}/documents/{id}");
                    let document: DocumentView = get_json(&client, &url).await.map_err(&server)?;
                    summary.ready += 1;
                    summary.pages += document.pages.unwrap_or(0);
                    bar.inc(1);
                }
                JobStatus::Failed => {
                    summary
                        .failed
                        .push((pending.path, job.error.unwrap_or_else(|| "failed".into())));
                    bar.inc(1);
                }
                JobStatus::Queued | JobStatus::Running => still.push(pending),
            }
        }
        in_flight = still;
        let secs = started.elapsed().as_secs_f64().max(1e-3);
        bar.set_message(format!(
            "{} pages · {:.1} pages/s · {} failed",
            summary.pages,
            summary.pages as f64 / secs,
            summary.failed.len()
        ));
        if !in_flight.is_empty() {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    bar.finish();
    summary.elapsed = started.elapsed();
    Ok(summary)
}

enum Uploaded {
    Job(JobId),
    Duplicate,
    /// Refused for good (unsupported type, too large, empty): the reason.
    Refused(String),
    /// The queue is full: try again after this.
    Later(Duration),
}

async fn upload(client: &reqwest::Client, url: &str, path: &Path) -> Result<Uploaded, String> {
    let bytes = match tokio::fs::read(path).await {
        Ok(bytes) => bytes,
        Err(e) => return Ok(Uploaded::Refused(format!("unreadable: {e}"))),
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    let form = reqwest::multipart::Form::new().part("file", reqwest::multipart::Part::bytes(bytes).file_name(name));
    let response = client
        .post(url)
        .multipart(form)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let status = response.status();
    let retry_after = response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let body = response.bytes().await.map_err(|e| e.to_string())?;
    match status.as_u16() {
        202 => {
            let answer: UploadAnswer = parse(&body)?;
            match answer.documents.into_iter().next() {
                Some(row) if row.status == "duplicate" => Ok(Uploaded::Duplicate),
                Some(row) => Ok(Uploaded::Job(row.job_id)),
                None => Err("the upload answered no document".into()),
            }
        }
        429 | 503 => Ok(Uploaded::Later(Duration::from_secs(retry_after.unwrap_or(5)))),
        400 | 413 | 415 | 422 => Ok(Uploaded::Refused(problem_detail(&body, "refused"))),
        _ => Err(format!("{status}: {}", problem_detail(&body, ""))),
    }
}

fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, String> {
    serde_json::from_slice(body).map_err(|e| format!("unexpected answer: {e}"))
}

fn problem_detail(body: &[u8], otherwise: &str) -> String {
    parse::<ProblemView>(body)
        .map(|p| p.detail)
        .ok()
        .filter(|d| !d.is_empty())
        .unwrap_or_else(|| otherwise.to_string())
}

async fn get_json<T: DeserializeOwned>(client: &reqwest::Client, url: &str) -> Result<T, String> {
    let response = client.get(url).send().await.map_err(|e| e.to_string())?;
    parse(&response.bytes().await.map_err(|e| e.to_string())?)
}
