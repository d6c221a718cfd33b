//! Funnels: users who did step 1 inside the range, then each next step after the previous one,
//! all within the conversion window from their first step 1.

use chrono::{DateTime, Duration, Utc};
use diesel::sql_types::{BigInt, Double, Text, Timestamptz, Uuid as SqlUuid};
use diesel_async::RunQueryDsl;
use uuid::Uuid;

use crate::db::Conn;
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
    // Parameters: $1 tenant, $2 from, $3 to, $4 window seconds, then one per step name.
    let mut sql = String::from(
        "WITH s1 AS (SELECT user_id, min(occurred_at) AS t0, min(occurred_at) AS t FROM events \
         WHERE tenant_id = $1 AND name = $5 AND occurred_at >= $2 AND occurred_at < $3 GROUP BY user_id)",
    );
    for i in 2..=steps.len() {
        sql.push_str(&format!(
            ", s{i} AS (SELECT p.user_id, p.t0, min(e.occurred_at) AS t FROM s{prev} p \
             JOIN events e ON e.tenant_id = $1 AND e.name = ${param} AND e.user_id = p.user_id \
               AND e.occurred_at > p.t AND e.occurred_at <= p.t0 + make_interval(secs => $4) \
               AND e.occurred_at >= $2 AND e.occurred_at < $3 + make_interval(secs => $4) \
             GROUP BY p.user_id, p.t0)",
            prev = i - 1,
            param = i + 4
        ));
    }
    let counts: Vec<String> = (1..=steps.len())
        .map(|i| format!("SELECT {i} AS step, count(*)::int8 AS n FROM s{i}"))
        .collect();
    sql.push_str(&format!(" {} ORDER BY step", counts.join(" UNION ALL ")));
    let mut query = diesel::sql_query(sql)
        .into_boxed()
        .bind::<SqlUuid, _>(tenant)
        .bind::<Timestamptz, _>(from)
        .bind::<Timestamptz, _>(to)
        .bind::<Double, _>(Duration::hours(window_hours as i64).num_seconds() as f64);
    for s in steps {
        query = query.bind::<Text, _>(s.clone());
    }
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
