//! Sign-in with an identity provider's JWTs: a JWKS server inside the test
//! publishes the provider's public keys (tests/api/jwt_keys), tokens are signed
//! here with its private keys, and docqa's real verifier checks them.

use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use actix_web::{App, HttpResponse, HttpServer, web};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::Method;
use serde_json::{Value, json};

use crate::auth::{make_key, secured_with, send, unauthorized, upload_as};
use crate::backends::{Backend, on_every_backend};
use crate::fixtures::unique_text;
use crate::helpers::{TestApp, assert_problem, http_client};

const ISSUER: &str = "https://login.example.test/";
const AUDIENCE: &str = "docqa-tests";
const IDP_RSA: &[u8] = include_bytes!("jwt_keys/idp-rs256.der");
const IDP_EC: &[u8] = include_bytes!("jwt_keys/idp-es256.der");
const ATTACKER_RSA: &[u8] = include_bytes!("jwt_keys/attacker-rs256.der");
const JWKS: &str = include_str!("jwt_keys/jwks.json");
/// After a rotation: the attacker's key is now the provider's `idp-rsa-2`.
const JWKS_ROTATED: &str = include_str!("jwt_keys/jwks-rotated.json");
/// `{"alg":"none","typ":"JWT"}`, base64url.
const ALG_NONE_HEADER: &str = "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0";

/// What the identity provider's JWKS endpoint does; shared with the test.
#[derive(Default)]
struct Provider {
    fetches: AtomicUsize,
    down: AtomicBool,
    /// Publishes `JWKS_ROTATED` instead of `JWKS`.
    rotated: AtomicBool,
}

async fn publish_keys(provider: web::Data<Provider>) -> HttpResponse {
    provider.fetches.fetch_add(1, Ordering::SeqCst);
    if provider.down.load(Ordering::SeqCst) {
        return HttpResponse::ServiceUnavailable().finish();
    }
    let document = match provider.rotated.load(Ordering::SeqCst) {
        true => JWKS_ROTATED,
        false => JWKS,
    };
    HttpResponse::Ok().content_type("application/json").body(document)
}

/// The identity provider's JWKS endpoint, on a random port.
struct Jwks {
    url: String,
    provider: web::Data<Provider>,
    _server: actix_web::dev::ServerHandle,
}

impl Jwks {
    fn start() -> Self {
        let provider = web::Data::new(Provider::default());
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let url = format!("http://{}/.well-known/jwks.json", listener.local_addr().expect("addr"));
        let shared = provider.clone();
        let server = HttpServer::new(move || {
            App::new()
                .app_data(shared.clone())
                .route("/.well-known/jwks.json", web::get().to(publish_keys))
        })
        .workers(1)
        .listen(listener)
        .expect("listen")
        .run();
        let handle = server.handle();
        tokio::spawn(server);
        Self {
            url,
            provider,
            _server: handle,
        }
    }

