//! Whole-tenant rollup rebuilds (after a time-zone change, or a bulk load).

use diesel::sql_types::Uuid as SqlUuid;
use diesel_async::RunQueryDsl;
use scoped_futures::ScopedFutureExt;
use uuid::Uuid;

use crate::analytics::cache::TenantContext;
use crate::db::{Conn, Db};
use crate::error::{AppError, AppResult};

/// Excludes every other writer of the tenant's events and rollups (a rebuild), until the end of
/// the transaction.
pub async fn lock_tenant_writes(conn: &mut Conn, tenant: Uuid) -> AppResult<()> {
    crate::db::locks::exclusive(conn, crate::db::locks::TenantLock::TenantWrites, tenant).await
}

/// How long a batch waits for a rebuild of its tenant's rollups (which can take minutes for a
/// large tenant) before it is refused as busy: the client retries, and nothing is half-stored.
const INGEST_LOCK_WAIT: &str = "3s";

/// What an ingest batch holds until it commits: the tenant's write lock shared, so that a
/// rebuild waits for it (and it for a rebuild); batches do not wait for each other. The wait is
/// bounded by `INGEST_LOCK_WAIT` (the nesting fixes the order of the three calls).
pub async fn lock_for_ingest(conn: &mut Conn, tenant: Uuid) -> AppResult<()> {
    let locked = diesel::sql_query(format!(
        "SELECT set_config('lock_timeout', '0', true) FROM ( \
           SELECT pg_advisory_xact_lock_shared(fahwa_lock_key('tenant_writes', $1)) FROM ( \
             SELECT set_config('lock_timeout', '{INGEST_LOCK_WAIT}', true)) a) b"
    ))
    .bind::<SqlUuid, _>(tenant)
    .execute(conn)
    .await;
    match locked {
        Ok(_) => Ok(()),
        Err(diesel::result::Error::DatabaseError(_, info))
            if info.message().contains("lock timeout") =>
        {
            Err(AppError::Busy {
                retry_after_secs: 10,
            })
        }
        Err(e) => Err(e.into()),
    }
}

#[derive(diesel::QueryableByName)]
struct Merged {
    #[diesel(sql_type = diesel::sql_types::Integer)]
    merged: i32,
}

/// Merges the tenant's pending ingestion deltas into the rollups (in the caller's transaction).
/// Each call of `fahwa_flush_rollups` merges a bounded piece, so this calls until one merges
/// nothing. With `wait`, waits for a flush already under way; without, returns `None` at once
/// then. Returns how many delta rows were merged.
pub async fn flush(conn: &mut Conn, tenant: Uuid, wait: bool) -> AppResult<Option<i64>> {
    let mut total = 0i64;
    loop {
        let m: Merged = diesel::sql_query("SELECT fahwa_flush_rollups($1, $2) AS merged")
            .bind::<SqlUuid, _>(tenant)
            .bind::<diesel::sql_types::Bool, _>(wait)
            .get_result(conn)
            .await?;
        match m.merged {
            n if n < 0 => return Ok(None),
            0 => return Ok(Some(total)),
            n => total += i64::from(n),
        }
    }
}

#[derive(diesel::QueryableByName)]
struct PendingTenant {
    #[diesel(sql_type = SqlUuid)]
    id: Uuid,
}

/// The tenant's zone, data version and tracked keys for a read, read outside any transaction
/// (an answer the metric cache holds then costs no transaction). Deltas of batches already
/// acknowledged are merged first, so that they count.
pub async fn settled_context(db: &Db, tenant: Uuid) -> AppResult<TenantContext> {
    let context = db
        .outside_tenants(|conn| async move { TenantContext::get(conn, tenant).await }.scope_boxed())
        .await?;
    if context.pending {
        db.tenant(tenant, |conn| {
            async move { flush(conn, tenant, true).await }.scope_boxed()
        })
        .await?;
    }
    Ok(context)
}

/// Flushes every tenant with pending deltas (the background flusher's pass; without `wait`, a
/// tenant being flushed elsewhere is skipped); returns how many delta rows were merged.
pub async fn flush_all(db: &Db, wait: bool) -> AppResult<i64> {
    let tenants: Vec<PendingTenant> = db
        .outside_tenants(|conn| {
            async move {
                Ok(diesel::sql_query("SELECT fahwa_pending_tenants() AS id")
                    .load(conn)
                    .await?)
            }
            .scope_boxed()
        })
        .await?;
    // One tenant whose flush fails must not hold back the others: each is tried, and the last
    // failure is returned after all.
    let mut merged = 0i64;
    let mut failed = None;
    for t in tenants {
        let id = t.id;
        let result = db
            .tenant(id, |conn| {
                async move { flush(conn, id, wait).await }.scope_boxed()
            })
            .await;
        match result {
            Ok(n) => merged += n.unwrap_or(0),
            Err(e) => {
                tracing::warn!(tenant = %id, error = %e, "rollup flush failed");
                failed = Some(e);
            }
        }
    }
    match failed {
        Some(e) => Err(e),
        None => Ok(merged),
    }
}

/// Merged delta rows after which the flusher vacuums the delta queues itself.
const QUEUE_VACUUM_EVERY: i64 = 50_000;

/// Keeps the rollups within a fraction of a second of ingestion even when nobody reads, so that
/// reads rarely find much to merge. Safe on every instance: a tenant being flushed is skipped.
/// `owner_url` connects as the tables' owner, who alone may vacuum them.
pub fn spawn_flusher(db: Db, owner_url: String) {
    tokio::spawn(async move {
        let mut every = tokio::time::interval(std::time::Duration::from_millis(250));
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // Once at start too: dead rows left by an earlier run stay until someone vacuums.
        let mut since_vacuum = QUEUE_VACUUM_EVERY;
        loop {
            every.tick().await;
            match flush_all(&db, false).await {
                Ok(0) => {}
                Ok(n) => {
                    metrics::counter!("fahwa_rollup_deltas_merged_total").increment(n as u64);
                    since_vacuum += n;
                }
                Err(_) => {} // logged per tenant
            }
            if since_vacuum >= QUEUE_VACUUM_EVERY {
                since_vacuum = 0;
                if let Err(e) = vacuum_queues(&owner_url).await {
                    tracing::warn!(error = %e, "vacuuming the rollup delta queues failed");
                }
            }
        }
    });
}

/// Vacuums the delta queues, whose every row is deleted by a flush within seconds of its insert.
/// Autovacuum would do it too where it runs, but it may be off (it is on this project's CI
/// machine): the queues then grew to hundreds of thousands of dead rows, and finding the tenants
/// with deltas, four times a second, scanned all of them (25 ms a time on the bench database).
/// `SKIP_LOCKED`: a queue busy elsewhere is left for the next time.
pub async fn vacuum_queues(owner_url: &str) -> anyhow::Result<()> {
    let (client, connection) = tokio_postgres::connect(owner_url, tokio_postgres::NoTls).await?;
    let driver = tokio::spawn(connection);
    let done = client
        .batch_execute("VACUUM (SKIP_LOCKED) pending_segments, pending_users")
        .await;
    drop(client);
    driver.abort();
    Ok(done?)
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

pub fn rebuild_in_background(db: &Db, tenant: Uuid) {
    let db = db.clone();
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
