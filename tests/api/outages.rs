//! Backends that are down: at start the server waits a bounded time, then stops
//! with a message naming the backend and where; while running, requests that
//! need it get a quick 503, `/readyz` names it, and the server recovers on its
//! own when it is back. Outages are made by a TCP proxy the test controls.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use docqa::{App, Config};
use serde_json::{Value, json};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Mutex;
use tokio::task::JoinHandle;

use crate::backends::{Backend, qdrant_url};
use crate::fixtures::WARRANTY_TXT;
use crate::helpers::{TestApp, TestOptions, assert_problem};

/// Forwards TCP connections to `target` until cut; while cut, it accepts and
/// closes at once, as a host that is down but reachable would reset them.
struct Proxy {
    addr: SocketAddr,
    up: Arc<AtomicBool>,
    connections: Arc<Mutex<Vec<JoinHandle<()>>>>,
    accept: JoinHandle<()>,
}

impl Proxy {
    async fn start(target: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let up = Arc::new(AtomicBool::new(true));
        let connections: Arc<Mutex<Vec<JoinHandle<()>>>> = Arc::default();
        let accept = {
            let (up, connections) = (Arc::clone(&up), Arc::clone(&connections));
            tokio::spawn(async move {
                while let Ok((mut client, _)) = listener.accept().await {
                    if !up.load(Ordering::SeqCst) {
                        drop(client);
                        continue;
                    }
                    let pipe = tokio::spawn(async move {
                        if let Ok(mut server) = TcpStream::connect(target).await {
                            let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                        }
                    });
                    connections.lock().await.push(pipe);
                }
            })
        };
        Self {
            addr,
            up,
            connections,
            accept,
        }
    }

    /// Severs every open connection and refuses new ones.
    async fn cut(&self) {
        self.up.store(false, Ordering::SeqCst);
        for pipe in self.connections.lock().await.drain(..) {
            pipe.abort();
        }
    }

    fn restore(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

/// The `host:port` of a URL, as written.
fn host_port(url: &str) -> &str {
    let rest = url.split("://").nth(1).unwrap_or(url);
    let authority = rest.split(['/', '?']).next().unwrap_or(rest);
    authority.rsplit('@').next().unwrap_or(authority)
}

fn socket_of(url: &str) -> SocketAddr {
    let written = host_port(url).replace("localhost", "127.0.0.1");
    written.parse().unwrap_or_else(|e| panic!("{written}: {e}"))
}

async fn start_error(vars: &[(&str, &str)]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let mut all: std::collections::HashMap<String, String> =
        vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    all.insert("DOCQA_DATA_DIR".into(), dir.path().display().to_string());
    all.insert("EMBEDDER".into(), "none".into());
    let config = Config::from_vars(&all).unwrap();
    let started = std::time::Instant::now();
    let error = match App::build(config).await {
        Ok(_) => panic!("the server started without its backend"),
        Err(e) => e.to_string(),
    };
    // It waited (DOCQA_STARTUP_TIMEOUT_SECS=2), but not much longer.
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(500) && waited < Duration::from_secs(30),
        "waited {waited:?}"
    );
    error
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unreachable_postgres_stops_the_start_naming_it() {
    let error = start_error(&[
        ("DATABASE_URL", "postgres://docqa:secret@127.0.0.1:9/kb"),
        ("DOCQA_STARTUP_TIMEOUT_SECS", "2"),
    ])
    .await;
    assert!(
        error.contains("Postgres at 127.0.0.1:9/kb") && error.contains("DATABASE_URL"),
        "{error}"
    );
    assert!(!error.contains("secret"), "no password in messages: {error}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unreachable_qdrant_stops_the_start_naming_it() {
    let error = start_error(&[
        ("QDRANT_URL", "http://127.0.0.1:9"),
        ("DOCQA_STARTUP_TIMEOUT_SECS", "2"),
    ])
    .await;
    assert!(
        error.contains("Qdrant at http://127.0.0.1:9") && error.contains("QDRANT_URL"),
        "{error}"
    );
}

/// Searches until one answers 200, for at most a minute.
async fn until_searchable(app: &TestApp, query: &Value) -> Value {
    for _ in 0..240 {
        let response = app.post_json("/v1/search", query).await;
        if response.status() == 200 {
            return response.json().await.unwrap();
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    panic!("the server did not recover");
}

/// What the outage test needs of one backend: the vars that route it through
/// the proxy, and the /readyz component that must report it.
async fn through_proxy(backend: Backend, test: &str) -> Option<(TestApp, Proxy, &'static str)> {
    let provisioned = backend.provision(test).await?;
    let (proxy, vars, component) = if backend == Backend::PostgresEdge {
        let direct = provisioned.vars["DATABASE_URL"].clone();
        let proxy = Proxy::start(socket_of(&direct)).await;
        let url = direct.replacen(host_port(&direct), &proxy.addr.to_string(), 1);
        (proxy, vec![("DATABASE_URL", url)], "catalog")
    } else {
        let proxy = Proxy::start(socket_of(&qdrant_url()?)).await;
        let url = format!("http://{}", proxy.addr);
        (
            proxy,
            vec![("QDRANT_URL", url), ("QDRANT_TIMEOUT_SECS", "3".into())],
            "index",
        )
    };
    let options = TestOptions {
        vars,
        ..TestOptions::default()
    };
    let app = TestApp::spawn_provisioned(provisioned, options).await;
    Some((app, proxy, component))
}

async fn a_backend_down_while_running_is_a_quick_503_then_recovers(backend: Backend) {
    let test = "a_backend_down_while_running_is_a_quick_503_then_recovers";
    let Some((app, proxy, component)) = through_proxy(backend, test).await else {
        return;
    };
    app.ingest("terms.txt", WARRANTY_TXT.into()).await;
    let query = json!({"query": "How long is the warranty?", "top_k": 1});
    assert_eq!(
        app.search(None, query.clone()).await["results"]
            .as_array()
            .unwrap()
            .len(),
        1
    );

    proxy.cut().await;
    let started = std::time::Instant::now();
    let refused = app.post_json("/v1/search", &query).await;
    assert!(refused.headers().contains_key("retry-after"));
    assert_problem(refused, 503, "/problems/service-unavailable").await;
    // Quick: the pool's and the client's timeouts, not a hang.
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "took {:?}",
        started.elapsed()
    );
    let ready = app.get("/readyz").await;
    assert_eq!(ready.status(), 503);
    let ready: Value = ready.json().await.unwrap();
    assert_eq!(ready[component]["ok"], false, "{ready}");
    let uploaded = app
        .upload(
            None,
            &[("later.txt", b"Uploaded while a backend is down.".to_vec())],
            None,
            false,
        )
        .await;
    assert!(
        uploaded.status() == 503 || uploaded.status() == 202,
        "{}",
        uploaded.status()
    );

    proxy.restore();
    let found = until_searchable(&app, &query).await;
    assert_eq!(found["results"][0]["filename"], "terms.txt");
    let ready = app.get("/readyz").await;
    assert_eq!(ready.status(), 200);
}

mod postgres_edge {
    #[tokio::test(flavor = "multi_thread")]
    async fn a_backend_down_while_running_is_a_quick_503_then_recovers() {
        super::a_backend_down_while_running_is_a_quick_503_then_recovers(crate::backends::Backend::PostgresEdge).await
    }
}

mod sqlite_qdrant {
    #[tokio::test(flavor = "multi_thread")]
    async fn a_backend_down_while_running_is_a_quick_503_then_recovers() {
        super::a_backend_down_while_running_is_a_quick_503_then_recovers(crate::backends::Backend::SqliteQdrant).await
    }
}