    fn fetches(&self) -> usize {
        self.provider.fetches.load(Ordering::SeqCst)
    }
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// Claims valid for an hour from now, of a user of tenant `default` (the
/// tenant claim, when configured, must be there), with `extra` on top.
fn claims(sub: &str, extra: Value) -> Value {
    let mut claims =
        json!({"sub": sub, "org": "default", "iss": ISSUER, "aud": AUDIENCE, "iat": now(), "exp": now() + 3600});
    if let (Some(map), Some(extra)) = (claims.as_object_mut(), extra.as_object()) {
        map.extend(extra.clone());
    }
    claims
}

fn sign(algorithm: Algorithm, kid: &str, key: &EncodingKey, claims: &Value) -> String {
    let mut header = Header::new(algorithm);
    header.kid = Some(kid.to_string());
    jsonwebtoken::encode(&header, claims, key).expect("sign")
}

fn rs256(claims: &Value) -> String {
    sign(
        Algorithm::RS256,
        "idp-rsa-1",
        &EncodingKey::from_rsa_der(IDP_RSA),
        claims,
    )
}

async fn signed_in(backend: Backend, test: &str, jwks: &Jwks, extra: &[(&'static str, &str)]) -> Option<TestApp> {
    let mut vars = vec![
        ("AUTH_JWT_JWKS_URL", jwks.url.as_str()),
        ("AUTH_JWT_ISSUER", ISSUER),
        ("AUTH_JWT_AUDIENCE", AUDIENCE),
        ("AUTH_JWT_TENANT_CLAIM", "org"),
        ("AUTH_JWT_ROLE_CLAIM", "docqa_role"),
        ("AUTH_JWT_JWKS_MIN_REFETCH_SECS", "2"),
    ];
    vars.extend_from_slice(extra);
    secured_with(backend, test, &vars).await
}

async fn status_with(app: &TestApp, token: &str) -> u16 {
    send(app, Some(token), Method::GET, "/v1/collections", None)
        .await
        .status()
        .as_u16()
}

async fn only_tokens_the_provider_signed_for_us_are_accepted(backend: Backend) {
    let jwks = Jwks::start();
    let test = "only_tokens_the_provider_signed_for_us_are_accepted";
    let Some(app) = signed_in(backend, test, &jwks, &[]).await else {
        return;
    };
    // No fetch before the first token: a provider that is down does not stop the start.
    assert_eq!(jwks.fetches(), 0);
    let good = rs256(&claims("alice@corp", json!({})));
    assert_eq!(status_with(&app, &good).await, 200);
    let es256 = sign(
        Algorithm::ES256,
        "idp-ec-1",
        &EncodingKey::from_ec_der(IDP_EC),
        &claims("bob@corp", json!({})),
    );
    assert_eq!(
        status_with(&app, &es256).await,
        200,
        "ES256 with the provider's P-256 key"
    );
    assert_eq!(jwks.fetches(), 1, "keys are fetched once and kept");

    let attacker = EncodingKey::from_rsa_der(ATTACKER_RSA);
    let expired = claims("alice@corp", json!({"exp": now() - 3600, "iat": now() - 7200}));
    let not_yet = claims("alice@corp", json!({"nbf": now() + 3600}));
    let payload = good.split('.').nth(1).expect("payload");
    let refused = [
        (
            "bad signature",
            sign(
                Algorithm::RS256,
                "idp-rsa-1",
                &attacker,
                &claims("alice@corp", json!({})),
            ),
        ),
        ("expired", rs256(&expired)),
        ("not valid yet", rs256(&not_yet)),
        (
            "wrong audience",
            rs256(&claims("alice@corp", json!({"aud": "another-app"}))),
        ),
        (
            "wrong issuer",
            rs256(&claims("alice@corp", json!({"iss": "https://evil.example/"}))),
        ),
        ("alg none", format!("{ALG_NONE_HEADER}.{payload}.")),
        // HMAC keyed with the provider's public key (the RS/HS confusion).
        (
            "HS256 with the public key",
            sign(
                Algorithm::HS256,
                "idp-rsa-1",
                &EncodingKey::from_secret(JWKS.as_bytes()),
                &claims("alice@corp", json!({})),
            ),
        ),
        ("no tenant claim", {
            let mut c = claims("alice@corp", json!({}));
            c.as_object_mut().expect("object").remove("org");
            rs256(&c)
        }),
        ("no subject", {
            let mut c = claims("x", json!({}));
            c.as_object_mut().expect("object").remove("sub");
            rs256(&c)
        }),
        (
            "a tenant that does not exist",
            rs256(&claims("alice@corp", json!({"org": "nowhere"}))),
        ),
        (
            "a role that is not one",
            rs256(&claims("alice@corp", json!({"docqa_role": "root"}))),
        ),
        ("tampered payload", {
            let other = rs256(&claims("mallory@corp", json!({"docqa_role": "admin"})));
            let mut parts: Vec<&str> = good.split('.').collect();
            parts[1] = other.split('.').nth(1).expect("payload");
            parts.join(".")
        }),
    ];
    for (what, token) in &refused {
        let body = unauthorized(send(&app, Some(token), Method::GET, "/v1/collections", None).await).await;
        assert!(
            !body.to_string().contains(token.as_str()),
            "{what}: the token is not echoed"
        );
    }

    // An unknown kid fetches the keys again, but not more than once in a while
    // (AUTH_JWT_JWKS_MIN_REFETCH_SECS, 2 s here).
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    let before = jwks.fetches();
    let forged = |kid: &str| sign(Algorithm::RS256, kid, &attacker, &claims("alice@corp", json!({})));
    for kid in ["forged-1", "forged-2", "forged-3"] {
        unauthorized(send(&app, Some(&forged(kid)), Method::GET, "/v1/collections", None).await).await;
    }
    assert_eq!(jwks.fetches(), before + 1, "forged kids do not hammer the provider");
    // The provider rotates: a token signed with its new key is trusted once the
    // pause is over, and the key before stays valid while it is published.
    jwks.provider.rotated.store(true, Ordering::SeqCst);
    let rotated = forged("idp-rsa-2");
    unauthorized(send(&app, Some(&rotated), Method::GET, "/v1/collections", None).await).await;
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    assert_eq!(
        status_with(&app, &rotated).await,
        200,
        "a rotated key is fetched at once"
    );
    assert_eq!(status_with(&app, &good).await, 200);

    // A JWT user is not a service: it may not act for others.
    let acting = http_client()
        .get(app.url("/v1/collections"))
        .bearer_auth(&good)
        .header("x-acting-for", "user:bob@corp")
        .send()
        .await
        .expect("request");
    assert_problem(acting, 403, "/problems/forbidden").await;
}

async fn a_signed_in_user_has_the_role_tenant_and_groups_of_the_token(backend: Backend) {
    let jwks = Jwks::start();
    let test = "a_signed_in_user_has_the_role_tenant_and_groups_of_the_token";
    let Some(app) = signed_in(backend, test, &jwks, &[("AUDIT_QUERY_TEXT", "true")]).await else {
        return;
    };
    assert_eq!(
        app.post_json("/v1/tenants", &json!({"name": "acme"})).await.status(),
        201
    );
    let acme = |sub: &str, extra: Value| {
        let mut extra = extra;
        extra["org"] = json!("acme");
        rs256(&claims(sub, extra))
    };
    let admin = acme("boss@acme", json!({"docqa_role": "admin"}));
    let writer = acme("wendy@acme", json!({"docqa_role": "writer"}));
    let lawyer = acme("larry@acme", json!({"groups": ["legal"]}));
    let reader = acme("rita@acme", json!({}));

    // The role claim: an admin makes collections, a writer uploads, a reader reads.
    let kb = json!({"name": "kb"});
    assert_problem(
        send(&app, Some(&writer), Method::POST, "/v1/collections", Some(&kb)).await,
        403,
        "/problems/forbidden",
    )
    .await;
    assert_eq!(
        send(&app, Some(&admin), Method::POST, "/v1/collections", Some(&kb))
            .await
            .status(),
        201
    );
    let uploaded = upload_as(&app, Some(&reader), "/v1/collections/kb/documents", unique_text("r")).await;
    assert_problem(uploaded, 403, "/problems/forbidden").await;
    let open = upload_as(
        &app,
        Some(&writer),
        "/v1/collections/kb/documents?wait=true",
        format!("The holiday rota is posted on Mondays.\n\n{}", unique_text("open")),
    )
    .await;
    assert_eq!(open.status(), 200);
    let open: Value = open.json().await.expect("json");
    let open = open["documents"][0]["id"].as_str().expect("id").to_string();

    // The tenant claim: acme's collection, unseen from default (and the other way round).
    let listed: Value = send(&app, Some(&reader), Method::GET, "/v1/collections", None)
        .await
        .json()
        .await
        .expect("json");
    let names: Vec<&str> = listed["collections"]
        .as_array()
        .expect("collections")
        .iter()
        .map(|c| c["name"].as_str().expect("name"))
        .collect();
    assert!(names.contains(&"kb"), "{listed}");
    let default_user = rs256(&claims("dave@corp", json!({})));
    assert_problem(
        send(&app, Some(&default_user), Method::GET, "/v1/collections/kb", None).await,
        404,
        "/problems/collection-not-found",
    )
    .await;

    // The groups claim: a legal-only document is found by the lawyer, not by the reader.
    let form = reqwest::multipart::Form::new()
        .part(
            "file",
            reqwest::multipart::Part::text(format!(
                "The litigation hold covers every holiday rota.\n\n{}",
                unique_text("legal")
            ))
            .file_name("hold.txt"),
        )
        .part("access", reqwest::multipart::Part::text(r#"["group:legal"]"#));
    let response = http_client()
        .post(app.url("/v1/collections/kb/documents?wait=true"))
        .bearer_auth(&writer)
        .multipart(form)
        .send()
        .await
        .expect("upload");
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.expect("json");
    let legal = body["documents"][0]["id"].as_str().expect("id").to_string();
    let found = |token: String| {
        let app = &app;
        async move {
            let body: Value = send(
                app,
                Some(&token),
                Method::POST,
                "/v1/collections/kb/search",
                Some(&json!({"query": "litigation hold holiday rota", "top_k": 10})),
            )
            .await
            .json()
            .await
            .expect("json");
            let mut ids: Vec<String> = body["results"]
                .as_array()
                .expect("results")
                .iter()
                .map(|r| r["document_id"].as_str().expect("id").to_string())
                .collect();
            ids.sort();
            ids.dedup();
            ids
        }
    };
    assert_eq!(found(reader.clone()).await, vec![open.clone()]);
    let mut both = vec![open.clone(), legal.clone()];
    both.sort();
    assert_eq!(found(lawyer.clone()).await, both);
    assert_eq!(found(admin.clone()).await, both, "a tenant admin reads everything");

    // The audit log names the user, and with AUDIT_QUERY_TEXT what was asked.
    let audit: Value = send(&app, Some(&admin), Method::GET, "/v1/audit?action=search", None)
        .await
        .json()
        .await
        .expect("json");
    let entries = audit["entries"].as_array().expect("entries");
    let by_lawyer = entries
        .iter()
        .find(|e| e["user"] == "user:larry@acme")
        .unwrap_or_else(|| panic!("no search by larry: {audit}"));
    assert_eq!(by_lawyer["query"], "litigation hold holiday rota");
    assert_eq!(by_lawyer["tenant"], "acme");
    assert!(by_lawyer.get("key_id").is_none(), "{by_lawyer}");
}

async fn keys_work_while_the_provider_is_down(backend: Backend) {
    let jwks = Jwks::start();
    jwks.provider.down.store(true, Ordering::SeqCst);
    let Some(app) = signed_in(backend, "keys_work_while_the_provider_is_down", &jwks, &[]).await else {
        return;
    };
    let token = rs256(&claims("alice@corp", json!({})));
    let response = send(&app, Some(&token), Method::GET, "/v1/collections", None).await;
    let body = assert_problem(response, 503, "/problems/service-unavailable").await;
    assert!(!body.to_string().contains(&jwks.url), "{body}");
    let (_, key) = make_key(&app, json!({"role": "reader"})).await;
    assert_eq!(status_with(&app, &key).await, 200, "API keys do not need the provider");
    assert_eq!(status_with(&app, &token).await, 503);
    // Back up: a token after the pause between attempts (5 s) fetches the keys.
    jwks.provider.down.store(false, Ordering::SeqCst);
    tokio::time::sleep(std::time::Duration::from_secs(6)).await;
    assert_eq!(status_with(&app, &token).await, 200);
}

on_every_backend!(
    only_tokens_the_provider_signed_for_us_are_accepted,
    a_signed_in_user_has_the_role_tenant_and_groups_of_the_token,
    keys_work_while_the_provider_is_down,
);
