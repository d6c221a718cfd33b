//! Revenue analytics over a window, exactly from the changes: stocks at the end of each bucket
//! (MRR, paying customers), movements within it with a customer's changes netted over the
//! bucket as ChartMogul does (0 → 50 → 0 inside one bucket is no movement), and churn rates
//! against the bucket's start.

use chrono::{DateTime, Utc};
use chrono::{Datelike, NaiveDate};
use diesel::QueryableByName;
use diesel::sql_types::{Array, BigInt, Date, Double, Integer, Text, Timestamptz, Uuid as SqlUuid};
use diesel_async::RunQueryDsl;
use scoped_futures::ScopedFutureExt;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use std::collections::HashMap;
use std::sync::Arc;

use super::index::{Changes, Index, Totals};
use crate::analytics::{Point, Series};
use crate::calendar::{Granularity, Window, local_date, local_midnight};
use crate::db::Conn;
use crate::error::AppResult;

/// A customer's state at an instant is its last change before it (ties in arrival order).
/// Each change carries the MRR before it, whether the customer had paid before it, and when the
/// customer's previous and next changes happened (`fahwa_recompute_customers`). So a bucket the
/// range holds whole is one row of `revenue_periods` (`PERIODS`), and only the changes inside a
/// cut bucket (or inside the whole range, for its totals) are read: a change is its customer's
/// first in a span when the previous one is before the span, and its last when the next one is
/// after.
///
/// Without a copy in memory, `SPANS` reads the rest: `k` 0 is the stock at the range's start
/// (the days before it, a month at a time, plus that day's changes before it); `k` 1..n a cut
/// bucket's net change of the stocks and its movements; `k` -1 the whole range's movements.
const SPANS: &str = r#"
WITH base AS (
  SELECT coalesce(sum(d_mrr), 0) AS d_mrr, coalesce(sum(d_paying), 0) AS d_paying
  FROM revenue_periods
  WHERE tenant_id = $1 AND ((grain = 'm' AND period < $3) OR (grain = 'd' AND period >= $3 AND period < $2))
), partial AS (
  SELECT coalesce(sum(mrr - prev_mrr), 0) AS d_mrr,
         coalesce(sum((mrr > 0)::int - (prev_mrr > 0)::int), 0) AS d_paying
  FROM revenue_changes WHERE tenant_id = $1 AND occurred_at >= $4 AND occurred_at < $5
), ch AS (
  SELECT x.k, c.customer_id, c.mrr, c.prev_mrr, c.paid_before,
         c.prev_at IS NULL OR c.prev_at < x.lo AS first,
         c.next_at IS NULL OR c.next_at >= x.hi AS last
  FROM unnest($6::int[], $7::timestamptz[], $8::timestamptz[]) AS x (k, lo, hi)
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
         max(prev_mrr) FILTER (WHERE prev_at IS NULL OR prev_at < $9),
         max(mrr) FILTER (WHERE next_at IS NULL OR next_at >= $10),
         bool_or(paid_before) FILTER (WHERE prev_at IS NULL OR prev_at < $9)
  FROM revenue_changes
  WHERE tenant_id = $1 AND occurred_at >= $9 AND occurred_at < $10
    AND (prev_at IS NULL OR prev_at < $9 OR next_at IS NULL OR next_at >= $10)
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
)
SELECT 0 AS k, (base.d_mrr + partial.d_mrr)::float8 AS mrr,
       (base.d_paying + partial.d_paying)::bigint AS paying,
       0::float8 AS new_mrr, 0::float8 AS reactivation_mrr, 0::float8 AS expansion_mrr,
       0::float8 AS contraction_mrr, 0::float8 AS churned_mrr, 0::bigint AS churned
FROM base, partial
UNION ALL
SELECT m.k, coalesce(c.d_mrr, 0)::float8, coalesce(c.d_paying, 0)::bigint, m.new_mrr::float8,
       m.reactivation_mrr::float8, m.expansion_mrr::float8, m.contraction_mrr::float8,
       m.churned_mrr::float8, m.churned
