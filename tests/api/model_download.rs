//! The hub download path of `EMBEDDER=auto`, against a stand-in for
//! huggingface.co (the real one is out of reach here) serving the real files.

use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use actix_web::{App, HttpResponse, HttpServer, web};
use serde_json::Value;

use crate::helpers::{TestApp, TestOptions, model_dir};

struct FakeHub {
    url: String,
    requests: Arc<AtomicUsize>,
}

/// Serves `/{org}/{name}/resolve/main/{file}` from `dir`, or 404 for everything.
fn start_hub(dir: Option<PathBuf>) -> FakeHub {
    let requests = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&requests);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let server = HttpServer::new(move || {
        let dir = dir.clone();
        let counter = Arc::clone(&counter);
        App::new().route(
            "/{org}/{name}/resolve/main/{file}",
            web::get().to(move |path: web::Path<(String, String, String)>| {
                let dir = dir.clone();
                let counter = Arc::clone(&counter);
                async move {
                    counter.fetch_add(1, Ordering::SeqCst);
                    let (_, _, file) = path.into_inner();
                    let allowed = ["config.json", "model.safetensors", "tokenizer.json"].contains(&file.as_str());
                    match dir.map(|d| std::fs::read(d.join(&file))) {
                        Some(Ok(bytes)) if allowed => HttpResponse::Ok().body(bytes),
                        _ => HttpResponse::NotFound().body("Entry not found"),
                    }
                }
            }),
        )
    })
    .workers(1)
    .listen(listener)
    .unwrap()
    .run();
    tokio::spawn(server);
    FakeHub { url, requests }
}

fn hub_vars(hub: &FakeHub, cache: &tempfile::TempDir) -> Vec<(&'static str, String)> {
    vec![
        ("EMBEDDER", "auto".into()),
        // Empty means unset: no model dir, so the hub is asked.
        ("EMBED_MODEL_DIR", String::new()),
        ("HF_ENDPOINT", hub.url.clone()),
        ("HF_HUB_CACHE", cache.path().display().to_string()),
    ]
}

#[tokio::test(flavor = "multi_thread")]
async fn auto_downloads_the_model_once_and_then_uses_its_copy() {
    let hub = start_hub(Some(model_dir().clone()));
    let cache = tempfile::tempdir().unwrap();
    let mut app = TestApp::spawn_with(TestOptions {
        vars: hub_vars(&hub, &cache),
        ..Default::default()
    })
    .await;
    let ready: Value = app.get("/readyz").await.json().await.unwrap();
    assert_eq!(ready["retrieval"], "hybrid", "{ready}");
    assert_eq!(hub.requests.load(Ordering::SeqCst), 3);
    let copy = app
        .data_dir
        .path()
        .join("models/sentence-transformers--all-MiniLM-L6-v2");
    let original = std::fs::metadata(model_dir().join("model.safetensors")).unwrap().len();
    assert_eq!(
        std::fs::metadata(copy.join("model.safetensors")).unwrap().len(),
        original
    );

    app.restart().await;
    let ready: Value = app.get("/readyz").await.json().await.unwrap();
    assert_eq!(ready["retrieval"], "hybrid");
    assert_eq!(
        hub.requests.load(Ordering::SeqCst),
        3,
        "the second start downloads nothing"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn auto_without_any_model_falls_back_to_bm25_and_says_why() {
    let hub = start_hub(None);
    let cache = tempfile::tempdir().unwrap();
    let app = TestApp::spawn_with(TestOptions {
        vars: hub_vars(&hub, &cache),
        ..Default::default()
    })
    .await;
    let ready: Value = app.get("/readyz").await.json().await.unwrap();
    assert_eq!(ready["retrieval"], "bm25-only", "{ready}");
    let reason = ready["embedder"]["detail"].as_str().unwrap();
    assert!(reason.contains("download") && reason.contains("404"), "{reason}");
    assert!(
        !app.data_dir
            .path()
            .join("models/sentence-transformers--all-MiniLM-L6-v2/config.json")
            .exists()
    );
}
