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
