//! The few API calls the harness makes, timed.

use std::collections::HashMap;
use std::time::Instant;

use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::EvalError;

/// A search result, as much of it as the harness reads.
#[derive(Debug, Clone, Deserialize)]
pub struct Hit {
    pub chunk_id: String,
    pub filename: String,
    pub text: String,
    pub page_start: u32,
    pub page_end: u32,
}

#[derive(Deserialize)]
struct SearchAnswer {
    results: Vec<Hit>,
}

/// An answer, as much of it as the harness reads.
#[derive(Debug, Clone, Deserialize)]
pub struct AnswerView {
    pub answer: String,
    pub citations: Vec<CitationView>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct CitationView {
    pub page: u32,
}

#[derive(Deserialize)]
struct DocumentPage {
    documents: Vec<DocumentRow>,
    next_cursor: Option<String>,
}

#[derive(Deserialize)]
struct DocumentRow {
    id: String,
    filename: String,
}

pub struct EvalClient {
    http: reqwest::Client,
    base: String,
    pub collection: String,
}

impl EvalClient {
    /// The collection `named`, created if missing (its documents are then
    /// uploaded again, and found to be duplicates: nothing is embedded twice),
    /// or else a fresh one named `{prefix}-{random}`, on the server at `base`.
    pub async fn collection(base: &str, prefix: &str, named: Option<&str>) -> Result<Self, EvalError> {
        let http = crate::bulk::api_client();
        let collection = match named {
            Some(name) => name.to_string(),
            None => format!("{prefix}-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]),
        };
        let response = http
            .post(format!("{base}/v1/collections"))
            .json(&json!({"name": collection, "description": "docqa eval"}))
            .send()
            .await
            .map_err(|e| EvalError::Server(e.to_string()))?;
        let reused = named.is_some() && response.status() == reqwest::StatusCode::CONFLICT;
        if !response.status().is_success() && !reused {
            let status = response.status();
            return Err(EvalError::Server(format!(
                "creating collection {collection}: {status} {}",
                response.text().await.unwrap_or_default()
            )));
        }
        Ok(Self {
            http,
            base: base.to_string(),
            collection,
        })
    }

    /// Hits (best first) and the request's time in ms. `Ok(None)` when the
    /// server refuses this retrieval mode (422: e.g. dense without a model).
    /// `filter` as the API takes it (`{"document_ids": [..]}`), if any.
    pub async fn search(
        &self,
        query: &str,
        top_k: usize,
        retrieval: &str,
        filter: Option<&Value>,
    ) -> Result<Option<(Vec<Hit>, f64)>, EvalError> {
        let request = json!({"query": query, "top_k": top_k, "retrieval": retrieval});
        let (status, body, ms) = self.post("search", request, filter).await?;
        match status {
            200 => Ok(Some((read::<SearchAnswer>(body, "search")?.results, ms))),
            422 => Ok(None),
            status => Err(EvalError::Server(format!("search: {status} {body}"))),
        }
    }

    /// An extractive answer and the request's time in ms.
    pub async fn answer_extractively(
        &self,
        question: &str,
        top_k: usize,
        filter: Option<&Value>,
    ) -> Result<(AnswerView, f64), EvalError> {
        let request = json!({"question": question, "top_k": top_k, "mode": "extractive"});
        let (status, answer, ms) = self.post("query", request, filter).await?;
        if status != 200 {
            return Err(EvalError::Server(format!("query: {status} {answer}")));
        }
        Ok((read(answer, "query")?, ms))
    }

    /// Every document of the collection: filename → id.
    pub async fn document_ids(&self) -> Result<HashMap<String, String>, EvalError> {
        let mut ids = HashMap::new();
        let mut cursor: Option<String> = None;
        loop {
            let mut request = self
                .http
                .get(format!("{}/v1/collections/{}/documents", self.base, self.collection))
                .query(&[("limit", "500")]);
            if let Some(cursor) = &cursor {
                request = request.query(&[("cursor", cursor.as_str())]);
            }
            let response = request.send().await.map_err(|e| EvalError::Server(e.to_string()))?;
            let status = response.status();
            let page: Value = response.json().await.map_err(|e| EvalError::Server(e.to_string()))?;
            if !status.is_success() {
                return Err(EvalError::Server(format!("listing documents: {status} {page}")));
            }
            let page: DocumentPage = read(page, "listing documents")?;
            ids.extend(page.documents.into_iter().map(|d| (d.filename, d.id)));
            match page.next_cursor {
                Some(next) if !next.is_empty() => cursor = Some(next),
                _ => return Ok(ids),
            }
        }
    }

    /// POSTs `body` (with `filter`, if any) to the collection's `verb`: the
    /// status, the answer and the request's time in ms.
    async fn post(&self, verb: &str, mut body: Value, filter: Option<&Value>) -> Result<(u16, Value, f64), EvalError> {
        if let Some(filter) = filter {
            body["filter"] = filter.clone();
        }
        let started = Instant::now();
        let response = self
            .http
            .post(format!("{}/v1/collections/{}/{verb}", self.base, self.collection))
            .json(&body)
            .send()
            .await
            .map_err(|e| EvalError::Server(e.to_string()))?;
        let status = response.status().as_u16();
        let body = response.json().await.map_err(|e| EvalError::Server(e.to_string()))?;
        Ok((status, body, started.elapsed().as_secs_f64() * 1000.0))
    }
}

/// A response body as the type it should be.
fn read<T: DeserializeOwned>(body: Value, what: &str) -> Result<T, EvalError> {
    serde_json::from_value(body).map_err(|e| EvalError::Server(format!("{what}: unexpected answer: {e}")))
}
