//! Collections and documents deleted while their jobs run, on the real binary:
//! the server stays up, and what is deleted leaves nothing behind — no index
//! directory, no stored file, no vector.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use docqa::domain::{CollectionName, DocumentId};
use docqa::index::{EdgeIndex, VectorIndex};
use serde_json::{Value, json};
use tokio::sync::Mutex;

use crate::backends::{Backend, Provisioned, on_every_backend};
use crate::fixtures::unique_text;
use crate::helpers::{corpus, http_client};
use crate::server::Server;

on_every_backend!(
    creating_reindexing_and_deleting_300_collections_keeps_the_server_up_and_leaves_no_directory,
    four_clients_doing_everything_at_once_for_a_minute_leave_a_consistent_server,
);

/// The server on a backend, or `None` (said) when that backend is not here.
async fn serve(backend: Backend, test: &str, data: &Path) -> Option<(Server, Provisioned)> {
    let provisioned = backend.provision(test).await?;
    let vars: Vec<(&str, &str)> = provisioned.vars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let server = Server::start(data, &vars);
    server.ready(&http_client()).await;
    Some((server, provisioned))
}

fn uses_edge(provisioned: &Provisioned) -> bool {
    !provisioned.vars.contains_key("QDRANT_URL")
}

/// The names under `<data>/index`, each collection's directories and pointer
/// files (`name`, `name.g3`, `name.live`) reduced to the collection's name.
fn index_owners(data: &Path) -> HashSet<String> {
    std::fs::read_dir(data.join("index"))
        .map(|entries| {
            entries
                .flatten()
                .map(|e| {
                    let name = e.file_name().to_string_lossy().to_string();
                    name.split('.').next().unwrap_or_default().to_string()
                })
                .collect()
        })
        .unwrap_or_default()
}

