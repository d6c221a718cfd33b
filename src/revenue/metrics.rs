//! Revenue analytics over a window, exactly from the changes: stocks at the end of each bucket
//! (MRR, paying customers), movements within it with a customer's changes netted over the
//! bucket as ChartMogul does (0 → 50 → 0 inside one bucket is no movement), and churn rates
//! against the bucket's start.

use chrono::{DateTime, Utc};
use chrono::{Datelike, NaiveDate};
use diesel::QueryableByName;
use diesel::sql_types::{Array, BigInt, Date, Double, Integer, Text, Timestamptz, Uuid as SqlUuid};
use diesel_async::RunQueryDsl;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use std::collections::HashMap;
use std::sync::Arc;

use super::index::{Changes, Index, Totals};
use crate::db::Conn;
use crate::error::AppResult;
use crate::metrics::window::{Granularity, local_date, local_midnight};
use crate::metrics::{Point, Series, Window};

/// A customer's state at an instant is its last change before it (ties in arrival order).
/// Each change carries the MRR before it, whether the customer had paid before it, and when the
/// customer's previous and next changes happened (`fahwa_recompute_customers`). So a bucket the
/// range holds whole is one row of `revenue_periods`, and only the changes inside a cut bucket
/// (or inside the whole range, for its totals) are read: a change is its customer's first in a
/// span when the previous one is before the span, and its last when the next one is after.
///
/// Rows: `k` 0 is the stock at the range's start (the days before it, a month at a time, plus
/// that day's changes before it); `k` 1..n a bucket's net change of the stocks and movements;
/// `k` -1 the whole range's movements. Stocks come out as of the end of each bucket.
const REPORT: &str = r#"
WITH base AS (
  SELECT coalesce(sum(d_mrr), 0) AS d_mrr, coalesce(sum(d_paying), 0) AS d_paying
  FROM revenue_periods
  WHERE tenant_id = $1 AND ((grain = 'm' AND period < $3) OR (grain = 'd' AND period >= $3 AND period < $2))
), partial AS (
  SELECT coalesce(sum(mrr - prev_mrr), 0) AS d_mrr,
         coalesce(sum((mrr > 0)::int - (prev_mrr > 0)::int), 0) AS d_paying
  FROM revenue_changes WHERE tenant_id = $1 AND occurred_at >= $4 AND occurred_at < $5
), whole AS (
  SELECT w.k, p.d_mrr, p.d_paying::bigint AS d_paying, p.new_mrr, p.reactivation_mrr,
         p.expansion_mrr, p.contraction_mrr, p.churned_mrr, p.churned::bigint AS churned
  FROM unnest($7::int[], $8::date[]) AS w (k, period)
  JOIN revenue_periods p ON p.tenant_id = $1 AND p.grain = $6::"char" AND p.period = w.period
), ch AS (
  SELECT x.k, c.customer_id, c.mrr, c.prev_mrr, c.paid_before,
         c.prev_at IS NULL OR c.prev_at < x.lo AS first,
         c.next_at IS NULL OR c.next_at >= x.hi AS last
  FROM unnest($9::int[], $10::timestamptz[], $11::timestamptz[]) AS x (k, lo, hi)
  JOIN revenue_changes c ON c.tenant_id = $1 AND c.occurred_at >= x.lo AND c.occurred_at < x.hi
), per_customer AS (
  SELECT k, customer_id,
         max(prev_mrr) FILTER (WHERE first) AS s,
         max(mrr) FILTER (WHERE last) AS e,
         bool_or(paid_before) FILTER (WHERE first) AS p
  FROM ch WHERE first OR last GROUP BY k, customer_id
  UNION ALL
  -- The whole range, straight from the index: only its customers' first and last changes.
  SELECT -1, customer_id,
         max(prev_mrr) FILTER (WHERE prev_at IS NULL OR prev_at < $12),
         max(mrr) FILTER (WHERE next_at IS NULL OR next_at >= $13),
         bool_or(paid_before) FILTER (WHERE prev_at IS NULL OR prev_at < $12)
  FROM revenue_changes
  WHERE tenant_id = $1 AND occurred_at >= $12 AND occurred_at < $13
    AND (prev_at IS NULL OR prev_at < $12 OR next_at IS NULL OR next_at >= $13)
  GROUP BY customer_id
), moves AS (
  SELECT k,
         coalesce(sum(e) FILTER (WHERE s = 0 AND e > 0 AND NOT p), 0) AS new_mrr,
         coalesce(sum(e) FILTER (WHERE s = 0 AND e > 0 AND p), 0) AS reactivation_mrr,
         coalesce(sum(e - s) FILTER (WHERE s > 0 AND e > s), 0) AS expansion_mrr,
         coalesce(sum(s - e) FILTER (WHERE e > 0 AND e < s), 0) AS contraction_mrr,
         coalesce(sum(s) FILTER (WHERE s > 0 AND e = 0), 0) AS churned_mrr,
         count(*) FILTER (WHERE s > 0 AND e = 0) AS churned
  FROM per_customer GROUP BY k
), cut AS (
  SELECT k, sum(mrr - prev_mrr) AS d_mrr, sum((mrr > 0)::int - (prev_mrr > 0)::int) AS d_paying
  FROM ch GROUP BY k
), buckets AS (
  SELECT 0 AS k, base.d_mrr + partial.d_mrr AS d_mrr, base.d_paying + partial.d_paying AS d_paying,
         0::numeric AS new_mrr, 0::numeric AS reactivation_mrr, 0::numeric AS expansion_mrr,
         0::numeric AS contraction_mrr, 0::numeric AS churned_mrr, 0::bigint AS churned
  FROM base, partial
  UNION ALL
  SELECT * FROM whole
  UNION ALL
  SELECT c.k, c.d_mrr, c.d_paying, m.new_mrr, m.reactivation_mrr, m.expansion_mrr,
         m.contraction_mrr, m.churned_mrr, m.churned
  FROM cut c JOIN moves m USING (k)
)
SELECT k, (sum(d_mrr) OVER (ORDER BY k))::float8 AS mrr,
       (sum(d_paying) OVER (ORDER BY k))::bigint AS paying,
       new_mrr::float8 AS new_mrr, reactivation_mrr::float8 AS reactivation_mrr,
       expansion_mrr::float8 AS expansion_mrr, contraction_mrr::float8 AS contraction_mrr,
       churned_mrr::float8 AS churned_mrr, churned
