//! `/v1/audit`: the audit log, for tenant admins (their tenant) and the operator
//! (every tenant, or one by `tenant`).

use actix_web::{HttpResponse, web};
use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::auth::{Authorized, Manage};
use super::problem::{AppError, Problem};
use crate::auth::audit::{AuditError, AuditLog, tenant_filter};
use crate::domain::{AuditEntry, AuditQuery};

const DEFAULT_PAGE: u32 = 100;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditParams {
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

/// Audit entries, oldest first: every upload, delete, search, query, key and
/// collection change, and every refused request.
#[utoipa::path(
    get, path = "/v1/audit", operation_id = "read_audit", tag = "keys",
    params(AuditParams),
    responses(
        (status = 200, body = AuditPage),
        (status = 422, description = "Bad limit, cursor, time or tenant", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn read(
    caller: Authorized<Manage>,
    params: web::Query<AuditParams>,
    audit: web::Data<AuditLog>,
) -> Result<HttpResponse, AppError> {
    let params = params.into_inner();
    let limit = params.limit.unwrap_or(DEFAULT_PAGE);
    let after = match params.cursor.as_deref() {
        None | Some("") => None,
        Some(raw) => {
            Some(decode_cursor(raw).ok_or_else(|| AuditError::Invalid("cursor: not one this server gave".into()))?)
        }
    };
    let query = AuditQuery {
        tenant: tenant_filter(params.tenant.as_deref())?,
        since: params.since,
        until: params.until,
        action: params.action,
        limit,
        after,
    };
    let entries = audit.entries(&caller.scope, query).await?;
    // A full page may have a next one (the last page may then be empty).
    let next_cursor = (entries.len() == limit as usize)
        .then(|| entries.last().map(|e| encode_cursor(e.at, e.id)))
        .flatten();
    Ok(HttpResponse::Ok().json(AuditPage { entries, next_cursor }))
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
