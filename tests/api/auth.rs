//! Access control over HTTP: API keys and their roles, revocation and expiry,
//! collection allow-lists, `X-Acting-For`, and every route of the OpenAPI
//! document tried with every identity that must be refused.

use std::collections::HashMap;

use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderValue};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::backends::{Backend, on_every_backend};
use crate::fixtures::unique_text;
use crate::helpers::{TestApp, TestOptions, assert_problem, http_client};

pub(crate) const OPERATOR_KEY: &str = "operator-key-for-the-tests-0123456789abcdef";

/// A server that needs keys, whose test client speaks as the operator.
async fn secured(backend: Backend, test: &str) -> Option<TestApp> {
    secured_with(backend, test, &[]).await
}

pub(crate) async fn secured_with(backend: Backend, test: &str, extra: &[(&'static str, &str)]) -> Option<TestApp> {
    let mut vars = vec![
        ("DOCQA_AUTH", "required".to_string()),
        ("DOCQA_ADMIN_KEY", OPERATOR_KEY.to_string()),
    ];
    vars.extend(extra.iter().map(|(k, v)| (*k, v.to_string())));
    let options = TestOptions {
        vars,
        ..TestOptions::default()
    };
    let mut app = TestApp::on_with(backend, test, options).await?;
    let mut headers = HeaderMap::new();
    let bearer = HeaderValue::from_str(&format!("Bearer {OPERATOR_KEY}")).expect("header");
    headers.insert(AUTHORIZATION, bearer);
    app.client = reqwest::Client::builder()
        .default_headers(headers)
        .build()
        .expect("client");
    Some(app)
}

/// A request as someone: `None` sends no Authorization header.
pub(crate) async fn send(
    app: &TestApp,
    key: Option<&str>,
    method: Method,
    path: &str,
    body: Option<&Value>,
) -> reqwest::Response {
    let mut request = http_client().request(method, app.url(path));
    if let Some(key) = key {
        request = request.header(AUTHORIZATION, format!("Bearer {key}"));
    }
    if let Some(body) = body {
        request = request.json(body);
    }
    request.send().await.expect("request")
}

/// Uploads one text file to `path` as someone (`None`: no key).
pub(crate) async fn upload_as(app: &TestApp, key: Option<&str>, path: &str, text: String) -> reqwest::Response {
    let form =
        reqwest::multipart::Form::new().part("file", reqwest::multipart::Part::text(text).file_name("upload.txt"));
    let mut request = http_client().post(app.url(path)).multipart(form);
    if let Some(key) = key {
        request = request.bearer_auth(key);
    }
    request.send().await.expect("request")
}

/// Creates a key as the operator; returns (id, secret).
pub(crate) async fn make_key(app: &TestApp, spec: Value) -> (String, String) {
    let response = app.post_json("/v1/keys", &spec).await;
    let status = response.status();
    assert_eq!(
        response.headers().get("cache-control").and_then(|v| v.to_str().ok()),
        Some("no-store")
    );
    let body: Value = response.json().await.expect("json");
    assert_eq!(status, 201, "{body}");
    assert!(body.get("hash").is_none(), "{body}");
    (
        body["id"].as_str().unwrap().to_string(),
        body["key"].as_str().unwrap().to_string(),
    )
}

pub(crate) async fn unauthorized(response: reqwest::Response) -> Value {
    assert_eq!(
        response.headers().get("www-authenticate").and_then(|v| v.to_str().ok()),
        Some("Bearer"),
        "a 401 says which scheme to use"
    );
    assert_problem(response, 401, "/problems/unauthorized").await
}

async fn keys_have_roles_and_revoking_one_takes_effect_at_once(backend: Backend) {
    let Some(app) = secured(backend, "keys_have_roles_and_revoking_one_takes_effect_at_once").await else {
        return;
    };
    // The open routes stay open; the rest need a key.
    for open in ["/healthz", "/readyz", "/openapi.json"] {
        assert!(
            send(&app, None, Method::GET, open, None).await.status().is_success(),
            "{open}"
        );
    }
    unauthorized(send(&app, None, Method::GET, "/v1/collections", None).await).await;
    unauthorized(send(&app, None, Method::GET, "/metrics", None).await).await;
    for bad in [
        "nope",
        "dq_0000000000000000000000000000000000000000000000000000000000000000",
    ] {
        unauthorized(send(&app, Some(bad), Method::GET, "/v1/collections", None).await).await;
    }
    let basic = http_client()
        .get(app.url("/v1/collections"))
        .header(AUTHORIZATION, "Basic YWxhZGRpbjpvcGVuc2VzYW1l")
        .send()
        .await
        .unwrap();
    unauthorized(basic).await;

    let (reader_id, reader) = make_key(&app, json!({"role": "reader", "name": "dashboards"})).await;
    let (_, writer) = make_key(&app, json!({"role": "writer"})).await;
    let (_, admin) = make_key(&app, json!({"role": "admin"})).await;
    assert!(reader.starts_with("dq_") && reader.len() >= 35, "{reader}");

    // A reader reads; it may not write or manage.
    assert_eq!(
        send(&app, Some(&reader), Method::GET, "/v1/collections", None)
            .await
            .status(),
        200
    );
    assert_eq!(
        send(&app, Some(&reader), Method::GET, "/metrics", None).await.status(),
        200
    );
    let search = json!({"query": "warranty"});
    assert_eq!(
        send(&app, Some(&reader), Method::POST, "/v1/search", Some(&search))
            .await
            .status(),
        200
    );
    let create = json!({"name": "handbooks"});
    assert_problem(
        send(&app, Some(&reader), Method::POST, "/v1/collections", Some(&create)).await,
        403,
        "/problems/forbidden",
    )
    .await;
    let upload = async |key: &str| upload_as(&app, Some(key), "/v1/documents?wait=true", unique_text("roles")).await;
    assert_problem(upload(&reader).await, 403, "/problems/forbidden").await;

    // A writer uploads and deletes documents, but makes no collections or keys.
    let uploaded = upload(&writer).await;
    assert_eq!(uploaded.status(), 200);
    let uploaded: Value = uploaded.json().await.unwrap();
    let document = uploaded["documents"][0]["id"].as_str().unwrap().to_string();
    assert_problem(
        send(&app, Some(&writer), Method::POST, "/v1/collections", Some(&create)).await,
        403,
        "/problems/forbidden",
    )
    .await;
    assert_problem(
        send(
            &app,
            Some(&writer),
            Method::POST,
            "/v1/keys",
            Some(&json!({"role": "reader"})),
        )
        .await,
        403,
        "/problems/forbidden",
    )
    .await;
    let path = format!("/v1/documents/{document}");
    assert_eq!(
        send(&app, Some(&writer), Method::DELETE, &path, None).await.status(),
        204
    );

    // An admin makes collections and keys of its tenant, not of another.
    assert_eq!(
        send(&app, Some(&admin), Method::POST, "/v1/collections", Some(&create))
            .await
            .status(),
        201
    );
    let made = send(
        &app,
        Some(&admin),
        Method::POST,
        "/v1/keys",
        Some(&json!({"role": "writer"})),
    )
    .await;
    assert_eq!(made.status(), 201);
    let elsewhere = json!({"role": "reader", "tenant": "acme"});
    assert_problem(
        send(&app, Some(&admin), Method::POST, "/v1/keys", Some(&elsewhere)).await,
        403,
        "/problems/forbidden",
    )
    .await;

    // Listing shows every key, never a secret, and when each was last used.
    let listed = send(&app, Some(&admin), Method::GET, "/v1/keys", None).await;
    assert_eq!(listed.status(), 200);
    let listed = listed.text().await.unwrap();
    for secret in [&reader, &writer, &admin] {
        assert!(!listed.contains(secret.as_str()), "a secret is listed: {listed}");
    }
    let listed: Value = serde_json::from_str(&listed).unwrap();
    let keys = listed["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 4, "{listed}");
    let reader_record = keys.iter().find(|k| k["id"] == reader_id.as_str()).unwrap();
    assert_eq!(reader_record["name"], "dashboards");
    assert!(reader_record["last_used_at"].is_string(), "{reader_record}");

    // Revoked: refused from the next request on; revoking again is a no-op.
    let revoke = format!("/v1/keys/{reader_id}");
    assert_eq!(
        send(&app, Some(&admin), Method::DELETE, &revoke, None).await.status(),
        204
    );
    unauthorized(send(&app, Some(&reader), Method::GET, "/v1/collections", None).await).await;
    assert_eq!(
        send(&app, Some(&admin), Method::DELETE, &revoke, None).await.status(),
        204
    );
    let unknown = format!("/v1/keys/{}", uuid::Uuid::new_v4());
    assert_problem(
        send(&app, Some(&admin), Method::DELETE, &unknown, None).await,
        404,
        "/problems/key-not-found",
    )
    .await;

    // Expired: refused once its time has passed.
    let soon = (chrono::Utc::now() + chrono::Duration::milliseconds(1500)).to_rfc3339();
    let (_, expiring) = make_key(&app, json!({"role": "reader", "expires_at": soon})).await;
    assert_eq!(
        send(&app, Some(&expiring), Method::GET, "/v1/collections", None)
            .await
            .status(),
        200
    );
    tokio::time::sleep(std::time::Duration::from_millis(1600)).await;
    unauthorized(send(&app, Some(&expiring), Method::GET, "/v1/collections", None).await).await;

    // Bad key requests are 422, before anything is stored.
    for bad in [
        json!({"role": "root"}),
        json!({"role": "reader", "rights": "writer"}),
        json!({"role": "service", "rights": "admin"}),
        json!({"role": "reader", "collections": ["Not A Name"]}),
        json!({"role": "reader", "principals": ["alice"]}),
        json!({"role": "reader", "expires_at": "2001-01-01T00:00:00Z"}),
    ] {
        let response = app.post_json("/v1/keys", &bad).await;
        assert_eq!(response.status(), 422, "{bad}");
    }
}

async fn acting_for_end_users_is_for_service_keys_only(backend: Backend) {
    let Some(app) = secured(backend, "acting_for_end_users_is_for_service_keys_only").await else {
        return;
    };
    let (_, service) = make_key(&app, json!({"role": "service", "rights": "reader"})).await;
    let (_, reader) = make_key(&app, json!({"role": "reader", "principals": ["group:legal"]})).await;
    let acting = |key: &str, header: &str| {
        http_client()
            .post(app.url("/v1/search"))
            .bearer_auth(key)
            .header("x-acting-for", header)
            .json(&json!({"query": "warranty"}))
            .send()
    };
    assert_eq!(
        acting(&service, "user:alice@corp, group:legal").await.unwrap().status(),
        200
    );
    assert_problem(
        acting(&reader, "user:alice@corp").await.unwrap(),
        403,
        "/problems/forbidden",
    )
    .await;
    assert_problem(
        acting(OPERATOR_KEY, "user:alice@corp").await.unwrap(),
        403,
        "/problems/forbidden",
    )
    .await;
    assert_problem(
        acting(&service, "alice").await.unwrap(),
        422,
        "/problems/invalid-request",
    )
    .await;
    // A service key with reader rights does not write.
    let upload = upload_as(&app, Some(&service), "/v1/documents", unique_text("svc")).await;
    assert_problem(upload, 403, "/problems/forbidden").await;
}

/// What each operation of the OpenAPI document needs. A route added without a
/// line here fails the matrix below: every route is in it.
fn access_of(operation: &str) -> Option<&'static str> {
    Some(match operation {
        "healthz" | "readyz" => return None,
        "metrics"
        | "list_collections"
        | "get_collection"
        | "list_documents"
        | "get_document"
        | "get_page"
        | "get_document_file"
        | "get_job"
        | "search"
        | "query"
        | "create_conversation"
        | "get_conversation"
        | "delete_conversation"
        | "ask_in_conversation"
        | "list_models"
        | "get_model"
        | "chat_completions" => "read",
        "upload_documents" | "update_document" | "delete_document" | "retry_job" => "write",
        "create_collection" | "delete_collection" | "reindex_collection" | "create_key" | "list_keys"
        | "revoke_key" | "read_audit" | "create_webhook" | "list_webhooks" | "delete_webhook" | "list_deliveries" => {
            "manage"
        }
        "create_tenant" | "list_tenants" => "operate",
        other => panic!("operation {other} is not in the access matrix of tests/api/auth.rs: add it"),
    })
}

/// A body that would be accepted, so that a refusal is the identity's doing.
fn body_of(operation: &str) -> Option<Value> {
    match operation {
        "search" => Some(json!({"query": "warranty"})),
        "query" => Some(json!({"question": "how long is the warranty?", "mode": "extractive"})),
        "create_collection" => Some(json!({"name": "made-by-the-matrix"})),
        "create_key" => Some(json!({"role": "reader"})),
        "update_document" => Some(json!({"access": []})),
        "create_tenant" => Some(json!({"name": "made-by-the-matrix"})),
        "create_webhook" => Some(json!({"url": "http://93.184.215.14/hook", "events": ["document.ready"]})),
        "ask_in_conversation" => Some(json!({"content": "how long is the warranty?", "mode": "extractive"})),
        "chat_completions" => Some(json!({
            "model": "team",
            "mode": "extractive",
            "messages": [{"role": "user", "content": "how long is the warranty?"}]
        })),
        _ => None,
    }
}

async fn every_route_refuses_every_identity_that_may_not_use_it(backend: Backend) {
    let Some(app) = secured(backend, "every_route_refuses_every_identity_that_may_not_use_it").await else {
        return;
    };
    // The data a refused request must never show a byte of.
    assert_eq!(
        app.post_json("/v1/collections", &json!({"name": "team"}))
            .await
            .status(),
        201
    );
    assert_eq!(
        app.post_json("/v1/collections", &json!({"name": "other"}))
            .await
            .status(),
        201
    );
    let secret_text = unique_text("matrixsecret");
    let uploaded = app
        .upload(
            Some("team"),
            &[("payroll-2026.txt", secret_text.clone().into_bytes())],
            None,
            true,
        )
        .await;
    assert_eq!(uploaded.status(), 200);
    let uploaded: Value = uploaded.json().await.unwrap();
    let document = uploaded["documents"][0]["id"].as_str().unwrap().to_string();
    let job = uploaded["documents"][0]["job_id"].as_str().unwrap().to_string();
    let sha = {
        let shown: Value = app
            .get(&format!("/v1/collections/team/documents/{document}"))
            .await
            .json()
            .await
            .unwrap();
        shown["sha256"].as_str().unwrap().to_string()
    };

    // The operator's conversation in `team`: nobody else's to see.
    let conversation = app
        .client
        .post(app.url("/v1/collections/team/conversations"))
        .send()
        .await
        .unwrap();
    assert_eq!(conversation.status(), 201);
    let conversation: Value = conversation.json().await.unwrap();
    let conversation = conversation["id"].as_str().unwrap().to_string();

    // The operator's webhook in tenant `default` (a public address: no leave needed).
    let webhook = app
        .post_json(
            "/v1/webhooks",
            &json!({"url": "http://93.184.215.14/hook", "events": ["document.ready"]}),
        )
        .await;
    assert_eq!(webhook.status(), 201);
    let webhook: Value = webhook.json().await.unwrap();
    let webhook = webhook["id"].as_str().unwrap().to_string();

    let (revoked_id, revoked) = make_key(&app, json!({"role": "admin"})).await;
    assert_eq!(app.delete(&format!("/v1/keys/{revoked_id}")).await.status(), 204);
    let soon = (chrono::Utc::now() + chrono::Duration::milliseconds(800)).to_rfc3339();
    let (_, expired) = make_key(&app, json!({"role": "admin", "expires_at": soon})).await;
    let (_, reader) = make_key(&app, json!({"role": "reader"})).await;
    let (_, writer) = make_key(&app, json!({"role": "writer"})).await;
    let (_, elsewhere) = make_key(&app, json!({"role": "admin", "collections": ["other"]})).await;
    let (victim_key, _) = make_key(&app, json!({"role": "reader", "name": "victim"})).await;
    let (_, admin) = make_key(&app, json!({"role": "admin"})).await;
    assert_eq!(
        app.post_json("/v1/tenants", &json!({"name": "acme"})).await.status(),
        201
    );
    let (_, other_tenant) = make_key(&app, json!({"role": "admin", "tenant": "acme"})).await;
    tokio::time::sleep(std::time::Duration::from_millis(900)).await;

    let document_text: Value = app.get("/openapi.json").await.json().await.unwrap();
    let mut tried = 0;
    for (template, item) in document_text["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            let id = operation["operationId"].as_str().unwrap();
            let Some(access) = access_of(id) else { continue };
            let fill = |template: &str| {
                template
                    .replace("{collection}", "team")
                    .replace("{document_id}", &document)
                    .replace("{job_id}", &job)
                    .replace("{key_id}", &victim_key)
                    .replace("{conversation_id}", &conversation)
                    .replace("{model}", "team")
                    .replace("{page}", "1")
                    .replace("{webhook_id}", &webhook)
            };
            // The model of a chat completion names `team` in the body.
            let names_team = template.contains('{') || id == "chat_completions";
            // The short routes act on `default`: tried too.
            // With whether the path names something of this tenant's (a short
            // route without an id names the caller's own `default`).
            let mut paths = vec![(fill(template), names_team)];
            if let Some(rest) = template.strip_prefix("/v1/collections/{collection}/") {
                paths.push((fill(&format!("/v1/{rest}")), rest.contains('{')));
            }
            let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let body = body_of(id);
            let mut expected: Vec<(&str, Option<&str>, u16)> = vec![
                ("no key", None, 401),
                ("a malformed key", Some("not-a-key"), 401),
                ("a revoked key", Some(&revoked), 401),
                ("an expired key", Some(&expired), 401),
            ];
            match access {
                "write" => expected.push(("a reader", Some(&reader), 403)),
                "manage" => {
                    expected.push(("a reader", Some(&reader), 403));
                    expected.push(("a writer", Some(&writer), 403));
                }
                "operate" => {
                    expected.push(("a reader", Some(&reader), 403));
                    expected.push(("a tenant admin", Some(&admin), 403));
                    expected.push(("a key of another tenant", Some(&other_tenant), 403));
                }
                _ => {}
            }
            // A key limited to another collection finds nothing in `team` or `default`
            // (its job included).
            let names_a_collection = template.contains("{collection}") || template.contains("{model}");
            if names_a_collection
                || matches!(id, "get_job" | "retry_job" | "chat_completions")
                || template.contains("{conversation_id}")
            {
                expected.push(("a key limited to another collection", Some(&elsewhere), 404));
            }
            // Another tenant's admin finds nothing of this tenant's by its name or id.
            const OTHER_TENANT: &str = "a key of another tenant (by name or id)";
            if names_team {
                expected.push((OTHER_TENANT, Some(&other_tenant), 404));
            }
            for (path, names_ours) in &paths {
                for (who, key, status) in &expected {
                    if *who == OTHER_TENANT && !names_ours {
                        continue;
                    }
                    let response = if id == "upload_documents" {
                        // A real upload, so that only the identity can refuse it.
                        upload_as(&app, *key, path, unique_text("matrix")).await
                    } else {
                        send(&app, *key, method.clone(), path, body.as_ref()).await
                    };
                    let got = response.status();
                    let text = response.text().await.unwrap();
                    assert_eq!(
                        got,
                        StatusCode::from_u16(*status).unwrap(),
                        "{method} {path} with {who}: {text}"
                    );
                    for secret in [secret_text.as_str(), "payroll-2026", sha.as_str()] {
                        assert!(
                            !text.contains(secret),
                            "{method} {path} with {who} shows {secret}: {text}"
                        );
                    }
                    tried += 1;
                }
            }
        }
    }
    assert!(tried >= 100, "the matrix tried only {tried} requests");

    // Nothing the refused requests asked for happened.
    let kept: Value = app
        .get(&format!("/v1/collections/team/documents/{document}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(kept["status"], "ready", "{kept}");
    for (collection, count) in [("team", 1), ("default", 0), ("other", 0)] {
        let listed: Value = app
            .get(&format!("/v1/collections/{collection}/documents"))
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(
            listed["documents"].as_array().unwrap().len(),
            count,
            "{collection}: {listed}"
        );
    }
    let collections: Value = app.get("/v1/collections").await.json().await.unwrap();
    let names: Vec<&str> = collections["collections"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["default", "other", "team"], "{collections}");
    let tenants: Value = app.get("/v1/tenants").await.json().await.unwrap();
    assert_eq!(tenants["tenants"].as_array().unwrap().len(), 2, "{tenants}");
    let keys: Value = app.get("/v1/keys").await.json().await.unwrap();
    let victim = keys["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["id"] == victim_key.as_str())
        .unwrap();
    assert!(victim.get("revoked_at").is_none(), "{victim}");
}

async fn a_key_limited_to_collections_sees_only_those(backend: Backend) {
    let Some(app) = secured(backend, "a_key_limited_to_collections_sees_only_those").await else {
        return;
    };
    for name in ["sales", "legal"] {
        assert_eq!(
            app.post_json("/v1/collections", &json!({"name": name})).await.status(),
            201
        );
    }
    let (_, sales) = make_key(&app, json!({"role": "admin", "collections": ["sales"]})).await;
    let listed: Value = send(&app, Some(&sales), Method::GET, "/v1/collections", None)
        .await
        .json()
        .await
        .unwrap();
    let names: Vec<&str> = listed["collections"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["sales"], "{listed}");
    // `legal` answers exactly as a collection that does not exist.
    let hidden = assert_problem(
        send(&app, Some(&sales), Method::GET, "/v1/collections/legal", None).await,
        404,
        "/problems/collection-not-found",
    )
    .await;
    let missing = assert_problem(
        send(&app, Some(&sales), Method::GET, "/v1/collections/nowhere", None).await,
        404,
        "/problems/collection-not-found",
    )
    .await;
    let shape = |v: &Value| v.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
    assert_eq!(shape(&hidden), shape(&missing));
    assert_eq!(
        hidden["detail"].as_str().unwrap().replace("legal", "X"),
        missing["detail"].as_str().unwrap().replace("nowhere", "X")
    );
    // It may not make a key beyond its own collections, nor a collection.
    let wider = json!({"role": "reader"});
    assert_problem(
        send(&app, Some(&sales), Method::POST, "/v1/keys", Some(&wider)).await,
        403,
        "/problems/forbidden",
    )
    .await;
    let narrower = json!({"role": "reader", "collections": ["sales"]});
    assert_eq!(
        send(&app, Some(&sales), Method::POST, "/v1/keys", Some(&narrower))
            .await
            .status(),
        201
    );
    let create = json!({"name": "more"});
    assert_problem(
        send(&app, Some(&sales), Method::POST, "/v1/collections", Some(&create)).await,
        403,
        "/problems/forbidden",
    )
    .await;
    assert_eq!(
        send(
            &app,
            Some(&sales),
            Method::POST,
            "/v1/collections/sales/search",
            Some(&json!({"query": "x"}))
        )
        .await
        .status(),
        200
    );
}

async fn each_key_has_its_own_rate_limit(backend: Backend) {
    let limits = [("RATE_LIMIT_RPS", "1"), ("RATE_LIMIT_BURST", "3")];
    let Some(app) = secured_with(backend, "each_key_has_its_own_rate_limit", &limits).await else {
        return;
    };
    // The operator's own bucket: two keys made, a third request left.
    let (_, busy) = make_key(&app, json!({"role": "reader"})).await;
    let (_, calm) = make_key(&app, json!({"role": "reader"})).await;
    for _ in 0..3 {
        assert_eq!(
            send(&app, Some(&busy), Method::GET, "/v1/collections", None)
                .await
                .status(),
            200
        );
    }
    let refused = send(&app, Some(&busy), Method::GET, "/v1/collections", None).await;
    let retry_after: u64 = refused.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=2).contains(&retry_after), "{retry_after}");
    assert_problem(refused, 429, "/problems/rate-limited").await;
    // Another key is not slowed by it; the busy one is served again after the wait.
    assert_eq!(
        send(&app, Some(&calm), Method::GET, "/v1/collections", None)
            .await
            .status(),
        200
    );
    tokio::time::sleep(std::time::Duration::from_secs(retry_after)).await;
    assert_eq!(
        send(&app, Some(&busy), Method::GET, "/v1/collections", None)
            .await
            .status(),
        200
    );
    // Health stays open and unlimited.
    for _ in 0..5 {
        assert_eq!(send(&app, None, Method::GET, "/healthz", None).await.status(), 200);
    }
}

/// The audit log as the operator sees it, once it holds at least `count` entries
/// (the writer appends in the background).
async fn audit_entries(app: &TestApp, query: &str, count: usize) -> Vec<Value> {
    for _ in 0..100 {
        let page: Value = app.get(&format!("/v1/audit{query}")).await.json().await.unwrap();
        let entries = page["entries"].as_array().unwrap().clone();
        if entries.len() >= count {
            return entries;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("the audit log did not reach {count} entries for {query}");
}

async fn the_audit_log_records_a_session_in_order(backend: Backend) {
    let Some(app) = secured(backend, "the_audit_log_records_a_session_in_order").await else {
        return;
    };
    let (writer_id, writer) = make_key(&app, json!({"role": "writer"})).await;
    let (reader_id, reader) = make_key(&app, json!({"role": "reader"})).await;
    assert_eq!(
        app.post_json("/v1/collections", &json!({"name": "team"}))
            .await
            .status(),
        201
    );
    let path = "/v1/collections/team/documents?wait=true";
    let uploaded = upload_as(&app, Some(&writer), path, unique_text("audit")).await;
    assert_eq!(uploaded.status(), 200);
    let uploaded: Value = uploaded.json().await.unwrap();
    let document = uploaded["documents"][0]["id"].as_str().unwrap().to_string();
    let search = json!({"query": "what is audited"});
    assert_eq!(
        send(
            &app,
            Some(&writer),
            Method::POST,
            "/v1/collections/team/search",
            Some(&search)
        )
        .await
        .status(),
        200
    );
    assert_eq!(
        send(&app, Some(&reader), Method::POST, "/v1/documents", None)
            .await
            .status(),
        403
    );
    assert_eq!(
        send(&app, None, Method::GET, "/v1/collections", None).await.status(),
        401
    );
    // Reads that succeed are not audited.
    assert_eq!(
        send(&app, Some(&reader), Method::GET, "/v1/collections", None)
            .await
            .status(),
        200
    );
    let path = format!("/v1/collections/team/documents/{document}");
    assert_eq!(
        send(&app, Some(&writer), Method::DELETE, &path, None).await.status(),
        204
    );
    assert_eq!(
        send(&app, Some(&reader), Method::GET, "/v1/audit", None).await.status(),
        403
    );

    let entries = audit_entries(&app, "", 9).await;
    let seen: Vec<(String, u64, Option<String>, Option<String>)> = entries
        .iter()
        .map(|e| {
            (
                e["action"].as_str().unwrap().to_string(),
                e["status"].as_u64().unwrap(),
                e["key_id"].as_str().map(str::to_string),
                e["collection"].as_str().map(str::to_string),
            )
        })
        .collect();
    let s = |v: &str| Some(v.to_string());
    let expected = vec![
        ("create_key".to_string(), 201, None, None),
        ("create_key".to_string(), 201, None, None),
        ("create_collection".to_string(), 201, None, None),
        ("upload".to_string(), 200, s(&writer_id), s("team")),
        ("search".to_string(), 200, s(&writer_id), s("team")),
        ("upload".to_string(), 403, s(&reader_id), s("default")),
        ("list_collections".to_string(), 401, None, None),
        ("delete_document".to_string(), 204, s(&writer_id), s("team")),
        ("read_audit".to_string(), 403, s(&reader_id), None),
    ];
    assert_eq!(seen, expected, "{entries:#?}");
    assert_eq!(entries[7]["document_id"], document.as_str());
    assert_eq!(entries[4]["tenant"], "default");
    assert!(
        entries[6].get("tenant").is_none(),
        "an unknown caller has no tenant: {}",
        entries[6]
    );
    for entry in &entries {
        assert!(entry["request_id"].as_str().is_some_and(|id| id.len() > 8), "{entry}");
        let text = entry.to_string();
        assert!(
            !text.contains(&writer) && !text.contains(&reader) && !text.contains(OPERATOR_KEY),
            "{text}"
        );
    }

    // Filtered and paged.
    let searches = audit_entries(&app, "?action=search", 1).await;
    assert_eq!(searches.len(), 1);
    assert!(
        searches[0].get("query").is_none() && !searches[0].to_string().contains("what is audited"),
        "the question is not kept without AUDIT_QUERY_TEXT: {}",
        searches[0]
    );
    let first: Value = app.get("/v1/audit?limit=2").await.json().await.unwrap();
    assert_eq!(first["entries"].as_array().unwrap().len(), 2);
    let cursor = first["next_cursor"].as_str().unwrap();
    let second: Value = app
        .get(&format!("/v1/audit?limit=2&cursor={cursor}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(second["entries"][0]["id"], entries[2]["id"]);
    let future = (chrono::Utc::now() + chrono::Duration::hours(1))
        .to_rfc3339()
        .replace('+', "%2B");
    let none: Value = app
        .get(&format!("/v1/audit?since={future}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(none["entries"].as_array().unwrap().len(), 0, "{none}");
    assert_eq!(app.get("/v1/audit?limit=0").await.status(), 422);
    assert_eq!(app.get("/v1/audit?cursor=zz").await.status(), 422);
}

/// Uploads one text file with an `access` part (as the operator); its id.
async fn upload_with_access(app: &TestApp, name: &str, text: &str, access: &str) -> String {
    let form = reqwest::multipart::Form::new()
        .part(
            "file",
            reqwest::multipart::Part::text(text.to_string()).file_name(name.to_string()),
        )
        .part("access", reqwest::multipart::Part::text(access.to_string()));
    let response = app
        .client
        .post(app.url("/v1/collections/kb/documents?wait=true"))
        .multipart(form)
        .send()
        .await
        .unwrap();
    let status = response.status();
    let body: Value = response.json().await.unwrap();
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["documents"][0]["status"], "ready", "{body}");
    body["documents"][0]["id"].as_str().unwrap().to_string()
}

/// The documents of a search's results, and how many results.
async fn searched(app: &TestApp, key: &str, acting_for: Option<&str>, top_k: usize) -> (Vec<String>, usize) {
    let mut request = http_client()
        .post(app.url("/v1/collections/kb/search"))
        .bearer_auth(key)
        .json(&json!({"query": "quarterly revenue forecast", "top_k": top_k}));
    if let Some(principals) = acting_for {
        request = request.header("x-acting-for", principals);
    }
    let response = request.send().await.unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    let results = body["results"].as_array().unwrap();
    let mut documents: Vec<String> = results
        .iter()
        .map(|r| r["document_id"].as_str().unwrap().to_string())
        .collect();
    documents.sort();
    documents.dedup();
    (documents, results.len())
}

async fn documents_are_seen_only_by_their_principals(backend: Backend) {
    let Some(app) = secured(backend, "documents_are_seen_only_by_their_principals").await else {
        return;
    };
    assert_eq!(
        app.post_json("/v1/collections", &json!({"name": "kb"})).await.status(),
        201
    );
    // Three restricted documents that match the question best, and two open ones.
    let paragraph = |who: &str| {
        format!(
            "The quarterly revenue forecast for {who} expects growth. The revenue forecast is reviewed each quarter. \
             Quarterly revenue numbers feed the forecast.\n\n{}",
            unique_text(who)
        )
    };
    let legal = upload_with_access(&app, "legal.txt", &paragraph("legal"), r#"["group:legal"]"#).await;
    let alice = upload_with_access(&app, "alice.txt", &paragraph("alice"), r#"["user:alice@corp"]"#).await;
    let both = upload_with_access(
        &app,
        "both.txt",
        &paragraph("both"),
        r#"["group:legal", "user:alice@corp"]"#,
    )
    .await;
    let open_a = upload_with_access(
        &app,
        "open-a.txt",
        &format!("Revenue notes.\n\n{}", unique_text("a")),
        "[]",
    )
    .await;
    let open_b = upload_with_access(
        &app,
        "open-b.txt",
        &format!("Forecast notes.\n\n{}", unique_text("b")),
        "[]",
    )
    .await;
    let open = {
        let mut v = vec![open_a.clone(), open_b.clone()];
        v.sort();
        v
    };

    let (_, plain) = make_key(&app, json!({"role": "reader"})).await;
    let (_, lawyer) = make_key(&app, json!({"role": "reader", "principals": ["group:legal"]})).await;
    let (_, service) = make_key(&app, json!({"role": "service"})).await;
    let (_, admin) = make_key(&app, json!({"role": "admin"})).await;

    // Without principals: the open documents only, though the others rank higher.
    let (seen, _) = searched(&app, &plain, None, 10).await;
    assert_eq!(seen, open);
    let (seen, count) = searched(&app, &plain, None, 2).await;
    assert_eq!(count, 2, "top_k permitted chunks");
    assert!(seen.iter().all(|d| open.contains(d)), "{seen:?}");
    // Legal (by its key's principals): its own, the shared one and the open ones.
    let (seen, _) = searched(&app, &lawyer, None, 10).await;
    let mut expected = vec![legal.clone(), both.clone(), open_a.clone(), open_b.clone()];
    expected.sort();
    assert_eq!(seen, expected);
    // A service acting for alice: hers, the shared one and the open ones.
    let (seen, _) = searched(&app, &service, Some("user:alice@corp"), 10).await;
    let mut expected = vec![alice.clone(), both.clone(), open_a.clone(), open_b.clone()];
    expected.sort();
    assert_eq!(seen, expected);
    // A tenant admin sees everything.
    let (seen, _) = searched(&app, &admin, None, 10).await;
    assert_eq!(seen.len(), 5);

    // Answers and their citations, streamed or not, keep to the same documents.
    for stream in [false, true] {
        let response = http_client()
            .post(app.url("/v1/collections/kb/query"))
            .bearer_auth(&plain)
            .json(
                &json!({"question": "What is the quarterly revenue forecast?", "mode": "extractive", "stream": stream}),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let text = response.text().await.unwrap();
        for hidden in [&legal, &alice, &both] {
            assert!(!text.contains(hidden.as_str()), "stream={stream}: {text}");
        }
        assert!(!text.contains("growth"), "a restricted quote leaked: {text}");
    }

    // A document one may not read is not there: shown, listed or deleted.
    let path = format!("/v1/collections/kb/documents/{legal}");
    assert_problem(
        send(&app, Some(&plain), Method::GET, &path, None).await,
        404,
        "/problems/document-not-found",
    )
    .await;
    assert_eq!(send(&app, Some(&lawyer), Method::GET, &path, None).await.status(), 200);
    // Nor its file, nor the text of its pages.
    for below in ["/file", "/pages/1"] {
        let below = format!("{path}{below}");
        assert_problem(
            send(&app, Some(&plain), Method::GET, &below, None).await,
            404,
            "/problems/document-not-found",
        )
        .await;
        assert_eq!(
            send(&app, Some(&lawyer), Method::GET, &below, None).await.status(),
            200,
            "{below}"
        );
    }
    let listed: Value = send(&app, Some(&plain), Method::GET, "/v1/collections/kb/documents", None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(listed["documents"].as_array().unwrap().len(), 2, "{listed}");
    let shown: Value = app.get(&path).await.json().await.unwrap();
    assert_eq!(shown["access"], json!(["group:legal"]));
    // Nor is its job (whose error would tell what the document held).
    let job = format!("/v1/jobs/{}", shown["job_id"].as_str().unwrap());
    assert_problem(
        send(&app, Some(&plain), Method::GET, &job, None).await,
        404,
        "/problems/job-not-found",
    )
    .await;
    assert_eq!(send(&app, Some(&lawyer), Method::GET, &job, None).await.status(), 200);
    let (_, outside_writer) = make_key(&app, json!({"role": "writer"})).await;
    assert_problem(
        send(&app, Some(&outside_writer), Method::POST, &format!("{job}/retry"), None).await,
        404,
        "/problems/job-not-found",
    )
    .await;

    // A PATCH of `access` (no re-embedding) is in effect for the next search; a
    // writer changes only what it may read.
    let (_, outsider) = make_key(&app, json!({"role": "writer"})).await;
    assert_problem(
        send(
            &app,
            Some(&outsider),
            Method::PATCH,
            &path,
            Some(&json!({"access": []})),
        )
        .await,
        404,
        "/problems/document-not-found",
    )
    .await;
    let (_, writer) = make_key(&app, json!({"role": "writer", "principals": ["group:legal"]})).await;
    let opened = send(&app, Some(&writer), Method::PATCH, &path, Some(&json!({"access": []}))).await;
    assert_eq!(opened.status(), 200);
    let opened: Value = opened.json().await.unwrap();
    assert_eq!(opened["access"], json!([]));
    let (seen, _) = searched(&app, &plain, None, 10).await;
    assert!(seen.contains(&legal), "{seen:?}");
    let closed = json!({"access": ["group:finance"], "metadata": {"team": "finance"}});
    assert_eq!(
        send(&app, Some(&writer), Method::PATCH, &path, Some(&closed))
            .await
            .status(),
        200
    );
    let (seen, _) = searched(&app, &plain, None, 10).await;
    assert_eq!(seen, open);
    let (seen, _) = searched(&app, &lawyer, None, 10).await;
    assert!(!seen.contains(&legal), "{seen:?}");
    // The metadata changed in the index too: a filter on it finds the document.
    let filtered: Value = send(
        &app,
        Some(&admin),
        Method::POST,
        "/v1/collections/kb/search",
        Some(&json!({"query": "revenue", "filter": {"metadata": {"team": "finance"}}})),
    )
    .await
    .json()
    .await
    .unwrap();
    let ids: Vec<&str> = filtered["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["document_id"].as_str().unwrap())
        .collect();
    assert!(!ids.is_empty() && ids.iter().all(|id| *id == legal), "{filtered}");
    // The writer, without group:finance, can no longer reach it.
    assert_problem(
        send(&app, Some(&writer), Method::PATCH, &path, Some(&json!({"access": []}))).await,
        404,
        "/problems/document-not-found",
    )
    .await;

    // Bad access is refused before anything is stored or changed.
    for bad in [r#"["alice"]"#, r#"{"user": "x"}"#, "not json"] {
        let form = reqwest::multipart::Form::new()
            .part(
                "file",
                reqwest::multipart::Part::text(unique_text("bad")).file_name("bad.txt"),
            )
            .part("access", reqwest::multipart::Part::text(bad.to_string()));
        let response = app
            .client
            .post(app.url("/v1/collections/kb/documents"))
            .multipart(form)
            .send()
            .await
            .unwrap();
        assert_problem(response, 422, "/problems/invalid-request").await;
    }
    for bad in [
        json!({}),
        json!({"access": ["nobody"]}),
        json!({"metadata": [1]}),
        json!({"owner": "x"}),
    ] {
        assert_eq!(
            app.client
                .patch(app.url(&path))
                .json(&bad)
                .send()
                .await
                .unwrap()
                .status(),
            422,
            "{bad}"
        );
    }
    assert!(app.staging_is_empty());
}

async fn tenants_see_nothing_of_each_other(backend: Backend) {
    let Some(app) = secured(backend, "tenants_see_nothing_of_each_other").await else {
        return;
    };
    // Only the operator makes tenants.
    let (_, ours) = make_key(&app, json!({"role": "admin"})).await;
    assert_problem(
        send(
            &app,
            Some(&ours),
            Method::POST,
            "/v1/tenants",
            Some(&json!({"name": "acme"})),
        )
        .await,
        403,
        "/problems/forbidden",
    )
    .await;
    assert_eq!(
        app.post_json("/v1/tenants", &json!({"name": "acme"})).await.status(),
        201
    );
    assert_problem(
        app.post_json("/v1/tenants", &json!({"name": "acme"})).await,
        409,
        "/problems/tenant-exists",
    )
    .await;
    assert_eq!(
        app.post_json("/v1/tenants", &json!({"name": "Not Valid"}))
            .await
            .status(),
        422
    );
    assert_eq!(
        app.post_json("/v1/keys", &json!({"role": "reader", "tenant": "nobody"}))
            .await
            .status(),
        422
    );
    let (_, theirs) = make_key(&app, json!({"role": "admin", "tenant": "acme"})).await;

    // The same collection name in both tenants: two collections.
    let create = json!({"name": "docs"});
    assert_eq!(
        send(&app, Some(&ours), Method::POST, "/v1/collections", Some(&create))
            .await
            .status(),
        201
    );
    assert_eq!(
        send(&app, Some(&theirs), Method::POST, "/v1/collections", Some(&create))
            .await
            .status(),
        201
    );
    let upload = async |key: &str, text: String| {
        upload_as(&app, Some(key), "/v1/collections/docs/documents?wait=true", text).await
    };
    let our_text = format!(
        "The launch plan names Falcon as the codename.\n\n{}",
        unique_text("ours")
    );
    let their_text = format!(
        "The launch plan names Osprey as the codename.\n\n{}",
        unique_text("theirs")
    );
    let ours_up: Value = upload(&ours, our_text.clone()).await.json().await.unwrap();
    let theirs_up: Value = upload(&theirs, their_text.clone()).await.json().await.unwrap();
    assert_eq!(ours_up["documents"][0]["status"], "ready", "{ours_up}");
    assert_eq!(theirs_up["documents"][0]["status"], "ready", "{theirs_up}");
    let our_doc = ours_up["documents"][0]["id"].as_str().unwrap().to_string();
    let our_job = ours_up["documents"][0]["job_id"].as_str().unwrap().to_string();

    // Each sees its own collections, documents and search results only.
    for (key, own, other) in [(&ours, "Falcon", "Osprey"), (&theirs, "Osprey", "Falcon")] {
        let listed: Value = send(&app, Some(key), Method::GET, "/v1/collections", None)
            .await
            .json()
            .await
            .unwrap();
        let names: Vec<&str> = listed["collections"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["default", "docs"], "{listed}");
        let search = json!({"query": "launch plan codename", "top_k": 10});
        let found = send(
            &app,
            Some(key),
            Method::POST,
            "/v1/collections/docs/search",
            Some(&search),
        )
        .await;
        let text = found.text().await.unwrap();
        assert!(text.contains(own) && !text.contains(other), "{text}");
        let docs = send(&app, Some(key), Method::GET, "/v1/collections/docs/documents", None)
            .await
            .text()
            .await
            .unwrap();
        let parsed: Value = serde_json::from_str(&docs).unwrap();
        assert_eq!(parsed["documents"].as_array().unwrap().len(), 1, "{docs}");
    }
    // Our document, job and keys do not exist for them.
    for (method, path) in [
        (Method::GET, format!("/v1/collections/docs/documents/{our_doc}")),
        (Method::DELETE, format!("/v1/collections/docs/documents/{our_doc}")),
        (Method::GET, format!("/v1/documents/{our_doc}")),
        (Method::GET, format!("/v1/jobs/{our_job}")),
        (Method::POST, format!("/v1/jobs/{our_job}/retry")),
    ] {
        let response = send(&app, Some(&theirs), method.clone(), &path, None).await;
        assert_eq!(response.status(), 404, "{method} {path}");
        let text = response.text().await.unwrap();
        assert!(!text.contains("Falcon"), "{text}");
    }
    let still: Value = send(
        &app,
        Some(&ours),
        Method::GET,
        &format!("/v1/collections/docs/documents/{our_doc}"),
        None,
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(still["status"], "ready");
    let their_keys: Value = send(&app, Some(&theirs), Method::GET, "/v1/keys", None)
        .await
        .json()
        .await
        .unwrap();
    let tenants: Vec<&str> = their_keys["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["tenant"].as_str().unwrap())
        .collect();
    assert_eq!(tenants, ["acme"], "{their_keys}");
    // Their audit log is theirs alone.
    let audit: Value = send(&app, Some(&theirs), Method::GET, "/v1/audit", None)
        .await
        .json()
        .await
        .unwrap();
    let entries = audit["entries"].as_array().unwrap();
    assert!(!entries.is_empty());
    assert!(entries.iter().all(|e| e["tenant"] == "acme"), "{audit}");
    // Deleting their `docs` leaves ours.
    assert_eq!(
        send(&app, Some(&theirs), Method::DELETE, "/v1/collections/docs", None)
            .await
            .status(),
        204
    );
    assert_eq!(
        send(&app, Some(&ours), Method::GET, "/v1/collections/docs", None)
            .await
            .status(),
        200
    );
}

#[test]
fn auth_settings_are_checked_at_start() {
    let vars = |pairs: &[(&str, &str)]| -> HashMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    };
    let err = docqa::Config::from_vars(&vars(&[("DOCQA_AUTH", "off"), ("DOCQA_ADDR", "0.0.0.0:8080")])).unwrap_err();
    let text = err.to_string();
    assert!(text.contains("DOCQA_AUTH") && text.contains("DOCQA_ADDR"), "{text}");
    let err = docqa::Config::from_vars(&vars(&[("DOCQA_ADMIN_KEY", "short")])).unwrap_err();
    assert!(err.to_string().starts_with("DOCQA_ADMIN_KEY"), "{err}");
    let auto_loopback = docqa::Config::from_vars(&vars(&[])).unwrap();
    assert!(
        !auto_loopback.auth.required,
        "auth is off by default on a loopback address"
    );
    let auto_public = docqa::Config::from_vars(&vars(&[("DOCQA_ADDR", "0.0.0.0:8080")])).unwrap();
    assert!(auto_public.auth.required, "auth is required on any other address");
    let debug = format!(
        "{:?}",
        docqa::Config::from_vars(&vars(&[("DOCQA_ADMIN_KEY", OPERATOR_KEY)])).unwrap()
    );
    assert!(!debug.contains(OPERATOR_KEY), "{debug}");

    // Quotas, CORS origins and JWT sign-in.
    let quota = docqa::Config::from_vars(&vars(&[("TENANT_MAX_BYTES", "5000")])).unwrap();
    assert_eq!(quota.ingest.tenant_quota.max_bytes, Some(5000));
    assert_eq!(quota.ingest.tenant_quota.max_documents, None, "0 or unset: unlimited");
    let any = docqa::Config::from_vars(&vars(&[("CORS_ALLOWED_ORIGINS", "*")])).unwrap();
    assert_eq!(any.auth.cors_origins, docqa::config::CorsOrigins::Any);
    for bad in [
        "ftp://kb.example",
        "https://kb.example/app",
        "kb.example",
        "https://*.example",
    ] {
        let err = docqa::Config::from_vars(&vars(&[("CORS_ALLOWED_ORIGINS", bad)])).unwrap_err();
        assert!(err.to_string().starts_with("CORS_ALLOWED_ORIGINS"), "{bad}: {err}");
    }
    use docqa::config::AllowedHosts;
    let hosts = docqa::Config::from_vars(&vars(&[("ALLOWED_HOSTS", "KB.example.com., [::1]")])).unwrap();
    assert_eq!(
        hosts.auth.allowed_hosts,
        AllowedHosts::List(vec!["kb.example.com".into(), "[::1]".into()])
    );
    let local = docqa::Config::from_vars(&vars(&[])).unwrap();
    assert!(local.auth.allowed_hosts.allows("localhost") && !local.auth.allowed_hosts.allows("evil.example"));
    let public = docqa::Config::from_vars(&vars(&[("DOCQA_ADDR", "0.0.0.0:8080")])).unwrap();
    assert_eq!(public.auth.allowed_hosts, AllowedHosts::Any);
    for bad in ["http://kb.example", "kb.example:8080", "::1", ","] {
        let err = docqa::Config::from_vars(&vars(&[("ALLOWED_HOSTS", bad)])).unwrap_err();
        assert!(err.to_string().starts_with("ALLOWED_HOSTS"), "{bad}: {err}");
    }
    let err = docqa::Config::from_vars(&vars(&[("AUTH_JWT_ISSUER", "https://idp/")])).unwrap_err();
    assert!(err.to_string().starts_with("AUTH_JWT_JWKS_URL"), "{err}");
    let jwt = docqa::Config::from_vars(&vars(&[
        ("AUTH_JWT_JWKS_URL", "https://idp/jwks"),
        ("AUTH_JWT_ISSUER", "https://idp/"),
        ("AUTH_JWT_AUDIENCE", "docqa"),
    ]))
    .unwrap();
    let jwt = jwt.auth.jwt.expect("JWT settings");
    assert_eq!(
        (jwt.groups_claim.as_str(), jwt.tenant_claim, jwt.role_claim),
        ("groups", None, None)
    );
}

/// Uploads `bytes` bytes of fresh text to the caller's `default` collection.
async fn upload_sized(app: &TestApp, key: &str, bytes: usize) -> reqwest::Response {
    let mut text = unique_text(&format!("quota {}", uuid_like()));
    text.push_str(&"q".repeat(bytes.saturating_sub(text.len())));
    upload_as(app, Some(key), "/v1/documents", text).await
}

/// A marker no other upload of the test has.
fn uuid_like() -> String {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    format!("n{}", NEXT.fetch_add(1, Ordering::SeqCst))
}

async fn a_tenant_stores_no_more_than_its_quota(backend: Backend) {
    let quota = [("TENANT_MAX_DOCUMENTS", "2"), ("TENANT_MAX_BYTES", "3000")];
    let Some(app) = secured_with(backend, "a_tenant_stores_no_more_than_its_quota", &quota).await else {
        return;
    };
    for tenant in ["acme", "beta"] {
        assert_eq!(
            app.post_json("/v1/tenants", &json!({"name": tenant})).await.status(),
            201
        );
    }
    let (_, acme) = make_key(&app, json!({"role": "writer", "tenant": "acme"})).await;
    let (_, beta) = make_key(&app, json!({"role": "writer", "tenant": "beta"})).await;

    let first = upload_sized(&app, &acme, 1000).await;
    assert_eq!(first.status(), 202);
    let first: Value = first.json().await.unwrap();
    // Past the bytes: judged once the files are in, and nothing is kept.
    let body = assert_problem(upload_sized(&app, &acme, 2500).await, 413, "/problems/quota-exceeded").await;
    assert!(body["detail"].as_str().unwrap().contains("TENANT_MAX_BYTES"), "{body}");
    assert!(app.staging_is_empty());
    assert_eq!(upload_sized(&app, &acme, 1000).await.status(), 202);
    // Past the documents: refused before the body is read.
    let body = assert_problem(upload_sized(&app, &acme, 10).await, 403, "/problems/quota-exceeded").await;
    assert!(
        body["detail"].as_str().unwrap().contains("TENANT_MAX_DOCUMENTS"),
        "{body}"
    );
    // Another tenant's quota is its own.
    assert_eq!(upload_sized(&app, &beta, 1000).await.status(), 202);
    // Room comes back with a delete; two files for one free place are refused whole.
    let id = first["documents"][0]["id"].as_str().unwrap();
    assert_eq!(
        send(&app, Some(&acme), Method::DELETE, &format!("/v1/documents/{id}"), None)
            .await
            .status(),
        204
    );
    let form = reqwest::multipart::Form::new()
        .part(
            "file",
            reqwest::multipart::Part::text(unique_text("two-a")).file_name("a.txt"),
        )
        .part(
            "file",
            reqwest::multipart::Part::text(unique_text("two-b")).file_name("b.txt"),
        );
    let both = http_client()
        .post(app.url("/v1/documents"))
        .bearer_auth(&acme)
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_problem(both, 403, "/problems/quota-exceeded").await;
    assert!(app.staging_is_empty());
    let listed: Value = send(&app, Some(&acme), Method::GET, "/v1/documents", None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(listed["documents"].as_array().unwrap().len(), 1, "{listed}");
    assert_eq!(upload_sized(&app, &acme, 10).await.status(), 202);
}

/// CORS needs no storage backend: one server, with and without origins.
#[tokio::test(flavor = "multi_thread")]
async fn browsers_call_from_the_allowed_origins_only() {
    let allowed = "https://kb.example.test";
    let origins = [("CORS_ALLOWED_ORIGINS", "https://kb.example.test, http://localhost:5173")];
    let app = secured_with(Backend::SqliteEdge, "cors", &origins)
        .await
        .expect("sqlite");
    let preflight = |origin: &'static str| {
        http_client()
            .request(Method::OPTIONS, app.url("/v1/collections/kb/search"))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "authorization, content-type")
            .send()
    };
    let header = |response: &reqwest::Response, name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_lowercase)
    };
    // A preflight carries no key and is answered before the request scope.
    let ok = preflight(allowed).await.unwrap();
    assert!(ok.status().is_success(), "{}", ok.status());
    assert_eq!(header(&ok, "access-control-allow-origin").as_deref(), Some(allowed));
    let allowed_headers = header(&ok, "access-control-allow-headers").unwrap_or_default();
    assert!(allowed_headers.contains("authorization"), "{allowed_headers}");
    assert!(header(&ok, "access-control-allow-credentials").is_none());
    let evil = preflight("https://evil.example.test").await.unwrap();
    assert!(header(&evil, "access-control-allow-origin").is_none());

    let call = http_client()
        .get(app.url("/v1/collections"))
        .header("origin", allowed)
        .bearer_auth(OPERATOR_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(call.status(), 200);
    assert_eq!(header(&call, "access-control-allow-origin").as_deref(), Some(allowed));
    let exposed = header(&call, "access-control-expose-headers").unwrap_or_default();
    assert!(
        exposed.contains("x-request-id") && exposed.contains("retry-after"),
        "{exposed}"
    );
    // Still a key is needed: CORS lets the browser read the answer, nothing more.
    let anonymous = http_client()
        .get(app.url("/v1/collections"))
        .header("origin", allowed)
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
    assert_eq!(
        header(&anonymous, "access-control-allow-origin").as_deref(),
        Some(allowed)
    );

    // Without CORS_ALLOWED_ORIGINS no origin is allowed.
    let closed = secured_with(Backend::SqliteEdge, "cors_closed", &[])
        .await
        .expect("sqlite");
    let response = http_client()
        .get(closed.url("/v1/collections"))
        .header("origin", allowed)
        .bearer_auth(OPERATOR_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(header(&response, "access-control-allow-origin").is_none());
}

/// A web page of another site cannot use a server on this machine: not by
/// pointing its own name at 127.0.0.1 (DNS rebinding: the `Host` is its name),
/// nor by posting a form or a `fetch` to it (its `Origin` is another site).
/// Clients that are not browsers send no `Origin` and are not affected.
#[tokio::test(flavor = "multi_thread")]
async fn web_pages_of_other_sites_cannot_use_a_local_instance() {
    let app = TestApp::spawn().await;
    let port = app.address.rsplit(':').next().unwrap().to_string();
    let client = http_client();
    let rebound = client
        .get(app.url("/v1/collections"))
        .header("host", format!("evil.example:{port}"))
        .send()
        .await
        .unwrap();
    assert_problem(rebound, 421, "/problems/host-not-allowed").await;
    for host in [
        format!("localhost:{port}"),
        format!("127.0.0.1:{port}"),
        format!("LOCALHOST.:{port}"),
    ] {
        let response = client
            .get(app.url("/v1/collections"))
            .header("host", &host)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{host}");
    }

    let create = |origin: Option<String>, name: &'static str| {
        let mut request = client.post(app.url("/v1/collections")).json(&json!({"name": name}));
        if let Some(origin) = origin {
            request = request.header("origin", origin);
        }
        request.send()
    };
    let forged = create(Some("https://evil.example".into()), "from-evil").await.unwrap();
    assert_problem(forged, 403, "/problems/cross-origin").await;
    let sandboxed = create(Some("null".into()), "from-null").await.unwrap();
    assert_problem(sandboxed, 403, "/problems/cross-origin").await;
    let form = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(crate::fixtures::WARRANTY_TXT.as_bytes().to_vec()).file_name("csrf.txt"),
    );
    let upload = client
        .post(app.url("/v1/documents"))
        .header("origin", "https://evil.example")
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_problem(upload, 403, "/problems/cross-origin").await;
    let same_site = create(Some(format!("http://127.0.0.1:{port}")), "from-itself")
        .await
        .unwrap();
    assert_eq!(same_site.status(), 201);
    let no_browser = create(None, "from-curl").await.unwrap();
    assert_eq!(no_browser.status(), 201);
    let listed: Value = app.get("/v1/collections").await.json().await.unwrap();
    let names: Vec<&str> = listed["collections"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["name"].as_str())
        .collect();
    assert!(
        !names
            .iter()
            .any(|n| n.starts_with("from-evil") || n.starts_with("from-null")),
        "{listed}"
    );
    let documents: Value = app.get("/v1/documents").await.json().await.unwrap();
    assert_eq!(documents["documents"], json!([]), "the forged upload stored nothing");
    assert!(app.staging_is_empty());

    // Named hosts and the browser apps of CORS_ALLOWED_ORIGINS.
    let named = TestApp::spawn_with(TestOptions {
        vars: vec![
            ("ALLOWED_HOSTS", "kb.example.test".into()),
            ("CORS_ALLOWED_ORIGINS", "https://app.example.test".into()),
        ],
        ..Default::default()
    })
    .await;
    let by_name = client
        .post(named.url("/v1/collections"))
        .header("host", "kb.example.test")
        .header("origin", "https://app.example.test")
        .json(&json!({"name": "from-app"}))
        .send()
        .await
        .unwrap();
    assert_eq!(by_name.status(), 201);
    let local = client.get(named.url("/healthz")).send().await.unwrap();
    assert_problem(local, 421, "/problems/host-not-allowed").await;
}

on_every_backend!(
    a_tenant_stores_no_more_than_its_quota,
    keys_have_roles_and_revoking_one_takes_effect_at_once,
    acting_for_end_users_is_for_service_keys_only,
    every_route_refuses_every_identity_that_may_not_use_it,
    a_key_limited_to_collections_sees_only_those,
    each_key_has_its_own_rate_limit,
    the_audit_log_records_a_session_in_order,
    documents_are_seen_only_by_their_principals,
    tenants_see_nothing_of_each_other,
);
