//! The `Catalog` contract on SQLite and on Postgres: the durable job queue's
//! rules, which the HTTP tests cannot time precisely.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use docqa::Config;
use docqa::catalog::{Catalog, ClaimedJob, InsertOutcome, JobOutcome, NewCollection};
use docqa::domain::{
    AttemptOutcome, CollectionName, ContentType, DeliveryStatus, DocumentId, DocumentStatus, EmbeddingModel, JobId,
    JobKind, JobStatus, Metadata, NewDocument, TenantName, Webhook, WebhookEvent, WebhookId,
};

use crate::backends::Backend;

struct TestCatalog {
    catalog: Arc<dyn Catalog>,
    config: Config,
    _dir: tempfile::TempDir,
    _backend: crate::backends::Provisioned,
}

async fn open(backend: Backend, test: &str) -> Option<TestCatalog> {
    let provisioned = backend.provision(test).await?;
    let dir = tempfile::tempdir().unwrap();
    let mut vars: HashMap<String, String> = provisioned.vars.clone();
    vars.insert("DOCQA_DATA_DIR".into(), dir.path().display().to_string());
    let config = Config::from_vars(&vars).expect("config");
    let catalog = docqa::catalog::connect(&config.database).await.expect("catalog opens");
    Some(TestCatalog {
        catalog,
        config,
        _dir: dir,
        _backend: provisioned,
    })
}

fn model(name: &str, dimension: usize) -> EmbeddingModel {
    EmbeddingModel {
        name: name.into(),
        variant: "test".into(),
        dimension,
    }
}

/// Creates a collection without a model, named `name`.
async fn collection(catalog: &dyn Catalog, name: &str) -> CollectionName {
    let name = CollectionName::parse(name).unwrap();
    catalog
        .create_collection(&NewCollection {
            name: name.clone(),
            description: None,
            embedding_model: None,
        })
        .await
        .unwrap();
    name
}

/// A plain-text document named `filename` whose hash is `sha256`.
fn new_document(collection: &CollectionName, filename: String, sha256: &str) -> NewDocument {
    NewDocument {
        id: DocumentId::new(),
        job_id: JobId::new(),
        collection: collection.clone(),
        filename,
        content_type: ContentType::PlainText,
        bytes: sha256.len() as u64,
        sha256: sha256.to_string(),
        metadata: Metadata::default(),
        access: Vec::new(),
    }
}

async fn upload(catalog: &dyn Catalog, collection: &CollectionName, content: &str) -> (DocumentId, JobId) {
    let new = new_document(collection, format!("{content}.txt"), content);
    match catalog.insert_document(&new).await.unwrap() {
        InsertOutcome::Created(document) => (document.id, document.job_id),
        InsertOutcome::Duplicate(_) => panic!("{content} was new"),
    }
}

fn claimed_id(claimed: Option<ClaimedJob>) -> Option<JobId> {
    claimed.map(|c| c.job().id)
}

