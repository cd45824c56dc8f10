//! The real binary as a process: killed with SIGKILL in the middle of ingesting,
//! restarted, and checked for lost or half-indexed documents; its memory while a
//! too-large upload streams in; many uploads at once.

use std::collections::HashMap;
use std::process::Command;
use std::time::{Duration, Instant};

use docqa::domain::{CollectionName, DocumentId};
use docqa::index::{EdgeIndex, VectorIndex};
use serde_json::Value;

use crate::fixtures::{pdf_saying, unique_text};
use crate::helpers::{TestApp, corpus, model_dir, onnx_vars};
use crate::server::Server;

fn upload_form(name: &str, bytes: Vec<u8>) -> reqwest::multipart::Form {
    reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(bytes).file_name(name.to_string()),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn a_server_killed_mid_ingestion_loses_nothing_and_leaves_nothing_half_done() {
    let data = tempfile::tempdir().unwrap();
    let client = crate::helpers::http_client();
    let server = Server::start(data.path(), &[]);
    server.ready(&client).await;

    // A mix of real PDFs (made unique by a trailing comment) and texts.
    let pdf = corpus("pdflatex-4-pages.pdf");
    let mut accepted = Vec::new();
    for i in 0..24 {
        let (name, bytes) = if i % 2 == 0 {
            (
                format!("paper-{i}.pdf"),
                [pdf.clone(), format!("\n%copy {i}\n").into_bytes()].concat(),
            )
        } else {
            (format!("memo-{i}.txt"), unique_text(&format!("crash{i}")).into_bytes())
        };
        let answer = server.upload(&client, &name, bytes, false).await;
        assert_eq!(answer["documents"][0]["status"], "queued", "{answer}");
        accepted.push(answer["documents"][0]["id"].as_str().unwrap().to_string());
    }
    // Kill once some, not all, are done.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let ready = server.get_json(&client, "/v1/documents?status=ready&limit=500").await;
        if !ready["documents"].as_array().unwrap().is_empty() || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    server.kill_hard();

    let restarted_at = Instant::now();
    let server = Server::start(data.path(), &[]);
    server.ready(&client).await;
    // Jobs a dead server held are claimable again at start: ready means resumed.
    eprintln!(
        "restarted server ready, interrupted jobs claimable, {:?} after the restart",
        restarted_at.elapsed()
    );
    let mut documents: HashMap<String, Value> = HashMap::new();
    for _ in 0..2400 {
        let listed = server.get_json(&client, "/v1/documents?limit=500").await;
        documents = listed["documents"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| (d["id"].as_str().unwrap().to_string(), d.clone()))
            .collect();
        if documents
            .values()
            .all(|d| d["status"] == "ready" || d["status"] == "failed")
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    eprintln!(
        "all interrupted jobs finished {:?} after the restart",
        restarted_at.elapsed()
    );
    let mut ids: Vec<&String> = documents.keys().collect();
    ids.sort();
    let mut expected: Vec<&String> = accepted.iter().collect();
    expected.sort();
    assert_eq!(ids, expected, "every accepted document is still there");
    for document in documents.values() {
        assert_eq!(document["status"], "ready", "{document}");
    }
    server.stop();

    // The index, read directly: each ready document has exactly its chunks, and
    // there is no point of anything else.
    let index = EdgeIndex::open(data.path().join("index")).unwrap();
    let collection = CollectionName::parse("default").unwrap();
    let mut chunks = 0;
    for (id, document) in &documents {
        let expected = document["chunks"].as_u64().unwrap() as usize;
        let id: DocumentId = id.parse().unwrap();
        assert_eq!(
            index.count_document(&collection, id).await.unwrap(),
            expected,
            "{document}"
        );
        chunks += expected;
    }
    assert_eq!(
        index.count_points(&collection).await.unwrap(),
        chunks,
        "no vector without its document"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_200_mib_upload_over_the_limit_is_413_and_memory_stays_flat() {
    let data = tempfile::tempdir().unwrap();
    let client = crate::helpers::http_client();
    let server = Server::start(data.path(), &[]);
    server.ready(&client).await;
    // Let the model's first passes settle the baseline.
    let warm = server
        .upload(
            &client,
            "warm.pdf",
            pdf_saying("Warming up the embedding model before measuring."),
            true,
        )
        .await;
    assert_eq!(warm["documents"][0]["status"], "ready", "{warm}");
    let before = server.peak_rss_mib();

    // 200 MiB generated on the fly, never held whole by either side.
    let body = futures_util::stream::iter((0..200).map(|_| Ok::<_, std::io::Error>(vec![b'a'; 1024 * 1024])));
    let part = reqwest::multipart::Part::stream_with_length(reqwest::Body::wrap_stream(body), 200 * 1024 * 1024)
        .file_name("huge.txt");
    let response = client
        .post(format!("{}/v1/documents", server.url))
        .multipart(reqwest::multipart::Form::new().part("file", part))
        .send()
        .await;
    // The server answers 413 as soon as the limit is passed; the client may see
    // that, or the connection closed under its still-sending body.
    match response {
        Ok(response) => assert_eq!(response.status(), 413),
        Err(e) => assert!(e.is_request() || e.is_body(), "{e}"),
    }
    let after = server.peak_rss_mib();
    eprintln!("peak resident memory: {before} MiB before, {after} MiB after a refused 200 MiB upload");
    assert!(after < before + 50, "peak grew from {before} to {after} MiB");

    // 99 MiB within the limit, streamed to disk whole, then judged (not UTF-8,
    // no known magic: 415) — the upload path's memory for a file it keeps reading.
    let body = futures_util::stream::iter((0..99).map(|_| Ok::<_, std::io::Error>(vec![0xffu8; 1024 * 1024])));
    let part = reqwest::multipart::Part::stream_with_length(reqwest::Body::wrap_stream(body), 99 * 1024 * 1024)
        .file_name("blob.bin");
    let response = client
        .post(format!("{}/v1/documents", server.url))
        .multipart(reqwest::multipart::Form::new().part("file", part))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 415);
    let whole = server.peak_rss_mib();
    eprintln!("peak resident memory: {whole} MiB after a 99 MiB upload read to its end");
    assert!(whole < before + 50, "peak grew from {before} to {whole} MiB");
    assert_eq!(
        std::fs::read_dir(data.path().join("uploads")).unwrap().count(),
        0,
        "the partial upload is gone"
    );
    assert_eq!(
        client
            .get(format!("{}/readyz", server.url))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn fifty_parallel_uploads_all_end_ready_and_the_same_bytes_once() {
    let app = TestApp::spawn().await;
    let uploads = (0..50).map(|i| {
        let client = app.client.clone();
        let url = app.url("/v1/documents?wait=true");
        // Every tenth upload repeats the bytes of upload 0.
        let marker = if i % 10 == 0 {
            "parallel0".to_string()
        } else {
            format!("parallel{i}")
        };
        tokio::spawn(async move {
            let response = client
                .post(url)
                .multipart(upload_form("memo.txt", unique_text(&marker).into_bytes()))
                .send()
                .await
                .unwrap();
            let status = response.status().as_u16();
            (status, response.json::<Value>().await.unwrap())
        })
    });
    let answers = futures_util::future::join_all(uploads).await;
    let mut ids = std::collections::HashSet::new();
    for answer in answers {
        let (status, body) = answer.unwrap();
        assert_eq!(status, 200, "{body}");
        let document = &body["documents"][0];
        assert!(
            document["status"] == "ready" || document["status"] == "duplicate",
            "{body}"
        );
        ids.insert(document["id"].as_str().unwrap().to_string());
    }
    assert_eq!(ids.len(), 46, "45 distinct texts and one repeated five times");
    let listed: Value = app.get("/v1/documents?limit=500").await.json().await.unwrap();
    assert_eq!(listed["documents"].as_array().unwrap().len(), 46);
    assert_eq!(app.stored_files(), 46);
}

#[tokio::test(flavor = "multi_thread")]
async fn docqa_ingest_walks_folders_and_reports_what_failed() {
    let data = tempfile::tempdir().unwrap();
    let docs = tempfile::tempdir().unwrap();
    std::fs::create_dir(docs.path().join("nested")).unwrap();
    std::fs::write(docs.path().join("a.txt"), unique_text("bulk-a")).unwrap();
    std::fs::write(
        docs.path().join("nested/b.pdf"),
        pdf_saying("A PDF found in a nested folder."),
    )
    .unwrap();
    std::fs::write(docs.path().join("nested/broken.pdf"), &pdf_saying("cut")[..40]).unwrap();
    std::fs::write(docs.path().join("picture.gif"), b"GIF89a0000").unwrap();
    std::fs::write(docs.path().join(".hidden.txt"), "not ingested").unwrap();

    let run = || {
        let mut command = Command::new(env!("CARGO_BIN_EXE_docqa"));
        command
            .args(["ingest", "--quiet"])
            .arg(docs.path())
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("DOCQA_DATA_DIR", data.path())
            .env("EMBEDDER", "local")
            .env("EMBED_MODEL_DIR", model_dir())
            .env("RUST_LOG", "error");
        for (k, v) in onnx_vars() {
            command.env(k, v);
        }
        command.output().expect("docqa ingest runs")
    };
    let first = run();
    let out = String::from_utf8_lossy(&first.stdout);
    assert!(
        !first.status.success(),
        "a failed file makes the exit code non-zero: {out}"
    );
    assert!(out.contains("2 ready, 0 duplicate, 2 failed"), "{out}");
    assert!(out.contains("broken.pdf") && out.contains("picture.gif"), "{out}");
    assert!(!out.contains(".hidden"), "{out}");

    // Again: what is there is a duplicate; the failures are reported again.
    let again = run();
    let out = String::from_utf8_lossy(&again.stdout);
    assert!(out.contains("0 ready, 3 duplicate, 1 failed"), "{out}");
}

/// Text a client chooses reaches the log only escaped: a newline in a document
/// id, a job id, a query string or an unknown JSON field cannot start a forged
/// line, and no escape sequence reaches the log raw.
#[tokio::test(flavor = "multi_thread")]
async fn client_text_cannot_forge_log_lines() {
    let data = tempfile::tempdir().unwrap();
    let client = crate::helpers::http_client();
    let server = Server::start(data.path(), &[("RUST_LOG", "info")]);
    server.ready(&client).await;
    let forged = "%0AFORGED%20level=ERROR%20admin%20key%20leaked%1B%5B2J";
    for path in [
        format!("/v1/documents/x{forged}"),
        format!("/v1/jobs/x{forged}"),
        format!("/v1/documents?status=x{forged}"),
        format!("/v1/collections/x{forged}/documents"),
    ] {
        let response = client.get(server.url(&path)).send().await.unwrap();
        assert!(response.status().is_client_error(), "{path}: {}", response.status());
    }
    let response = client
        .post(server.url("/v1/search"))
        .header("content-type", "application/json")
        .body("{\"query\": \"x\", \"\\nFORGED level=ERROR\\u001b[2J\": 1}")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 422, "an unknown field is refused");
    // The refusals are logged (the test would pass on an empty log otherwise).
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while server.log_text().matches("request refused").count() < 5 && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let log = server.log_text();
    assert!(log.matches("request refused").count() >= 5, "{log}");
    assert!(log.contains("FORGED"), "the client's text is logged, escaped: {log}");
    for line in log.lines() {
        assert!(!line.trim_start().starts_with("FORGED"), "a forged line: {line:?}");
    }
    assert!(!log.contains('\u{1b}'), "a raw escape sequence reached the log");
    server.stop();
}

/// A crash between storing an upload's file and inserting its row leaves a
/// file no document names; the next start removes it (and half-received
/// uploads), and keeps the files of real documents.
#[tokio::test(flavor = "multi_thread")]
async fn files_left_by_a_crash_are_removed_at_the_next_start() {
    let mut app = TestApp::spawn().await;
    let kept = app.ingest("terms.txt", crate::fixtures::WARRANTY_TXT.into()).await;
    let kept_id = kept["id"].as_str().unwrap().to_string();
    let files = app.data_dir.path().join("files");
    let orphan = files.join(uuid::Uuid::new_v4().to_string());
    std::fs::write(&orphan, b"stored, then the process died before its row").unwrap();
    let stranger = files.join("README.operator");
    std::fs::write(&stranger, b"not ours to remove").unwrap();
    let half = app.data_dir.path().join("uploads").join("upload-half-received");
    std::fs::write(&half, b"half").unwrap();
    assert_eq!(app.stored_files(), 3);

    app.restart().await;
    assert!(!orphan.exists(), "the orphan is gone");
    assert!(!half.exists(), "the half-received upload is gone");
    assert!(stranger.exists(), "a file not named like a document is left alone");
    assert!(files.join(&kept_id).exists(), "the document's file stays");
    let document: Value = app.get(&format!("/v1/documents/{kept_id}")).await.json().await.unwrap();
    assert_eq!(document["status"], "ready", "{document}");
}

/// A document deleted while its job embeds it stops being worked on at once:
/// the delete cancels the job, the worker is free for the next upload, and the
/// deleted document is never reported done.
#[tokio::test(flavor = "multi_thread")]
async fn deleting_a_document_stops_its_job() {
    let data = tempfile::tempdir().unwrap();
    let client = crate::helpers::http_client();
    let server = Server::start(data.path(), &[("RUST_LOG", "info"), ("INGEST_WORKERS", "1")]);
    server.ready(&client).await;
    // Thousands of chunks of distinct sentences: long enough to embed that the
    // delete comes in the middle.
    let long: String = (0..60_000)
        .map(|i| format!("Ledger entry {i} records shipment {}. ", i * 7919 % 100_003))
        .collect();
    let accepted = server.upload(&client, "ledger.txt", long.into_bytes(), false).await;
    let id = accepted["documents"][0]["id"].as_str().expect("accepted").to_string();
    let job = accepted["documents"][0]["job_id"].as_str().expect("a job").to_string();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let document = server.get_json(&client, &format!("/v1/documents/{id}")).await;
        let progress = server.get_json(&client, &format!("/v1/jobs/{job}")).await;
        let embedding = progress["progress"]["stage"] == "embed" && progress["progress"]["done"].as_u64() > Some(0);
        if document["status"] == "processing" && embedding {
            break;
        }
        assert_ne!(
            document["status"], "ready",
            "embedded before it could be deleted: {document}"
        );
        assert!(Instant::now() < deadline, "never started: {document} {progress}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let deleted = client
        .delete(server.url(&format!("/v1/documents/{id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 204);
    // The one worker takes the next upload.
    let next = server
        .upload(&client, "terms.txt", crate::fixtures::WARRANTY_TXT.into(), true)
        .await;
    assert_eq!(next["documents"][0]["status"], "ready", "{next}");
    let log = server.log_text();
    let stopped = log
        .lines()
        .any(|l| l.contains("job stopped by a delete") && l.contains(&job));
    assert!(stopped, "{log}");
    assert!(
        !log.lines().any(|l| l.contains("job succeeded") && l.contains(&job)),
        "{log}"
    );
    server.stop();
}
