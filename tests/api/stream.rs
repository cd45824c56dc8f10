//! Streamed answers: server-sent events through the real async-openai
//! streaming client, against the OpenAI-compatible server inside the test.

use std::time::Duration;

use futures_util::StreamExt;
use serde_json::{Value, json};

use crate::fake_llm::{Behaviour, FakeLlm};
use crate::fixtures::{GARDENING_TXT, WARRANTY_TXT};
use crate::helpers::{TestApp, TestOptions, assert_problem};

const QUESTION: &str = "How long is the warranty period for Acme devices?";

async fn app_with(llm: Option<&FakeLlm>) -> TestApp {
    let vars = match llm {
        Some(llm) => vec![
            ("LLM_BASE_URL", llm.base_url.clone()),
            ("LLM_MODEL", "fake-llm".to_string()),
        ],
        None => Vec::new(),
    };
    let app = TestApp::spawn_with(TestOptions {
        vars,
        ..Default::default()
    })
    .await;
    app.ingest("terms.txt", WARRANTY_TXT.into()).await;
    app.ingest("garden.txt", GARDENING_TXT.into()).await;
    app
}

/// (event, data) of each server-sent event; comment lines are skipped.
pub(crate) fn events(body: &str) -> Vec<(String, Value)> {
    body.split("\n\n")
        .filter_map(|block| {
            let mut name = None;
            let mut data = None;
            for line in block.lines() {
                if let Some(value) = line.strip_prefix("event: ") {
                    name = Some(value.to_string());
                } else if let Some(value) = line.strip_prefix("data: ") {
                    data = Some(serde_json::from_str(value).expect("event data is JSON"));
                }
            }
            Some((name?, data?))
        })
        .collect()
}

async fn streamed(app: &TestApp, body: Value, accept: Option<&str>) -> Vec<(String, Value)> {
    let mut request = app.client.post(app.url("/v1/query")).json(&body);
    if let Some(accept) = accept {
        request = request.header("accept", accept);
    }
    let response = request.send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    events(&response.text().await.unwrap())
}

fn names(events: &[(String, Value)]) -> Vec<&str> {
    let mut names: Vec<&str> = events.iter().map(|(name, _)| name.as_str()).collect();
    names.dedup();
    names
}

#[tokio::test(flavor = "multi_thread")]
async fn a_streamed_answer_sends_the_chunks_the_text_as_it_comes_and_the_verified_answer() {
    let llm = FakeLlm::start(Behaviour::CiteFirstSource);
    let app = app_with(Some(&llm)).await;
    let events = streamed(&app, json!({"question": QUESTION, "stream": true}), None).await;
    assert_eq!(names(&events), ["retrieval", "delta", "answer"], "{events:?}");

    let results = events[0].1["results"].as_array().unwrap();
    assert_eq!(results[0]["filename"], "terms.txt", "{results:?}");
    let deltas: Vec<&str> = events
        .iter()
        .filter(|(n, _)| n == "delta")
        .map(|(_, d)| d["text"].as_str().unwrap())
        .collect();
    assert!(
        deltas.len() > 1,
        "the answer text came in pieces, as the model wrote it: {deltas:?}"
    );
    let answer = &events.last().unwrap().1;
    // The pieces are the answer text alone (no JSON), and add up to the answer.
    assert_eq!(deltas.concat(), answer["answer"].as_str().unwrap(), "{events:?}");
    assert_eq!(answer["mode"], "generative");
    assert_eq!(answer["grounded"], true, "{answer}");
    assert!(
        WARRANTY_TXT.contains(answer["citations"][0]["quote"].as_str().unwrap()),
        "{answer}"
    );
    assert_eq!(llm.streamed_calls(), 1);

    // `Accept: text/event-stream` asks for the same.
    let events = streamed(
        &app,
        json!({"question": QUESTION}),
        Some("application/json;q=0.5, text/event-stream"),
    )
    .await;
    assert_eq!(names(&events), ["retrieval", "delta", "answer"]);
    assert_eq!(llm.streamed_calls(), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_extractive_answer_streams_too() {
    let app = app_with(None).await;
    let events = streamed(&app, json!({"question": QUESTION, "stream": true}), None).await;
    assert_eq!(names(&events), ["retrieval", "delta", "answer"], "{events:?}");
    let answer = &events.last().unwrap().1;
    assert_eq!(answer["mode"], "extractive");
    assert_eq!(events[1].1["text"], answer["answer"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn refusals_come_before_the_stream_and_failures_as_an_error_event() {
    let broken = FakeLlm::start(Behaviour::ServerError);
    let app = app_with(Some(&broken)).await;
    // Nothing streamed yet: a plain problem with its status.
    let response = app
        .post_json(
            "/v1/collections/nope/query",
            &json!({"question": QUESTION, "stream": true}),
        )
        .await;
    assert_problem(response, 404, "/problems/collection-not-found").await;
    let response = app
        .post_json("/v1/query", &json!({"question": " ", "stream": true}))
        .await;
    assert_problem(response, 422, "/problems/invalid-request").await;

    // The LLM fails after the chunks went out: an `error` event ends the stream.
    let events = streamed(
        &app,
        json!({"question": QUESTION, "stream": true, "mode": "generative"}),
        None,
    )
    .await;
    assert_eq!(names(&events), ["retrieval", "error"], "{events:?}");
    let problem = &events[1].1;
    assert_eq!(problem["status"], 502);
    assert_eq!(problem["type"], "/problems/llm-error");
    assert!(problem["request_id"].as_str().is_some_and(|id| id != "-"), "{problem}");

    // In `auto` mode the extractive answer comes instead, saying why.
    let events = streamed(&app, json!({"question": QUESTION, "stream": true}), None).await;
    let answer = &events.last().unwrap().1;
    assert_eq!(answer["mode"], "extractive", "{events:?}");
    assert!(answer["fallback_reason"].as_str().unwrap().contains("HTTP 500"));
    assert!(!format!("{events:?}").contains(crate::fake_llm::LEAKED_KEY));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_client_that_hangs_up_cancels_the_llm_call() {
    let llm = FakeLlm::start(Behaviour::StallAfterFirstDelta);
    let app = app_with(Some(&llm)).await;
    let response = app
        .client
        .post(app.url("/v1/query"))
        .json(&json!({"question": QUESTION, "stream": true}))
        .send()
        .await
        .unwrap();
    let mut body = response.bytes_stream();
    let mut seen = String::new();
    while !seen.contains("event: delta") {
        let piece = tokio::time::timeout(Duration::from_secs(30), body.next())
            .await
            .expect("a delta comes before the model stalls")
            .expect("the stream is open")
            .unwrap();
        seen.push_str(&String::from_utf8_lossy(&piece));
    }
    assert!(!llm.caller_hung_up());
    drop(body);

    // docqa notices at its next heartbeat, drops the answer, and with it the LLM call.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !llm.caller_hung_up() {
        assert!(
            std::time::Instant::now() < deadline,
            "the LLM call was still open 20 s after the client left"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(app.get("/readyz").await.status(), 200);
}
