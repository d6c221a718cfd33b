//! The advisory locks Fahwa takes in a transaction, by name; `fahwa_lock_key` (the replaceable
//! layer) is the one place a name becomes a key, for SQL functions and the server alike.

use diesel::sql_types::{Text, Uuid as SqlUuid};
use diesel_async::RunQueryDsl;
use uuid::Uuid;

use super::Conn;
use crate::error::AppResult;

/// A per-tenant lock; see `src/db/functions/fahwa_lock_key.sql` for what each guards.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TenantLock {
    TenantWrites,
    Flush,
    Revenue,
    Membership,
}

impl TenantLock {
    pub const ALL: [TenantLock; 4] = [
        TenantLock::TenantWrites,
        TenantLock::Flush,
        TenantLock::Revenue,
        TenantLock::Membership,
    ];

    pub fn name(self) -> &'static str {
        match self {
            TenantLock::TenantWrites => "tenant_writes",
            TenantLock::Flush => "flush",
            TenantLock::Revenue => "revenue",
            TenantLock::Membership => "membership",
        }
    }
}

/// Holds `lock` of `tenant` alone until the transaction ends.
pub async fn exclusive(conn: &mut Conn, lock: TenantLock, tenant: Uuid) -> AppResult<()> {
    diesel::sql_query("SELECT pg_advisory_xact_lock(fahwa_lock_key($1, $2))")
        .bind::<Text, _>(lock.name())
        .bind::<SqlUuid, _>(tenant)
        .execute(conn)
        .await?;
    Ok(())
}
