//! Retention: each tenant keeps the months of events it chose. Old events are deleted per tenant
//! (and its rollups rebuilt, since first-seen days move); a monthly partition is dropped whole
//! once no tenant keeps anything in it.

use chrono::{DateTime, Datelike, Months, TimeZone, Utc};
use diesel::sql_types::{BigInt, Integer, Timestamptz, Uuid as SqlUuid};
use diesel_async::RunQueryDsl;
use scoped_futures::ScopedFutureExt;
use uuid::Uuid;

use super::rollups::lock_tenant_writes;
use crate::db::tenants::TenantRow;
use crate::db::{Db, Scope};
use crate::error::AppResult;

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct RetentionReport {
    pub tenants_trimmed: usize,
    pub events_deleted: i64,
    pub partitions_dropped: i32,
}

/// The first instant kept by a retention of `months`: the start of the month (UTC) that many
/// months before the current one.
pub fn cutoff(now: DateTime<Utc>, months: i32) -> DateTime<Utc> {
    let month_start = Utc
        .with_ymd_and_hms(now.year(), now.month(), 1, 0, 0, 0)
        .single()
        .unwrap_or(now);
    month_start
        .checked_sub_months(Months::new(months.max(0) as u32))
        .unwrap_or(month_start)
}

#[derive(diesel::QueryableByName)]
struct Deleted {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

#[derive(diesel::QueryableByName)]
struct Dropped {
    #[diesel(sql_type = Integer)]
    n: i32,
}

pub async fn apply(db: &Db, now: DateTime<Utc>) -> AppResult<RetentionReport> {
    let tenants = db
        .scoped(Scope::Operator, |conn| {
            async move { TenantRow::retentions(conn).await }.scope_boxed()
        })
        .await?;
    let mut report = RetentionReport::default();
    for (tenant, months) in &tenants {
        let Some(months) = *months else { continue };
        let before = cutoff(now, months);
        let tenant: Uuid = *tenant;
        let deleted = db
            .tenant(tenant, |conn| {
                async move {
                    lock_tenant_writes(conn, tenant).await?;
                    let d: Deleted = diesel::sql_query(
                        "WITH gone AS (DELETE FROM events WHERE tenant_id = $1 AND occurred_at < $2 RETURNING 1) \
                         SELECT count(*)::int8 AS n FROM gone",
                    )
                    .bind::<SqlUuid, _>(tenant)
                    .bind::<Timestamptz, _>(before)
                    .get_result(conn)
                    .await?;
                    if d.n > 0 {
                        diesel::sql_query("SELECT fahwa_rebuild_rollups($1)")
                            .bind::<SqlUuid, _>(tenant)
                            .execute(conn)
                            .await?;
                    }
                    Ok(d.n)
                }
                .scope_boxed()
            })
            .await?;
        if deleted > 0 {
            report.tenants_trimmed += 1;
            report.events_deleted += deleted;
        }
    }
    // A partition goes only when every tenant's retention has passed it.
    let every_tenant_limited = tenants.iter().all(|(_, m)| m.is_some());
    if every_tenant_limited && let Some(longest) = tenants.iter().filter_map(|(_, m)| *m).max() {
        let before = cutoff(now, longest);
        let dropped: Dropped = db
            .outside_tenants(|conn| {
                async move {
                    Ok(
                        diesel::sql_query("SELECT fahwa_drop_event_partitions_before($1) AS n")
                            .bind::<Timestamptz, _>(before)
                            .get_result(conn)
                            .await?,
                    )
                }
                .scope_boxed()
            })
            .await?;
        report.partitions_dropped = dropped.n;
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cutoffs_are_month_starts() {
        let now: DateTime<Utc> = "2026-11-24T21:00:00Z".parse().unwrap();
        assert_eq!(cutoff(now, 1).to_rfc3339(), "2026-10-01T00:00:00+00:00");
        assert_eq!(cutoff(now, 12).to_rfc3339(), "2025-11-01T00:00:00+00:00");
        assert_eq!(cutoff(now, 0).to_rfc3339(), "2026-11-01T00:00:00+00:00");
    }
}
