use std::time::Duration;

use serde_json::{Value, json};

use crate::backends::{Backend, on_every_backend};
use crate::fixtures::{GARDENING_TXT, ONBOARDING_MD, WARRANTY_TXT, unique_text};
use crate::helpers::{TestApp, assert_problem, header};

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

fn ids(results: &Value) -> Vec<String> {
    results["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["document_id"].as_str().unwrap().to_string())
        .collect()
}

async fn text_and_markdown_are_recognised_by_content_not_by_name(backend: Backend) {
    let Some(app) = TestApp::on(backend, "text_and_markdown_are_recognised_by_content_not_by_name").await else {
        return;
    };
    // Names that lie: the content decides.
    let markdown = app.ingest("notes.pdf", ONBOARDING_MD.into()).await;
    let plain = app.ingest("readme.md", WARRANTY_TXT.into()).await;

    let markdown: Value = app
        .get(&format!("/v1/documents/{}", markdown["id"].as_str().unwrap()))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(markdown["content_type"], "text/markdown", "{markdown}");
    assert_eq!(markdown["filename"], "notes.pdf");
    assert_eq!(markdown["pages"], 1);
    let plain: Value = app
        .get(&format!("/v1/documents/{}", plain["id"].as_str().unwrap()))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(plain["content_type"], "text/plain", "{plain}");

    let found = app
        .search(
            None,
            json!({"query": "When are travel expenses reimbursed?", "top_k": 1}),
        )
        .await;
    assert_eq!(ids(&found), vec![markdown["id"].as_str().unwrap()]);
    assert!(
        found["results"][0]["text"].as_str().unwrap().contains("two weeks"),
        "{found}"
    );
}

async fn a_document_records_what_was_uploaded_and_its_job(backend: Backend) {
    let Some(app) = TestApp::on(backend, "a_document_records_what_was_uploaded_and_its_job").await else {
        return;
    };
    let bytes = WARRANTY_TXT.as_bytes().to_vec();
    let uploaded = app
        .upload(
            None,
            &[("terms.txt", bytes.clone())],
            Some(r#"{"team":"sales","year":2024}"#),
            false,
        )
        .await;
    assert_eq!(uploaded.status(), 202);
    let body: Value = uploaded.json().await.unwrap();
    let document = &body["documents"][0];
    assert_eq!(document["status"], "queued");
    let id = document["id"].as_str().unwrap();
    let job_id = document["job_id"].as_str().unwrap();

    // The job is durable and pollable until it ends.
    let mut job = Value::Null;
    for _ in 0..600 {
        job = app.get(&format!("/v1/jobs/{job_id}")).await.json().await.unwrap();
        if job["status"] == "succeeded" || job["status"] == "failed" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(job["status"], "succeeded", "{job}");
    assert_eq!(job["document_id"], id);
    assert_eq!(job["progress"]["fraction"], 1.0);
    assert_eq!(job["attempts"], 1);

    let document: Value = app.get(&format!("/v1/documents/{id}")).await.json().await.unwrap();
    assert_eq!(document["status"], "ready");
    assert_eq!(document["bytes"], bytes.len());
    assert_eq!(document["sha256"], sha256_hex(&bytes));
    assert_eq!(document["metadata"], json!({"team": "sales", "year": 2024}));
    assert!(document["chunks"].as_u64().unwrap() >= 1);
    assert_eq!(document["error"], Value::Null);
    assert_eq!(document["job_id"], job_id);
    for field in ["created_at", "updated_at"] {
        assert!(document[field].is_string(), "{field}");
    }
}

async fn the_same_bytes_twice_are_one_document(backend: Backend) {
    let Some(app) = TestApp::on(backend, "the_same_bytes_twice_are_one_document").await else {
        return;
    };
    let first = app.ingest("terms.txt", WARRANTY_TXT.into()).await;
    let again = app
        .upload(None, &[("copy-of-terms.txt", WARRANTY_TXT.into())], None, true)
        .await;
    assert_eq!(again.status(), 200);
    let again: Value = again.json().await.unwrap();
    assert_eq!(again["documents"][0]["status"], "duplicate", "{again}");
    assert_eq!(again["documents"][0]["id"], first["id"]);

    let listed: Value = app.get("/v1/documents").await.json().await.unwrap();
    assert_eq!(listed["documents"].as_array().unwrap().len(), 1);
    assert_eq!(app.stored_files(), 1);

    // Another collection is another library: there it is new.
    app.post_json("/v1/collections", &json!({"name": "other"})).await;
    let elsewhere: Value = app
        .upload(Some("other"), &[("terms.txt", WARRANTY_TXT.into())], None, true)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(elsewhere["documents"][0]["status"], "ready");
    assert_ne!(elsewhere["documents"][0]["id"], first["id"]);
}

async fn a_deleted_document_is_gone_from_search(backend: Backend) {
    let Some(app) = TestApp::on(backend, "a_deleted_document_is_gone_from_search").await else {
        return;
    };
    let keep = app.ingest("garden.txt", GARDENING_TXT.into()).await;
    let gone = app.ingest("terms.txt", WARRANTY_TXT.into()).await;
    let gone_id = gone["id"].as_str().unwrap();

    let query = json!({"query": "warranty period of Acme devices", "top_k": 10});
    assert!(ids(&app.search(None, query.clone()).await).contains(&gone_id.to_string()));

    let deleted = app.delete(&format!("/v1/documents/{gone_id}")).await;
    assert_eq!(deleted.status(), 204);
    assert_problem(
        app.get(&format!("/v1/documents/{gone_id}")).await,
        404,
        "/problems/document-not-found",
    )
    .await;
    assert_problem(
        app.get(&format!("/v1/jobs/{}", gone["job_id"].as_str().unwrap())).await,
        404,
        "/problems/job-not-found",
    )
    .await;
    assert_problem(
        app.delete(&format!("/v1/documents/{gone_id}")).await,
        404,
        "/problems/document-not-found",
    )
    .await;

    let after = app.search(None, query).await;
    assert!(!ids(&after).contains(&gone_id.to_string()), "{after}");
    let (_, answer) = app
        .query(json!({"question": "How long is the warranty of Acme devices?"}))
        .await;
    assert!(
        answer["citations"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["document_id"] != gone_id),
        "{answer}"
    );
    assert_eq!(app.stored_files(), 1);
    // The other document is untouched.
    let kept = app
        .get(&format!("/v1/documents/{}", keep["id"].as_str().unwrap()))
        .await;
    assert_eq!(kept.status(), 200);
}

async fn everything_is_still_there_after_a_restart(backend: Backend) {
    let Some(mut app) = TestApp::on(backend, "everything_is_still_there_after_a_restart").await else {
        return;
    };
    let pdf = app
        .ingest("four-pages.pdf", crate::helpers::corpus("pdflatex-4-pages.pdf"))
        .await;
    let text = app.ingest("terms.txt", WARRANTY_TXT.into()).await;
    let query = json!({"query": "warranty extended to 36 months", "top_k": 5});
    let before = app.search(None, query.clone()).await;
    assert!(!before["results"].as_array().unwrap().is_empty());

    app.restart().await;

    for document in [&pdf, &text] {
        let got: Value = app
            .get(&format!("/v1/documents/{}", document["id"].as_str().unwrap()))
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(got["status"], "ready", "{got}");
    }
    let after = app.search(None, query).await;
    assert_eq!(before["results"], after["results"]);
    let again: Value = app
        .upload(None, &[("terms.txt", WARRANTY_TXT.into())], None, true)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(again["documents"][0]["status"], "duplicate");
    let listed: Value = app.get("/v1/documents").await.json().await.unwrap();
    assert_eq!(listed["documents"].as_array().unwrap().len(), 2);
}

async fn documents_are_listed_in_pages_and_by_status(backend: Backend) {
    let Some(app) = TestApp::on(backend, "documents_are_listed_in_pages_and_by_status").await else {
        return;
    };
    for marker in ["alpha", "bravo", "charlie"] {
        app.ingest(&format!("{marker}.txt"), unique_text(marker).into_bytes())
            .await;
    }
    let first: Value = app.get("/v1/documents?limit=2").await.json().await.unwrap();
    assert_eq!(first["documents"].as_array().unwrap().len(), 2);
    let cursor = first["next_cursor"].as_str().expect("a next page");
    let second: Value = app
        .get(&format!("/v1/documents?limit=2&cursor={cursor}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(second["documents"].as_array().unwrap().len(), 1);
    assert_eq!(second["next_cursor"], Value::Null);
    let names: Vec<&str> = first["documents"]
        .as_array()
        .unwrap()
        .iter()
        .chain(second["documents"].as_array().unwrap())
        .map(|d| d["filename"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["alpha.txt", "bravo.txt", "charlie.txt"]);

    let ready: Value = app.get("/v1/documents?status=ready").await.json().await.unwrap();
    assert_eq!(ready["documents"].as_array().unwrap().len(), 3);
    let failed: Value = app.get("/v1/documents?status=failed").await.json().await.unwrap();
    assert!(failed["documents"].as_array().unwrap().is_empty());

    assert_problem(app.get("/v1/documents?limit=0").await, 422, "/problems/invalid-request").await;
    assert_problem(
        app.get("/v1/documents?cursor=zz").await,
        422,
        "/problems/invalid-request",
    )
    .await;
    assert_problem(
        app.get("/v1/documents?status=lost").await,
        422,
        "/problems/invalid-request",
    )
    .await;
}

async fn filters_by_metadata_and_document_apply_inside_the_index(backend: Backend) {
    let Some(app) = TestApp::on(backend, "filters_by_metadata_and_document_apply_inside_the_index").await else {
        return;
    };
    let legal: Value = app
        .upload(
            None,
            &[("legal.txt", unique_text("policy-legal").into_bytes())],
            Some(r#"{"team":"legal","year":2023}"#),
            true,
        )
        .await
        .json()
        .await
        .unwrap();
    let ops: Value = app
        .upload(
            None,
            &[("ops.txt", unique_text("policy-ops").into_bytes())],
            Some(r#"{"team":"ops","year":2024}"#),
            true,
        )
        .await
        .json()
        .await
        .unwrap();
    let legal_id = legal["documents"][0]["id"].as_str().unwrap().to_string();
    let ops_id = ops["documents"][0]["id"].as_str().unwrap().to_string();
    let query = |filter: Value| json!({"query": "supplier contracts review summary", "top_k": 10, "filter": filter});

    let all = app.search(None, query(json!({}))).await;
    let mut found = ids(&all);
    found.sort();
    found.dedup();
    assert_eq!(found.len(), 2, "{all}");

    assert_eq!(
        ids(&app.search(None, query(json!({"metadata": {"team": "legal"}}))).await),
        vec![legal_id.clone()]
    );
    assert_eq!(
        ids(&app.search(None, query(json!({"metadata": {"year": 2024}}))).await),
        vec![ops_id.clone()]
    );
    assert_eq!(
        ids(&app.search(None, query(json!({"document_ids": [ops_id]}))).await),
        vec![ops_id.clone()]
    );
    let none = app
        .search(
            None,
            query(json!({"document_ids": [ops_id], "metadata": {"team": "legal"}})),
        )
        .await;
    assert!(none["results"].as_array().unwrap().is_empty(), "{none}");

    let (_, answer) = app
        .query(json!({"question": "Who reviews supplier contracts?", "filter": {"metadata": {"team": "legal"}}}))
        .await;
    assert!(
        answer["citations"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["document_id"] == legal_id.as_str()),
        "{answer}"
    );
}

/// `GET …/documents/{id}/file`: the bytes as uploaded, ranges, ETag, and a
/// type that a browser may show inline (PDF) or must download, inert (HTML).
#[tokio::test(flavor = "multi_thread")]
async fn a_documents_file_is_served_as_uploaded_with_ranges() {
    let app = TestApp::spawn().await;
    let pdf = crate::helpers::corpus("multicolumn.pdf");
    let document = app.ingest("Étude multicolumn.pdf", pdf.clone()).await;
    let path = format!(
        "/v1/collections/default/documents/{}/file",
        document["id"].as_str().unwrap()
    );

    let whole = app.get(&path).await;
    assert_eq!(whole.status(), 200);
    assert_eq!(header(&whole, "content-type"), "application/pdf");
    assert_eq!(header(&whole, "accept-ranges"), "bytes");
    let disposition = header(&whole, "content-disposition");
    assert!(disposition.starts_with("inline"), "{disposition}");
    assert!(
        disposition.contains("filename*=UTF-8''%C3%89tude%20multicolumn.pdf"),
        "{disposition}"
    );
    assert!(
        disposition.contains("filename=\"_tude multicolumn.pdf\""),
        "{disposition}"
    );
    assert_eq!(header(&whole, "x-content-type-options"), "nosniff");
    let etag = header(&whole, "etag");
    assert!(!etag.is_empty());
    assert_eq!(whole.bytes().await.unwrap().as_ref(), pdf.as_slice());

    let part = app
        .client
        .get(app.url(&path))
        .header("range", "bytes=100-199")
        .send()
        .await
        .unwrap();
    assert_eq!(part.status(), 206);
    assert_eq!(header(&part, "content-range"), format!("bytes 100-199/{}", pdf.len()));
    assert_eq!(part.bytes().await.unwrap().as_ref(), &pdf[100..200]);
    let outside = app
        .client
        .get(app.url(&path))
        .header("range", format!("bytes={}-", pdf.len() + 10))
        .send()
        .await
        .unwrap();
    assert_eq!(outside.status(), 416);
    let unchanged = app
        .client
        .get(app.url(&path))
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(unchanged.status(), 304);

    // An uploaded web page is never served as a page of this site.
    let html = app
        .ingest(
            "notes.html",
            b"<html><body><p>Quarterly notes on the harbour crane.</p><script>alert(1)</script></body></html>".to_vec(),
        )
        .await;
    let served = app
        .get(&format!("/v1/documents/{}/file", html["id"].as_str().unwrap()))
        .await;
    assert_eq!(served.status(), 200);
    assert_eq!(header(&served, "content-type"), "text/html");
    assert!(header(&served, "content-disposition").starts_with("attachment"));
    assert!(header(&served, "content-security-policy").contains("sandbox"));

    let unknown = app.get("/v1/documents/00000000-0000-4000-8000-000000000000/file").await;
    assert_problem(unknown, 404, "/problems/document-not-found").await;
    let deleted = app
        .delete(&format!("/v1/documents/{}", html["id"].as_str().unwrap()))
        .await;
    assert_eq!(deleted.status(), 204);
    assert_problem(
        app.get(&format!("/v1/documents/{}/file", html["id"].as_str().unwrap()))
            .await,
        404,
        "/problems/document-not-found",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn html_pages_are_read_for_their_visible_text() {
    let app = TestApp::spawn().await;
    let page = r#"<!doctype html><html><head><title>Parking rules</title>
        <script>const token = "zebracrossing-secret";</script><style>.x{}</style></head>
        <body><h1>Visitor parking</h1><p>Visitors park on level <b>minus two</b> and register at the front desk.</p></body></html>"#;
    let document = app.ingest("parking", page.as_bytes().to_vec()).await;
    let stored: Value = app
        .get(&format!("/v1/documents/{}", document["id"].as_str().unwrap()))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(stored["content_type"], "text/html", "{stored}");

    let found = app
        .search(None, json!({"query": "Where do visitors park?", "top_k": 1}))
        .await;
    let text = found["results"][0]["text"].as_str().unwrap();
    assert!(text.contains("Visitors park on level minus two"), "{found}");
    assert!(text.starts_with("Parking rules"), "{found}");
    assert!(
        !text.contains("zebracrossing") && !text.contains(".x{}"),
        "scripts and styles are not text: {found}"
    );
    let (_, answer) = app
        .query(json!({"question": "Where do visitors park?", "mode": "extractive"}))
        .await;
    let quotes: Vec<&str> = answer["citations"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["quote"].as_str())
        .collect();
    assert!(quotes.iter().any(|q| q.contains("level minus two")), "{answer}");
}

on_every_backend!(
    text_and_markdown_are_recognised_by_content_not_by_name,
    a_document_records_what_was_uploaded_and_its_job,
    the_same_bytes_twice_are_one_document,
    a_deleted_document_is_gone_from_search,
    everything_is_still_there_after_a_restart,
    documents_are_listed_in_pages_and_by_status,
    filters_by_metadata_and_document_apply_inside_the_index,
);
