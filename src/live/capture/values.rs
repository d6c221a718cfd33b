//! The newest bucket of a tenant's followed metrics, recomputed from the rollups and the
//! ingestion deltas not merged into them yet, and from the revenue changes.

use chrono::{DateTime, NaiveDate, Utc};
use chrono_tz::Tz;
use diesel::sql_types::{BigInt, Bool, Date, Uuid as SqlUuid};
use diesel_async::RunQueryDsl;
use scoped_futures::ScopedFutureExt;
use uuid::Uuid;

use crate::analytics::EventFilter;
use crate::analytics::cache::TenantContext;
use crate::analytics::{Measure, engagement};
use crate::calendar::{Granularity, Window};
use crate::db::Db;
use crate::error::AppResult;
use crate::live::message::{LiveMessage, MetricKey, MetricValue};
use crate::revenue::report::Report;

/// A metric's newest bucket and its value.
#[derive(Debug, Clone, PartialEq)]
pub struct Computed {
    pub metric: MetricKey,
    pub granularity: Granularity,
    pub bucket: DateTime<Utc>,
    pub value: f64,
}

impl Computed {
    /// The message that carries this value, as of `version` (a log position).
    pub fn message(self, updated_at: DateTime<Utc>, version: u64) -> LiveMessage {
        LiveMessage::Metric(MetricValue {
            metric: self.metric,
            granularity: self.granularity,
            bucket: self.bucket,
            value: self.value,
            updated_at,
            version,
        })
    }
}

fn measure(metric: MetricKey) -> Option<Measure> {
    match metric {
        MetricKey::ActiveUsers => Some(Measure::ActiveUsers),
        MetricKey::NewUsers => Some(Measure::NewUsers),
        MetricKey::Events => Some(Measure::Events),
        // Revenue: `revenue_values`.
        _ => None,
    }
}

/// The newest bucket of the revenue metrics wanted, one report per granularity.
async fn revenue_values(
    conn: &mut crate::db::Conn,
    tenant: Uuid,
    wanted: &[(MetricKey, Granularity)],
    now: DateTime<Utc>,
    tz: Tz,
) -> AppResult<Vec<Computed>> {
    let mut out = Vec::with_capacity(wanted.len());
    let mut reports: Vec<(Granularity, Report)> = Vec::new();
    for &(metric, granularity) in wanted {
        let window = Window::current(now, granularity, tz)?;
        let report = match reports.iter().position(|(g, _)| *g == granularity) {
            Some(i) => &reports[i].1,
            None => {
                let report = crate::revenue::report::report(conn, tenant, &window, None).await?;
                reports.push((granularity, report));
                &reports[reports.len() - 1].1
            }
        };
        // `<[_]>::first`: diesel's `QueryDsl::first` shadows the slice method here.
        let newest =
            |s: &crate::analytics::Series| <[_]>::first(&s.points).map_or(0.0, |p| p.value);
        let value = match metric {
            MetricKey::Mrr => newest(&report.mrr),
            MetricKey::Arr => newest(&report.arr),
            MetricKey::PayingCustomers => newest(&report.paying_customers),
            MetricKey::Arpu => newest(&report.arpu),
            MetricKey::CustomerChurnRate => newest(&report.customer_churn_rate),
            MetricKey::RevenueChurnRate => newest(&report.revenue_churn_rate),
            MetricKey::NetNewMrr => <[_]>::first(&report.movements).map_or(0.0, |m| m.net_new_mrr),
            MetricKey::ActiveUsers | MetricKey::NewUsers | MetricKey::Events => continue,
        };
        out.push(Computed {
            metric,
            granularity,
            bucket: window.from,
            value,
        });
    }
    Ok(out)
}

/// What acknowledged ingestion not yet merged into the rollups adds to a span of whole days.
#[derive(diesel::QueryableByName, Debug, Default, Clone, Copy)]
struct Pending {
    #[diesel(sql_type = BigInt)]
    events: i64,
    #[diesel(sql_type = BigInt)]
    active: i64,
    #[diesel(sql_type = BigInt)]
    new_users: i64,
}

