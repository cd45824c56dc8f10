//! Uploads judged before they are stored: what can be refused from the
//! request line, the headers or a file's first bytes is refused without
//! reading the rest, and bodies that stall or trickle are cut off. Each body
//! here ends in a stream that never ends: a server that read on would answer
//! 408 after the idle timeout, never the status each test expects.

use std::time::Duration;

use futures_util::StreamExt;
use serde_json::Value;

use crate::helpers::{TestApp, TestOptions, assert_problem};

const BOUNDARY: &str = "docqa-test-boundary";

/// The start of a multipart body with one `file` part whose content begins
/// with `head` and then never ends.
fn endless_upload(head: &[u8]) -> reqwest::Body {
    let opening = [
        format!(
            "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"endless.bin\"\r\n\
             Content-Type: application/octet-stream\r\n\r\n"
        )
        .into_bytes(),
        head.to_vec(),
    ]
    .concat();
    let stream = futures_util::stream::iter([Ok::<_, std::io::Error>(opening)]).chain(futures_util::stream::pending());
    reqwest::Body::wrap_stream(stream)
}

/// A multipart body sent a byte at a time, one byte every `pause`.
fn trickled_upload(pause: Duration) -> reqwest::Body {
    let opening =
        format!("--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"slow.txt\"\r\n\r\n");
    let first = futures_util::stream::iter([Ok::<_, std::io::Error>(opening.into_bytes())]);
    let drip = futures_util::stream::unfold((), move |()| async move {
        tokio::time::sleep(pause).await;
        Some((Ok(b"a".to_vec()), ()))
    });
    reqwest::Body::wrap_stream(first.chain(drip))
}

async fn send(app: &TestApp, path: &str, body: reqwest::Body, declared: Option<u64>) -> reqwest::Response {
    let mut request = app
        .client
        .post(app.url(path))
        .header("content-type", format!("multipart/form-data; boundary={BOUNDARY}"))
        .body(body);
    if let Some(length) = declared {
        request = request.header("content-length", length);
    }
    request.send().await.expect("an answer")
}

fn limited(vars: &[(&'static str, &str)]) -> TestOptions {
    TestOptions {
        vars: vars.iter().map(|(k, v)| (*k, v.to_string())).collect(),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_upload_that_can_be_refused_by_its_headers_or_first_bytes_is_not_read_further() {
    let app = TestApp::spawn_with(limited(&[
        ("UPLOAD_IDLE_TIMEOUT_SECS", "20"),
        ("MAX_REQUEST_BYTES", "1000000"),
    ]))
    .await;
    // A collection that does not exist.
    let missing = send(&app, "/v1/collections/nowhere/documents", endless_upload(b"text"), None).await;
    assert_problem(missing, 404, "/problems/collection-not-found").await;
    // A declared length over MAX_REQUEST_BYTES.
    let declared = send(&app, "/v1/documents", endless_upload(b"text"), Some(50_000_000)).await;
    let problem = assert_problem(declared, 413, "/problems/payload-too-large").await;
    assert_eq!(problem["limit_bytes"], 1_000_000, "{problem}");
    // A gzip archive, known by its first bytes (a zip may be an Office file: its
    // directory, at its end, decides; see formats.rs).
    let gzip = [b"\x1f\x8b".to_vec(), vec![0u8; 70_000]].concat();
    let refused = send(&app, "/v1/documents", endless_upload(&gzip), None).await;
    let problem = assert_problem(refused, 415, "/problems/unsupported-media-type").await;
    assert!(problem["detail"].as_str().unwrap().contains("gzip"), "{problem}");
    // Binary bytes that are no text.
    let binary: Vec<u8> = (0..70_000u32).map(|i| (i % 251) as u8).collect();
    let refused = send(&app, "/v1/documents", endless_upload(&binary), None).await;
    assert_problem(refused, 415, "/problems/unsupported-media-type").await;
    assert!(app.staging_is_empty(), "nothing staged is left");
    assert_eq!(app.stored_files(), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn bodies_that_stall_or_trickle_are_cut_off_and_uploads_at_once_are_bounded() {
    let app = TestApp::spawn_with(limited(&[
        ("UPLOAD_IDLE_TIMEOUT_SECS", "12"),
        ("MAX_CONCURRENT_UPLOADS", "2"),
    ]))
    .await;
    // Two stalled uploads take both places; a third waits 5 s for one, then is
    // told to come back.
    let stalled = [
        send(&app, "/v1/documents", endless_upload(b"first words"), None),
        send(&app, "/v1/documents", endless_upload(b"first words"), None),
    ];
    let third = async {
        // Both stalled bodies are being received (their heads are in) by now.
        tokio::time::sleep(Duration::from_millis(1500)).await;
        send(&app, "/v1/documents", endless_upload(b"third"), None).await
    };
    let (stalled, third) = tokio::join!(futures_util::future::join_all(stalled), third);
    assert_eq!(
        third.headers().get("retry-after").and_then(|v| v.to_str().ok()),
        Some("1")
    );
    assert_problem(third, 503, "/problems/overloaded").await;
    for response in stalled {
        let problem = assert_problem(response, 408, "/problems/request-timeout").await;
        assert!(
            problem["detail"].as_str().unwrap().contains("UPLOAD_IDLE_TIMEOUT_SECS"),
            "{problem}"
        );
    }
    // A byte every second: alive, but slower than UPLOAD_MIN_BYTES_PER_SEC.
    let trickled = send(&app, "/v1/documents", trickled_upload(Duration::from_secs(1)), None).await;
    let problem = assert_problem(trickled, 408, "/problems/request-timeout").await;
    assert!(
        problem["detail"].as_str().unwrap().contains("UPLOAD_MIN_BYTES_PER_SEC"),
        "{problem}"
    );
    assert!(app.staging_is_empty(), "nothing staged is left");
    // The places are free again.
    let fine: Value = app.ingest("terms.txt", crate::fixtures::WARRANTY_TXT.into()).await;
    assert_eq!(fine["status"], "ready");
}
