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
        let answer: Value = client
            .post(format!("{}/v1/documents", server.url))
            .multipart(upload_form(&name, bytes))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(answer["documents"][0]["status"], "queued", "{answer}");
        accepted.push(answer["documents"][0]["id"].as_str().unwrap().to_string());
    }
    // Kill once some, not all, are done.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let ready: Value = client
            .get(format!("{}/v1/documents?status=ready&limit=500", server.url))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
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
        let listed: Value = client
            .get(format!("{}/v1/documents?limit=500", server.url))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
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
    let warm: Value = client
        .post(format!("{}/v1/documents?wait=true", server.url))
        .multipart(upload_form(
            "warm.pdf",
            pdf_saying("Warming up the embedding model before measuring."),
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
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
    std::fs::write(docs.path().join("picture.png"), b"\x89PNG\r\n\x1a\n0000").unwrap();
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
    assert!(out.contains("broken.pdf") && out.contains("picture.png"), "{out}");
    assert!(!out.contains(".hidden"), "{out}");

    // Again: what is there is a duplicate; the failures are reported again.
    let again = run();
    let out = String::from_utf8_lossy(&again.stdout);
    assert!(out.contains("0 ready, 3 duplicate, 1 failed"), "{out}");
}
