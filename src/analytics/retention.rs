//! Retention: one cohort per bucket (users whose first-ever event falls in it); `retained[k]` is
//! how many of them were active in the k-th bucket after it, from the activity rollup.

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use diesel::sql_types::{BigInt, Date, Integer, Text, Timestamptz, Uuid as SqlUuid};
use diesel_async::RunQueryDsl;
use uuid::Uuid;

use crate::calendar::{self, sql::Base};
use crate::calendar::{Granularity, Window, local_date, local_midnight};
use crate::db::Conn;
use crate::db::binds::Binds;
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
    let mut q = Binds::default();
    let t = q.bind::<SqlUuid, _>(tenant);
    let (base_day, base_month) = (
        q.bind::<Date, _>(base.day),
        q.bind::<Integer, _>(base.month),
    );
    let (from, to) = (
        q.bind::<Timestamptz, _>(window.from),
        q.bind::<Timestamptz, _>(window.to),
    );
    let zone = q.bind::<Text, _>(window.tz.name());
    let (horizon, periods_at) = (q.bind::<Date, _>(horizon), q.bind::<Integer, _>(periods));
    let index = |day: &str| calendar::sql::number(window.granularity, day, &base_day, &base_month);
    // Each cohort member's own days, reduced to distinct buckets before they meet the other
    // members': one DISTINCT over every member's days had spilled to disk, and `width_bucket`
    // over an array of dates compared generically per row (12 weeks of the bench tenant, cached
    // pages: 0.77–0.82 s before, 0.46–0.55 s after, auto_explain; about 3.1 s either way when the
    // pages had to be read first).
    let sql = format!(
        "WITH cohort AS ( \
           SELECT eu.user_id, {} AS c \
           FROM end_users eu WHERE eu.tenant_id = {t} AND eu.first_seen >= {from} AND eu.first_seen < {to} \
         ) \
         SELECT c.c AS cohort, x.k, count(*)::int8 AS users \
         FROM cohort c CROSS JOIN LATERAL ( \
           SELECT DISTINCT {} - c.c AS k FROM user_days ud \
           WHERE ud.tenant_id = {t} AND ud.user_id = c.user_id AND ud.day >= {base_day} AND ud.day < {horizon}) x \
         WHERE x.k >= 0 AND x.k < {periods_at} GROUP BY 1, 2",
        index(&format!("(eu.first_seen AT TIME ZONE {zone})::date")),
        index("ud.day"),
    );
    let rows: Vec<Row> = q.finish(&sql).load(conn).await?;
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