async fn a_reindex_runs_alone_in_its_collection(backend: Backend) {
    let Some(t) = open(backend, "a_reindex_runs_alone_in_its_collection").await else {
        return;
    };
    let catalog = t.catalog.as_ref();
    let docs = CollectionName::parse("docs").unwrap();
    let other = CollectionName::parse("other").unwrap();
    for name in [&docs, &other] {
        catalog
            .create_collection(&NewCollection {
                name: name.clone(),
                description: None,
                embedding_model: Some(model("old-model", 384)),
            })
            .await
            .unwrap();
    }
    let (first_doc, first) = upload(catalog, &docs, "first").await;
    let reindex = catalog.enqueue_reindex(&docs).await.unwrap();
    assert_eq!(reindex.kind, JobKind::Reindex);
    assert_eq!(reindex.document_id, None);
    assert_eq!(
        catalog.enqueue_reindex(&docs).await.unwrap().id,
        reindex.id,
        "asked twice, one job"
    );
    let (_, after) = upload(catalog, &docs, "after").await;
    let (_, elsewhere) = upload(catalog, &other, "elsewhere").await;

    // The oldest first; its document is processing.
    let claimed = catalog.claim_next_job().await.unwrap();
    let Some(ClaimedJob::Ingest { job, document }) = claimed else {
        panic!("the first upload comes first")
    };
    assert_eq!(
        (job.id, document.id, document.status),
        (first, first_doc, DocumentStatus::Processing)
    );
    // The re-index waits for the running ingest; the later upload waits behind
    // the re-index; another collection is not held up.
    assert_eq!(claimed_id(catalog.claim_next_job().await.unwrap()), Some(elsewhere));
    assert_eq!(claimed_id(catalog.claim_next_job().await.unwrap()), None);
    assert!(
        catalog
            .finish_job(
                first,
                &JobOutcome::Ingested {
                    pages: 1,
                    chunks: 2,
                    page_sources: Vec::new(),
                }
            )
            .await
            .unwrap()
    );

    let claimed = catalog.claim_next_job().await.unwrap();
    let Some(ClaimedJob::Reindex { job, collection }) = claimed else {
        panic!("the re-index is next")
    };
    assert_eq!(
        (job.id, job.status, collection.name.clone()),
        (reindex.id, JobStatus::Running, docs.clone())
    );
    assert_eq!(
        catalog.active_reindex(&docs).await.unwrap().map(|j| j.id),
        Some(reindex.id)
    );
    assert_eq!(
        claimed_id(catalog.claim_next_job().await.unwrap()),
        None,
        "nothing runs beside it"
    );
    assert!(
        catalog
            .finish_job(
                reindex.id,
                &JobOutcome::Reindexed {
                    model: Some(model("new-model", 64))
                }
            )
            .await
            .unwrap()
    );
    let stored = catalog.get_collection(&docs).await.unwrap().unwrap();
    assert_eq!(stored.embedding_model, Some(model("new-model", 64)));
    assert_eq!(catalog.active_reindex(&docs).await.unwrap().map(|j| j.id), None);
    assert_eq!(claimed_id(catalog.claim_next_job().await.unwrap()), Some(after));
}

async fn a_job_that_meets_a_backend_down_waits_and_keeps_its_reason(backend: Backend) {
    let Some(t) = open(backend, "a_job_that_meets_a_backend_down_waits_and_keeps_its_reason").await else {
        return;
    };
    let catalog = t.catalog.as_ref();
    let docs = collection(catalog, "docs").await;
    let (document, job) = upload(catalog, &docs, "waiting").await;
    assert_eq!(claimed_id(catalog.claim_next_job().await.unwrap()), Some(job));
    let retry = JobOutcome::Retry {
        reason: "vector index unavailable: connection refused".into(),
        after: Duration::from_secs(3600),
    };
    assert!(catalog.finish_job(job, &retry).await.unwrap());
    let stored = catalog.get_job(job).await.unwrap().unwrap();
    assert_eq!(stored.status, JobStatus::Queued);
    assert_eq!(
        stored.error.as_deref(),
        Some("vector index unavailable: connection refused")
    );
    assert_eq!(
        catalog.get_document(&docs, document).await.unwrap().unwrap().status,
        DocumentStatus::Queued
    );
    assert_eq!(
        claimed_id(catalog.claim_next_job().await.unwrap()),
        None,
        "not before its time"
    );

    let soon = JobOutcome::Retry {
        reason: "still down".into(),
        after: Duration::ZERO,
    };
    assert!(catalog.finish_job(job, &soon).await.unwrap());
    let claimed = catalog.claim_next_job().await.unwrap();
    let Some(ClaimedJob::Ingest { job: again, .. }) = claimed else {
        panic!("due now")
    };
    assert_eq!((again.id, again.attempts, again.error), (job, 2, None));

    // A crash leaves it running; the next start queues it again.
    assert_eq!(catalog.requeue_interrupted_jobs().await.unwrap(), 1);
    assert_eq!(claimed_id(catalog.claim_next_job().await.unwrap()), Some(job));
    assert!(
        catalog
            .finish_job(
                job,
                &JobOutcome::Failed {
                    reason: "corrupt: truncated".into()
                }
            )
            .await
            .unwrap()
    );
    let document = catalog.get_document(&docs, document).await.unwrap().unwrap();
    assert_eq!(
        (document.status, document.error.as_deref()),
        (DocumentStatus::Failed, Some("corrupt: truncated"))
    );
}

async fn concurrent_inserts_of_the_same_bytes_make_one_document(backend: Backend) {
    let Some(t) = open(backend, "concurrent_inserts_of_the_same_bytes_make_one_document").await else {
        return;
    };
    let docs = collection(t.catalog.as_ref(), "docs").await;
    let attempts = (0..8).map(|_| {
        let catalog = Arc::clone(&t.catalog);
        let docs = docs.clone();
        tokio::spawn(async move {
            let new = new_document(&docs, "same.txt".into(), "same-bytes");
            catalog.insert_document(&new).await.unwrap()
        })
    });
    let outcomes = futures_util::future::join_all(attempts).await;
    let created = outcomes
        .iter()
        .filter(|o| matches!(o.as_ref().unwrap(), InsertOutcome::Created(_)))
        .count();
    assert_eq!(created, 1);
    assert_eq!(t.catalog.document_ids(&docs).await.unwrap().len(), 1);
}

