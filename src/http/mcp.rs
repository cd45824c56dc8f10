//! The MCP server at `/mcp` (Streamable HTTP, through rmcp and its actix-web
//! transport), for agents: tools `search`, `ask`, `list_collections`,
//! `list_documents` and `get_page`. The route sits behind the same auth
//! middleware as `/v1`: each request's scope is handed to the tools through
//! the request's extensions, and every tool reads through it, as the REST
//! routes do. A call that fails (bad arguments, not found, the LLM down)
//! answers with `isError` and the problem's text, as the MCP specification
//! asks of tool errors (and rmcp does for arguments it cannot read), so an
//! agent can correct itself; an unknown tool is a JSON-RPC error.

use std::sync::Arc;

use actix_web::HttpMessage;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{CallToolResult, ContentBlock, ServerCapabilities, ServerConfig};
use rmcp::service::RequestContext;
use rmcp::{ErrorData, RoleServer, ServerHandler, schemars, tool, tool_handler, tool_router};
use rmcp_actix_web::transport::StreamableHttpService;
use serde::Deserialize;
use serde_json::{Value, json};

use super::auth::collection_in_scope;
use super::problem::AppError;
use crate::answer::{Answerer, QueryRequest};
use crate::auth::Scope;
use crate::domain::{CollectionName, DEFAULT_COLLECTION, DocumentId, DocumentStatus};
use crate::retrieve::{Retriever, SearchRequest};
use crate::service::collections::Collections;
use crate::service::documents::{Documents, ListDocuments};

/// What the tools call: the services the REST routes call.
#[derive(Clone)]
pub struct McpServices {
    pub collections: Arc<Collections>,
    pub documents: Arc<Documents>,
    pub retriever: Arc<Retriever>,
    pub answerer: Arc<Answerer>,
}

/// The transport, built once and shared by every HTTP worker (sessions live
/// in it). Stateless: each request stands alone, so nothing is held per client.
pub fn service(services: McpServices) -> StreamableHttpService<DocqaMcp> {
    StreamableHttpService::builder()
        .service_factory(Arc::new(move || Ok(DocqaMcp::new(services.clone()))))
        .session_manager(Arc::new(Default::default()))
        .stateful_mode(false)
        .json_response(true)
        // Host names are checked before this (ALLOWED_HOSTS, `origin.rs`).
        .allowed_hosts(Vec::new())
        // The scope the auth middleware resolved, for the tools.
        .on_request_fn(|request, extensions| {
            if let Some(scope) = request.extensions().get::<Scope>() {
                extensions.insert(scope.clone());
            }
        })
        .build()
}

