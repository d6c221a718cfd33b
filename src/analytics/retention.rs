//! Retention: one cohort per bucket (users whose first-ever event falls in it); `retained[k]` is
//! how many of them were active in the k-th bucket after it, from the activity rollup.

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use diesel::sql_types::{BigInt, Date, Integer, Text, Timestamptz, Uuid as SqlUuid};
use diesel_async::RunQueryDsl;
use uuid::Uuid;

use crate::calendar::sql::{self as bucket_sql, Base};
use crate::calendar::{Granularity, Window, local_date, local_midnight};
use crate::db::Conn;
use crate::error::{AppError, AppResult};

pub const MAX_PERIODS: i32 = 60;

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Cohort {
    pub start: DateTime<Utc>,
    pub size: i64,
    pub retained: Vec<i64>,
}

#[derive(diesel::QueryableByName)]
struct Row {
    #[diesel(sql_type = Integer)]
    cohort: i32,
    #[diesel(sql_type = Integer)]
    k: i32,
    #[diesel(sql_type = BigInt)]
    users: i64,
}

pub async fn retention(
    conn: &mut Conn,
    tenant: Uuid,
    window: &Window,
    periods: i32,
) -> AppResult<Vec<Cohort>> {
    if window.granularity == Granularity::Hour {
        return Err(AppError::bad_input(
            "granularity: retention needs DAY, WEEK or MONTH",
        ));
    }
    if !(1..=MAX_PERIODS).contains(&periods) {
        return Err(AppError::bad_input(format!(
            "periods: must be 1 to {MAX_PERIODS}"
        )));
    }
    // Bucket start dates for the cohorts and for `periods` buckets after the last one.
    let extended = Window::new(
        window.from,
        extend(window, periods),
        window.granularity,
        window.tz,
    )?;
    let base = Base::of(window);
    let horizon = local_date(window.tz, extended.to);
    let index = |day: &str| bucket_sql::number(window.granularity, day, "$2", "$8");
    // Each cohort member's own days, reduced to distinct buckets before they meet the other
    // members': one DISTINCT over every member's days had spilled to disk, and `width_bucket`
    // over an array of dates compared generically per row (12 weeks of the bench tenant, cached
    // pages: 0.77–0.82 s before, 0.46–0.55 s after, auto_explain; about 3.1 s either way when the
    // pages had to be read first).
    let sql = format!(
        "WITH cohort AS ( \
           SELECT eu.user_id, {} AS c \
           FROM end_users eu WHERE eu.tenant_id = $1 AND eu.first_seen >= $3 AND eu.first_seen < $4 \
         ) \
         SELECT c.c AS cohort, x.k, count(*)::int8 AS users \
         FROM cohort c CROSS JOIN LATERAL ( \
           SELECT DISTINCT {} - c.c AS k FROM user_days ud \
           WHERE ud.tenant_id = $1 AND ud.user_id = c.user_id AND ud.day >= $2 AND ud.day < $6) x \
         WHERE x.k >= 0 AND x.k < $7 GROUP BY 1, 2",
        index("(eu.first_seen AT TIME ZONE $5)::date"),
        index("ud.day"),
    );
    let rows: Vec<Row> = diesel::sql_query(sql)
        .bind::<SqlUuid, _>(tenant)
        .bind::<Date, _>(base.day)
        .bind::<Timestamptz, _>(window.from)
        .bind::<Timestamptz, _>(window.to)
        .bind::<Text, _>(window.tz.name())
        .bind::<Date, _>(horizon)
        .bind::<Integer, _>(periods)
        .bind::<Integer, _>(base.month)
        .load(conn)
        .await?;
    let mut cohorts: Vec<Cohort> = window
        .buckets
        .iter()
        .map(|b| Cohort {
            start: b.label,
            size: 0,
            retained: vec![0; periods as usize],
        })
        .collect();
    for r in rows {
        if let Some(c) = cohorts.get_mut(r.cohort as usize) {
            c.retained[r.k as usize] = r.users;
        }
    }
    for c in &mut cohorts {
        c.size = c.retained[0];
    }
    Ok(cohorts)
}

/// The end of the bucket `periods` buckets after the range's last bucket.
fn extend(window: &Window, periods: i32) -> DateTime<Utc> {
    let tz: Tz = window.tz;
    let last = local_date(tz, window.buckets.last().map_or(window.from, |b| b.label));
    let end = match window.granularity {
        Granularity::Month => last
            .checked_add_months(chrono::Months::new(periods as u32 + 1))
            .unwrap_or(last),
        Granularity::Week => last + chrono::Duration::days(7 * (periods as i64 + 1)),
        _ => last + chrono::Duration::days(periods as i64 + 1),
    };
    local_midnight(tz, end)
}