/// A catalog written by the version before tenants, keys and document access
/// (its migrations alone: SQLite 0001–0002, Postgres 0001) opens as tenant
/// `default`'s, every document readable by everyone of it.
async fn a_catalog_from_before_tenants_opens_as_tenant_default(backend: Backend) {
    let Some(provisioned) = backend
        .provision("a_catalog_from_before_tenants_opens_as_tenant_default")
        .await
    else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let mut vars: HashMap<String, String> = provisioned.vars.clone();
    vars.insert("DOCQA_DATA_DIR".into(), dir.path().display().to_string());
    let config = Config::from_vars(&vars).expect("config");
    let url = secrecy::ExposeSecret::expose_secret(&config.database.url).to_string();
    let (kind, old) = match backend {
        Backend::PostgresEdge => ("postgres", 1),
        _ => ("sqlite", 2),
    };
    // The old migrations, as the old binary ran them (sqlx keeps their checksums).
    let old_dir = tempfile::tempdir().unwrap();
    let mut files: Vec<_> = std::fs::read_dir(format!("{}/migrations/{kind}", env!("CARGO_MANIFEST_DIR")))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    for file in files.iter().take(old) {
        std::fs::copy(file, old_dir.path().join(file.file_name().unwrap())).unwrap();
    }
    let migrator = sqlx::migrate::Migrator::new(old_dir.path()).await.unwrap();
    let document = uuid::Uuid::new_v4();
    let job = uuid::Uuid::new_v4();
    let at = "2026-12-01T10:00:00.000000Z";
    let progress = serde_json::to_string(&docqa::domain::JobProgress::queued()).unwrap();
    let statements = [
        format!("INSERT INTO collections (name, created_at) VALUES ('legacy', '{at}')"),
        format!(
            "INSERT INTO documents (id, collection, filename, content_type, bytes, sha256, pages, chunks, status, \
             metadata, job_id, created_at, updated_at) VALUES ('{document}', 'legacy', 'old.txt', 'text/plain', 3, \
             'abc', 1, 1, 'ready', '{{}}', '{job}', '{at}', '{at}')"
        ),
        format!(
            "INSERT INTO jobs (id, kind, collection, document_id, status, progress, attempts, created_at, updated_at) \
             VALUES ('{job}', 'ingest', 'legacy', '{document}', 'succeeded', '{progress}', 1, '{at}', '{at}')"
        ),
    ];
    if kind == "sqlite" {
        let options: sqlx::sqlite::SqliteConnectOptions = url.parse().unwrap();
        let pool = sqlx::SqlitePool::connect_with(options.create_if_missing(true))
            .await
            .unwrap();
        migrator.run(&pool).await.unwrap();
        for statement in &statements {
            sqlx::query(statement).execute(&pool).await.unwrap();
        }
        pool.close().await;
    } else {
        let pool = sqlx::PgPool::connect(&url).await.unwrap();
        migrator.run(&pool).await.unwrap();
        for statement in &statements {
            sqlx::query(statement).execute(&pool).await.unwrap();
        }
        pool.close().await;
    }

    let catalog = docqa::catalog::connect(&config.database)
        .await
        .expect("the new version opens it");
    let default = docqa::domain::TenantName::default_tenant();
    let names: Vec<String> = catalog
        .list_collections(&default)
        .await
        .unwrap()
        .iter()
        .map(|c| c.name.name().to_string())
        .collect();
    assert_eq!(names, ["legacy"]);
    let legacy = CollectionName::parse("legacy").unwrap();
    assert_eq!(legacy.tenant(), default);
    let found = catalog
        .get_document(&legacy, DocumentId(document))
        .await
        .unwrap()
        .expect("the document");
    assert!(found.access.is_empty(), "open to the whole tenant");
    assert!(docqa::domain::Readers::Principals(vec![]).may_read(&found.access));
    let tenants = catalog.list_tenants().await.unwrap();
    assert_eq!(tenants.len(), 1);
    assert_eq!(tenants[0].name, default);
    assert!(catalog.get_job(JobId(job)).await.unwrap().is_some());
    catalog.close().await;
}

