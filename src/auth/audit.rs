//! The audit log: what each audited request was (its action, collection and
//! document from its route), who made it and how it ended. Entries are queued
//! to one writer task that appends them in batches, so a search does not wait
//! for a catalog write; the queue is bounded, and a full queue makes requests
//! wait rather than lose entries.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::{Identity, Scope};
use crate::catalog::{Catalog, CatalogError};
use crate::domain::{Access, AuditEntry, AuditQuery, TenantName};

/// Entries waiting for the writer, at most.
const QUEUE: usize = 10_000;
/// Entries the writer appends in one transaction, at most.
const BATCH: usize = 500;
/// How often old entries are pruned.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);
pub const MAX_PAGE: u32 = 1000;
pub const DEFAULT_PAGE: u32 = 100;

/// `GET /v1/audit`: which entries, a page at a time.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ReadAudit {
    /// Entries at or after this time (RFC 3339).
    pub since: Option<DateTime<Utc>>,
    /// Entries before this time (RFC 3339).
    pub until: Option<DateTime<Utc>>,
    /// One action, e.g. `search`, `upload`, `delete_document`, `create_key`.
    pub action: Option<String>,
    /// 1 to 1000, default 100.
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// The operator only: one tenant's entries.
    pub tenant: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AuditPage {
    pub entries: Vec<AuditEntry>,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Auth(#[from] super::AuthError),
    #[error(transparent)]
    Catalog(#[from] CatalogError),
}

/// What a request to `method path` is, for the audit log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteAction {
    pub action: &'static str,
    pub collection: Option<String>,
    pub document_id: Option<String>,
    /// Recorded whatever its outcome (a change, a search, a query); other
    /// actions are recorded only when refused.
    pub always: bool,
}

/// The action of a `/v1` route, by its method and path.
pub fn route_action(method: &str, path: &str) -> RouteAction {
    let segments: Vec<&str> = path
        .trim_start_matches("/v1")
        .split('/')
        .filter(|s| !s.is_empty())
        .collect();
    // `/collections/{c}/rest…`, or the short form `rest…` on `default`.
    let (collection, rest): (Option<&str>, &[&str]) = match segments.as_slice() {
        ["collections", c, rest @ ..] => (Some(*c), rest),
        [first, ..]
            if matches!(*first, "documents" | "search" | "query" | "reindex")
                || (*first == "conversations" && segments.len() == 1) =>
        {
            (Some("default"), &segments)
        }
        _ => (None, &segments),
    };
    let make = |action: &'static str, always: bool, document: Option<&str>| RouteAction {
        action,
        collection: collection.map(str::to_string),
        document_id: document.map(str::to_string),
        always,
    };
    match (method, collection.is_some(), rest) {
        ("POST", false, ["collections"]) => make("create_collection", true, None),
        ("GET", false, ["collections"]) => make("list_collections", false, None),
        ("GET", true, []) => make("get_collection", false, None),
        ("DELETE", true, []) => make("delete_collection", true, None),
        ("POST", true, ["documents"]) => make("upload", true, None),
        ("GET", true, ["documents"]) => make("list_documents", false, None),
        ("GET", true, ["documents", id]) => make("get_document", false, Some(id)),
        ("GET", true, ["documents", id, "pages", _]) => make("get_page", false, Some(id)),
        ("DELETE", true, ["documents", id]) => make("delete_document", true, Some(id)),
        ("PATCH", true, ["documents", id]) => make("update_document", true, Some(id)),
        ("POST", true, ["search"]) => make("search", true, None),
        ("POST", true, ["query"]) => make("query", true, None),
        ("POST", true, ["reindex"]) => make("reindex", true, None),
        ("POST", true, ["conversations"]) => make("create_conversation", true, None),
        ("GET", false, ["conversations", _]) => make("get_conversation", false, None),
        ("DELETE", false, ["conversations", _]) => make("delete_conversation", true, None),
        ("POST", false, ["conversations", _, "messages"]) => make("ask_in_conversation", true, None),
        ("POST", false, ["chat", "completions"]) => make("chat_completion", true, None),
        ("POST", false, ["mcp"]) => make("mcp", true, None),
        ("POST", false, ["webhooks"]) => make("create_webhook", true, None),
        ("DELETE", false, ["webhooks", _]) => make("delete_webhook", true, None),
        ("GET", false, ["models", ..]) => make("list_models", false, None),
        ("GET", false, ["jobs", _]) => make("get_job", false, None),
        ("POST", false, ["jobs", _, "retry"]) => make("retry_job", true, None),
        ("POST", false, ["keys"]) => make("create_key", true, None),
        ("GET", false, ["keys"]) => make("list_keys", false, None),
        ("DELETE", false, ["keys", _]) => make("revoke_key", true, None),
        ("GET", false, ["audit"]) => make("read_audit", false, None),
        _ => make("other", false, None),
    }
}