FROM moves m LEFT JOIN cut c USING (k)
"#;

/// Whole buckets' rows of `revenue_periods`.
const PERIODS: &str = r#"
SELECT period AS k, d_mrr::float8 AS mrr, d_paying::bigint AS paying, new_mrr::float8 AS new_mrr,
       reactivation_mrr::float8 AS reactivation_mrr, expansion_mrr::float8 AS expansion_mrr,
       contraction_mrr::float8 AS contraction_mrr, churned_mrr::float8 AS churned_mrr,
       churned::bigint AS churned
FROM revenue_periods
WHERE tenant_id = $1 AND grain = $2::"char" AND period >= $3 AND period <= $4
"#;

/// What a span did: its change of the stocks (`mrr`, `paying`) and its movements. Once the
/// report adds them up, `mrr` and `paying` are the stocks at the span's end.
#[derive(diesel::QueryableByName, Debug, Default, Clone)]
struct Span {
    #[diesel(sql_type = Double)]
    mrr: f64,
    #[diesel(sql_type = BigInt)]
    paying: i64,
    #[diesel(embed)]
    moves: Totals,
}

#[derive(diesel::QueryableByName)]
struct SpanRow {
    #[diesel(sql_type = Integer)]
    k: i32,
    #[diesel(embed)]
    span: Span,
}

#[derive(diesel::QueryableByName)]
struct PeriodRow {
    #[diesel(sql_type = Date)]
    k: NaiveDate,
    #[diesel(embed)]
    span: Span,
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

fn grain(granularity: Granularity) -> &'static str {
    match granularity {
        Granularity::Hour | Granularity::Day => "d",
        Granularity::Week => "w",
        Granularity::Month => "m",
    }
}

/// The report for `window` through the metric cache (the dashboard's `analytics.revenue` and
/// saved reports' revenue widgets share its entries).
pub async fn cached(
    db: &crate::db::Db,
    kv: Option<&crate::kv::Kv>,
    index: Option<&Arc<Index>>,
    tenant: Uuid,
    version: i64,
    window: &Window,
) -> AppResult<Report> {
    let key = &crate::analytics::answers::range_key("revenue", window);
    crate::analytics::cache::cached(kv, tenant, version, key, async || {
        db.analytics(tenant, |conn| {
            async move { report(conn, tenant, window, index).await }.scope_boxed()
        })
        .await
    })
    .await
}

/// `index`: this instance's in-memory copies of revenue changes, used when the tenant's is
/// current in the caller's snapshot (call inside `tenant_snapshot`).
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
    // Each bucket's period when the range holds it whole.
    let kinds: Vec<Option<NaiveDate>> = window
        .buckets
        .iter()
        .map(|b| b.whole_period(window.granularity, window.tz))
        .collect();
    let periods = whole_periods(conn, tenant, window, &kinds).await?;
    let (start, mut cut, whole) = match &copy {
        Some(copy) => from_copy(copy, window, &kinds),
        None => from_sql(conn, tenant, window, &kinds).await?,
    };
    // Stocks at each bucket's end: the start's plus every bucket's change so far.
    let mut at = vec![start];
    for (i, kind) in kinds.iter().enumerate() {
        let prev = &at[i];
        let span = match kind {
            Some(day) => periods.get(day).cloned(),
            None => cut.remove(&(i as i32 + 1)),
        }
        .unwrap_or_default();
        at.push(Span {
            mrr: prev.mrr + span.mrr,
            paying: prev.paying + span.paying,
            moves: span.moves,
        });
    }
    // With one bucket the range's totals are that bucket's.
    let whole = whole.map_or_else(|| at[1].moves.clone(), |w| w.moves);
    Ok(assemble(window, &at, &whole))
}