/// A statement the database refuses for its data (a NOT NULL column left empty,
/// NUL in a Postgres text) is `Rejected`: a job fails on it at once instead of
/// being retried 20 times as if the database were down; a database that cannot
/// be reached is still `Unavailable`.
async fn a_refused_statement_is_not_reported_as_an_outage(backend: Backend) {
    use docqa::catalog::CatalogError;
    let Some(t) = open(backend, "a_refused_statement_is_not_reported_as_an_outage").await else {
        return;
    };
    let url = secrecy::ExposeSecret::expose_secret(&t.config.database.url).to_string();
    let refused: Vec<sqlx::Error> = match backend {
        Backend::PostgresEdge => {
            let pool = sqlx::PgPool::connect(&url).await.unwrap();
            let errors = vec![
                sqlx::query("INSERT INTO jobs (id) VALUES (NULL)")
                    .execute(&pool)
                    .await
                    .unwrap_err(),
                sqlx::query("SELECT $1::text")
                    .bind("a\0b")
                    .execute(&pool)
                    .await
                    .unwrap_err(),
            ];
            pool.close().await;
            errors
        }
        _ => {
            let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
            let errors = vec![
                sqlx::query("INSERT INTO jobs (id) VALUES (NULL)")
                    .execute(&pool)
                    .await
                    .unwrap_err(),
            ];
            pool.close().await;
            errors
        }
    };
    for error in refused {
        let shown = error.to_string();
        let classified = CatalogError::from(error);
        assert!(
            matches!(classified, CatalogError::Rejected(_)),
            "{shown}: {classified:?}"
        );
    }
    // Through the catalog itself: Postgres cannot store NUL in a text column.
    if backend == Backend::PostgresEdge {
        let docs = collection(t.catalog.as_ref(), "refused").await;
        let new = new_document(&docs, "a\0b.txt".into(), "nul");
        let error = t.catalog.insert_document(&new).await.unwrap_err();
        assert!(matches!(error, CatalogError::Rejected(_)), "{error:?}");
    }
    // Nothing listens on port 1: that is an outage, worth a retry.
    let down = match backend {
        Backend::PostgresEdge => sqlx::PgPool::connect("postgres://nobody@127.0.0.1:1/none")
            .await
            .unwrap_err(),
        _ => sqlx::SqlitePool::connect("sqlite:///nonexistent-dir/docqa/none.db")
            .await
            .unwrap_err(),
    };
    assert!(matches!(CatalogError::from(down), CatalogError::Unavailable(_)));
}

