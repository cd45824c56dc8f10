//! The MCP server at `/mcp` through the official `mcp` Python package
//! (tests/clients/mcp_client.py), with keys on: every tool listed and called,
//! and calls that must fail as MCP errors.

use serde_json::json;

use crate::auth::{make_key, secured_with};
use crate::backends::Backend;
use crate::fixtures::{GARDENING_TXT, WARRANTY_TXT};
use crate::openai_compat::clients_python;

#[tokio::test(flavor = "multi_thread")]
async fn an_mcp_client_lists_and_calls_every_tool() {
    let test = "an_mcp_client_lists_and_calls_every_tool";
    let app = secured_with(Backend::SqliteEdge, test, &[])
        .await
        .expect("SQLite is always here");
    app.ingest("terms.txt", WARRANTY_TXT.into()).await;
    app.ingest("garden.txt", GARDENING_TXT.into()).await;
    let (_, reader) = make_key(&app, json!({"role": "reader"})).await;

    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/clients/mcp_client.py");
    let output = tokio::process::Command::new(clients_python())
        .arg(script)
        .env("DOCQA_URL", app.url(""))
        .env("DOCQA_KEY", &reader)
        .env("QUESTION", "How long is the warranty period for Acme devices?")
        .output()
        .await
        .expect("python runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "the mcp client failed:\n{stdout}\n{stderr}");
    assert_eq!(stdout.lines().filter(|l| l.starts_with("ok ")).count(), 8, "{stdout}");
}

/// A tools/call straight over HTTP (stateless: no session to open first).
async fn call_tool(
    app: &crate::helpers::TestApp,
    key: &str,
    tool: &str,
    arguments: serde_json::Value,
) -> serde_json::Value {
    let response = reqwest::Client::new()
        .post(app.url("/mcp"))
        .bearer_auth(key)
        .header("accept", "application/json, text/event-stream")
        .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
            "params": {"name": tool, "arguments": arguments}}))
        .send()
        .await
        .expect("docqa answers");
    assert_eq!(response.status(), 200);
    let body: serde_json::Value = response.json().await.expect("JSON-RPC");
    body["result"].clone()
}

#[tokio::test(flavor = "multi_thread")]
async fn mcp_tools_see_only_their_tenants_documents() {
    let test = "mcp_tools_see_only_their_tenants_documents";
    let app = secured_with(Backend::SqliteEdge, test, &[])
        .await
        .expect("SQLite is always here");
    let terms = app.ingest("terms.txt", WARRANTY_TXT.into()).await;
    let terms_id = terms["id"].as_str().expect("an id");
    assert_eq!(
        app.post_json("/v1/tenants", &json!({"name": "acme"})).await.status(),
        201
    );
    let (_, ours) = make_key(&app, json!({"role": "reader"})).await;
    let (_, theirs) = make_key(&app, json!({"role": "reader", "tenant": "acme"})).await;

    // Our key reads the page; acme's key is told there is no such document.
    let page = call_tool(&app, &ours, "get_page", json!({"document_id": terms_id, "page": 1})).await;
    assert_eq!(page["isError"], false, "{page}");
    let page = call_tool(&app, &theirs, "get_page", json!({"document_id": terms_id, "page": 1})).await;
    assert_eq!(page["isError"], true, "{page}");
    assert_eq!(page["structuredContent"]["status"], 404, "{page}");
    assert!(!page.to_string().contains("24 months"), "{page}");

    let searched = call_tool(&app, &theirs, "search", json!({"query": "warranty period"})).await;
    assert!(!searched.to_string().contains("terms.txt"), "{searched}");
    let asked = call_tool(
        &app,
        &theirs,
        "ask",
        json!({"question": "How long is the warranty period?", "mode": "extractive"}),
    )
    .await;
    assert!(!asked.to_string().contains("24 months"), "{asked}");
    let listed = call_tool(&app, &theirs, "list_documents", json!({})).await;
    assert!(!listed.to_string().contains("terms.txt"), "{listed}");
}
