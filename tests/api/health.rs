use serde_json::{Value, json};

use crate::helpers::{TestApp, TestOptions, header, model_dir};

#[tokio::test(flavor = "multi_thread")]
async fn healthz_answers_ok() {
    let app = TestApp::spawn().await;
    let response = app.get("/healthz").await;
    assert_eq!(response.status(), 200);
    assert!(response.headers().contains_key("x-request-id"));
    assert_eq!(response.json::<Value>().await.unwrap(), json!({"status": "ok"}));
}

#[tokio::test(flavor = "multi_thread")]
async fn readyz_reports_every_component() {
    let app = TestApp::spawn().await;
    let response = app.get("/readyz").await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["status"], "ready");
    assert_eq!(body["retrieval"], "hybrid");
    for component in ["catalog", "index", "embedder"] {
        assert_eq!(body[component]["ok"], true, "{body}");
    }
    assert!(
        body["embedder"]["detail"]
            .as_str()
            .unwrap()
            .contains("all-MiniLM-L6-v2"),
        "{body}"
    );
}

/// `/readyz` is open and polled: a good embedder check (one model inference)
/// is reused for a few seconds, and concurrent calls share one check.
#[tokio::test(flavor = "multi_thread")]
async fn readyz_does_not_embed_at_every_call() {
    let app = TestApp::spawn().await;
    let first: Value = app.get("/readyz").await.json().await.unwrap();
    let checked_at = first["embedder"]["checked_at"]
        .as_str()
        .expect("when the check ran")
        .to_string();
    let calls = (0..20).map(|_| async { app.get("/readyz").await.json::<Value>().await.unwrap() });
    for body in futures_util::future::join_all(calls).await {
        assert_eq!(body["status"], "ready", "{body}");
        assert_eq!(
            body["embedder"]["checked_at"],
            checked_at.as_str(),
            "checked again: {body}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_openapi_document_describes_the_api() {
    let app = TestApp::spawn().await;
    let response = app.get("/openapi.json").await;
    assert_eq!(response.status(), 200);
    let doc: Value = response.json().await.unwrap();
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3.1"),
        "{}",
        doc["openapi"]
    );
    let paths = doc["paths"].as_object().unwrap();
    for path in [
        "/v1/collections",
        "/v1/collections/{collection}/documents",
        "/v1/collections/{collection}/documents/{document_id}",
        "/v1/collections/{collection}/search",
        "/v1/collections/{collection}/query",
        "/v1/jobs/{job_id}",
        "/readyz",
    ] {
        assert!(paths.contains_key(path), "{path} missing");
    }
    let schemas = doc["components"]["schemas"].as_object().unwrap();
    for schema in [
        "Answer",
        "Citation",
        "Problem",
        "SearchRequest",
        "QueryRequest",
        "Document",
        "Job",
    ] {
        assert!(schemas.contains_key(schema), "schema {schema} missing");
    }

    let docs = app.get("/docs").await;
    assert_eq!(docs.status(), 200);
    assert!(
        docs.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    // Everything it loads comes from this server, under a strict policy.
    let policy = docs.headers()["content-security-policy"].to_str().unwrap().to_string();
    for directive in [
        "default-src 'none'",
        "script-src 'self'",
        "connect-src 'self'",
        "frame-ancestors 'none'",
    ] {
        assert!(policy.contains(directive), "{directive}: {policy}");
    }
    let page = docs.text().await.unwrap();
    assert!(!page.contains("http://") && !page.contains("https://"), "{page}");
    assert!(!page.contains("<script>"), "no inline script: {page}");
    let mut sources = Vec::new();
    for attribute in ["src=\"", "href=\""] {
        for (at, _) in page.match_indices(attribute) {
            let rest = &page[at + attribute.len()..];
            sources.push(rest[..rest.find('"').unwrap()].to_string());
        }
    }
    assert_eq!(sources.len(), 3, "{sources:?}");
    for source in sources {
        let asset = app.get(&source).await;
        assert_eq!(asset.status(), 200, "{source}");
        let kind = asset.headers()["content-type"].to_str().unwrap().to_string();
        assert!(
            kind.starts_with("text/javascript") || kind.starts_with("text/css"),
            "{source}: {kind}"
        );
        assert!(asset.bytes().await.unwrap().len() > 100, "{source}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_count_requests() {
    let app = TestApp::spawn().await;
    app.get("/healthz").await;
    app.get("/no-such-route").await;
    let text = app.get("/metrics").await.text().await.unwrap();
    assert!(text.contains("docqa_http_requests_total{status=\"2xx\"} 1"), "{text}");
    assert!(text.contains("docqa_http_requests_total{status=\"4xx\"} 1"), "{text}");
    assert!(text.contains("docqa_retrieval_mode{mode=\"hybrid\"} 1"), "{text}");
}

#[tokio::test(flavor = "multi_thread")]
async fn without_a_model_auto_runs_on_bm25_alone_and_says_so() {
    let app = TestApp::spawn_with(TestOptions {
        vars: vec![
            ("EMBEDDER", "auto".into()),
            ("EMBED_MODEL_DIR", "/nonexistent/model".into()),
        ],
        ..Default::default()
    })
    .await;
    let ready: Value = app.get("/readyz").await.json().await.unwrap();
    assert_eq!(ready["status"], "ready");
    assert_eq!(ready["retrieval"], "bm25-only");
    assert!(
        ready["embedder"]["detail"]
            .as_str()
            .unwrap()
            .contains("EMBED_MODEL_DIR"),
        "{ready}"
    );

    app.ingest("terms.txt", crate::fixtures::WARRANTY_TXT.into()).await;
    let found = app.search(None, json!({"query": "warranty period months"})).await;
    assert!(!found["results"].as_array().unwrap().is_empty(), "{found}");
    assert!(found["warnings"][0].as_str().unwrap().contains("BM25"), "{found}");
    let (status, answer) = app.query(json!({"question": "How long is the warranty period?"})).await;
    assert_eq!(status, 200);
    assert_eq!(answer["grounded"], true, "{answer}");
    assert!(answer["warnings"][0].as_str().unwrap().contains("BM25"), "{answer}");
}

#[tokio::test(flavor = "multi_thread")]
async fn embedder_local_refuses_to_start_without_the_model() {
    let dir = tempfile::tempdir().unwrap();
    let vars = std::collections::HashMap::from([
        ("DOCQA_DATA_DIR".to_string(), dir.path().display().to_string()),
        ("EMBEDDER".to_string(), "local".to_string()),
        ("EMBED_MODEL_DIR".to_string(), "/nonexistent/model".to_string()),
    ]);
    let config = docqa::Config::from_vars(&vars).unwrap();
    let Err(error) = docqa::App::build(config).await else {
        panic!("the app started without its model");
    };
    assert!(
        error.to_string().contains("EMBED_MODEL_DIR=/nonexistent/model"),
        "{error}"
    );
    // The real model dir is fine, so the failure above is about the missing model.
    assert!(model_dir().join("model.safetensors").is_file());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_hybrid_collection_stays_searchable_when_the_model_is_gone() {
    let mut app = TestApp::spawn().await;
    let document = app.ingest("terms.txt", crate::fixtures::WARRANTY_TXT.into()).await;
    app.restart_with(&[("EMBEDDER", "auto"), ("EMBED_MODEL_DIR", "/nonexistent/model")])
        .await;

    let found = app.search(None, json!({"query": "warranty period months"})).await;
    assert_eq!(found["results"][0]["document_id"], document["id"], "{found}");
    assert!(
        found["warnings"][0].as_str().unwrap().contains("no embedding model"),
        "{found}"
    );
    // New uploads are indexed for BM25 and found by their terms.
    let memo = app
        .ingest("memo.txt", crate::fixtures::unique_text("quokka").into_bytes())
        .await;
    let found = app.search(None, json!({"query": "quokka supplier contracts"})).await;
    assert_eq!(found["results"][0]["document_id"], memo["id"], "{found}");
}

/// `/` is the web page, open without a key (it asks for one), under a strict
/// policy; its files are revalidated by ETag and compressed on request.
#[tokio::test(flavor = "multi_thread")]
async fn the_web_page_is_served_under_a_strict_policy() {
    let app = crate::auth::secured_with(crate::backends::Backend::SqliteEdge, "web_page", &[])
        .await
        .expect("the embedded backend is always there");
    let anonymous = crate::helpers::http_client();
    let page = anonymous.get(app.url("/")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert_eq!(header(&page, "content-type"), "text/html; charset=utf-8");
    let policy = header(&page, "content-security-policy");
    for directive in [
        "default-src 'none'",
        "script-src 'self'",
        "connect-src 'self'",
        "frame-ancestors 'none'",
    ] {
        assert!(policy.contains(directive), "{policy}");
    }
    assert!(!policy.contains("unsafe"), "{policy}");
    let html = page.text().await.unwrap();
    for contract in [
        r#"<label class="button" for="upload">Upload</label>"#,
        r#"<label for="question">Question</label>"#,
        r#"aria-label="Evidence""#,
    ] {
        assert!(html.contains(contract), "{contract}");
    }

    let script = anonymous.get(app.url("/ui/app.js")).send().await.unwrap();
    assert_eq!(script.status(), 200);
    assert_eq!(header(&script, "content-type"), "text/javascript; charset=utf-8");
    let etag = header(&script, "etag");
    assert!(etag.starts_with('"'), "{etag}");
    let again = anonymous
        .get(app.url("/ui/app.js"))
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 304);
    let worker = anonymous
        .get(app.url("/ui/pdf.worker.min.mjs"))
        .header("accept-encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(header(&worker, "content-encoding"), "gzip");
    let compressed = worker.bytes().await.unwrap().len();
    assert!(
        compressed < 1_000_000,
        "the 1.2 MB worker compressed to {compressed} bytes"
    );
    assert_eq!(
        anonymous.get(app.url("/ui/nothing.js")).send().await.unwrap().status(),
        404
    );
}