/// The webhook outbox: a job's end puts its event in the outbox of the
/// tenant's subscribers (and only theirs), in the same transaction; a claimed
/// delivery is leased; an attempt's outcome is kept.
async fn a_jobs_end_fills_the_webhook_outbox_and_claims_are_leased(backend: Backend) {
    let test = "a_jobs_end_fills_the_webhook_outbox_and_claims_are_leased";
    let Some(t) = open(backend, test).await else {
        return;
    };
    let catalog = t.catalog.as_ref();
    let docs = collection(catalog, "docs").await;
    let hook = |events: Vec<WebhookEvent>, tenant: &str| Webhook {
        id: WebhookId::new(),
        tenant: TenantName::parse(tenant).unwrap(),
        url: "http://93.184.215.14/hook".into(),
        events,
        secret: "a-secret-for-the-test".into(),
        created_at: chrono::Utc::now(),
    };
    let ready_only = hook(vec![WebhookEvent::DocumentReady], "default");
    let failures = hook(vec![WebhookEvent::DocumentFailed, WebhookEvent::ReindexDone], "default");
    catalog
        .create_tenant(&TenantName::parse("acme").unwrap())
        .await
        .unwrap();
    let other_tenant = hook(vec![WebhookEvent::DocumentReady], "acme");
    for webhook in [&ready_only, &failures, &other_tenant] {
        catalog.create_webhook(webhook).await.unwrap();
    }
    let listed = catalog.list_webhooks(&TenantName::default_tenant()).await.unwrap();
    assert_eq!(listed.len(), 2);
    let stored = listed.iter().find(|w| w.id == failures.id).unwrap();
    assert_eq!((&stored.events, &stored.url), (&failures.events, &failures.url));

    let (document, job) = upload(catalog, &docs, "told").await;
    assert_eq!(claimed_id(catalog.claim_next_job().await.unwrap()), Some(job));
    let ready = JobOutcome::Ingested {
        pages: 1,
        chunks: 3,
        page_sources: Vec::new(),
    };
    assert!(catalog.finish_job(job, &ready).await.unwrap());
    // Only the subscriber to `document.ready` of the document's tenant.
    assert!(catalog.webhook_deliveries(failures.id, 10).await.unwrap().is_empty());
    assert!(
        catalog
            .webhook_deliveries(other_tenant.id, 10)
            .await
            .unwrap()
            .is_empty()
    );
    let queued = catalog.webhook_deliveries(ready_only.id, 10).await.unwrap();
    assert_eq!(queued.len(), 1);
    let delivery = &queued[0];
    assert_eq!(
        (delivery.event, delivery.status, delivery.attempts),
        (WebhookEvent::DocumentReady, DeliveryStatus::Pending, 0)
    );
    assert_eq!(delivery.payload["document_id"], document.to_string());
    assert_eq!(delivery.payload["chunks"], 3);
    assert_eq!(delivery.payload["id"], delivery.id.to_string());

    let now = chrono::Utc::now();
    let lease = now + chrono::Duration::seconds(30);
    let claimed = catalog.claim_deliveries(now, lease, 10).await.unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].1.secret, ready_only.secret);
    // Leased: not claimed again until the lease is out.
    assert!(catalog.claim_deliveries(now, lease, 10).await.unwrap().is_empty());
    assert_eq!(catalog.claim_deliveries(lease, lease, 10).await.unwrap().len(), 1);

    let retry_at = chrono::Utc::now() + chrono::Duration::hours(1);
    let failed = AttemptOutcome::Failed {
        status: Some(503),
        error: "the endpoint answered HTTP 503".into(),
        retry_at: Some(retry_at),
    };
    catalog.record_attempt(delivery.id, &failed).await.unwrap();
    let after = &catalog.webhook_deliveries(ready_only.id, 10).await.unwrap()[0];
    assert_eq!(
        (after.status, after.attempts, after.last_status),
        (DeliveryStatus::Pending, 1, Some(503))
    );
    assert!(
        catalog
            .claim_deliveries(chrono::Utc::now(), lease, 10)
            .await
            .unwrap()
            .is_empty()
    );
    catalog
        .record_attempt(delivery.id, &AttemptOutcome::Delivered { status: 200 })
        .await
        .unwrap();
    let after = &catalog.webhook_deliveries(ready_only.id, 10).await.unwrap()[0];
    assert_eq!(
        (after.status, after.attempts, after.last_error.as_deref()),
        (DeliveryStatus::Delivered, 2, None)
    );
    assert!(after.delivered_at.is_some());

    // A failed document tells the other subscriber; a deleted webhook goes with its deliveries.
    let (_, job) = upload(catalog, &docs, "broken").await;
    assert_eq!(claimed_id(catalog.claim_next_job().await.unwrap()), Some(job));
    let broken = JobOutcome::Failed {
        reason: "corrupt: no xref".into(),
    };
    assert!(catalog.finish_job(job, &broken).await.unwrap());
    let told = catalog.webhook_deliveries(failures.id, 10).await.unwrap();
    assert_eq!(told.len(), 1);
    assert_eq!(told[0].payload["error"], "corrupt: no xref");
    assert!(
        !catalog
            .delete_webhook(&TenantName::parse("acme").unwrap(), failures.id)
            .await
            .unwrap()
    );
    assert!(
        catalog
            .delete_webhook(&TenantName::default_tenant(), failures.id)
            .await
            .unwrap()
    );
    assert!(catalog.get_webhook(failures.id).await.unwrap().is_none());
    assert!(catalog.webhook_deliveries(failures.id, 10).await.unwrap().is_empty());
}

macro_rules! on_every_catalog {
    ($($test:ident),* $(,)?) => {
        mod sqlite {
            $( #[tokio::test(flavor = "multi_thread")] async fn $test() { super::$test(crate::backends::Backend::SqliteEdge).await } )*
        }
        mod postgres {
            $( #[tokio::test(flavor = "multi_thread")] async fn $test() { super::$test(crate::backends::Backend::PostgresEdge).await } )*
        }
    };
}

on_every_catalog!(
    a_catalog_from_before_tenants_opens_as_tenant_default,
    a_refused_statement_is_not_reported_as_an_outage,
    a_reindex_runs_alone_in_its_collection,
    a_job_that_meets_a_backend_down_waits_and_keeps_its_reason,
    concurrent_inserts_of_the_same_bytes_make_one_document,
    a_jobs_end_fills_the_webhook_outbox_and_claims_are_leased,
);
