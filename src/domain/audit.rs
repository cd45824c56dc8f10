//! The audit log's entries: who did what to which collection or document, and
//! how it ended. Append-only.

use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use super::{KeyId, TenantName};

#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct AuditEntry {
    #[schema(value_type = String, format = Uuid)]
    pub id: Uuid,
    pub at: DateTime<Utc>,
    pub request_id: String,
    /// Absent for a request refused before its caller was known (401).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tenant: Option<TenantName>,
    /// Absent for the operator and for unknown callers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_id: Option<KeyId>,
    /// The end users a service key acted for (`X-Acting-For`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub acting_for: Vec<String>,
    /// The user of a sign-in with the identity provider (`user:<sub>`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// `upload`, `delete_document`, `search`, `query`, `create_collection`,
    /// `delete_collection`, `reindex`, `retry_job`, `create_key`, `revoke_key`, …
    pub action: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub collection: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub document_id: Option<String>,
    /// The HTTP status the request was answered with.
    pub status: u16,
    /// What a search or query asked, kept only with `AUDIT_QUERY_TEXT=true`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub query: Option<String>,
}

/// Which entries to read, oldest first.
#[derive(Debug, Clone, Default)]
pub struct AuditQuery {
    /// `None`: every tenant's (the operator's view).
    pub tenant: Option<TenantName>,
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    pub action: Option<String>,
    pub limit: u32,
    /// After this entry (a cursor).
    pub after: Option<(DateTime<Utc>, Uuid)>,
}