/// Per user with pending deltas: events in the span; active in it without a rolled-up day
/// there; new in it once the pending days count, minus new in it already (a late event can
/// move a user's first day out of the span). Each user's rolled-up days are looked up once, and
/// not at all when only events are wanted (`$4` false).
const PENDING: &str = r#"
WITH p AS MATERIALIZED (
  SELECT user_id, min(day) AS first_pending,
         coalesce(sum(events) FILTER (WHERE day BETWEEN $2 AND $3), 0) AS events,
         bool_or(day BETWEEN $2 AND $3) AS in_span
  FROM pending_segments WHERE tenant_id = $1 GROUP BY user_id
), r AS MATERIALIZED (
  SELECT p.*, f.first_rolled, a.active_rolled IS NOT NULL AS active_rolled
  FROM p
  LEFT JOIN LATERAL (
    SELECT u.day AS first_rolled FROM user_days u
    WHERE $4 AND u.tenant_id = $1 AND u.user_id = p.user_id ORDER BY u.day LIMIT 1
  ) f ON true
  LEFT JOIN LATERAL (
    SELECT 1 AS active_rolled FROM user_days u
    WHERE $4 AND p.in_span AND u.tenant_id = $1 AND u.user_id = p.user_id
      AND u.day BETWEEN $2 AND $3 LIMIT 1
  ) a ON true
)
SELECT coalesce(sum(events), 0)::bigint AS events,
       count(*) FILTER (WHERE in_span AND NOT active_rolled) AS active,
       count(*) FILTER (WHERE least(first_pending, first_rolled) BETWEEN $2 AND $3)
         - count(*) FILTER (WHERE first_rolled BETWEEN $2 AND $3) AS new_users
FROM r
"#;

impl Pending {
    fn of(&self, measure: Measure) -> f64 {
        (match measure {
            Measure::Events => self.events,
            Measure::ActiveUsers => self.active,
            Measure::NewUsers => self.new_users,
        }) as f64
    }
}

#[derive(diesel::QueryableByName)]
struct WalPosition {
    #[diesel(sql_type = diesel::sql_types::Text)]
    lsn: String,
    #[diesel(sql_type = diesel::sql_types::Text)]
    snapshot: String,
}

/// The values of `wanted` for the buckets that contain `now`, exactly as a dashboard read
/// would see them once acknowledged ingestion is merged, without waiting for the merge: the
/// rollups plus what the pending deltas add, read in one snapshot. With them, their version:
/// the log position read after the snapshot was taken, so that a value computed later always
/// carries a higher version, whichever change it was computed for (a replayed change is
/// computed from newer data than its own position says).
///
/// `committed`: transactions whose changes the values must include. PostgreSQL writes a
/// commit to the log (where capture reads it) a moment before other sessions' snapshots see
/// it; a snapshot taken in that moment would compute the old value, which is then not sent
/// again. Such a snapshot is dropped and taken again.
pub async fn newest(
    db: &Db,
    tenant: Uuid,
    wanted: &[(MetricKey, Granularity)],
    now: DateTime<Utc>,
    committed: &[u32],
) -> AppResult<(u64, Vec<Computed>)> {
    const ATTEMPTS: u32 = 200;
    for _ in 1..ATTEMPTS {
        if let Some(values) = newest_seeing(db, tenant, wanted, now, committed).await? {
            return Ok(values);
        }
        metrics::counter!("fahwa_live_snapshot_retries_total").increment(1);
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
    }
    // Never seen here (a commit becomes visible within microseconds): compute what is seen
    // rather than hold the tenant's updates back.
    tracing::warn!(tenant = %tenant, "live: a committed transaction stayed invisible; computed without it");
    Ok(newest_seeing(db, tenant, wanted, now, &[])
        .await?
        .unwrap_or_default())
}

/// Whether a snapshot (`pg_current_snapshot()` as text, `xmin:xmax:xip,…`) sees every one of
/// the committed transactions `xids` (32-bit, as the log gives them).
fn sees_all(snapshot: &str, xids: &[u32]) -> bool {
    let mut parts = snapshot.split(':');
    let (Some(_xmin), Some(xmax), Some(xip)) = (parts.next(), parts.next(), parts.next()) else {
        return false;
    };
    let Ok(xmax) = xmax.parse::<u64>() else {
        return false;
    };
    let in_progress: Vec<u32> = xip
        .split(',')
        .filter_map(|x| x.parse::<u64>().ok())
        .map(|x| x as u32)
        .collect();
    // A committed transaction is invisible only while listed as in progress, or when it is
    // not older than xmax (compared modulo 2^32, as PostgreSQL compares xids).
    xids.iter()
        .all(|&x| !in_progress.contains(&x) && (x.wrapping_sub(xmax as u32) as i32) < 0)
}