/// The log: entries in, a writer task appending them.
pub struct AuditLog {
    catalog: Arc<dyn Catalog>,
    queue: mpsc::Sender<AuditEntry>,
    /// `AUDIT_QUERY_TEXT`: keep what searches and queries asked.
    keep_query_text: bool,
}

/// Most characters of a search or question the log keeps.
const MAX_QUERY_TEXT_CHARS: usize = 2000;

/// The writer and pruner tasks, stopped at shutdown (after the last entry is in).
pub struct AuditTasks {
    writer: JoinHandle<()>,
    pruner: Option<JoinHandle<()>>,
}

impl AuditTasks {
    /// Waits for the writer to append what is queued (every sender must be gone).
    pub async fn finish(self) {
        if let Some(pruner) = self.pruner {
            pruner.abort();
        }
        let _ = self.writer.await;
    }
}

impl AuditLog {
    /// Starts the writer, and a pruner when `retention` is set.
    pub fn start(catalog: Arc<dyn Catalog>, retention: Option<Duration>, keep_query_text: bool) -> (Self, AuditTasks) {
        let (queue, entries) = mpsc::channel(QUEUE);
        let writer = tokio::spawn(write_entries(catalog.clone(), entries));
        let pruner = retention.map(|keep| tokio::spawn(prune(catalog.clone(), keep)));
        (
            Self {
                catalog,
                queue,
                keep_query_text,
            },
            AuditTasks { writer, pruner },
        )
    }

    /// Queues one entry (waits while the queue is full). `query_text` is what
    /// a search or query asked; it is kept only with `AUDIT_QUERY_TEXT`.
    pub async fn record(
        &self,
        request_id: String,
        scope: Option<&Scope>,
        route: &RouteAction,
        status: u16,
        query_text: Option<&str>,
    ) {
        let entry = AuditEntry {
            id: uuid::Uuid::new_v4(),
            at: crate::catalog::now(),
            request_id,
            tenant: scope.map(|s| s.tenant.clone()),
            key_id: scope.and_then(Scope::key_id),
            acting_for: scope.map(|s| s.acting_for.clone()).unwrap_or_default(),
            action: route.action.to_string(),
            collection: route.collection.clone(),
            document_id: route.document_id.clone(),
            status,
            user: scope.and_then(Scope::user).map(str::to_string),
            query: query_text
                .filter(|_| self.keep_query_text)
                .map(|text| text.chars().take(MAX_QUERY_TEXT_CHARS).collect()),
        };
        if self.queue.send(entry).await.is_err() {
            tracing::error!("the audit log's writer is gone; an entry was not recorded");
        }
    }

    /// A page of the entries the scope may read, oldest first.
    pub async fn read(&self, scope: &Scope, request: ReadAudit) -> Result<AuditPage, AuditError> {
        let limit = request.limit.unwrap_or(DEFAULT_PAGE);
        let after = match request.cursor.as_deref() {
            None | Some("") => None,
            Some(raw) => {
                Some(decode_cursor(raw).ok_or_else(|| AuditError::Invalid("cursor: not one this server gave".into()))?)
            }
        };
        let query = AuditQuery {
            tenant: tenant_filter(request.tenant.as_deref())?,
            since: request.since,
            until: request.until,
            action: request.action,
            limit,
            after,
        };
        let entries = self.entries(scope, query).await?;
        // A full page may have a next one (the last page may then be empty).
        let next_cursor = (entries.len() == limit as usize)
            .then(|| entries.last().map(|e| encode_cursor(e.at, e.id)))
            .flatten();
        Ok(AuditPage { entries, next_cursor })
    }

