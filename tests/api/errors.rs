//! Bad input: each gets its status and a problem+json body, nothing is stored,
//! and the server goes on.

use serde_json::{Value, json};
use uuid::Uuid;

use crate::fixtures::WARRANTY_TXT;
use crate::helpers::{TestApp, TestOptions, assert_problem, corpus};

/// GIF is not read (PNG, JPEG, TIFF and WebP are, by OCR).
const GIF: &[u8] = b"GIF89a\x01\x00\x01\x00\x80\x00\x00\xff\xff\xff\x00\x00\x00!";

fn random_bytes(len: usize) -> Vec<u8> {
    // A fixed pseudo-random stream (xorshift), so failures are repeatable.
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect()
}

async fn assert_nothing_stored(app: &TestApp) {
    let listed: Value = app.get("/v1/documents").await.json().await.unwrap();
    assert!(listed["documents"].as_array().unwrap().is_empty(), "{listed}");
    assert_eq!(app.stored_files(), 0);
    assert!(app.staging_is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn refused_uploads_store_nothing() {
    let app = TestApp::spawn().await;

    let empty = app.upload(None, &[("empty.txt", Vec::new())], None, false).await;
    assert_problem(empty, 400, "/problems/empty-file").await;

    let gif = app.upload(None, &[("picture.pdf", GIF.to_vec())], None, false).await;
    let body = assert_problem(gif, 415, "/problems/unsupported-media-type").await;
    assert!(body["detail"].as_str().unwrap().contains("image/gif"), "{body}");
    let supported: Vec<&str> = body["supported_types"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    for expected in [
        "application/pdf",
        "text/plain",
        "text/markdown",
        "text/html",
        "text/csv",
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        "application/vnd.oasis.opendocument.spreadsheet",
    ] {
        assert!(supported.contains(&expected), "{body}");
    }

    let random = app
        .upload(None, &[("random.pdf", random_bytes(4096))], None, false)
        .await;
    assert_problem(random, 415, "/problems/unsupported-media-type").await;

    // One bad file refuses the whole request: the good one is not kept either.
    let mixed = app
        .upload(
            None,
            &[("terms.txt", WARRANTY_TXT.into()), ("picture.gif", GIF.to_vec())],
            None,
            false,
        )
        .await;
    assert_problem(mixed, 415, "/problems/unsupported-media-type").await;

    let gzip = app
        .upload(None, &[("page.html.gz", b"\x1f\x8b\x08\x00rest".to_vec())], None, false)
        .await;
    let body = assert_problem(gzip, 415, "/problems/unsupported-media-type").await;
    assert!(body["detail"].as_str().unwrap().contains("gzip"), "{body}");

    assert_nothing_stored(&app).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn malformed_multipart_requests_are_refused() {
    let app = TestApp::spawn().await;

    let not_multipart = app
        .post_raw("/v1/documents", "application/pdf", corpus("minimal-document.pdf"))
        .await;
    assert_problem(not_multipart, 415, "/problems/unsupported-media-type").await;

    let no_file = app.upload(None, &[], Some(r#"{"team":"x"}"#), false).await;
    assert_problem(no_file, 400, "/problems/missing-file").await;

    let form = reqwest::multipart::Form::new().part(
        "document",
        reqwest::multipart::Part::bytes(WARRANTY_TXT.as_bytes().to_vec()).file_name("a.txt"),
    );
    let wrong_part = app
        .client
        .post(app.url("/v1/documents"))
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_problem(wrong_part, 400, "/problems/invalid-multipart").await;

    // NUL would fail the Postgres write later, as if the database were down.
    for metadata in ["[1, 2]", "{not json", r#"{"a.b": 1}"#, r#"{"team": "a\u0000b"}"#] {
        let bad = app
            .upload(None, &[("terms.txt", WARRANTY_TXT.into())], Some(metadata), false)
            .await;
        assert_problem(bad, 422, "/problems/invalid-metadata").await;
    }
    assert_nothing_stored(&app).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_upload_over_the_limit_is_413_and_stores_nothing() {
    let app = TestApp::spawn_with(TestOptions {
        vars: vec![("MAX_UPLOAD_BYTES", "65536".into())],
        ..Default::default()
    })
    .await;
    let big = "All work and no play makes a dull document.\n"
        .repeat(7000)
        .into_bytes();
    assert!(big.len() > 256 * 1024);
    let response = app.upload(None, &[("big.txt", big)], None, false).await;
    let body = assert_problem(response, 413, "/problems/payload-too-large").await;
    assert_eq!(body["limit_bytes"], 65536);
    assert_nothing_stored(&app).await;
    // A file under the limit still goes through.
    app.ingest("terms.txt", WARRANTY_TXT.into()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn broken_pdfs_fail_with_a_reason_and_the_server_goes_on() {
    let app = TestApp::spawn().await;
    let pdf = corpus("pdflatex-4-pages.pdf");
    let truncated = pdf[..pdf.len() / 3].to_vec();
    let mut garbage = b"%PDF-1.7\n".to_vec();
    garbage.extend(random_bytes(20_000));

    let cases = [
        ("truncated.pdf", truncated, "corrupt"),
        ("garbage.pdf", garbage, "corrupt"),
        ("password.pdf", corpus("libreoffice-writer-password.pdf"), "encrypted"),
        (
            "scan.pdf",
            corpus("imagemagick-CCITTFaxDecode.pdf"),
            "no extractable text",
        ),
    ];
    for (name, bytes, reason) in cases {
        let response = app.upload(None, &[(name, bytes)], None, true).await;
        let body = assert_problem(response, 422, "/problems/ingestion-failed").await;
        let document = &body["documents"][0];
        assert_eq!(document["status"], "failed", "{body}");
        assert!(
            document["error"].as_str().unwrap().starts_with(reason),
            "{name}: {body}"
        );
        let stored: Value = app
            .get(&format!("/v1/documents/{}", document["id"].as_str().unwrap()))
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(stored["status"], "failed");
        assert!(stored["error"].as_str().unwrap().starts_with(reason));
        let job: Value = app
            .get(&format!("/v1/jobs/{}", document["job_id"].as_str().unwrap()))
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(job["status"], "failed");
        assert!(job["error"].as_str().unwrap().starts_with(reason));
    }

    // A request with one good and one broken file answers 200 with both outcomes.
    let mixed: Value = app
        .upload(
            None,
            &[("terms.txt", WARRANTY_TXT.into()), ("cut.pdf", pdf[..2000].to_vec())],
            None,
            true,
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(mixed["documents"][0]["status"], "ready", "{mixed}");
    assert_eq!(mixed["documents"][1]["status"], "failed", "{mixed}");

    assert_eq!(app.get("/healthz").await.status(), 200);
    assert_eq!(app.get("/readyz").await.status(), 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_json_bodies_get_clear_problems() {
    let app = TestApp::spawn().await;
    let raw = |body: &'static str| app.post_raw("/v1/search", "application/json", body);

    assert_problem(raw("{\"query\": ").await, 400, "/problems/malformed-json").await;
    assert_problem(raw("not json at all").await, 400, "/problems/malformed-json").await;
    assert_problem(raw("{\"top_k\": 3}").await, 422, "/problems/invalid-request").await;
    assert_problem(raw("{\"query\": 5}").await, 422, "/problems/invalid-request").await;
    assert_problem(
        raw("{\"query\": \"x\", \"topk\": 3}").await,
        422,
        "/problems/invalid-request",
    )
    .await;
    assert_problem(
        app.post_raw("/v1/search", "text/plain", "{\"query\": \"x\"}").await,
        415,
        "/problems/unsupported-media-type",
    )
    .await;

    for top_k in [0, 51, -1] {
        let response = app
            .post_json("/v1/search", &json!({"query": "warranty", "top_k": top_k}))
            .await;
        assert_problem(response, 422, "/problems/invalid-request").await;
        let response = app
            .post_json("/v1/query", &json!({"question": "warranty?", "top_k": top_k}))
            .await;
        assert_problem(response, 422, "/problems/invalid-request").await;
    }
    assert_problem(
        app.post_json("/v1/search", &json!({"query": "   "})).await,
        422,
        "/problems/invalid-request",
    )
    .await;
    assert_problem(
        app.post_json("/v1/query", &json!({"question": "x", "mode": "creative"}))
            .await,
        422,
        "/problems/invalid-request",
    )
    .await;
    assert_problem(
        app.post_json(
            "/v1/search",
            &json!({"query": "x", "filter": {"metadata": {"a.b": "c"}}}),
        )
        .await,
        422,
        "/problems/invalid-request",
    )
    .await;
    assert_problem(
        app.post_json(
            "/v1/search",
            &json!({"query": "x", "filter": {"document_ids": ["not-a-uuid"]}}),
        )
        .await,
        422,
        "/problems/invalid-request",
    )
    .await;
    let huge = "x".repeat(300 * 1024);
    assert_problem(
        app.post_json("/v1/search", &json!({"query": huge})).await,
        413,
        "/problems/payload-too-large",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn unknown_ids_are_404() {
    let app = TestApp::spawn().await;
    let random = Uuid::new_v4();
    assert_problem(
        app.get(&format!("/v1/documents/{random}")).await,
        404,
        "/problems/document-not-found",
    )
    .await;
    assert_problem(
        app.get("/v1/documents/not-a-uuid").await,
        404,
        "/problems/document-not-found",
    )
    .await;
    assert_problem(
        app.delete(&format!("/v1/documents/{random}")).await,
        404,
        "/problems/document-not-found",
    )
    .await;
    assert_problem(
        app.get(&format!("/v1/jobs/{random}")).await,
        404,
        "/problems/job-not-found",
    )
    .await;
    assert_problem(app.get("/v1/jobs/123").await, 404, "/problems/job-not-found").await;

    for path in [
        "/v1/collections/nope",
        "/v1/collections/nope/documents",
        "/v1/collections/Bad.Name/documents",
    ] {
        assert_problem(app.get(path).await, 404, "/problems/collection-not-found").await;
    }
    let search = app
        .post_json("/v1/collections/nope/search", &json!({"query": "x"}))
        .await;
    assert_problem(search, 404, "/problems/collection-not-found").await;
    let query = app
        .post_json("/v1/collections/nope/query", &json!({"question": "x"}))
        .await;
    assert_problem(query, 404, "/problems/collection-not-found").await;
    let upload = app
        .upload(Some("nope"), &[("terms.txt", WARRANTY_TXT.into())], None, false)
        .await;
    assert_problem(upload, 404, "/problems/collection-not-found").await;
    assert!(app.staging_is_empty());
    let document_in_unknown = app.get(&format!("/v1/collections/nope/documents/{random}")).await;
    assert_problem(document_in_unknown, 404, "/problems/collection-not-found").await;

    assert_problem(app.get("/v2/anything").await, 404, "/problems/not-found").await;
}