/// The `revenue_periods` rows of the window's whole buckets, by first day.
async fn whole_periods(
    conn: &mut Conn,
    tenant: Uuid,
    window: &Window,
    kinds: &[Option<NaiveDate>],
) -> AppResult<HashMap<NaiveDate, Span>> {
    let days: Vec<NaiveDate> = kinds.iter().flatten().copied().collect();
    let (Some(first), Some(last)) = (<[_]>::first(&days), <[_]>::last(&days)) else {
        return Ok(HashMap::new());
    };
    let rows: Vec<PeriodRow> = diesel::sql_query(PERIODS)
        .bind::<SqlUuid, _>(tenant)
        .bind::<Text, _>(grain(window.granularity))
        .bind::<Date, _>(first)
        .bind::<Date, _>(last)
        .load(conn)
        .await?;
    Ok(rows.into_iter().map(|r| (r.k, r.span)).collect())
}

/// The stocks at the range's start, each cut bucket's span by number, and the range's
/// movements (None with one bucket).
type Rest = (Span, HashMap<i32, Span>, Option<Span>);

async fn from_sql(
    conn: &mut Conn,
    tenant: Uuid,
    window: &Window,
    kinds: &[Option<NaiveDate>],
) -> AppResult<Rest> {
    let mut cut = (Vec::new(), Vec::new(), Vec::new());
    for (i, (b, kind)) in window.buckets.iter().zip(kinds).enumerate() {
        if kind.is_none() {
            cut.0.push(i as i32 + 1);
            cut.1.push(b.start);
            cut.2.push(b.end);
        }
    }
    let from_day = local_date(window.tz, window.from);
    let from_month = from_day.with_day(1).unwrap_or(from_day);
    let several = window.buckets.len() > 1;
    let rows: Vec<SpanRow> = diesel::sql_query(SPANS)
        .bind::<SqlUuid, _>(tenant)
        .bind::<Date, _>(from_day)
        .bind::<Date, _>(from_month)
        .bind::<Timestamptz, _>(local_midnight(window.tz, from_day))
        .bind::<Timestamptz, _>(window.from)
        .bind::<Array<Integer>, _>(&cut.0)
        .bind::<Array<Timestamptz>, _>(&cut.1)
        .bind::<Array<Timestamptz>, _>(&cut.2)
        .bind::<Timestamptz, _>(window.from)
        // An empty span reads nothing.
        .bind::<Timestamptz, _>(if several { window.to } else { window.from })
        .load(conn)
        .await?;
    let mut spans: HashMap<i32, Span> = rows.into_iter().map(|r| (r.k, r.span)).collect();
    let start = spans.remove(&0).unwrap_or_default();
    let whole = spans.remove(&-1).or_else(|| several.then(Span::default));
    Ok((start, spans, whole))
}

/// The same from a current in-memory copy of the changes: stocks from its prefix sums, cut
/// buckets and the range's movements from one pass each over their changes.
fn from_copy(copy: &Changes, window: &Window, kinds: &[Option<NaiveDate>]) -> Rest {
    let stock = |t| {
        let (mrr, paying) = copy.stock_before(t);
        Span {
            mrr,
            paying,
            moves: Totals::default(),
        }
    };
    let mut cut = HashMap::new();
    for (i, (b, kind)) in window.buckets.iter().zip(kinds).enumerate() {
        if kind.is_none() {
            let (end, start) = (stock(b.end), stock(b.start));
            let span = Span {
                mrr: end.mrr - start.mrr,
                paying: end.paying - start.paying,
                moves: copy.movements(b.start, b.end),
            };
            cut.insert(i as i32 + 1, span);
        }
    }
    let whole = (window.buckets.len() > 1).then(|| Span {
        moves: copy.movements(window.from, window.to),
        ..Span::default()
    });
    (stock(window.from), cut, whole)
}

fn assemble(window: &Window, at: &[Span], whole: &Totals) -> Report {
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
    let customer_churn = ratio(whole.churned as f64, start.paying as f64);
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
            ratio(whole.churned_mrr + whole.contraction_mrr, start.mrr),
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