    /// Entries the scope may read: its tenant's for an admin, all for the operator.
    async fn entries(&self, scope: &Scope, mut query: AuditQuery) -> Result<Vec<AuditEntry>, AuditError> {
        scope.require(Access::Manage)?;
        if !(1..=MAX_PAGE).contains(&query.limit) {
            return Err(AuditError::Invalid(format!("limit must be between 1 and {MAX_PAGE}")));
        }
        query.tenant = match (&scope.identity, query.tenant.take()) {
            (Identity::Operator, asked) => asked,
            (Identity::Key { .. } | Identity::User { .. }, _) => Some(scope.tenant.clone()),
        };
        Ok(self.catalog.audit_entries(&query).await?)
    }
}

async fn write_entries(catalog: Arc<dyn Catalog>, mut entries: mpsc::Receiver<AuditEntry>) {
    let mut batch = Vec::with_capacity(BATCH);
    while entries.recv_many(&mut batch, BATCH).await > 0 {
        // A catalog outage holds the entries back (and, once the queue is full,
        // the requests): retried until written.
        let mut wait = Duration::from_millis(100);
        while let Err(e) = catalog.append_audit(&batch).await {
            tracing::warn!(error = %e, entries = batch.len(), "audit entries not written yet; retrying");
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(Duration::from_secs(5));
        }
        batch.clear();
    }
}

async fn prune(catalog: Arc<dyn Catalog>, keep: Duration) {
    loop {
        let before = Utc::now() - chrono::Duration::from_std(keep).unwrap_or(chrono::Duration::MAX);
        match catalog.prune_audit(before).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(removed = n, "audit entries past AUDIT_RETENTION_DAYS removed"),
            Err(e) => tracing::warn!(error = %e, "could not prune the audit log"),
        }
        tokio::time::sleep(PRUNE_EVERY).await;
    }
}

fn encode_cursor(at: DateTime<Utc>, id: Uuid) -> String {
    hex::encode(format!("{}|{id}", at.to_rfc3339_opts(SecondsFormat::Micros, true)))
}

fn decode_cursor(raw: &str) -> Option<(DateTime<Utc>, Uuid)> {
    let text = String::from_utf8(hex::decode(raw).ok()?).ok()?;
    let (at, id) = text.split_once('|')?;
    Some((
        DateTime::parse_from_rfc3339(at).ok()?.with_timezone(&Utc),
        id.parse().ok()?,
    ))
}

/// The tenant an operator asks for, if any.
fn tenant_filter(raw: Option<&str>) -> Result<Option<TenantName>, AuditError> {
    raw.map(|t| {
        t.parse()
            .map_err(|e: crate::domain::InvalidTenantName| AuditError::Invalid(e.to_string()))
    })
    .transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_reads_back_as_the_entry_it_was_made_from_and_nothing_else_reads() {
        let at = DateTime::parse_from_rfc3339("2026-12-07T10:11:12.123456Z")
            .unwrap()
            .with_timezone(&Utc);
        let id = Uuid::new_v4();
        assert_eq!(decode_cursor(&encode_cursor(at, id)), Some((at, id)));
        for raw in [
            "zz",
            "",
            &hex::encode("no separator"),
            &hex::encode(format!("yesterday|{id}")),
        ] {
            assert_eq!(decode_cursor(raw), None, "{raw}");
        }
    }

    #[test]
    fn routes_name_their_action_collection_and_document() {
        let search = route_action("POST", "/v1/collections/legal/search");
        assert_eq!(
            (search.action, search.collection.as_deref(), search.always),
            ("search", Some("legal"), true)
        );
        let short = route_action("DELETE", "/v1/documents/abc");
        assert_eq!(
            (short.action, short.collection.as_deref(), short.document_id.as_deref()),
            ("delete_document", Some("default"), Some("abc"))
        );
        assert_eq!(route_action("POST", "/v1/collections").action, "create_collection");
        assert_eq!(route_action("DELETE", "/v1/collections/a").action, "delete_collection");
        assert_eq!(route_action("GET", "/v1/collections/a").action, "get_collection");
        assert_eq!(route_action("POST", "/v1/jobs/j/retry").action, "retry_job");
        assert_eq!(route_action("DELETE", "/v1/keys/k").action, "revoke_key");
        assert!(!route_action("GET", "/v1/collections/a/documents").always);
        assert_eq!(route_action("GET", "/v1/nowhere").action, "other");
    }
}
