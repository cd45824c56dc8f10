//! The OpenAI-compatible routes through the official `openai` Python package
//! (tests/clients/openai_client.py), with keys on and a scripted LLM, so that
//! what a chat UI or an OpenAI SDK sends is what is tested.

use serde_json::json;

use crate::auth::{make_key, secured_with};
use crate::backends::Backend;
use crate::fake_llm::{Behaviour, FakeLlm};
use crate::fixtures::{GARDENING_TXT, WARRANTY_TXT};

const QUESTION: &str = "How long is the warranty period for Acme devices?";
const FOLLOW_UP: &str = "Can it be extended?";
const STANDALONE: &str = "Can the warranty period of Acme devices be extended?";

/// The Python with the client packages (`ensure_clients` in scripts/env.sh).
pub(crate) fn clients_python() -> String {
    std::env::var("DOCQA_TEST_CLIENTS_PYTHON").unwrap_or_else(|_| {
        panic!("DOCQA_TEST_CLIENTS_PYTHON is not set: run the tests with scripts/test, which installs the clients")
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn the_openai_sdk_lists_collections_and_gets_cited_completions() {
    let llm = FakeLlm::start(Behaviour::CiteFirstSource);
    llm.rewrite_as(FOLLOW_UP, STANDALONE);
    let vars = [
        ("LLM_BASE_URL", llm.base_url.as_str()),
        ("LLM_API_KEY", "sk-test"),
        ("LLM_MODEL", "fake-llm"),
    ];
    let test = "the_openai_sdk_lists_collections_and_gets_cited_completions";
    let app = secured_with(Backend::SqliteEdge, test, &vars)
        .await
        .expect("SQLite is always here");
    app.ingest("terms.txt", WARRANTY_TXT.into()).await;
    app.ingest("garden.txt", GARDENING_TXT.into()).await;
    let (_, reader) = make_key(&app, json!({"role": "reader"})).await;

    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/clients/openai_client.py");
    let output = tokio::process::Command::new(clients_python())
        .arg(script)
        .env("DOCQA_URL", app.url(""))
        .env("DOCQA_KEY", &reader)
        .env("QUESTION", QUESTION)
        .env("FOLLOW_UP", FOLLOW_UP)
        .env("STANDALONE", STANDALONE)
        .output()
        .await
        .expect("python runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "the openai client failed:\n{stdout}\n{stderr}");
    // Every check ran (the script ends at the first that fails).
    assert_eq!(stdout.lines().filter(|l| l.starts_with("ok ")).count(), 8, "{stdout}");
    // The follow-up was rewritten by the LLM from the conversation sent.
    let rewrites = llm.rewrite_prompts();
    assert_eq!(rewrites.len(), 1, "{rewrites:?}");
    assert!(
        rewrites[0].contains(&format!("Question: {QUESTION}")),
        "{}",
        rewrites[0]
    );
}
