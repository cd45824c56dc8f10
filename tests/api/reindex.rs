//! Model identity: a collection remembers the model its vectors come from; a
//! server with another model refuses to mix vectors until the collection is
//! re-indexed, and the re-index swaps a fresh index in while the old serves.

use std::time::Duration;

use serde_json::{Value, json};

use crate::backends::{Backend, on_every_backend};
use crate::fake_llm::{Behaviour, EMBEDDING_DIMENSION, FakeLlm};
use crate::fixtures::{GARDENING_TXT, WARRANTY_TXT};
use crate::helpers::{TestApp, assert_problem};

const OTHER_MODEL: &str = "fake-hashed-words";

/// Polls a job until it ends.
async fn finished_job(app: &TestApp, id: &str) -> Value {
    for _ in 0..1200 {
        let job: Value = app.get(&format!("/v1/jobs/{id}")).await.json().await.unwrap();
        if job["status"] == "succeeded" || job["status"] == "failed" {
            return job;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("job {id} did not finish");
}

fn result_files(found: &Value) -> Vec<String> {
    found["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["filename"].as_str().unwrap().to_string())
        .collect()
}

async fn another_model_is_refused_until_the_collection_is_reindexed(backend: Backend) {
    let test = "another_model_is_refused_until_the_collection_is_reindexed";
    let Some(mut app) = TestApp::on(backend, test).await else {
        return;
    };
    let terms = app.ingest("terms.txt", WARRANTY_TXT.into()).await;
    app.ingest("garden.txt", GARDENING_TXT.into()).await;
    let shown: Value = app.get("/v1/collections/default").await.json().await.unwrap();
    assert_eq!(shown["embedding_model"]["dimension"], 384, "{shown}");
    assert_eq!(shown["index_status"], "ready");

    // The server comes back with another embedding model (an OpenAI-compatible one).
    let fake = FakeLlm::start(Behaviour::CiteFirstSource);
    app.restart_with(&[
        ("EMBEDDER", "openai"),
        ("LLM_BASE_URL", fake.base_url.as_str()),
        ("EMBED_MODEL", OTHER_MODEL),
    ])
    .await;
    let shown: Value = app.get("/v1/collections/default").await.json().await.unwrap();
    assert_eq!(shown["index_status"], "needs_reindex", "{shown}");
    let query = json!({"query": "How long is the warranty period?", "top_k": 2});
    let refused = assert_problem(
        app.post_json("/v1/search", &query).await,
        409,
        "/problems/embedding-model-mismatch",
    )
    .await;
    assert!(refused["detail"].as_str().unwrap().contains("reindex"), "{refused}");
    assert_problem(
        app.post_json(
            "/v1/query",
            &json!({"question": "How long is the warranty?", "mode": "extractive"}),
        )
        .await,
        409,
        "/problems/embedding-model-mismatch",
    )
    .await;
    assert_problem(
        app.upload(
            None,
            &[("new.txt", b"A new text about compost heaps and worms.".to_vec())],
            None,
            false,
        )
        .await,
        409,
        "/problems/embedding-model-mismatch",
    )
    .await;

    let embedded_before = fake.embedded();
    let started = app.post_json("/v1/collections/default/reindex", &json!({})).await;
    assert_eq!(started.status(), 202);
    let job: Value = started.json().await.unwrap();
    assert_eq!(job["kind"], "reindex", "{job}");
    assert_eq!(job["collection"], "default");
    assert_eq!(job["document_id"], Value::Null);
    let id = job["id"].as_str().unwrap();
    // Asking again while it is queued or running is the same job.
    let again: Value = app
        .post_json("/v1/collections/default/reindex", &json!({}))
        .await
        .json()
        .await
        .unwrap();
    let first_now: Value = app.get(&format!("/v1/jobs/{id}")).await.json().await.unwrap();
    if first_now["status"] == "queued" || first_now["status"] == "running" {
        assert_eq!(again["id"], job["id"], "{again}");
    }
    let done = finished_job(&app, id).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    if again["id"] != job["id"] {
        assert_eq!(
            finished_job(&app, again["id"].as_str().unwrap()).await["status"],
            "succeeded"
        );
    }

    let shown: Value = app.get("/v1/collections/default").await.json().await.unwrap();
    assert_eq!(shown["embedding_model"]["name"], OTHER_MODEL, "{shown}");
    assert_eq!(shown["embedding_model"]["dimension"], EMBEDDING_DIMENSION);
    assert_eq!(shown["index_status"], "ready");
    let chunks = terms["chunks"].as_u64().unwrap() as usize + 1;
    assert!(
        fake.embedded() >= embedded_before + chunks,
        "the re-index embedded every chunk with the new model"
    );
    let embedded_before = fake.embedded();
    let found = app.search(None, query).await;
    assert_eq!(result_files(&found)[0], "terms.txt", "{found}");
    assert_eq!(
        fake.embedded(),
        embedded_before + 1,
        "the query was embedded by the new model"
    );
    // Re-indexing changed the vectors, not the documents.
    let document: Value = app
        .get(&format!("/v1/documents/{}", terms["id"].as_str().unwrap()))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(document["status"], "ready");
    assert_eq!(document["chunks"], terms["chunks"]);
    // And the collection takes uploads again, embedded by the new model.
    let compost = app
        .ingest(
            "compost.txt",
            b"A new text about compost heaps and earthworms.".to_vec(),
        )
        .await;
    let found = app
        .search(None, json!({"query": "compost heaps earthworms", "top_k": 1}))
        .await;
    assert_eq!(found["results"][0]["document_id"], compost["id"], "{found}");
}

async fn the_old_index_serves_while_a_reindex_runs(backend: Backend) {
    let Some(app) = TestApp::on(backend, "the_old_index_serves_while_a_reindex_runs").await else {
        return;
    };
    app.ingest("four-pages.pdf", crate::helpers::corpus("pdflatex-4-pages.pdf"))
        .await;
    app.ingest("terms.txt", WARRANTY_TXT.into()).await;
    app.ingest("garden.txt", GARDENING_TXT.into()).await;
    let query = json!({"query": "warranty extended to 36 months", "top_k": 3});
    let before = app.search(None, query.clone()).await;

    let job: Value = app.post_json("/v1/reindex", &json!({})).await.json().await.unwrap();
    let id = job["id"].as_str().unwrap().to_string();
    // Searches during the re-index answer from the old index, the same way.
    let mut searched = 0;
    loop {
        let during = app.search(None, query.clone()).await;
        assert_eq!(result_files(&during), result_files(&before), "{during}");
        searched += 1;
        let job: Value = app.get(&format!("/v1/jobs/{id}")).await.json().await.unwrap();
        if job["status"] == "succeeded" || job["status"] == "failed" {
            assert_eq!(job["status"], "succeeded", "{job}");
            break;
        }
        assert!(searched < 10_000, "the re-index does not end");
    }
    let after = app.search(None, query).await;
    assert_eq!(result_files(&after), result_files(&before));
    let ids = |v: &Value| {
        v["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["chunk_id"].clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(ids(&after), ids(&before), "same chunks, same point ids");
}

/// A PATCH of `access` while a re-index copies the collection: the document is
/// copied last, after the change, with the access the re-index read at its
/// start; the new generation must still carry the change once swapped in.
async fn an_access_change_during_a_reindex_survives_the_swap(backend: Backend) {
    let test = "an_access_change_during_a_reindex_survives_the_swap";
    let Some(app) = crate::auth::secured_with(backend, test, &[]).await else {
        return;
    };
    // Enough to copy that the change can land while the re-index runs.
    for i in 0..12 {
        let text = format!(
            "{}\n\n{}",
            crate::fixtures::unique_text(&format!("filler {i}")),
            GARDENING_TXT.repeat(12)
        );
        app.ingest(&format!("filler-{i}.txt"), text.into()).await;
    }
    let secret = "The merger code name is Bluebird and it closes in March.";
    let target = app
        .ingest(
            "merger.txt",
            format!("{secret}\n\n{}", crate::fixtures::unique_text("merger")).into(),
        )
        .await;
    let (_, reader) = crate::auth::make_key(&app, json!({"role": "reader"})).await;
    let found_by_reader = async || {
        let found: Value = app
            .client
            .post(app.url("/v1/search"))
            .bearer_auth(&reader)
            .json(&json!({"query": "merger code name Bluebird", "top_k": 5}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        found["results"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["document_id"] == target["id"])
    };
    assert!(found_by_reader().await, "open to the tenant at first");

    let job: Value = app.post_json("/v1/reindex", &json!({})).await.json().await.unwrap();
    let job_path = format!("/v1/jobs/{}", job["id"].as_str().unwrap());
    // Once the first document is copied, the list of documents has been read.
    loop {
        let now: Value = app.get(&job_path).await.json().await.unwrap();
        let (done, total) = (&now["progress"]["done"], &now["progress"]["total"]);
        assert!(
            now["status"] != "succeeded",
            "the re-index ended before the change could land: {now}"
        );
        if now["progress"]["stage"] == "embed" && done.as_u64() >= Some(1) && done != total {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let path = format!("/v1/documents/{}", target["id"].as_str().unwrap());
    let closed = app
        .client
        .patch(app.url(&path))
        .json(&json!({"access": ["group:legal"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(closed.status(), 200);
    let shown: Value = app.get("/v1/collections/default").await.json().await.unwrap();
    assert_eq!(
        shown["index_status"], "reindexing",
        "the change must land while the re-index runs, or this test proves nothing: {shown}"
    );
    assert!(!found_by_reader().await, "closed at once, in the old generation");
    let done = finished_job(&app, job["id"].as_str().unwrap()).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert!(!found_by_reader().await, "still closed in the new generation");
}

on_every_backend!(
    another_model_is_refused_until_the_collection_is_reindexed,
    the_old_index_serves_while_a_reindex_runs,
    an_access_change_during_a_reindex_survives_the_swap,
);

#[tokio::test(flavor = "multi_thread")]
async fn a_server_without_a_model_refuses_to_reindex() {
    let app = TestApp::spawn_with(crate::helpers::TestOptions {
        vars: vec![("EMBEDDER", "none".to_string())],
        llm: None,
    })
    .await;
    assert_problem(
        app.post_json("/v1/collections/default/reindex", &json!({})).await,
        409,
        "/problems/reindex-needs-model",
    )
    .await;
    assert_problem(
        app.post_json("/v1/collections/nope/reindex", &json!({})).await,
        404,
        "/problems/collection-not-found",
    )
    .await;
}
