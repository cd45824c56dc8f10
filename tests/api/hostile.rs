//! Hostile and broken PDFs: each fails its document with its own reason, in a
//! child process that the limits stop, and the server goes on serving.

use std::io::Write;

use serde_json::Value;

use crate::fixtures::{WARRANTY_TXT, pdf_saying, pdf_with_content};
use crate::helpers::{TestApp, TestOptions, assert_problem};

/// Zeros that inflate to `megabytes` MiB: a decompression bomb of ~1000:1.
fn deflated_zeros(megabytes: usize) -> Vec<u8> {
    let mut encoder = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
    let block = vec![b'0'; 1024 * 1024];
    for _ in 0..megabytes {
        encoder.write_all(&block).unwrap();
    }
    encoder.finish().unwrap()
}

/// Drawing operators that take long to interpret: `count` text-showing ops.
fn endless_content(count: usize) -> Vec<u8> {
    let mut encoder = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
    encoder.write_all(b"BT /F1 12 Tf 72 720 Td ").unwrap();
    for _ in 0..count {
        encoder.write_all(b"(a) Tj 0 0 Td ").unwrap();
    }
    encoder.write_all(b"ET").unwrap();
    encoder.finish().unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn hostile_pdfs_fail_with_their_reason_and_the_server_stays_healthy() {
    let app = TestApp::spawn_with(TestOptions {
        vars: vec![
            ("EXTRACT_TIMEOUT_SECS", "8".to_string()),
            ("EXTRACT_MEMORY_MB", "768".to_string()),
        ],
        llm: None,
    })
    .await;
    let nesting = 200_000;
    let deep = [
        &b"BT /F1 12 Tf 72 720 Td "[..],
        &b"[".repeat(nesting),
        b"(x)",
        &b"]".repeat(nesting),
        b" TJ ET",
    ]
    .concat();
    let cases: Vec<(&str, Vec<u8>, &[&str])> = vec![
        // The parser recurses into nested arrays until its stack is gone.
        ("deep.pdf", pdf_with_content(&deep, None, &[]), &["corrupt"]),
        // 3 GiB of content once inflated, from a few MiB.
        (
            "bomb.pdf",
            pdf_with_content(&deflated_zeros(3072), Some("FlateDecode"), &[]),
            &["too large", "timeout", "corrupt", "no extractable text"],
        ),
        // Millions of operators to interpret.
        (
            "endless.pdf",
            pdf_with_content(&endless_content(30_000_000), Some("FlateDecode"), &[]),
            &["timeout", "too large"],
        ),
        (
            "random.pdf",
            [
                b"%PDF-1.5\n".to_vec(),
                (0..50_000u32)
                    .map(|i| (i.wrapping_mul(2_654_435_761) >> 7) as u8)
                    .collect(),
            ]
            .concat(),
            &["corrupt"],
        ),
    ];
    for (name, bytes, reasons) in cases {
        let response = app.upload(None, &[(name, bytes)], None, true).await;
        let body = assert_problem(response, 422, "/problems/ingestion-failed").await;
        let error = body["documents"][0]["error"].as_str().unwrap_or_default().to_string();
        eprintln!("{name}: {error}");
        assert!(reasons.iter().any(|r| error.starts_with(r)), "{name}: {error}");
        // The server is fine and still ingests.
        assert_eq!(app.get("/readyz").await.status(), 200, "after {name}");
    }
    let after = app
        .ingest(
            "fine.pdf",
            pdf_saying("The server is still ingesting after hostile files."),
        )
        .await;
    assert_eq!(after["status"], "ready");
    let text = app.ingest("terms.txt", WARRANTY_TXT.into()).await;
    assert_eq!(text["status"], "ready");
}

/// What a document may hold is a setting: a PDF over `MAX_PAGES` fails before
/// its pages are read, a text over `MAX_DOCUMENT_CHARS` fails (by its size,
/// before it is read, when it is that large), and HTML nested too deep fails
/// before it is parsed; each says which limit, and the server goes on.
#[tokio::test(flavor = "multi_thread")]
async fn documents_over_the_limits_fail_at_once_with_the_limit_named() {
    let app = TestApp::spawn_with(TestOptions {
        vars: vec![
            ("MAX_PAGES", "3".to_string()),
            ("MAX_DOCUMENT_CHARS", "10000".to_string()),
        ],
        llm: None,
    })
    .await;
    let deep_html = format!(
        "<html><body>{}Deep text.{}</body></html>",
        "<div>".repeat(1_500),
        "</div>".repeat(1_500)
    );
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "long.pdf",
            crate::fixtures::pdf_with_pages(&["one", "two", "three", "four", "five"]),
            "too many pages: 5, more than MAX_PAGES (3)",
        ),
        (
            "long.txt",
            "A sentence of the long text file. ".repeat(400).into_bytes(),
            "too much text: more than MAX_DOCUMENT_CHARS (10000)",
        ),
        (
            "huge.txt",
            "x ".repeat(20_001).into_bytes(),
            "too much text: more than MAX_DOCUMENT_CHARS (10000)",
        ),
        (
            "deep.html",
            deep_html.into_bytes(),
            "corrupt: HTML nested more than 1000",
        ),
    ];
    for (name, bytes, reason) in cases {
        let response = app.upload(None, &[(name, bytes)], None, true).await;
        let body = assert_problem(response, 422, "/problems/ingestion-failed").await;
        let error = body["documents"][0]["error"].as_str().unwrap_or_default();
        assert!(error.starts_with(reason), "{name}: {error}");
    }
    let within = app
        .ingest("short.pdf", crate::fixtures::pdf_with_pages(&["one", "two", "three"]))
        .await;
    assert_eq!(within["status"], "ready", "{within}");
    let text = app.ingest("terms.txt", WARRANTY_TXT.into()).await;
    assert_eq!(text["status"], "ready");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_job_can_be_retried_and_a_full_queue_says_when_to_come_back() {
    let app = TestApp::spawn_with(TestOptions {
        vars: vec![("INGEST_QUEUE_MAX", "2".to_string())],
        llm: None,
    })
    .await;
    let broken = app
        .upload(None, &[("cut.pdf", pdf_saying("half")[..60].to_vec())], None, true)
        .await;
    let body = assert_problem(broken, 422, "/problems/ingestion-failed").await;
    let job_id = body["documents"][0]["job_id"].as_str().unwrap().to_string();

    let retried = app
        .post_json(&format!("/v1/jobs/{job_id}/retry"), &serde_json::json!({}))
        .await;
    assert_eq!(retried.status(), 202);
    let retried: Value = retried.json().await.unwrap();
    assert_eq!(retried["id"], job_id.as_str());
    let mut job = Value::Null;
    for _ in 0..400 {
        job = app.get(&format!("/v1/jobs/{job_id}")).await.json().await.unwrap();
        if job["status"] == "failed" || job["status"] == "succeeded" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    assert_eq!(job["status"], "failed", "the same bytes fail the same way: {job}");
    assert_eq!(job["attempts"], 2, "{job}");
    assert_problem(
        app.post_json(
            "/v1/jobs/00000000-0000-4000-8000-000000000000/retry",
            &serde_json::json!({}),
        )
        .await,
        404,
        "/problems/job-not-found",
    )
    .await;
    let good = app.ingest("terms.txt", WARRANTY_TXT.into()).await;
    let good_job = good["job_id"].as_str().unwrap();
    assert_problem(
        app.post_json(&format!("/v1/jobs/{good_job}/retry"), &serde_json::json!({}))
            .await,
        409,
        "/problems/job-not-failed",
    )
    .await;

    // Three files into a queue that holds two: refused at once, nothing stored.
    let files: Vec<(&str, Vec<u8>)> = (0..3)
        .map(|i| {
            (
                "memo.txt",
                crate::fixtures::unique_text(&format!("queue{i}")).into_bytes(),
            )
        })
        .collect();
    let full = app.upload(None, &files, None, false).await;
    assert_eq!(
        full.headers().get("retry-after").and_then(|v| v.to_str().ok()),
        Some("30")
    );
    assert_problem(full, 429, "/problems/queue-full").await;
    assert!(app.staging_is_empty());
    let listed: Value = app.get("/v1/documents").await.json().await.unwrap();
    assert_eq!(listed["documents"].as_array().unwrap().len(), 2);
}
