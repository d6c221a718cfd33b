//! The audit log: one record per mutation, written in the same transaction as the change.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use serde_json::Value;
use uuid::Uuid;

use super::Conn;
use super::schema::audit_log;
use crate::error::AppResult;

/// Who did it, as the audit log records it.
#[derive(Debug, Clone, Copy)]
pub enum Actor {
    Member(Uuid),
    ApiKey(Uuid),
    Anonymous,
    System,
}

impl Actor {
    fn parts(self) -> (Option<Uuid>, &'static str) {
        match self {
            Actor::Member(id) => (Some(id), "MEMBER"),
            Actor::ApiKey(id) => (Some(id), "API_KEY"),
            Actor::Anonymous => (None, "ANONYMOUS"),
            Actor::System => (None, "SYSTEM"),
        }
    }
}

/// Where a request came from; attached to every record it writes.
#[derive(Debug, Clone, Default)]
pub struct RequestMeta {
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub request_id: Option<String>,
}

/// One record to write. `details` must never hold a secret.
#[derive(Debug)]
pub struct AuditEntry<'a> {
    pub tenant_id: Option<Uuid>,
    pub actor: Actor,
    pub action: &'a str,
    pub target_type: Option<&'a str>,
    pub target_id: Option<String>,
    pub details: Value,
}

#[derive(Insertable)]
#[diesel(table_name = audit_log)]
struct NewAuditRow<'a> {
    id: Uuid,
    tenant_id: Option<Uuid>,
    actor_id: Option<Uuid>,
    actor_kind: &'a str,
    action: &'a str,
    target_type: Option<&'a str>,
    target_id: Option<&'a str>,
    ip: Option<&'a str>,
    user_agent: Option<&'a str>,
    request_id: Option<&'a str>,
    details: &'a Value,
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = audit_log)]
pub struct AuditRow {
    pub id: Uuid,
    pub tenant_id: Option<Uuid>,
    pub at: DateTime<Utc>,
    pub actor_id: Option<Uuid>,
    pub actor_kind: String,
    pub action: String,
    pub target_type: Option<String>,
    pub target_id: Option<String>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub request_id: Option<String>,
    pub details: Value,
}

pub async fn record(conn: &mut Conn, meta: &RequestMeta, entry: AuditEntry<'_>) -> AppResult<()> {
    let (actor_id, actor_kind) = entry.actor.parts();
    let row = NewAuditRow {
        // Time-ordered ids make "newest first" the primary-key order.
        id: Uuid::now_v7(),
        tenant_id: entry.tenant_id,
        actor_id,
        actor_kind,
        action: entry.action,
        target_type: entry.target_type,
        target_id: entry.target_id.as_deref(),
        ip: meta.ip.as_deref(),
        user_agent: meta.user_agent.as_deref(),
        request_id: meta.request_id.as_deref(),
        details: &entry.details,
    };
    diesel::insert_into(audit_log::table)
        .values(&row)
        .execute(conn)
        .await?;
    Ok(())
}

/// Newest first, before the record `before` (exclusive).
pub async fn page(
    conn: &mut Conn,
    tenant_id: Uuid,
    before: Option<Uuid>,
    limit: i64,
) -> AppResult<Vec<AuditRow>> {
    let mut query = audit_log::table
        .filter(audit_log::tenant_id.eq(tenant_id))
        .select(AuditRow::as_select())
        .order(audit_log::id.desc())
        .limit(limit)
        .into_boxed();
    if let Some(before) = before {
        query = query.filter(audit_log::id.lt(before));
    }
    Ok(query.load(conn).await?)
}