FROM buckets
UNION ALL
SELECT -1, 0, 0, new_mrr::float8, reactivation_mrr::float8, expansion_mrr::float8,
       contraction_mrr::float8, churned_mrr::float8, churned
FROM moves WHERE k = -1
"#;

#[derive(diesel::QueryableByName, Debug, Default, Clone)]
struct Row {
    #[diesel(sql_type = Integer)]
    k: i32,
    /// At the end of bucket `k` (`k` 0: at the range's start).
    #[diesel(sql_type = Double)]
    mrr: f64,
    #[diesel(sql_type = BigInt)]
    paying: i64,
    #[diesel(embed)]
    moves: Totals,
}

impl Row {
    fn moved(k: i32, moves: Totals) -> Row {
        Row {
            k,
            moves,
            ..Row::default()
        }
    }
}

/// One bucket's MRR movements, in the tenant's currency (GraphQL `MrrMovement`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, async_graphql::SimpleObject)]
#[graphql(name = "MrrMovement")]
pub struct Movement {
    /// Start of the bucket in the tenant's time zone.
    #[serde(with = "chrono::serde::ts_seconds")]
    pub bucket: DateTime<Utc>,
    /// From 0 to more, for the first time.
    pub new_mrr: f64,
    pub expansion_mrr: f64,
    /// Decreases that leave the customer paying.
    pub contraction_mrr: f64,
    /// Decreases to 0, as a positive amount.
    pub churned_mrr: f64,
    /// From 0 to more, after an earlier churn.
    pub reactivation_mrr: f64,
    /// new + reactivation + expansion - contraction - churned.
    pub net_new_mrr: f64,
}

/// Everything `analytics.revenue` answers for one window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub mrr: Series,
    pub arr: Series,
    pub paying_customers: Series,
    pub arpu: Series,
    pub customer_churn_rate: Series,
    pub revenue_churn_rate: Series,
    /// None while no customer churned in the range (the lifetime is unbounded).
    pub ltv: Option<f64>,
    pub movements: Vec<Movement>,
}

/// Average days in a month, for turning a range's churn into a monthly rate.
const DAYS_PER_MONTH: f64 = 365.25 / 12.0;

fn ratio(a: f64, b: f64) -> f64 {
    if b == 0.0 { 0.0 } else { a / b }
}