async fn newest_seeing(
    db: &Db,
    tenant: Uuid,
    wanted: &[(MetricKey, Granularity)],
    now: DateTime<Utc>,
    committed: &[u32],
) -> AppResult<Option<(u64, Vec<Computed>)>> {
    let revenue: Vec<(MetricKey, Granularity)> = wanted
        .iter()
        .copied()
        .filter(|(m, _)| m.is_revenue())
        .collect();
    let wanted: Vec<(MetricKey, Measure, Granularity)> = wanted
        .iter()
        .filter_map(|&(m, g)| Some((m, measure(m)?, g)))
        .collect();
    if wanted.is_empty() && revenue.is_empty() {
        return Ok(Some((0, Vec::new())));
    }
    let revenue = &revenue;
    // The pending deltas' users matter to user counts only.
    let users_wanted = wanted.iter().any(|(_, m, _)| *m != Measure::Events);
    let wanted = &wanted;
    db.tenant_snapshot(tenant, |conn| {
        async move {
            let position: WalPosition = diesel::sql_query(
                "SELECT pg_current_wal_lsn()::text AS lsn, pg_current_snapshot()::text AS snapshot",
            )
            .get_result(conn)
            .await?;
            if !sees_all(&position.snapshot, committed) {
                return Ok(None);
            }
            let version = super::parse_lsn(&position.lsn).unwrap_or(0);
            let context = TenantContext::get(conn, tenant).await?;
            let tz: Tz = context.timezone.parse().unwrap_or(Tz::UTC);
            let tracked = &context.rollup_properties;
            let none = EventFilter::default();
            let mut pending: Vec<((NaiveDate, NaiveDate), Pending)> = Vec::new();
            let mut out = Vec::with_capacity(wanted.len());
            for &(metric, measure, granularity) in wanted {
                let window = Window::current(now, granularity, tz)?;
                let series =
                    engagement::series(conn, tenant, &window, tracked, measure, &none, None)
                        .await?;
                // Hourly buckets read the events themselves, which hold everything.
                let mut value = series.total;
                if let Some(days) = window.whole().full_days
                    && engagement::uses_rollups(&window, measure, &none, None)
                {
                    let add = match pending.iter().find(|(d, _)| *d == days) {
                        Some((_, p)) => *p,
                        None => {
                            let p: Pending = diesel::sql_query(PENDING)
                                .bind::<SqlUuid, _>(tenant)
                                .bind::<Date, _>(days.0)
                                .bind::<Date, _>(days.1)
                                .bind::<Bool, _>(users_wanted)
                                .get_result(conn)
                                .await?;
                            pending.push((days, p));
                            p
                        }
                    };
                    value += add.of(measure);
                }
                out.push(Computed {
                    metric,
                    granularity,
                    bucket: window.from,
                    value,
                });
            }
            out.extend(revenue_values(conn, tenant, revenue, now, tz).await?);
            Ok(Some((version, out)))
        }
        .scope_boxed()
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::sees_all;

    #[test]
    fn a_snapshot_sees_committed_transactions_that_are_neither_in_progress_nor_ahead() {
        assert!(sees_all("100:105:", &[99, 104]));
        assert!(
            !sees_all("100:105:101,103", &[103]),
            "listed as in progress"
        );
        assert!(!sees_all("100:105:", &[105]), "not older than xmax");
        assert!(sees_all("100:105:101", &[]));
        // Full 64-bit ids of a later epoch: compared on their low 32 bits, modulo 2^32.
        let epoch = 1u64 << 32;
        let snapshot = format!("{}:{}:{}", epoch + 5, epoch + 10, epoch + 7);
        assert!(sees_all(&snapshot, &[6, 9, u32::MAX]));
        assert!(!sees_all(&snapshot, &[7]));
        assert!(!sees_all(&snapshot, &[10]));
        assert!(!sees_all("garbled", &[1]));
    }
}
