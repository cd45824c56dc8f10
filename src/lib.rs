//! docqa: a document question-answering server.
//!
//! [`App::build`] wires the components (catalog, vector index, embedder, LLM)
//! from a [`Config`]; [`App::start`] serves them over HTTP.

pub mod answer;
pub mod auth;
pub mod background;
pub mod backoff;
pub mod bulk;
pub mod catalog;
pub mod config;
pub mod domain;
pub mod embed;
pub mod eval;
pub mod health;
pub mod http;
pub mod index;
pub mod ingest;
pub mod openai;
pub mod retrieve;
pub mod service;
pub mod store;
pub mod telemetry;
pub mod webhooks;

use std::net::TcpListener;
use std::sync::Arc;

use actix_web::dev::ServerHandle;
use actix_web::middleware::from_fn;
use actix_web::web::Data;

pub use config::Config;

use answer::{Answerer, LlmClient, OpenAiLlm};
use auth::Authenticator;
use auth::audit::{AuditLog, AuditTasks};
use auth::jwt::JwtVerifier;
use auth::keys::Keys;
use catalog::Catalog;
use embed::Bm25Encoder;
use health::{HealthChecks, Metrics};
use ingest::chunk::Chunker;
use ingest::{FileStore, InFlight, Ingestor, JobSignals, Pipeline, WorkerPool};
use retrieve::Retriever;
use service::collections::Collections;
use service::conversations::Conversations;
use service::documents::Documents;
use service::tenants::Tenants;