/// The range's buckets as the statement takes them: whole periods by their first day, cut
/// buckets by their instants.
#[derive(Default)]
struct Plan {
    period_k: Vec<i32>,
    periods: Vec<NaiveDate>,
    span_k: Vec<i32>,
    span_from: Vec<DateTime<Utc>>,
    span_to: Vec<DateTime<Utc>>,
}

impl Plan {
    fn of(window: &Window) -> Self {
        let mut plan = Plan::default();
        for (i, bucket) in window.buckets.iter().enumerate() {
            let k = i as i32 + 1;
            match bucket.whole_period(window.granularity, window.tz) {
                Some(first_day) => {
                    plan.period_k.push(k);
                    plan.periods.push(first_day);
                }
                None => plan.span(k, bucket.start, bucket.end),
            }
        }
        plan
    }

    fn span(&mut self, k: i32, from: DateTime<Utc>, to: DateTime<Utc>) {
        self.span_k.push(k);
        self.span_from.push(from);
        self.span_to.push(to);
    }
}

fn grain(granularity: Granularity) -> &'static str {
    match granularity {
        Granularity::Hour | Granularity::Day => "d",
        Granularity::Week => "w",
        Granularity::Month => "m",
    }
}

/// `index`: this instance's in-memory copies of revenue changes, used for the range's totals
/// when the tenant's is current in the caller's snapshot (call inside `tenant_snapshot`).
pub async fn report(
    conn: &mut Conn,
    tenant: Uuid,
    window: &Window,
    index: Option<&Arc<Index>>,
) -> AppResult<Report> {
    let copy = match index {
        Some(index) => {
            let stamp = super::index::stamp(conn, tenant).await?;
            index.at(tenant, stamp).await
        }
        None => None,
    };
    let (at, whole) = match copy {
        Some(copy) => from_copy(conn, tenant, &copy, window).await?,
        None => from_sql(conn, tenant, window).await?,
    };
    Ok(assemble(window, &at, &whole))
}

/// Rows `k` 0..=n (stocks at the range's start, then per bucket) and the whole range's.
async fn from_sql(conn: &mut Conn, tenant: Uuid, window: &Window) -> AppResult<(Vec<Row>, Row)> {
    let n = window.buckets.len();
    let plan = Plan::of(window);
    let from_day = local_date(window.tz, window.from);
    let from_month = from_day.with_day(1).unwrap_or(from_day);
    let rows: Vec<Row> = diesel::sql_query(REPORT)
        .bind::<SqlUuid, _>(tenant)
        .bind::<Date, _>(from_day)
        .bind::<Date, _>(from_month)
        .bind::<Timestamptz, _>(local_midnight(window.tz, from_day))
        .bind::<Timestamptz, _>(window.from)
        .bind::<Text, _>(grain(window.granularity))
        .bind::<Array<Integer>, _>(&plan.period_k)
        .bind::<Array<Date>, _>(&plan.periods)
        .bind::<Array<Integer>, _>(&plan.span_k)
        .bind::<Array<Timestamptz>, _>(&plan.span_from)
        .bind::<Array<Timestamptz>, _>(&plan.span_to)
        .bind::<Timestamptz, _>(window.from)
        // With one bucket the range's totals are that bucket's: an empty span reads nothing.
        .bind::<Timestamptz, _>(if n > 1 { window.to } else { window.from })
        .load(conn)
        .await?;
    let mut at = vec![Row::default(); n + 1];
    let mut whole = None;
    for r in rows {
        match usize::try_from(r.k) {
            Ok(k) if k <= n => at[k] = r,
            _ => whole = Some(r),
        }
    }
    // A bucket without changes has no row: its stocks are the previous bucket's.
    for k in 1..=n {
        if at[k].k == 0 {
            at[k].mrr = at[k - 1].mrr;
            at[k].paying = at[k - 1].paying;
        }
    }
    let whole = match whole {
        Some(w) => w,
        None if n == 1 => at[1].clone(),
        None => Row::default(),
    };
    Ok((at, whole))
}

/// Whole buckets' rows of `revenue_periods`, in the caller's snapshot.
const PERIODS: &str = r#"
SELECT period, new_mrr::float8 AS new_mrr,
       reactivation_mrr::float8 AS reactivation_mrr, expansion_mrr::float8 AS expansion_mrr,
       contraction_mrr::float8 AS contraction_mrr, churned_mrr::float8 AS churned_mrr,
       churned::bigint AS churned
FROM revenue_periods
WHERE tenant_id = $1 AND grain = $2::"char" AND period >= $3 AND period <= $4
"#;

