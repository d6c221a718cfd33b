//! What events and revenue changes share as they come in: who may send them, where they are
//! written, how a batch's transaction ends (its audit record and data version), and what the
//! sender is told.

use serde_json::json;
use uuid::Uuid;

use crate::analytics::versions::{self, Added};
use crate::auth::{ApiKeyScope, Principal, Role};
use crate::db::audit::{self, Actor, AuditEntry, RequestMeta};
use crate::db::{Conn, Db};
use crate::error::{AppError, AppResult};
use crate::kv::Kv;

/// A write and where it goes: the database, the caller and their request, and where new data
/// versions are announced (the response cache's mirror, when that cache is on).
#[derive(Clone, Copy)]
pub struct Writer<'a> {
    pub db: &'a Db,
    pub mirror: Option<&'a Kv>,
    pub principal: &'a Principal,
    pub meta: &'a RequestMeta,
}

impl Writer<'_> {
    /// After the write's transaction committed, before it answers.
    pub async fn announce(&self, tenant: Uuid, version: i64) {
        versions::announce(self.mirror, tenant, version).await;
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IngestOutcome {
    pub accepted: i64,
    pub duplicates: i64,
}

impl IngestOutcome {
    /// `sent`: distinct items of the batch; the rest of the duplicates were stored before.
    pub fn of(sent: i64, in_batch_duplicates: i64, inserted: i64) -> Self {
        IngestOutcome {
            accepted: inserted,
            duplicates: in_batch_duplicates + (sent - inserted),
        }
    }
}

/// Who may ingest: an API key with INGEST scope or an ADMIN+ member; returns the tenant and actor.
pub fn ingesting_tenant(principal: &Principal) -> AppResult<(Uuid, Actor)> {
    match principal {
        Principal::ApiKey(k) if k.scopes.contains(&ApiKeyScope::Ingest) => {
            Ok((k.tenant_id, Actor::ApiKey(k.key_id)))
        }
        Principal::ApiKey(_) => Err(AppError::forbidden("this API key has no INGEST scope")),
        other => {
            let m = other.member_at_least(Role::Admin)?;
            Ok((m.tenant_id, Actor::Member(m.member_id)))
        }
    }
}

/// One ingest batch as its transaction ends.
pub struct Batch {
    pub tenant_id: Uuid,
    pub actor: Actor,
    pub action: &'static str,
    pub target_type: &'static str,
    /// Items sent, duplicates inside the batch included.
    pub received: i64,
    /// What was stored (`accepted` in the audit record).
    pub added: Added,
}

/// The end of an ingest batch's transaction: its audit record, then the data version bump
/// (last: every batch of the tenant waits on that row until commit). Returns the new version.
pub async fn close_batch(conn: &mut Conn, meta: &RequestMeta, batch: Batch) -> AppResult<i64> {
    let accepted = match batch.added {
        Added::Events(n) | Added::RevenueChanges(n) => n,
        Added::Nothing => 0,
    };
    audit::record(
        conn,
        meta,
        AuditEntry {
            tenant_id: Some(batch.tenant_id),
            actor: batch.actor,
            action: batch.action,
            target_type: Some(batch.target_type),
            target_id: None,
            details: json!({ "received": batch.received, "accepted": accepted }),
        },
    )
    .await?;
    versions::bump(conn, batch.tenant_id, batch.added).await
}
