//! Conversations over HTTP: follow-ups rewritten into standalone questions (by
//! rule, by the LLM, and by rule when the LLM fails), each answer stored with
//! its citations (a streamed one once complete), and a conversation its
//! owner's alone.

use reqwest::Method;
use serde_json::{Value, json};

use crate::auth::{OPERATOR_KEY, make_key, secured_with, send};
use crate::backends::{Backend, on_every_backend};
use crate::fake_llm::{Behaviour, FakeLlm};
use crate::fixtures::{GARDENING_TXT, WARRANTY_TXT};
use crate::helpers::{TestApp, TestOptions, assert_problem};
use crate::stream::events;

const FIRST: &str = "How long is the warranty period for Acme devices?";
const FOLLOW_UP: &str = "Can it be extended?";
const NEW_TOPIC: &str = "How many hours of direct sunlight do tomatoes need?";

/// Starts a conversation in `collection` as the app's client; returns its id.
async fn start(app: &TestApp, collection: &str) -> String {
    let response = app
        .client
        .post(app.url(&format!("/v1/collections/{collection}/conversations")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let location = response.headers()["location"].to_str().unwrap().to_string();
    let body: Value = response.json().await.unwrap();
    let id = body["id"].as_str().unwrap().to_string();
    assert_eq!(location, format!("/v1/conversations/{id}"));
    assert_eq!(body["collection"], collection);
    assert_eq!(body["turns"], json!([]));
    id
}

async fn ask(app: &TestApp, conversation: &str, body: Value) -> (u16, Value) {
    let response = app
        .post_json(&format!("/v1/conversations/{conversation}/messages"), &body)
        .await;
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

async fn ingest_fixtures(app: &TestApp) {
    app.ingest("terms.txt", WARRANTY_TXT.into()).await;
    app.ingest("garden.txt", GARDENING_TXT.into()).await;
}

async fn a_conversation_keeps_its_turns_and_rewrites_follow_ups_by_rule(backend: Backend) {
    let test = "a_conversation_keeps_its_turns_and_rewrites_follow_ups_by_rule";
    let Some(app) = TestApp::on(backend, test).await else {
        return;
    };
    ingest_fixtures(&app).await;
    let id = start(&app, "default").await;

    let (status, first) = ask(&app, &id, json!({"content": FIRST})).await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(first["grounded"], true, "{first}");
    assert_eq!(first["mode"], "extractive");
    // The first question stands alone.
    assert_eq!(first["retrieval_query"], FIRST);
    assert_eq!(first["citations"][0]["filename"], "terms.txt", "{first}");

    // A follow-up carries the question before it into retrieval.
    let (status, second) = ask(&app, &id, json!({"content": FOLLOW_UP, "top_k": 3})).await;
    assert_eq!(status, 200, "{second}");
    assert_eq!(second["retrieval_query"], format!("{FIRST} {FOLLOW_UP}"), "{second}");
    let quotes: Vec<&str> = second["citations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["quote"].as_str().unwrap())
        .collect();
    assert!(quotes.iter().any(|q| q.contains("extended to 36 months")), "{second}");

    // A question that stands on its own is not rewritten; streamed, it is
    // stored once the answer is complete.
    let response = app
        .post_json(
            &format!("/v1/conversations/{id}/messages"),
            &json!({"content": NEW_TOPIC, "stream": true}),
        )
        .await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let streamed = events(&response.text().await.unwrap());
    let (last, answer) = streamed.last().unwrap();
    assert_eq!(last, "answer", "{streamed:?}");
    assert_eq!(answer["retrieval_query"], NEW_TOPIC);
    assert_eq!(answer["citations"][0]["filename"], "garden.txt", "{answer}");

    let shown: Value = app.get(&format!("/v1/conversations/{id}")).await.json().await.unwrap();
    let turns = shown["turns"].as_array().unwrap();
    assert_eq!(turns.len(), 3, "{shown}");
    for (i, (turn, question)) in turns.iter().zip([FIRST, FOLLOW_UP, NEW_TOPIC]).enumerate() {
        assert_eq!(turn["seq"], i + 1);
        assert_eq!(turn["question"], question);
        assert!(!turn["answer"]["citations"].as_array().unwrap().is_empty(), "{turn}");
        assert!(turn["created_at"].is_string());
    }
    assert_eq!(turns[1]["retrieval_query"], format!("{FIRST} {FOLLOW_UP}"));
    assert_eq!(turns[1]["answer"], second);
    assert_eq!(shown["collection"], "default");

    // What cannot be asked is refused before anything is stored.
    let (status, _) = ask(&app, &id, json!({"content": "  "})).await;
    assert_eq!(status, 422);
    let (status, _) = ask(&app, &id, json!({"content": FIRST, "top_k": 0})).await;
    assert_eq!(status, 422);
    let (status, _) = ask(&app, &id, json!({"question": FIRST})).await;
    assert_eq!(status, 422);
    let shown: Value = app.get(&format!("/v1/conversations/{id}")).await.json().await.unwrap();
    assert_eq!(shown["turns"].as_array().unwrap().len(), 3);

    // Unknown, malformed and deleted conversations are not found.
    for missing in ["00000000-0000-4000-8000-000000000000", "not-an-id"] {
        assert_problem(
            app.get(&format!("/v1/conversations/{missing}")).await,
            404,
            "/problems/conversation-not-found",
        )
        .await;
    }
    assert_eq!(app.delete(&format!("/v1/conversations/{id}")).await.status(), 204);
    assert_problem(
        app.get(&format!("/v1/conversations/{id}")).await,
        404,
        "/problems/conversation-not-found",
    )
    .await;
    let response = app
        .post_json(&format!("/v1/conversations/{id}/messages"), &json!({"content": FIRST}))
        .await;
    assert_problem(response, 404, "/problems/conversation-not-found").await;

    // A conversation goes with its collection; none starts in one that is not there.
    assert_eq!(
        app.post_json("/v1/collections", &json!({"name": "brief"}))
            .await
            .status(),
        201
    );
    let brief = start(&app, "brief").await;
    let deleted = app.delete("/v1/collections/brief").await.status();
    assert!(deleted.is_success(), "{deleted}");
    assert_eq!(app.get(&format!("/v1/conversations/{brief}")).await.status(), 404);
    let response = app
        .client
        .post(app.url("/v1/collections/nowhere/conversations"))
        .send()
        .await
        .unwrap();
    assert_problem(response, 404, "/problems/collection-not-found").await;
    // The short route starts one in `default`.
    let response = app.client.post(app.url("/v1/conversations")).send().await.unwrap();
    assert_eq!(response.status(), 201);
}

async fn a_conversation_is_its_owners_alone(backend: Backend) {
    let test = "a_conversation_is_its_owners_alone";
    let Some(app) = secured_with(backend, test, &[]).await else {
        return;
    };
    ingest_fixtures(&app).await;
    let (_, alice_key) = make_key(&app, json!({"role": "reader"})).await;
    let (_, bob_key) = make_key(&app, json!({"role": "reader"})).await;
    let (_, service) = make_key(&app, json!({"role": "service"})).await;
    assert_eq!(
        app.post_json("/v1/tenants", &json!({"name": "acme"})).await.status(),
        201
    );
    let (_, other_tenant) = make_key(&app, json!({"role": "admin", "tenant": "acme"})).await;

    let created = send(&app, Some(&alice_key), Method::POST, "/v1/conversations", None).await;
    assert_eq!(created.status(), 201);
    let id = created.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let show = format!("/v1/conversations/{id}");
    let messages = format!("/v1/conversations/{id}/messages");
    let question = json!({"content": FIRST, "mode": "extractive"});
    let asked = send(&app, Some(&alice_key), Method::POST, &messages, Some(&question)).await;
    assert_eq!(asked.status(), 200);

    // Another key of the tenant, the operator and another tenant find nothing.
    let others = [
        ("bob", bob_key.as_str()),
        ("the operator", OPERATOR_KEY),
        ("acme", other_tenant.as_str()),
    ];
    for (who, key) in others {
        for (method, path, body) in [
            (Method::GET, &show, None),
            (Method::POST, &messages, Some(&question)),
            (Method::DELETE, &show, None),
        ] {
            let response = send(&app, Some(key), method.clone(), path, body).await;
            assert_eq!(response.status(), 404, "{method} {path} as {who}");
            let text = response.text().await.unwrap();
            assert!(!text.contains(FIRST), "{who} sees the question: {text}");
        }
    }
    let mine: Value = send(&app, Some(&alice_key), Method::GET, &show, None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(mine["turns"].as_array().unwrap().len(), 1, "{mine}");

    // A service key's conversations are those of the end user it acts for.
    let created = acting(&app, &service, "user:carol", Method::POST, "/v1/conversations").await;
    assert_eq!(created.status(), 201);
    let id = created.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let show = format!("/v1/conversations/{id}");
    assert_eq!(
        acting(&app, &service, "user:dave", Method::GET, &show).await.status(),
        404
    );
    assert_eq!(
        acting(&app, &service, "user:carol", Method::GET, &show).await.status(),
        200
    );
}

/// A request of a service key acting for `user`.
async fn acting(app: &TestApp, key: &str, user: &str, method: Method, path: &str) -> reqwest::Response {
    crate::helpers::http_client()
        .request(method, app.url(path))
        .bearer_auth(key)
        .header("x-acting-for", user)
        .send()
        .await
        .unwrap()
}

on_every_backend!(
    a_conversation_keeps_its_turns_and_rewrites_follow_ups_by_rule,
    a_conversation_is_its_owners_alone,
);

async fn app_with(llm: &FakeLlm, history_tokens: &str) -> TestApp {
    let app = TestApp::spawn_with(TestOptions {
        vars: vec![
            ("LLM_BASE_URL", llm.base_url.clone()),
            ("LLM_API_KEY", "sk-test".to_string()),
            ("LLM_MODEL", "fake-llm".to_string()),
            ("CONVERSATION_HISTORY_TOKENS", history_tokens.to_string()),
        ],
        ..Default::default()
    })
    .await;
    ingest_fixtures(&app).await;
    app
}

#[tokio::test(flavor = "multi_thread")]
async fn the_llm_rewrites_follow_ups_from_the_newest_history_that_fits() {
    let llm = FakeLlm::start(Behaviour::CiteFirstSource);
    const STANDALONE: &str = "Can the warranty period of Acme devices be extended?";
    const THIRD: &str = "And what does a repair cost after it?";
    llm.rewrite_as(FOLLOW_UP, STANDALONE);
    // One earlier question and its answer fit in 40 tokens, two do not.
    let app = app_with(&llm, "40").await;
    let id = start(&app, "default").await;

    let (status, first) = ask(&app, &id, json!({"content": FIRST})).await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(first["mode"], "generative");
    // Nothing to rewrite in a first question.
    assert!(llm.rewrite_prompts().is_empty());

    let (status, second) = ask(&app, &id, json!({"content": FOLLOW_UP})).await;
    assert_eq!(status, 200, "{second}");
    assert_eq!(second["retrieval_query"], STANDALONE, "{second}");
    assert!(second.get("warnings").is_none(), "{second}");
    let prompts = llm.rewrite_prompts();
    assert_eq!(prompts.len(), 1);
    assert!(prompts[0].contains(&format!("Question: {FIRST}")), "{}", prompts[0]);
    let first_answer = first["answer"].as_str().unwrap().replace('\n', " ");
    assert!(prompts[0].contains(&first_answer), "{}", prompts[0]);
    assert!(
        prompts[0].trim_end().ends_with(&format!("Last question: {FOLLOW_UP}")),
        "{}",
        prompts[0]
    );
    // The answer is written to the standalone question.
    assert!(llm.last_prompt().unwrap().trim_end().ends_with(STANDALONE));

    let (status, third) = ask(&app, &id, json!({"content": THIRD})).await;
    assert_eq!(status, 200, "{third}");
    let prompts = llm.rewrite_prompts();
    assert_eq!(prompts.len(), 2);
    // The newest exchange is in the history, the oldest no longer.
    assert!(prompts[1].contains(&format!("Question: {FOLLOW_UP}")), "{}", prompts[1]);
    assert!(!prompts[1].contains(FIRST), "{}", prompts[1]);

    // An extractive answer makes no LLM call, its rewrite neither.
    let calls = llm.calls();
    let (status, fourth) = ask(&app, &id, json!({"content": "And in 2023?", "mode": "extractive"})).await;
    assert_eq!(status, 200, "{fourth}");
    assert_eq!(llm.calls(), calls);
    assert_eq!(fourth["retrieval_query"], format!("{THIRD} And in 2023?"), "{fourth}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rewrite_the_llm_botches_is_done_by_rule_and_said() {
    let llm = FakeLlm::start(Behaviour::InvalidJson);
    let app = app_with(&llm, "1000").await;
    let id = start(&app, "default").await;
    let (status, first) = ask(&app, &id, json!({"content": FIRST})).await;
    assert_eq!(status, 200, "{first}");
    let (status, second) = ask(&app, &id, json!({"content": FOLLOW_UP})).await;
    assert_eq!(status, 200, "{second}");
    assert_eq!(llm.rewrite_prompts().len(), 1);
    assert_eq!(second["retrieval_query"], format!("{FIRST} {FOLLOW_UP}"), "{second}");
    let warnings = second["warnings"].as_array().unwrap();
    assert!(
        warnings
            .iter()
            .any(|w| w.as_str().unwrap().contains("rewritten by rule")),
        "{second}"
    );
}
