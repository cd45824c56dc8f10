//! The few API calls the harness makes, timed.

use std::time::Instant;

use serde_json::{Value, json};

use super::EvalError;

pub struct EvalClient {
    http: reqwest::Client,
    base: String,
    pub collection: String,
}

impl EvalClient {
    /// Creates a fresh collection named `{prefix}-{random}` on the server at `base`.
    pub async fn fresh_collection(base: &str, prefix: &str) -> Result<Self, EvalError> {
        crate::openai::install_crypto_provider();
        let http = reqwest::Client::new();
        let collection = format!("{prefix}-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
        let response = http
            .post(format!("{base}/v1/collections"))
            .json(&json!({"name": collection, "description": "docqa eval"}))
            .send()
            .await
            .map_err(|e| EvalError::Server(e.to_string()))?;
        if !response.status().is_success() {
            let status = response.status();
            return Err(EvalError::Server(format!("creating collection {collection}: {status} {}", response.text().await.unwrap_or_default())));
        }
        Ok(Self {
            http,
            base: base.to_string(),
            collection,
        })
    }

    /// Hits (best first) and the request's time in ms. `Ok(None)` when the
    /// server refuses this retrieval mode (422: e.g. dense without a model).
    pub async fn search(&self, query: &str, top_k: usize, retrieval: &str) -> Result<Option<(Vec<Value>, f64)>, EvalError> {
        let started = Instant::now();
        let body = json!({"query": query, "top_k": top_k, "retrieval": retrieval});
        let response = self.post(&format!("/v1/collections/{}/search", self.collection), &body).await?;
        let ms = started.elapsed().as_secs_f64() * 1000.0;
        match response {
            (200, body) => Ok(Some((body["results"].as_array().cloned().unwrap_or_default(), ms))),
            (422, _) => Ok(None),
            (status, body) => Err(EvalError::Server(format!("search: {status} {body}"))),
        }
    }

    /// An extractive answer and the request's time in ms.
    pub async fn answer_extractively(&self, question: &str, top_k: usize) -> Result<(Value, f64), EvalError> {
        let started = Instant::now();
        let body = json!({"question": question, "top_k": top_k, "mode": "extractive"});
        let (status, answer) = self.post(&format!("/v1/collections/{}/query", self.collection), &body).await?;
        let ms = started.elapsed().as_secs_f64() * 1000.0;
        if status != 200 {
            return Err(EvalError::Server(format!("query: {status} {answer}")));
        }
        Ok((answer, ms))
    }

    async fn post(&self, path: &str, body: &Value) -> Result<(u16, Value), EvalError> {
        let response = self
            .http
            .post(format!("{}{path}", self.base))
            .json(body)
            .send()
            .await
            .map_err(|e| EvalError::Server(e.to_string()))?;
        let status = response.status().as_u16();
        let body = response.json().await.map_err(|e| EvalError::Server(e.to_string()))?;
        Ok((status, body))
    }
}