#[derive(Clone)]
pub struct DocqaMcp {
    services: McpServices,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SearchArgs {
    /// What to search for.
    pub query: String,
    /// The collection (default: `default`).
    pub collection: Option<String>,
    /// How many chunks, 1 to 50 (default 5).
    pub top_k: Option<usize>,
    /// `{"document_ids": ["…"], "metadata": {"key": "value"}}`, both optional.
    pub filter: Option<Value>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AskArgs {
    /// The question.
    pub question: String,
    /// The collection (default: `default`).
    pub collection: Option<String>,
    /// How many chunks to answer from, 1 to 50.
    pub top_k: Option<usize>,
    /// `{"document_ids": ["…"], "metadata": {"key": "value"}}`, both optional.
    pub filter: Option<Value>,
    /// `auto` (default), `generative` or `extractive`.
    pub mode: Option<String>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListDocumentsArgs {
    /// The collection (default: `default`).
    pub collection: Option<String>,
    /// Page size, 1 to 500 (default 50).
    pub limit: Option<u32>,
    /// `next_cursor` of the previous call.
    pub cursor: Option<String>,
    /// Only documents in this status: `queued`, `processing`, `ready`, `failed`.
    pub status: Option<String>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GetPageArgs {
    /// The document's id (from `search`, `ask` or `list_documents`).
    pub document_id: String,
    /// 1-based page (slide, sheet) number.
    pub page: u32,
    /// The document's collection (default: `default`).
    pub collection: Option<String>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NoArgs {}

#[tool_router]
impl DocqaMcp {
    pub fn new(services: McpServices) -> Self {
        Self { services }
    }

    #[tool(
        description = "Search a collection's documents: the best-matching chunks (hybrid dense + BM25), \
        each with its document, filename, pages and text. No LLM."
    )]
    async fn search(
        &self,
        Parameters(args): Parameters<SearchArgs>,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, ErrorData> {
        outcome(
            async {
                let scope = scope_of(&context)?;
                let collection = target(&scope, args.collection.as_deref())?;
                let request: SearchRequest =
                    parse(json!({"query": args.query, "top_k": args.top_k, "filter": args.filter}))?;
                let found = self
                    .services
                    .retriever
                    .search(&collection, request, &scope.readers())
                    .await?;
                structured(json!({"results": found.hits, "warnings": found.warnings}))
            }
            .await,
        )
    }

    #[tool(
        description = "Answer a question from a collection's documents. The answer's claims carry [n] markers; \
        each citation names the document, the page and a verified verbatim quote."
    )]
    async fn ask(
        &self,
        Parameters(args): Parameters<AskArgs>,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, ErrorData> {
        outcome(
            async {
                let scope = scope_of(&context)?;
                let collection = target(&scope, args.collection.as_deref())?;
                let request: QueryRequest = parse(json!({
                    "question": args.question, "top_k": args.top_k, "filter": args.filter,
                    "mode": args.mode.unwrap_or_else(|| "auto".into()),
                }))?;
                let answer = self
                    .services
                    .answerer
                    .answer(&collection, request, None, &scope.readers())
                    .await?;
                let sources: Vec<String> = answer
                    .citations
                    .iter()
                    .map(|c| format!("[{}] {}, page {}: \"{}\"", c.index, c.filename, c.page, c.quote))
                    .collect();
                let text = match sources.is_empty() {
                    true => answer.answer.clone(),
                    false => format!("{}\n\nSources:\n{}", answer.answer, sources.join("\n")),
                };
                let mut result = CallToolResult::success(vec![ContentBlock::text(text)]);
                result.structured_content = Some(to_value(&answer)?);
                Ok(result)
            }
            .await,
        )
    }

    #[tool(description = "The collections this key may read, with their descriptions.")]
    async fn list_collections(
        &self,
        Parameters(_): Parameters<NoArgs>,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, ErrorData> {
        outcome(
            async {
                let scope = scope_of(&context)?;
                let views = self.services.collections.list(&scope).await?;
                let collections: Vec<Value> = views
                    .iter()
                    .map(|v| json!({"name": v.collection.name.name(), "description": v.collection.description}))
                    .collect();
                structured(json!({ "collections": collections }))
            }
            .await,
        )
    }

    #[tool(
        description = "The documents of a collection this key may read: id, filename, status, pages, chunks. \
        Paged: pass `next_cursor` back as `cursor`."
    )]
    async fn list_documents(
        &self,
        Parameters(args): Parameters<ListDocumentsArgs>,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, ErrorData> {
        outcome(
            async {
                let scope = scope_of(&context)?;
                let collection = target(&scope, args.collection.as_deref())?;
                let status = args
                    .status
                    .map(|s| s.parse::<DocumentStatus>())
                    .transpose()
                    .map_err(AppError::InvalidRequest)?;
                let request = ListDocuments {
                    limit: args.limit,
                    cursor: args.cursor,
                    status,
                };
                let page = self
                    .services
                    .documents
                    .list(&collection, request, &scope.readers())
                    .await?;
                let documents: Vec<Value> = page
                    .documents
                    .iter()
                    .map(|d| {
                        json!({"id": d.id, "filename": d.filename, "status": d.status, "pages": d.pages,
                            "chunks": d.chunks, "created_at": d.created_at})
                    })
                    .collect();
                structured(json!({"documents": documents, "next_cursor": page.next_cursor}))
            }
            .await,
        )
    }

    #[tool(description = "The text of one page (slide, sheet) of a document.")]
    async fn get_page(
        &self,
        Parameters(args): Parameters<GetPageArgs>,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, ErrorData> {
        outcome(
            async {
                let scope = scope_of(&context)?;
                let collection = target(&scope, args.collection.as_deref())?;
                let id: DocumentId = args
                    .document_id
                    .parse()
                    .map_err(|_| AppError::InvalidRequest("document_id is not a document id".into()))?;
                if args.page == 0 {
                    return Err(AppError::InvalidRequest("page is 1-based".into()));
                }
                let page = self
                    .services
                    .documents
                    .page(&collection, id, args.page, &scope.readers())
                    .await?;
                let mut result = CallToolResult::success(vec![ContentBlock::text(page.text.clone())]);
                result.structured_content = Some(to_value(&page)?);
                Ok(result)
            }
            .await,
        )
    }
}

#[tool_handler]
impl ServerHandler for DocqaMcp {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build()).with_instructions(
            "docqa: search and ask a team's documents. `ask` answers with citations (document, page, \
             verified quote); `search` returns chunks; `get_page` reads a page; `list_collections` and \
             `list_documents` show what there is.",
        )
    }
}

/// The caller's scope, which the auth middleware resolved for this request.
fn scope_of(context: &RequestContext<RoleServer>) -> Result<Scope, AppError> {
    context
        .extensions
        .get::<http::request::Parts>()
        .and_then(|parts| parts.extensions.get::<rmcp::model::Extensions>())
        .and_then(|extensions| extensions.get::<Scope>())
        .cloned()
        .ok_or_else(|| AppError::Internal("the request has no scope: /mcp is not behind the auth middleware".into()))
}

/// The named collection (or `default`), if the scope may use it.
fn target(scope: &Scope, collection: Option<&str>) -> Result<CollectionName, AppError> {
    Ok(collection_in_scope(scope, collection.unwrap_or(DEFAULT_COLLECTION))?)
}

/// Arguments as the REST route's request type, with its checks.
fn parse<T: serde::de::DeserializeOwned>(mut value: Value) -> Result<T, AppError> {
    // Absent, not null: the request types tell the two apart.
    if let Value::Object(fields) = &mut value {
        fields.retain(|_, v| !v.is_null());
    }
    serde_json::from_value(value).map_err(|e| AppError::InvalidRequest(e.to_string()))
}

fn to_value(value: &impl serde::Serialize) -> Result<Value, AppError> {
    serde_json::to_value(value).map_err(|e| AppError::Internal(e.to_string()))
}

/// A result as JSON text, and as structured content.
fn structured(value: Value) -> Result<CallToolResult, AppError> {
    let mut result = CallToolResult::success(vec![ContentBlock::text(value.to_string())]);
    result.structured_content = Some(value);
    Ok(result)
}

/// A tool's failure, whatever it was (bad arguments, not found, a backend or
/// the LLM down), as the tool's error result: the problem's title and text
/// (never internals: a 500's detail is the request id's), and its type and
/// status as structured content.
fn outcome(result: Result<CallToolResult, AppError>) -> Result<CallToolResult, ErrorData> {
    let error = match result {
        Ok(result) => return Ok(result),
        Err(error) => error,
    };
    let problem = error.problem(&super::request_id::current());
    let mut result = CallToolResult::error(vec![ContentBlock::text(format!(
        "{}: {}",
        problem.title, problem.detail
    ))]);
    result.structured_content = Some(json!({"type": problem.problem_type, "status": problem.status}));
    Ok(result)
}
