//! Whole-tenant rollup rebuilds (after a time-zone change, or a bulk load).

use diesel::sql_types::Uuid as SqlUuid;
use diesel_async::RunQueryDsl;
use scoped_futures::ScopedFutureExt;
use uuid::Uuid;

use crate::app::App;
use crate::db::{Conn, Db};
use crate::error::AppResult;

/// Excludes every other writer of the tenant's events and rollups (a rebuild), until the end of
/// the transaction.
pub async fn lock_tenant_writes(conn: &mut Conn, tenant: Uuid) -> AppResult<()> {
    diesel::sql_query("SELECT pg_advisory_xact_lock(hashtextextended($1::text, 42))")
        .bind::<SqlUuid, _>(tenant)
        .execute(conn)
        .await?;
    Ok(())
}

/// What an ingest batch holds until it commits: the tenant's write lock shared (so rebuilds
/// wait), and one lock per end user of the batch, taken in order. Batches about different users
/// run in parallel; two batches about one user take turns, which keeps that user's days and
/// transitions exact.
pub async fn lock_for_ingest(conn: &mut Conn, tenant: Uuid, users: &[String]) -> AppResult<()> {
    diesel::sql_query(
        "SELECT pg_advisory_xact_lock_shared(hashtextextended($1::text, 42)), \
                (SELECT count(pg_advisory_xact_lock(h)) FROM ( \
                   SELECT DISTINCT hashtextextended($1::text || ':' || u, 43) AS h \
                   FROM unnest($2::text[]) AS u ORDER BY 1) s)",
    )
    .bind::<SqlUuid, _>(tenant)
    .bind::<diesel::sql_types::Array<diesel::sql_types::Text>, _>(users)
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

#[derive(diesel::QueryableByName)]
struct Removed {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    removed: i64,
}

/// Deletes the tenant's events and everything derived from them; returns how many events.
pub async fn delete_event_data(conn: &mut Conn, tenant: Uuid) -> AppResult<i64> {
    lock_tenant_writes(conn, tenant).await?;
    let r: Removed = diesel::sql_query("SELECT fahwa_delete_event_data($1) AS removed")
        .bind::<SqlUuid, _>(tenant)
        .get_result(conn)
        .await?;
    Ok(r.removed)
}
