//! Retrieval behaviour: the right chunk first, nothing for unrelated questions,
//! extractive answers cited.

use serde_json::json;

use crate::backends::{Backend, on_every_backend};
use crate::fixtures::{GARDENING_TXT, ONBOARDING_MD, WARRANTY_TXT};
use crate::helpers::TestApp;

async fn library(backend: Backend, test: &str) -> Option<TestApp> {
    let app = TestApp::on(backend, test).await?;
    app.ingest("terms.txt", WARRANTY_TXT.into()).await;
    app.ingest("onboarding.md", ONBOARDING_MD.into()).await;
    app.ingest("garden.txt", GARDENING_TXT.into()).await;
    Some(app)
}

async fn the_best_chunk_comes_first_in_paraphrase_and_in_keywords(backend: Backend) {
    let Some(app) = library(backend, "the_best_chunk_comes_first_in_paraphrase_and_in_keywords").await else {
        return;
    };
    let cases = [
        ("How many hours of sun do tomato plants need?", "garden.txt"),
        ("Where do new hires pick up their computer?", "onboarding.md"),
        ("warranty extension registration", "terms.txt"),
        ("refund payment after returning a device", "terms.txt"),
    ];
    for (query, expected) in cases {
        let found = app.search(None, json!({"query": query, "top_k": 3})).await;
        let results = found["results"].as_array().unwrap();
        assert_eq!(results[0]["filename"], expected, "{query}: {found}");
        let scores: Vec<f64> = results.iter().map(|r| r["score"].as_f64().unwrap()).collect();
        assert!(scores.windows(2).all(|w| w[0] >= w[1]), "best first: {scores:?}");
    }
}

async fn an_unrelated_question_finds_nothing_and_says_so(backend: Backend) {
    let Some(app) = library(backend, "an_unrelated_question_finds_nothing_and_says_so").await else {
        return;
    };
    let (status, answer) = app
        .query(json!({"question": "What is the orbital period of the Andromeda satellite galaxies?"}))
        .await;
    assert_eq!(status, 200);
    assert_eq!(answer["grounded"], false, "{answer}");
    assert_eq!(answer["mode"], "extractive");
    assert!(answer["citations"].as_array().unwrap().is_empty());
}

async fn extractive_answers_quote_the_matching_sentence(backend: Backend) {
    let Some(app) = library(backend, "extractive_answers_quote_the_matching_sentence").await else {
        return;
    };
    let (status, answer) = app.query(json!({"question": "How long is the warranty period?"})).await;
    assert_eq!(status, 200);
    assert_eq!(answer["mode"], "extractive");
    assert_eq!(answer["grounded"], true);
    assert_eq!(answer["model"], serde_json::Value::Null);
    let first = &answer["citations"][0];
    assert_eq!(first["filename"], "terms.txt");
    assert_eq!(first["page"], 1);
    let quote = first["quote"].as_str().unwrap();
    assert!(quote.contains("24 months"), "{answer}");
    assert!(WARRANTY_TXT.contains(quote));
    assert!(answer["answer"].as_str().unwrap().contains("[1]"));
}

on_every_backend!(
    the_best_chunk_comes_first_in_paraphrase_and_in_keywords,
    an_unrelated_question_finds_nothing_and_says_so,
    extractive_answers_quote_the_matching_sentence,
);
