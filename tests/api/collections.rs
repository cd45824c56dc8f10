use serde_json::{Value, json};

use crate::backends::{Backend, on_every_backend};
use crate::fixtures::{WARRANTY_TXT, unique_text};
use crate::helpers::{TestApp, assert_problem};

async fn collections_are_created_listed_shown_and_deleted(backend: Backend) {
    let Some(app) = TestApp::on(backend, "collections_are_created_listed_shown_and_deleted").await else {
        return;
    };
    let created = app
        .post_json("/v1/collections", &json!({"name": "handbooks", "description": "HR"}))
        .await;
    assert_eq!(created.status(), 201);
    assert_eq!(created.headers()["location"], "/v1/collections/handbooks");
    let created: Value = created.json().await.unwrap();
    assert_eq!(created["name"], "handbooks");
    assert_eq!(created["description"], "HR");
    assert_eq!(
        created["embedding_model"]["name"],
        "sentence-transformers/all-MiniLM-L6-v2"
    );
    assert_eq!(created["embedding_model"]["dimension"], 384);

    let listed: Value = app.get("/v1/collections").await.json().await.unwrap();
    let names: Vec<&str> = listed["collections"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["default", "handbooks"]);

    let shown: Value = app.get("/v1/collections/handbooks").await.json().await.unwrap();
    assert_eq!(shown, created);

    assert_problem(
        app.post_json("/v1/collections", &json!({"name": "handbooks"})).await,
        409,
        "/problems/collection-exists",
    )
    .await;
    for bad in [
        json!({"name": "Has Spaces"}),
        json!({"name": ""}),
        json!({"name": "x".repeat(65)}),
        json!({}),
    ] {
        assert_problem(
            app.post_json("/v1/collections", &bad).await,
            422,
            "/problems/invalid-request",
        )
        .await;
    }

    assert_eq!(app.delete("/v1/collections/handbooks").await.status(), 204);
    assert_problem(
        app.get("/v1/collections/handbooks").await,
        404,
        "/problems/collection-not-found",
    )
    .await;
    assert_problem(
        app.delete("/v1/collections/handbooks").await,
        404,
        "/problems/collection-not-found",
    )
    .await;
    assert_problem(
        app.delete("/v1/collections/default").await,
        409,
        "/problems/default-collection",
    )
    .await;
    // The name is free again.
    assert_eq!(
        app.post_json("/v1/collections", &json!({"name": "handbooks"}))
            .await
            .status(),
        201
    );
}

async fn collections_keep_their_documents_apart(backend: Backend) {
    let Some(app) = TestApp::on(backend, "collections_keep_their_documents_apart").await else {
        return;
    };
    for name in ["left", "right"] {
        app.post_json("/v1/collections", &json!({"name": name})).await;
    }
    let left: Value = app
        .upload(Some("left"), &[("terms.txt", WARRANTY_TXT.into())], None, true)
        .await
        .json()
        .await
        .unwrap();
    let right: Value = app
        .upload(
            Some("right"),
            &[("memo.txt", unique_text("zephyr").into_bytes())],
            None,
            true,
        )
        .await
        .json()
        .await
        .unwrap();
    let left_id = left["documents"][0]["id"].as_str().unwrap();

    let in_left = app
        .search(Some("left"), json!({"query": "warranty months", "top_k": 10}))
        .await;
    assert!(
        in_left["results"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["document_id"] == left_id),
        "{in_left}"
    );
    let in_right = app
        .search(Some("right"), json!({"query": "warranty months", "top_k": 10}))
        .await;
    assert!(
        in_right["results"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["document_id"] != left_id),
        "{in_right}"
    );
    let in_default = app.search(None, json!({"query": "warranty months"})).await;
    assert!(in_default["results"].as_array().unwrap().is_empty(), "{in_default}");

    // A document is only found through its own collection.
    assert_problem(
        app.get(&format!("/v1/collections/right/documents/{left_id}")).await,
        404,
        "/problems/document-not-found",
    )
    .await;
    assert_eq!(
        app.get(&format!("/v1/collections/left/documents/{left_id}"))
            .await
            .status(),
        200
    );

    // Deleting a collection takes its documents and files along.
    assert_eq!(app.delete("/v1/collections/left").await.status(), 204);
    assert_problem(
        app.get(&format!("/v1/collections/left/documents/{left_id}")).await,
        404,
        "/problems/collection-not-found",
    )
    .await;
    assert_eq!(app.stored_files(), 1);
    let right_id = right["documents"][0]["id"].as_str().unwrap();
    assert_eq!(
        app.get(&format!("/v1/collections/right/documents/{right_id}"))
            .await
            .status(),
        200
    );
}

on_every_backend!(
    collections_are_created_listed_shown_and_deleted,
    collections_keep_their_documents_apart,
);

/// Each collection is an index with open files: a tenant has at most
/// `MAX_COLLECTIONS` (its `default` counted), and a delete makes room again.
#[tokio::test(flavor = "multi_thread")]
async fn a_tenant_has_no_more_collections_than_max_collections() {
    let app = TestApp::spawn_with(crate::helpers::TestOptions {
        vars: vec![("MAX_COLLECTIONS", "3".into())],
        ..Default::default()
    })
    .await;
    for name in ["one", "two"] {
        let created = app.post_json("/v1/collections", &json!({"name": name})).await;
        assert_eq!(created.status(), 201, "{name}");
    }
    let refused = app.post_json("/v1/collections", &json!({"name": "three"})).await;
    let problem = assert_problem(refused, 403, "/problems/quota-exceeded").await;
    assert!(
        problem["detail"].as_str().unwrap().contains("MAX_COLLECTIONS"),
        "{problem}"
    );
    let listed: Value = app.get("/v1/collections").await.json().await.unwrap();
    assert_eq!(listed["collections"].as_array().unwrap().len(), 3, "{listed}");
    assert_eq!(app.delete("/v1/collections/one").await.status(), 204);
    let created = app.post_json("/v1/collections", &json!({"name": "three"})).await;
    assert_eq!(created.status(), 201);
}
