//! The ONNX Runtime backend (int8 export of the same model): the same vectors as
//! candle's, within quantisation error, and a server that runs on it.

use docqa::embed::{LocalEmbedder, ModelFiles, ModelSource, OnnxEmbedder, OnnxFiles};
use serde_json::{Value, json};

use crate::fixtures::{GARDENING_TXT, WARRANTY_TXT};
use crate::helpers::{TestApp, TestOptions, model_dir, onnx_files, onnx_vars};

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum::<f32>()
}

#[tokio::test(flavor = "multi_thread")]
async fn onnx_int8_vectors_match_candle_f32() {
    let files = ModelFiles {
        dir: model_dir().clone(),
        source: ModelSource::Directory,
    };
    let (lib, model) = onnx_files();
    let onnx_files = OnnxFiles {
        runtime: lib.into(),
        model: model.into(),
    };
    let texts = [
        "How long is the warranty period?",
        WARRANTY_TXT,
        GARDENING_TXT,
        "Kurzer deutscher Satz über Gewährleistung.",
        "x",
    ];
    let (candle, onnx) = tokio::task::spawn_blocking(move || {
        let candle = LocalEmbedder::load(&files, "all-MiniLM-L6-v2", 4).unwrap();
        let onnx = OnnxEmbedder::load(&onnx_files, &files, "all-MiniLM-L6-v2", 4, 2).unwrap();
        (
            candle.embed_blocking(&texts).unwrap(),
            onnx.embed_blocking(&texts).unwrap(),
        )
    })
    .await
    .unwrap();
    // int8 activations cost a little precision, most on the shortest texts ("x":
    // 0.978); retrieval quality is measured on SciFact (bench/embed_quality.py).
    let mut total = 0.0;
    for (i, (c, o)) in candle.iter().zip(&onnx).enumerate() {
        assert_eq!((c.len(), o.len()), (384, 384));
        assert!((cosine(o, o) - 1.0).abs() < 1e-4, "unit length");
        let similarity = cosine(c, o);
        assert!(similarity > 0.96, "text {i}: cosine {similarity}");
        total += similarity;
    }
    let mean = total / texts.len() as f32;
    assert!(mean > 0.98, "mean cosine {mean}");
    // And the ranking they imply agrees: the question is nearer the warranty text.
    assert!(cosine(&onnx[0], &onnx[1]) > cosine(&onnx[0], &onnx[2]));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_server_on_onnx_runtime_searches_and_answers() {
    let mut app = TestApp::spawn_with(TestOptions {
        vars: onnx_vars(),
        ..Default::default()
    })
    .await;
    let ready: Value = app.get("/readyz").await.json().await.unwrap();
    assert!(
        ready["embedder"]["detail"].as_str().unwrap().contains("onnx-int8"),
        "{ready}"
    );
    let terms = app.ingest("terms.txt", WARRANTY_TXT.into()).await;
    app.ingest("garden.txt", GARDENING_TXT.into()).await;
    let found = app
        .search(
            None,
            json!({"query": "How many hours of sun do tomato plants need?", "top_k": 1}),
        )
        .await;
    assert_eq!(found["results"][0]["filename"], "garden.txt", "{found}");
    let (status, answer) = app.query(json!({"question": "How long is the warranty period?"})).await;
    assert_eq!(status, 200);
    assert_eq!(answer["grounded"], true, "{answer}");
    assert_eq!(answer["citations"][0]["document_id"], terms["id"]);

    // The same model on candle reads the same collection: no mismatch.
    app.restart_with(&[("EMBED_BACKEND", "candle")]).await;
    let found = app
        .search(None, json!({"query": "warranty extension registration", "top_k": 1}))
        .await;
    assert_eq!(found["results"][0]["document_id"], terms["id"], "{found}");
}

#[tokio::test(flavor = "multi_thread")]
async fn embed_backend_onnx_without_a_runtime_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let vars = std::collections::HashMap::from([
        ("DOCQA_DATA_DIR".to_string(), dir.path().display().to_string()),
        ("EMBEDDER".to_string(), "local".to_string()),
        ("EMBED_MODEL_DIR".to_string(), model_dir().display().to_string()),
        ("EMBED_BACKEND".to_string(), "onnx".to_string()),
    ]);
    let config = docqa::Config::from_vars(&vars).unwrap();
    let Err(error) = docqa::App::build(config).await else {
        panic!("started without ONNX Runtime");
    };
    assert!(error.to_string().contains("ORT_DYLIB_PATH"), "{error}");
}
