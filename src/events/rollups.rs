//! Whole-tenant rollup rebuilds (after a time-zone change, or a bulk load).

use diesel::sql_types::Uuid as SqlUuid;
use diesel_async::RunQueryDsl;
use scoped_futures::ScopedFutureExt;
use uuid::Uuid;

use crate::app::App;
use crate::db::{Conn, Db};
use crate::error::AppResult;

/// Serialises the writers of one tenant's events and rollups (held to the end of the transaction).
pub async fn lock_tenant_writes(conn: &mut Conn, tenant: Uuid) -> AppResult<()> {
    diesel::sql_query("SELECT pg_advisory_xact_lock(hashtextextended($1::text, 42))")
        .bind::<SqlUuid, _>(tenant)
        .execute(conn)
        .await?;
    Ok(())
}

/// Recomputes the tenant's rollups from its events in one transaction: readers see the old
/// numbers until it commits, then the new ones.
pub async fn rebuild(db: &Db, tenant: Uuid) -> AppResult<()> {
    db.tenant(tenant, |conn| {
        async move {
            lock_tenant_writes(conn, tenant).await?;
            diesel::sql_query("SELECT fahwa_rebuild_rollups($1)")
                .bind::<SqlUuid, _>(tenant)
                .execute(conn)
                .await?;
            Ok(())
        }
        .scope_boxed()
    })
    .await
}

pub fn rebuild_in_background(app: &App, tenant: Uuid) {
    let db = app.db.clone();
    tokio::spawn(async move {
        let started = std::time::Instant::now();
        match rebuild(&db, tenant).await {
            Ok(()) => {
                tracing::info!(%tenant, elapsed_ms = started.elapsed().as_millis() as u64, "rebuilt rollups")
            }
            Err(e) => tracing::error!(%tenant, error = %e, "rollup rebuild failed"),
        }
    });
}