/// Why the server could not start; each names what to fix.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("data dir {path}: {source}")]
    DataDir { path: String, source: std::io::Error },
    #[error("catalog, {at} (DATABASE_URL): {source}")]
    Catalog { at: String, source: catalog::CatalogError },
    #[error("vector index, {at}: {source}")]
    Index { at: String, source: index::IndexError },
    #[error("embedder: {0}")]
    Embedder(#[from] embed::EmbedError),
    #[error("chunking: {0}")]
    Chunking(#[from] ingest::chunk::ChunkSettingsError),
    #[error("LLM client: {0}")]
    Llm(String),
    #[error("{0}")]
    Setup(String),
    #[error("HTTP server: {0}")]
    Http(#[from] std::io::Error),
}

/// How long shutdown waits for the audit log's last entries.
const AUDIT_FLUSH_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// The built application: every component, ready to serve.
pub struct App {
    pub config: Config,
    catalog: Arc<dyn Catalog>,
    collections: Data<Collections>,
    tenants: Data<Tenants>,
    documents: Data<Documents>,
    ingestor: Data<Ingestor>,
    retriever: Data<Retriever>,
    answerer: Data<Answerer>,
    conversations: Data<Conversations>,
    webhooks: Data<webhooks::Webhooks>,
    /// Posts the webhook outbox; stops with the app.
    _dispatcher: webhooks::dispatch::Dispatcher,
    authenticator: Data<Authenticator>,
    keys: Data<Keys>,
    audit: Data<AuditLog>,
    audit_tasks: AuditTasks,
    health: Data<HealthChecks>,
    metrics: Data<Metrics>,
    workers: WorkerPool,
}

impl App {
    /// Opens storage, loads the model, resumes interrupted jobs.
    pub async fn build(config: Config) -> Result<Self, StartError> {
        Self::build_with_llm(config, None).await
    }

    /// As [`App::build`], with an LLM client given instead of one from the config.
    pub async fn build_with_llm(config: Config, llm: Option<Arc<dyn LlmClient>>) -> Result<Self, StartError> {
        openai::install_crypto_provider();
        let data_dir = &config.data_dir;
        std::fs::create_dir_all(data_dir).map_err(|source| StartError::DataDir {
            path: data_dir.display().to_string(),
            source,
        })?;

        let catalog_error = |source| StartError::Catalog {
            at: config.database.describe(),
            source,
        };
        let catalog = catalog::connect(&config.database).await.map_err(catalog_error)?;
        tracing::info!(catalog = %config.database.describe(), "catalog open");
        let index_at = config.index.describe();
        let index = index::open(&config.index).await.map_err(|source| StartError::Index {
            at: index_at.clone(),
            source,
        })?;
        tracing::info!(index = %index_at, "vector index open");
        let files = FileStore::open(data_dir).map_err(|source| StartError::DataDir {
            path: data_dir.display().to_string(),
            source,
        })?;
        match files.remove_orphans(catalog.as_ref()).await {
            Ok(0) => {}
            Ok(removed) => tracing::info!(removed, "stored files without a document removed"),
            Err(e) => tracing::warn!(error = %e, "stored files were not checked for orphans; next start will"),
        }

        let embedding = embed::from_settings(&config.embedder, config.llm.as_ref()).await?;
        if let Some(reason) = &embedding.bm25_only_reason {
            tracing::warn!(%reason, "retrieval runs on BM25 alone");
        }
        let llm = match (llm, &config.llm) {
            (Some(llm), _) => Some(llm),
            (None, Some(settings)) => {
                let client = OpenAiLlm::new(settings).map_err(|e| StartError::Llm(e.to_string()))?;
                tracing::info!(model = %settings.model, base_url = %settings.base_url, "LLM configured");
                Some(Arc::new(client) as Arc<dyn LlmClient>)
            }
            (None, None) => {
                tracing::info!("no LLM configured: answers are extractive");
                None
            }
        };

        let bm25 = Arc::new(Bm25Encoder::new());
        let chunker = Arc::new(Chunker::new(&config.chunk, embedding.tokenizer.clone())?);
        let embedding_model = embedding.embedder.as_ref().map(|e| e.model().clone());

        let signals = JobSignals::new();
        let in_flight = InFlight::new();
        let collections = Arc::new(Collections {
            catalog: catalog.clone(),
            index: index.clone(),
            files: files.clone(),
            signals: signals.clone(),
            in_flight: in_flight.clone(),
            embedding_model: embedding_model.clone(),
            max_collections: config.ingest.max_collections,
            creating: tokio::sync::Mutex::new(()),
        });
        let tenants = Tenants::new(catalog.clone(), collections.clone());
        tenants
            .ensure_defaults()
            .await
            .map_err(|e| StartError::Setup(format!("creating the default collections: {e}")))?;

        let ocr = Arc::new(ingest::extract::Ocr::probe(
            &config.extract.ocr_command,
            &config.extract.ocr_languages,
            config.extract.ocr_max_pages,
            config.extract.ocr_timeout,
        ));
        let pipeline = Arc::new(Pipeline {
            catalog: catalog.clone(),
            index: index.clone(),
            embedder: embedding.embedder.clone(),
            bm25: bm25.clone(),
            chunker,
            files: files.clone(),
            extractor: ingest::extract::Extractor::from_settings(&config.extract, ocr.clone())
                .map_err(|e| StartError::Setup(e.to_string()))?,
            in_flight: in_flight.clone(),
        });
        let workers = WorkerPool::start(pipeline, signals.clone(), config.ingest.workers)
            .await
            .map_err(catalog_error)?;

        let retriever = Arc::new(Retriever {
            catalog: catalog.clone(),
            index: index.clone(),
            embedder: embedding.embedder.clone(),
            bm25: bm25.clone(),
            default_top_k: config.retrieval.top_k,
            hybrid: config.retrieval.hybrid,
        });
        let answerer = Arc::new(Answerer::new(
            retriever.clone(),
            llm,
            bm25,
            config.llm_max_concurrency,
            embedding.tokenizer,
            config.retrieval.history_tokens,
        ));
        let jwt = match &config.auth.jwt {
            Some(settings) => {
                tracing::info!(issuer = %settings.issuer, audience = %settings.audience, jwks = %settings.jwks_url,
                    "sign-in with the identity provider's JWTs");
                Some(JwtVerifier::new(settings.clone()).map_err(|e| StartError::Setup(e.to_string()))?)
            }
            None => None,
        };
        let authenticator = Authenticator::new(
            catalog.clone(),
            config.auth.required,
            config.auth.admin_key.as_ref(),
            jwt,
            config.auth.rate_limit,
        );
        match (config.auth.required, &config.auth.admin_key) {
            (false, _) => tracing::warn!(
                addr = %config.addr,
                "authentication is off (DOCQA_AUTH={:?} on a loopback address): every request acts as the operator",
                config.auth.mode
            ),
            (true, None) => {
                tracing::info!("authentication required; no DOCQA_ADMIN_KEY: make keys with `docqa keys create`")
            }
            (true, Some(_)) => tracing::info!("authentication required"),
        }
        let (audit, audit_tasks) = AuditLog::start(
            catalog.clone(),
            config.auth.audit_retention,
            config.auth.audit_query_text,
        );
        Ok(Self {
            audit: Data::new(audit),
            audit_tasks,
            authenticator: Data::new(authenticator),
            keys: Data::new(Keys::new(catalog.clone())),
            collections: Data::from(collections),
            tenants: Data::new(tenants),
            documents: Data::new(Documents::new(
                catalog.clone(),
                index.clone(),
                files.clone(),
                in_flight.clone(),
            )),
            ingestor: Data::new(Ingestor {
                catalog: catalog.clone(),
                files,
                signals,
                in_flight,
                embedding_model,
                max_queued_jobs: config.ingest.queue_max,
                wait_timeout: config.ingest.wait_timeout,
                quota: config.ingest.tenant_quota,
                quota_lock: Default::default(),
                upload_limits: config.ingest.uploads,
                upload_permits: Arc::new(tokio::sync::Semaphore::new(config.ingest.uploads.max_concurrent)),
            }),
            retriever: Data::from(retriever),
            conversations: Data::new(Conversations::new(catalog.clone(), answerer.clone())),
            webhooks: Data::new(webhooks::Webhooks::new(catalog.clone(), config.webhooks)),
            _dispatcher: webhooks::dispatch::Dispatcher::start(catalog.clone(), config.webhooks)
                .map_err(|e| StartError::Setup(format!("webhook client: {e}")))?,
            answerer: Data::from(answerer),
            health: Data::new(HealthChecks::new(
                catalog.clone(),
                index,
                embedding.embedder,
                embedding.bm25_only_reason,
                ocr,
            )),
            metrics: Data::new(Metrics::default()),
            catalog,
            workers,
            config,
        })
    }

    /// Serves on `listener` in the background; the returned handle stops it.
    pub fn start(self, listener: TcpListener) -> Result<RunningApp, StartError> {
        let addr = listener.local_addr()?;
        let (collections, documents, ingestor) =
            (self.collections.clone(), self.documents.clone(), self.ingestor.clone());
        let (retriever, answerer, conversations) = (
            self.retriever.clone(),
            self.answerer.clone(),
            self.conversations.clone(),
        );
        let (health, metrics) = (self.health.clone(), self.metrics.clone());
        let (authenticator, keys, audit) = (self.authenticator.clone(), self.keys.clone(), self.audit.clone());
        let (tenants, webhooks) = (self.tenants.clone(), self.webhooks.clone());
        let metrics_access = Data::new(http::MetricsAccess {
            public: self.config.auth.metrics_public,
        });
        let cors_origins = self.config.auth.cors_origins.clone();
        let origin_policy = Data::new(http::origin::OriginPolicy {
            hosts: self.config.auth.allowed_hosts.clone(),
            cors: cors_origins.clone(),
        });
        // Built once: every HTTP worker serves the same MCP transport.
        let mcp = http::mcp::service(http::mcp::McpServices {
            collections: self.collections.clone().into_inner(),
            documents: self.documents.clone().into_inner(),
            retriever: self.retriever.clone().into_inner(),
            answerer: self.answerer.clone().into_inner(),
        });
        let http_threads = std::thread::available_parallelism().map_or(2, |n| n.get());
        let server = actix_web::HttpServer::new(move || {
            actix_web::App::new()
                .wrap(from_fn(http::origin::middleware))
                .wrap(from_fn(http::request_id::middleware))
                // Outside the request scope: a preflight carries no key.
                .wrap(http::cors::middleware(&cors_origins))
                .app_data(collections.clone())
                .app_data(documents.clone())
                .app_data(ingestor.clone())
                .app_data(retriever.clone())
                .app_data(answerer.clone())
                .app_data(conversations.clone())
                .app_data(webhooks.clone())
                .app_data(health.clone())
                .app_data(metrics.clone())
                .app_data(authenticator.clone())
                .app_data(keys.clone())
                .app_data(audit.clone())
                .app_data(tenants.clone())
                .app_data(metrics_access.clone())
                .app_data(origin_policy.clone())
                // Behind the same request scope as /v1.
                .service(
                    mcp.clone()
                        .scope_with_path("/mcp")
                        .wrap(from_fn(http::auth::middleware)),
                )
                .configure(http::routes)
        })
        .on_connect(http::peer::on_connect)
        // actix counts connections per server thread: the total is shared out.
        .workers(http_threads)
        .max_connections(self.config.http_max_connections.div_ceil(http_threads))
        // A client has this long to send its request head, and to close.
        .client_request_timeout(std::time::Duration::from_secs(10))
        .client_disconnect_timeout(std::time::Duration::from_secs(5))
        .listen(listener)?
        .shutdown_timeout(10)
        .run();
        let handle = server.handle();
        let server = tokio::spawn(server);
        tracing::info!(%addr, "docqa listening");
        Ok(RunningApp {
            addr,
            handle,
            server,
            app: self,
        })
    }
}

/// A serving app.
pub struct RunningApp {
    pub addr: std::net::SocketAddr,
    handle: ServerHandle,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
    app: App,
}

impl RunningApp {
    /// Resolves when the server stops (e.g. on SIGINT/SIGTERM), then shuts down.
    pub async fn wait(self) -> std::io::Result<()> {
        let RunningApp { server, app, .. } = self;
        let result = server.await.unwrap_or_else(|e| Err(std::io::Error::other(e)));
        app.shutdown().await;
        result
    }

    /// Stops serving, stops the workers and closes storage.
    pub async fn stop(self) {
        self.handle.stop(true).await;
        let _ = self.server.await;
        self.app.shutdown().await;
    }
}

impl App {
    /// `docqa tenants`: creates the named tenant, or lists them; JSON lines.
    pub async fn tenants_command(&self, create: Option<String>) -> Result<Vec<String>, service::tenants::TenantsError> {
        let operator = auth::Scope::operator();
        let tenants = match create {
            Some(name) => vec![
                self.tenants
                    .create(&operator, service::tenants::CreateTenant { name })
                    .await?,
            ],
            None => self.tenants.list(&operator).await?.tenants,
        };
        Ok(tenants
            .iter()
            .map(|t| serde_json::to_string(t).unwrap_or_default())
            .collect())
    }

    /// Closes what `build` opened, without having served.
    pub async fn close(self) {
        self.shutdown().await;
    }

    async fn shutdown(self) {
        self.workers.stop().await;
        // The last entries are written before the catalog closes: the writer ends
        // once every sender (the server's, then this one) is gone.
        drop(self.audit);
        if tokio::time::timeout(AUDIT_FLUSH_TIMEOUT, self.audit_tasks.finish())
            .await
            .is_err()
        {
            tracing::warn!("the audit log's last entries were not written within the shutdown timeout");
        }
        self.catalog.close().await;
        // The index flushes its shards as its last reference goes, here.
        tracing::info!("docqa stopped");
    }
}
