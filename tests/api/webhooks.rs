//! Webhooks over HTTP: deliveries signed with the webhook's secret, retried
//! after a failure, recorded with their attempts, kept across a restart; URLs
//! into the server's own network refused unless allowed.

use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use serde_json::{Value, json};

use crate::auth::secured_with;
use crate::backends::{Backend, on_every_backend};
use crate::fixtures::WARRANTY_TXT;
use crate::helpers::{TestApp, assert_problem};

const SECRET: &str = "the-receivers-shared-secret";

/// One POST the receiver got: its signature header and body.
#[derive(Clone, Debug)]
struct Received {
    signature: String,
    event: String,
    body: Vec<u8>,
}

/// An endpoint inside the test that records what it is sent, and answers 500
/// to its first `failures` requests.
struct Receiver {
    received: Arc<Mutex<Vec<Received>>>,
    handle: actix_web::dev::ServerHandle,
}

struct ReceiverState {
    received: Arc<Mutex<Vec<Received>>>,
    requests: AtomicUsize,
    failures: usize,
}

async fn hook(state: web::Data<ReceiverState>, request: HttpRequest, body: web::Bytes) -> HttpResponse {
    if state.requests.fetch_add(1, Ordering::SeqCst) < state.failures {
        return HttpResponse::InternalServerError().body("the receiver is having a bad day");
    }
    let header = |name: &str| {
        request
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    state.received.lock().unwrap().push(Received {
        signature: header("docqa-signature"),
        event: header("docqa-event"),
        body: body.to_vec(),
    });
    HttpResponse::NoContent().finish()
}

impl Receiver {
    fn start_on(listener: TcpListener, failures: usize) -> Self {
        let received = Arc::new(Mutex::new(Vec::new()));
        let state = web::Data::new(ReceiverState {
            received: received.clone(),
            requests: AtomicUsize::new(0),
            failures,
        });
        let server = HttpServer::new(move || App::new().app_data(state.clone()).route("/hook", web::post().to(hook)))
            .workers(1)
            .listen(listener)
            .expect("listen")
            .run();
        let handle = server.handle();
        tokio::spawn(server);
        Self { received, handle }
    }

    fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    /// What it got, once it got `count` deliveries (30 s at most).
    async fn wait_for(&self, count: usize) -> Vec<Received> {
        for _ in 0..300 {
            if self.received().len() >= count {
                return self.received();
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("the receiver got {} deliveries, not {count}", self.received().len());
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let handle = self.handle.clone();
        tokio::spawn(async move { handle.stop(false).await });
    }
}

fn verified(received: &Received) -> Value {
    let now = chrono::Utc::now().timestamp();
    assert!(
        docqa::webhooks::signature::verify(SECRET, &received.signature, &received.body, now, 300),
        "bad signature {} on {}",
        received.signature,
        String::from_utf8_lossy(&received.body)
    );
    serde_json::from_slice(&received.body).unwrap()
}

async fn make_webhook(app: &TestApp, url: &str, events: Value) -> Value {
    let response = app
        .post_json("/v1/webhooks", &json!({"url": url, "events": events, "secret": SECRET}))
        .await;
    assert_eq!(response.status(), 201);
    let made: Value = response.json().await.unwrap();
    assert_eq!(made["secret"], SECRET);
    made
}

async fn deliveries(app: &TestApp, webhook: &str) -> Vec<Value> {
    let listed: Value = app
        .get(&format!("/v1/webhooks/{webhook}/deliveries"))
        .await
        .json()
        .await
        .unwrap();
    listed["deliveries"].as_array().unwrap().clone()
}

#[tokio::test(flavor = "multi_thread")]
async fn deliveries_are_signed_retried_and_recorded() {
    let vars = [("WEBHOOK_ALLOW_PRIVATE", "true"), ("WEBHOOK_RETRY_BASE_MS", "100")];
    let test = "deliveries_are_signed_retried_and_recorded";
    let app = secured_with(Backend::SqliteEdge, test, &vars)
        .await
        .expect("SQLite is always here");
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let receiver = Receiver::start_on(listener, 1);
    let webhook = make_webhook(&app, &url, json!(["document.ready", "document.failed", "reindex.done"])).await;
    let id = webhook["id"].as_str().unwrap();
    // The secret is shown once.
    let listed: Value = app.get("/v1/webhooks").await.json().await.unwrap();
    assert_eq!(listed["webhooks"][0]["id"], id);
    assert!(listed["webhooks"][0].get("secret").is_none(), "{listed}");

    let ready = app.ingest("terms.txt", WARRANTY_TXT.into()).await;
    let failed = app
        .ingest_failing("broken.pdf", b"%PDF-1.7\nthis is not a pdf at all".to_vec())
        .await;
    let got = receiver.wait_for(2).await;
    let mut by_event: Vec<(String, Value)> = got.iter().map(|r| (r.event.clone(), verified(r))).collect();
    by_event.sort_by(|a, b| a.0.cmp(&b.0));
    let (event, failed_notice) = &by_event[0];
    assert_eq!(event, "document.failed");
    assert_eq!(failed_notice["document_id"], failed["id"], "{failed_notice}");
    assert!(
        failed_notice["error"].as_str().is_some_and(|e| !e.is_empty()),
        "{failed_notice}"
    );
    let (event, ready_notice) = &by_event[1];
    assert_eq!(event, "document.ready");
    assert_eq!(ready_notice["document_id"], ready["id"], "{ready_notice}");
    assert_eq!(ready_notice["collection"], "default");
    assert_eq!(ready_notice["tenant"], "default");
    assert_eq!(ready_notice["chunks"], 1);

    // One delivery was refused once and delivered on its second attempt.
    let recorded = deliveries(&app, id).await;
    assert_eq!(recorded.len(), 2, "{recorded:?}");
    assert!(
        recorded
            .iter()
            .all(|d| d["status"] == "delivered" && d["last_status"] == 204),
        "{recorded:?}"
    );
    let mut attempts: Vec<u64> = recorded.iter().map(|d| d["attempts"].as_u64().unwrap()).collect();
    attempts.sort();
    assert_eq!(attempts, [1, 2], "{recorded:?}");

    // A re-index says when it is done.
    assert_eq!(app.post_json("/v1/reindex", &json!({})).await.status(), 202);
    let got = receiver.wait_for(3).await;
    let reindexed = got.iter().find(|r| r.event == "reindex.done").expect("reindex.done");
    assert_eq!(verified(reindexed)["collection"], "default");

    // A deleted webhook is told nothing more, and is gone.
    assert_eq!(app.delete(&format!("/v1/webhooks/{id}")).await.status(), 204);
    app.ingest(
        "more.txt",
        b"Another note about the warranty and its registration online.".to_vec(),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(receiver.received().len(), 3);
    assert_problem(
        app.get(&format!("/v1/webhooks/{id}/deliveries")).await,
        404,
        "/problems/webhook-not-found",
    )
    .await;
}

async fn a_delivery_survives_a_restart_and_private_urls_need_leave(backend: Backend) {
    let vars = [("WEBHOOK_ALLOW_PRIVATE", "true"), ("WEBHOOK_RETRY_BASE_MS", "100")];
    let test = "a_delivery_survives_a_restart_and_private_urls_need_leave";
    let Some(mut app) = secured_with(backend, test, &vars).await else {
        return;
    };
    // Nobody listens there yet.
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let webhook = make_webhook(
        &app,
        &format!("http://127.0.0.1:{port}/hook"),
        json!(["document.ready"]),
    )
    .await;
    let id = webhook["id"].as_str().unwrap();
    let ready = app.ingest("terms.txt", WARRANTY_TXT.into()).await;
    let mut tried = false;
    for _ in 0..100 {
        let recorded = deliveries(&app, id).await;
        if recorded.first().is_some_and(|d| d["attempts"].as_u64() >= Some(1)) {
            assert_eq!(recorded[0]["status"], "pending", "{recorded:?}");
            assert!(
                recorded[0]["last_error"].as_str().unwrap().contains("could not post"),
                "{recorded:?}"
            );
            tried = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(tried, "the delivery was never attempted");

    app.restart().await;
    let receiver = Receiver::start_on(TcpListener::bind(("127.0.0.1", port)).unwrap(), 0);
    let got = receiver.wait_for(1).await;
    assert_eq!(verified(&got[0])["document_id"], ready["id"]);
    let recorded = deliveries(&app, id).await;
    assert_eq!(recorded[0]["status"], "delivered", "{recorded:?}");

    // Without leave, an address of the server's own network is refused.
    app.restart_with(&[("WEBHOOK_ALLOW_PRIVATE", "false")]).await;
    for url in [
        format!("http://127.0.0.1:{port}/hook"),
        "http://169.254.169.254/latest".to_string(),
    ] {
        let response = app
            .post_json("/v1/webhooks", &json!({"url": url, "events": ["document.ready"]}))
            .await;
        let problem = assert_problem(response, 422, "/problems/invalid-request").await;
        assert!(
            problem["detail"].as_str().unwrap().contains("server's own network"),
            "{problem}"
        );
    }
    let response = app
        .post_json(
            "/v1/webhooks",
            &json!({"url": "http://93.184.215.14/hook", "events": []}),
        )
        .await;
    assert_problem(response, 422, "/problems/invalid-request").await;
}

on_every_backend!(a_delivery_survives_a_restart_and_private_urls_need_leave);
