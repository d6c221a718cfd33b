//! A copy of each tenant's data version in the key-value store, so that a cached dashboard
//! response can be checked against the data without a PostgreSQL round trip.
//!
//! PostgreSQL's `tenant_usage.data_version` stays the truth. The copy is only ever raised (to a
//! version read from PostgreSQL, or returned by the ingest transaction that bumped it, before the
//! ingest call answers), and it expires after `MIRROR_TTL`: a change that did not raise it (a
//! rebuild, a crash between commit and raise) is seen within that time, when the next read takes
//! the version from PostgreSQL again.

use std::sync::Mutex;
use std::time::Duration;

use uuid::Uuid;

use crate::kv::Kv;

pub const MIRROR_TTL: Duration = Duration::from_secs(1);

pub fn mirror_key(tenant: Uuid) -> String {
    format!("dv:{tenant}")
}

/// What a write added, counted in `tenant_usage` beside the version bump.
#[derive(Debug, Clone, Copy)]
pub enum Added {
    Events(i64),
    RevenueChanges(i64),
    Nothing,
}

#[derive(diesel::QueryableByName)]
struct Bumped {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    data_version: i64,
}

/// Bumps the tenant's data version inside the writing transaction; returns the new version.
/// Every batch of the tenant updates this one row and holds it until commit: call it last.
pub async fn bump(
    conn: &mut crate::db::Conn,
    tenant: Uuid,
    added: Added,
) -> crate::error::AppResult<i64> {
    use diesel::sql_types::{BigInt, Uuid as SqlUuid};
    use diesel_async::RunQueryDsl;
    let (column, n) = match added {
        Added::Events(n) => ("events_total", n),
        Added::RevenueChanges(n) => ("revenue_changes_total", n),
        Added::Nothing => ("events_total", 0),
    };
    let bumped: Bumped = diesel::sql_query(format!(
        "UPDATE tenant_usage SET {column} = {column} + $2, data_version = data_version + 1 \
         WHERE tenant_id = $1 RETURNING data_version"
    ))
    .bind::<SqlUuid, _>(tenant)
    .bind::<BigInt, _>(n)
    .get_result(conn)
    .await?;
    Ok(bumped.data_version)
}

/// After a write's transaction committed, before the write answers: a dashboard load after it
/// must not be served an older answer from the response cache.
/// `mirror` is the store of the response cache, when that cache is on.
pub async fn announce(mirror: Option<&Kv>, tenant: Uuid, version: i64) {
    if let Some(kv) = mirror {
        raise(kv, tenant, version).await;
    }
}

/// Raises the tenant's mirrored version to `version` (never lowers it). A failure is logged
/// only: the mirror then expires and readers fall back to PostgreSQL.
pub async fn raise(kv: &Kv, tenant: Uuid, version: i64) {
    if let Err(e) = kv.raise(&mirror_key(tenant), version, MIRROR_TTL).await {
        tracing::warn!(error = %e, "data version mirror update failed");
    }
}

/// The data versions that one request's analytics fields computed from. A response may be
/// cached under a version only when every field read that same one.
#[derive(Debug, Default)]
pub struct VersionsRead(Mutex<Vec<i64>>);

impl VersionsRead {
    pub fn record(&self, version: i64) {
        if let Ok(mut seen) = self.0.lock() {
            seen.push(version);
        }
    }

    /// The one version every recorded read saw, if there was at least one read.
    pub fn single(&self) -> Option<i64> {
        let seen = self.0.lock().ok()?;
        let first = *seen.first()?;
        seen.iter().all(|v| *v == first).then_some(first)
    }
}

#[cfg(test)]
mod tests {
    use super::VersionsRead;

    #[test]
    fn one_version_only_when_all_reads_agree() {
        let read = VersionsRead::default();
        assert_eq!(read.single(), None);
        read.record(4);
        read.record(4);
        assert_eq!(read.single(), Some(4));
        read.record(5);
        assert_eq!(read.single(), None);
    }
}
