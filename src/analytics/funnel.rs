//! Funnels: users who did step 1 inside the range, then each next step after the previous one,
//! all within the conversion window from their first step 1.

use chrono::{DateTime, Duration, Utc};
use diesel::sql_types::{BigInt, Double, Text, Timestamptz, Uuid as SqlUuid};
use diesel_async::RunQueryDsl;
use uuid::Uuid;

use crate::db::Conn;
use crate::db::binds::Binds;
use crate::error::{AppError, AppResult};

pub const MAX_STEPS: usize = 10;
pub const MAX_WINDOW_HOURS: i32 = 24 * 366;

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct FunnelStep {
    pub name: String,
    pub users: i64,
    pub conversion_rate: f64,
}

#[derive(diesel::QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

pub async fn funnel(
    conn: &mut Conn,
    tenant: Uuid,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    steps: &[String],
    window_hours: i32,
) -> AppResult<Vec<FunnelStep>> {
    if steps.is_empty() || steps.len() > MAX_STEPS {
        return Err(AppError::bad_input(format!(
            "steps: give 1 to {MAX_STEPS} event names"
        )));
    }
    if !(1..=MAX_WINDOW_HOURS).contains(&window_hours) {
        return Err(AppError::bad_input(format!(
            "conversionWindowHours: must be 1 to {MAX_WINDOW_HOURS}"
        )));
    }
    let mut q = Binds::default();
    let (t, lo, hi) = (
        q.bind::<SqlUuid, _>(tenant),
        q.bind::<Timestamptz, _>(from),
        q.bind::<Timestamptz, _>(to),
    );
    let first = q.bind::<Text, _>(steps[0].as_str());
    let mut sql = format!(
        "WITH s1 AS (SELECT user_id, min(occurred_at) AS t0, min(occurred_at) AS t FROM events \
         WHERE tenant_id = {t} AND name = {first} AND occurred_at >= {lo} AND occurred_at < {hi} \
         GROUP BY user_id)"
    );
    if steps.len() > 1 {
        let secs = q.bind::<Double, _>(Duration::hours(window_hours as i64).num_seconds() as f64);
        for (i, step) in steps.iter().enumerate().skip(1) {
            let name = q.bind::<Text, _>(step.as_str());
            sql.push_str(&format!(
                ", s{n} AS (SELECT p.user_id, p.t0, min(e.occurred_at) AS t FROM s{i} p \
                 JOIN events e ON e.tenant_id = {t} AND e.name = {name} AND e.user_id = p.user_id \
                   AND e.occurred_at > p.t AND e.occurred_at <= p.t0 + make_interval(secs => {secs}) \
                   AND e.occurred_at >= {lo} AND e.occurred_at < {hi} + make_interval(secs => {secs}) \
                 GROUP BY p.user_id, p.t0)",
                n = i + 1
            ));
        }
    }
    let counts: Vec<String> = (1..=steps.len())
        .map(|i| format!("SELECT {i} AS step, count(*)::int8 AS n FROM s{i}"))
        .collect();
    sql.push_str(&format!(" {} ORDER BY step", counts.join(" UNION ALL ")));
    let query = q.finish(&sql);
    let rows: Vec<Count> = query.load(conn).await?;
    let first = rows.iter().map(|r| r.n).next().unwrap_or(0);
    Ok(steps
        .iter()
        .zip(rows)
        .map(|(name, r)| FunnelStep {
            name: name.clone(),
            users: r.n,
            conversion_rate: if first == 0 {
                0.0
            } else {
                r.n as f64 / first as f64
            },
        })
        .collect())
}