async fn creating_reindexing_and_deleting_300_collections_keeps_the_server_up_and_leaves_no_directory(
    backend: Backend,
) {
    let data = tempfile::tempdir().unwrap();
    let test = "creating_reindexing_and_deleting_300_collections";
    let Some((mut server, provisioned)) = serve(backend, test, data.path()).await else {
        return;
    };
    let client = http_client();
    let started = Instant::now();
    for i in 0..300 {
        let name = format!("x{i}r{}", fastrand::u32(..));
        let created = client
            .post(server.url("/v1/collections"))
            .json(&json!({"name": name}))
            .send()
            .await;
        let created = created.unwrap_or_else(|e| panic!("iteration {i}: {e}; server log:\n{}", server.log_tail()));
        assert_eq!(created.status(), 201, "iteration {i}");
        let reindex = client
            .post(server.url(&format!("/v1/collections/{name}/reindex")))
            .send()
            .await
            .unwrap();
        assert_eq!(reindex.status(), 202, "iteration {i}");
        let deleted = client
            .delete(server.url(&format!("/v1/collections/{name}")))
            .send()
            .await
            .unwrap();
        assert_eq!(
            deleted.status(),
            204,
            "iteration {i}: {}",
            deleted.text().await.unwrap_or_default()
        );
    }
    eprintln!(
        "{backend:?}: 300 create/reindex/delete rounds in {:?}",
        started.elapsed()
    );

    assert!(server.is_running(), "the server died; its log:\n{}", server.log_tail());
    assert_eq!(client.get(server.url("/readyz")).send().await.unwrap().status(), 200);
    let listed: Value = client
        .get(server.url("/v1/collections"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let names: Vec<&str> = listed["collections"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["default"], "{listed}");
    // The jobs were cancelled with their collections, and no worker is stuck.
    let uploaded = client
        .post(server.url("/v1/documents?wait=true"))
        .multipart(reqwest::multipart::Form::new().part(
            "file",
            reqwest::multipart::Part::bytes(unique_text("afterloop").into_bytes()).file_name("after.txt"),
        ))
        .send()
        .await
        .unwrap();
    let uploaded: Value = uploaded.json().await.unwrap();
    assert_eq!(uploaded["documents"][0]["status"], "ready", "{uploaded}");
    assert!(server.panics().is_empty(), "panics in the log: {:#?}", server.panics());
    server.stop();
    if uses_edge(&provisioned) {
        assert_eq!(
            index_owners(data.path()),
            HashSet::from(["default".to_string()]),
            "only default's index is left"
        );
    }
}

/// What a chaos client did, by route kind and status.
#[derive(Default)]
struct Tally {
    statuses: HashMap<String, u32>,
    /// Server errors and broken connections, with what was asked.
    failures: Vec<String>,
}

impl Tally {
    fn record(&mut self, action: &str, status: u16) {
        *self.statuses.entry(format!("{action} {status}")).or_default() += 1;
        if status >= 500 {
            self.failures.push(format!("{action} answered {status}"));
        }
    }
}

const CHAOS_COLLECTIONS: [&str; 5] = ["c0", "c1", "c2", "c3", "default"];

async fn chaos_client(url: String, seed: u64, stop: Arc<AtomicBool>, tally: Arc<Mutex<Tally>>) {
    let client = http_client();
    let mut rng = fastrand::Rng::with_seed(seed);
    let pdf = corpus("pdflatex-4-pages.pdf");
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        n += 1;
        let collection = CHAOS_COLLECTIONS[rng.usize(..CHAOS_COLLECTIONS.len())];
        let base = format!("{url}/v1/collections/{collection}");
        let pick = rng.u32(..100);
        let (action, response) = match pick {
            0..=9 => (
                "create",
                client
                    .post(format!("{url}/v1/collections"))
                    .json(&json!({"name": collection}))
                    .send()
                    .await,
            ),
            10..=34 => {
                let (name, bytes) = if rng.u32(..4) == 0 {
                    (
                        "paper.pdf",
                        [pdf.clone(), format!("\n%chaos {seed} {n}\n").into_bytes()].concat(),
                    )
                } else {
                    ("memo.txt", unique_text(&format!("chaos{seed}x{n}")).into_bytes())
                };
                let form = reqwest::multipart::Form::new()
                    .part("file", reqwest::multipart::Part::bytes(bytes).file_name(name));
                (
                    "upload",
                    client.post(format!("{base}/documents")).multipart(form).send().await,
                )
            }
            35..=49 => (
                "search",
                client
                    .post(format!("{base}/search"))
                    .json(&json!({"query": "supplier contracts review"}))
                    .send()
                    .await,
            ),
            50..=59 => (
                "query",
                client
                    .post(format!("{base}/query"))
                    .json(&json!({"question": "What does the project review?"}))
                    .send()
                    .await,
            ),
            60..=66 => {
                let response = client
                    .post(format!("{base}/query"))
                    .json(&json!({"question": "What is reviewed every quarter?", "stream": true}))
                    .send()
                    .await;
                match response {
                    Ok(response) => {
                        let status = response.status().as_u16();
                        match response.text().await {
                            Ok(body)
                                if status == 200
                                    && !(body.contains("event: answer") || body.contains("event: error")) =>
                            {
                                tally
                                    .lock()
                                    .await
                                    .failures
                                    .push(format!("SSE ended without an answer or error: {body}"));
                            }
                            Ok(_) => {}
                            Err(e) => tally.lock().await.failures.push(format!("SSE body broke: {e}")),
                        }
                        tally.lock().await.record("query-sse", status);
                    }
                    Err(e) => tally.lock().await.failures.push(format!("query-sse: {e}")),
                }
                continue;
            }
            67..=74 => ("reindex", client.post(format!("{base}/reindex")).send().await),
            75..=81 => ("delete-collection", client.delete(&base).send().await),
            82..=93 => {
                let listed = client.get(format!("{base}/documents?limit=50")).send().await;
                let Ok(listed) = listed else {
                    tally
                        .lock()
                        .await
                        .failures
                        .push("list before delete: connection failed".into());
                    continue;
                };
                let listed: Value = listed.json().await.unwrap_or_default();
                let ids: Vec<String> = listed["documents"]
                    .as_array()
                    .map(|docs| {
                        docs.iter()
                            .filter_map(|d| d["id"].as_str().map(str::to_string))
                            .collect()
                    })
                    .unwrap_or_default();
                if ids.is_empty() {
                    continue;
                }
                let id = &ids[rng.usize(..ids.len())];
                (
                    "delete-document",
                    client.delete(format!("{base}/documents/{id}")).send().await,
                )
            }
            _ => ("list", client.get(format!("{base}/documents")).send().await),
        };
        match response {
            Ok(response) => tally.lock().await.record(action, response.status().as_u16()),
            Err(e) => tally.lock().await.failures.push(format!("{action}: {e}")),
        }
    }
}

async fn four_clients_doing_everything_at_once_for_a_minute_leave_a_consistent_server(backend: Backend) {
    let data = tempfile::tempdir().unwrap();
    let test = "four_clients_doing_everything_at_once";
    let Some((mut server, provisioned)) = serve(backend, test, data.path()).await else {
        return;
    };
    let client = http_client();
    let stop = Arc::new(AtomicBool::new(false));
    let tally = Arc::new(Mutex::new(Tally::default()));
    let clients: Vec<_> = (0..4)
        .map(|seed| tokio::spawn(chaos_client(server.url.clone(), seed, stop.clone(), tally.clone())))
        .collect();
    tokio::time::sleep(Duration::from_secs(60)).await;
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.await.unwrap();
    }
    let tally = Arc::try_unwrap(tally).ok().unwrap().into_inner();
    let mut statuses: Vec<_> = tally.statuses.iter().collect();
    statuses.sort();
    eprintln!("{backend:?}: chaos requests by route and status: {statuses:?}");
    assert!(server.is_running(), "the server died; its log:\n{}", server.log_tail());
    assert!(
        tally.failures.is_empty(),
        "{:#?}\nserver log:\n{}",
        tally.failures,
        server.log_tail()
    );
    for expected in [
        "upload 202",
        "delete-collection 204",
        "reindex 202",
        "search 200",
        "query-sse 200",
        "delete-document 204",
    ] {
        assert!(
            tally.statuses.contains_key(expected),
            "the chaos never did {expected}: {statuses:?}"
        );
    }

    // Let every job end, then look at what is left.
    let deadline = Instant::now() + Duration::from_secs(300);
    let (collections, documents) = loop {
        let listed: Value = client
            .get(server.url("/v1/collections"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let collections: Vec<Value> = listed["collections"].as_array().unwrap().clone();
        let mut documents: HashMap<String, Vec<Value>> = HashMap::new();
        for c in &collections {
            let name = c["name"].as_str().unwrap();
            let listed: Value = client
                .get(server.url(&format!("/v1/collections/{name}/documents?limit=500")))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            documents.insert(name.to_string(), listed["documents"].as_array().unwrap().clone());
        }
        let settled = collections.iter().all(|c| c["index_status"] == "ready")
            && documents
                .values()
                .flatten()
                .all(|d| d["status"] == "ready" || d["status"] == "failed");
        if settled {
            break (collections, documents);
        }
        assert!(Instant::now() < deadline, "jobs did not settle: {documents:?}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    for (collection, docs) in &documents {
        let search = client
            .post(server.url(&format!("/v1/collections/{collection}/search")))
            .json(&json!({"query": "supplier contracts"}))
            .send()
            .await
            .unwrap();
        assert_eq!(search.status(), 200, "{collection} answers");
        for d in docs {
            if d["status"] == "failed" {
                assert!(
                    d["error"].as_str().is_some_and(|e| !e.is_empty()),
                    "a failed document says why: {d}"
                );
            }
        }
    }
    assert!(server.panics().is_empty(), "panics in the log: {:#?}", server.panics());
    server.stop();

    // Files: exactly those of the documents left.
    let stored: HashSet<String> = std::fs::read_dir(data.path().join("files"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().to_string())
        .collect();
    let kept: HashSet<String> = documents
        .values()
        .flatten()
        .map(|d| d["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(stored, kept, "no file of a deleted document, none missing");
    if !uses_edge(&provisioned) {
        return;
    }
    // Index: only the collections left, and in each only its ready documents' chunks.
    let names: HashSet<String> = collections
        .iter()
        .map(|c| c["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        index_owners(data.path()),
        names,
        "no index directory of a deleted collection"
    );
    let index = EdgeIndex::open(data.path().join("index")).unwrap();
    for (collection, docs) in &documents {
        let name = CollectionName::parse(collection).unwrap();
        let mut chunks = 0;
        for d in docs {
            let id: DocumentId = d["id"].as_str().unwrap().parse().unwrap();
            let expected = if d["status"] == "ready" {
                d["chunks"].as_u64().unwrap() as usize
            } else {
                0
            };
            assert_eq!(index.count_document(&name, id).await.unwrap(), expected, "{d}");
            chunks += expected;
        }
        let points = match index.count_points(&name).await {
            Ok(points) => points,
            // Never written to: no shard on disk.
            Err(docqa::index::IndexError::MissingCollection(_)) => 0,
            Err(e) => panic!("{collection}: {e}"),
        };
        assert_eq!(
            points, chunks,
            "{collection}: no vector of a deleted or failed document"
        );
    }
}