/// A period's movements (its deltas of the stocks come from the copy).
#[derive(diesel::QueryableByName)]
struct Period {
    #[diesel(sql_type = Date)]
    period: NaiveDate,
    #[diesel(embed)]
    moves: Totals,
}

/// The same rows from a current in-memory copy of the changes: whole buckets' movements from
/// their periods, cut buckets' and the range's from the copy, stocks from its prefix sums.
async fn from_copy(
    conn: &mut Conn,
    tenant: Uuid,
    copy: &Changes,
    window: &Window,
) -> AppResult<(Vec<Row>, Row)> {
    let plan = Plan::of(window);
    let (first, last) = (<[_]>::first(&plan.periods), <[_]>::last(&plan.periods));
    let periods: HashMap<NaiveDate, Totals> = match (first, last) {
        (Some(first), Some(last)) => diesel::sql_query(PERIODS)
            .bind::<SqlUuid, _>(tenant)
            .bind::<Text, _>(grain(window.granularity))
            .bind::<Date, _>(first)
            .bind::<Date, _>(last)
            .load::<Period>(conn)
            .await?
            .into_iter()
            .map(|p| (p.period, p.moves))
            .collect(),
        _ => HashMap::new(),
    };
    let stock = |row: Row, t| {
        let (mrr, paying) = copy.stock_before(t);
        Row { mrr, paying, ..row }
    };
    let mut at = vec![stock(Row::default(), window.from)];
    for (i, b) in window.buckets.iter().enumerate() {
        let k = i as i32 + 1;
        let moves = match b.whole_period(window.granularity, window.tz) {
            Some(day) => periods.get(&day).cloned().unwrap_or_default(),
            None => copy.movements(b.start, b.end),
        };
        at.push(stock(Row::moved(k, moves), b.end));
    }
    let whole = if window.buckets.len() > 1 {
        Row::moved(-1, copy.movements(window.from, window.to))
    } else {
        at[1].clone()
    };
    Ok((at, whole))
}

fn assemble(window: &Window, at: &[Row], whole: &Row) -> Report {
    let n = window.buckets.len();
    let series = |total: f64, value: &dyn Fn(usize) -> f64| Series {
        total,
        points: window
            .buckets
            .iter()
            .enumerate()
            .map(|(b, bucket)| Point {
                bucket: bucket.label,
                value: value(b + 1),
                group: None,
            })
            .collect(),
    };
    let (start, end) = (&at[0], &at[n]);
    let arpu_at = |k: usize| ratio(at[k].mrr, at[k].paying as f64);
    let customer_churn = ratio(whole.moves.churned as f64, start.paying as f64);
    let days = (window.to - window.from).num_seconds() as f64 / 86_400.0;
    let monthly_churn = customer_churn * DAYS_PER_MONTH / days;
    Report {
        mrr: series(end.mrr, &|k| at[k].mrr),
        arr: series(end.mrr * 12.0, &|k| at[k].mrr * 12.0),
        paying_customers: series(end.paying as f64, &|k| at[k].paying as f64),
        arpu: series(arpu_at(n), &arpu_at),
        customer_churn_rate: series(customer_churn, &|k| {
            ratio(at[k].moves.churned as f64, at[k - 1].paying as f64)
        }),
        revenue_churn_rate: series(
            ratio(
                whole.moves.churned_mrr + whole.moves.contraction_mrr,
                start.mrr,
            ),
            &|k| {
                ratio(
                    at[k].moves.churned_mrr + at[k].moves.contraction_mrr,
                    at[k - 1].mrr,
                )
            },
        ),
        ltv: (monthly_churn > 0.0).then(|| arpu_at(n) / monthly_churn),
        movements: window
            .buckets
            .iter()
            .enumerate()
            .map(|(b, bucket)| {
                let r = &at[b + 1];
                Movement {
                    bucket: bucket.label,
                    new_mrr: r.moves.new_mrr,
                    expansion_mrr: r.moves.expansion_mrr,
                    contraction_mrr: r.moves.contraction_mrr,
                    churned_mrr: r.moves.churned_mrr,
                    reactivation_mrr: r.moves.reactivation_mrr,
                    net_new_mrr: r.moves.new_mrr + r.moves.reactivation_mrr + r.moves.expansion_mrr
                        - r.moves.contraction_mrr
                        - r.moves.churned_mrr,
                }
            })
            .collect(),
    }
}
