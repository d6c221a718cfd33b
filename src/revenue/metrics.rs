//! Revenue analytics over a window, exactly from the changes: stocks at the end of each bucket
//! (MRR, paying customers), movements within it with a customer's changes netted over the
//! bucket as ChartMogul does (0 → 50 → 0 inside one bucket is no movement), and churn rates
//! against the bucket's start.

use chrono::{DateTime, Utc};
use diesel::sql_types::{Array, BigInt, Double, Integer, Timestamptz, Uuid as SqlUuid};
use diesel_async::RunQueryDsl;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::db::Conn;
use crate::error::AppResult;
use crate::metrics::{Point, Series, Window};

/// A customer's state at an instant is its last change before it (ties in arrival order).
/// Each change carries the MRR before it and whether the customer had paid before it
/// (`fahwa_recompute_customers`), so only the range's changes are read: the stocks at its
/// start come from the UTC days before it (`revenue_days`) plus that day's changes before it.
/// `k` numbers the range's buckets from 1. Per bucket and customer (and over the whole range,
/// `k` null): the MRR at the bucket's start and end, and whether it had paid before.
const REPORT: &str = r#"
WITH start_day AS (
  SELECT ($5::timestamptz AT TIME ZONE 'UTC')::date AS day
), base AS (
  SELECT coalesce(sum(d.d_mrr), 0) AS mrr, coalesce(sum(d.d_paying), 0) AS paying
  FROM revenue_days d, start_day s WHERE d.tenant_id = $1 AND d.day < s.day
), partial AS (
  SELECT coalesce(sum(c.mrr - c.prev_mrr), 0) AS mrr,
         coalesce(sum((c.mrr > 0)::int - (c.prev_mrr > 0)::int), 0) AS paying
  FROM revenue_changes c, start_day s
  WHERE c.tenant_id = $1 AND c.occurred_at >= s.day::timestamp AT TIME ZONE 'UTC'
    AND c.occurred_at < $5
), ch AS (
  SELECT customer_id, occurred_at, id, mrr, prev_mrr AS prev, paid_before,
         width_bucket(occurred_at, $2::timestamptz[]) AS k
  FROM revenue_changes WHERE tenant_id = $1 AND occurred_at >= $5 AND occurred_at < $3
), marked AS (
  -- First and last change of each customer in each bucket and in the whole range.
  SELECT ch.*,
         lag(k) OVER w IS DISTINCT FROM k AS first_in_bucket,
         lead(k) OVER w IS DISTINCT FROM k AS last_in_bucket,
         lag(k) OVER w IS NULL AS first_in_range,
         lead(k) OVER w IS NULL AS last_in_range
  FROM ch WINDOW w AS (PARTITION BY customer_id ORDER BY occurred_at, id)
), per_customer AS (
  SELECT k, customer_id,
         max(prev) FILTER (WHERE first_in_bucket) AS s,
         max(mrr) FILTER (WHERE last_in_bucket) AS e,
         bool_or(paid_before) FILTER (WHERE first_in_bucket) AS p
  FROM marked WHERE first_in_bucket OR last_in_bucket GROUP BY k, customer_id
  UNION ALL
  SELECT NULL, customer_id,
         max(prev) FILTER (WHERE first_in_range),
         max(mrr) FILTER (WHERE last_in_range),
         bool_or(paid_before) FILTER (WHERE first_in_range)
  FROM marked WHERE first_in_range OR last_in_range GROUP BY customer_id
), moves AS (
  SELECT coalesce(k, -1) AS k,
         coalesce(sum(e) FILTER (WHERE s = 0 AND e > 0 AND NOT p), 0) AS new_mrr,
         coalesce(sum(e) FILTER (WHERE s = 0 AND e > 0 AND p), 0) AS reactivation_mrr,
         coalesce(sum(e - s) FILTER (WHERE s > 0 AND e > s), 0) AS expansion_mrr,
         coalesce(sum(s - e) FILTER (WHERE e > 0 AND e < s), 0) AS contraction_mrr,
         coalesce(sum(s) FILTER (WHERE s > 0 AND e = 0), 0) AS churned_mrr,
         count(*) FILTER (WHERE s > 0 AND e = 0) AS churned
  FROM per_customer GROUP BY k
), deltas AS (
  SELECT k, sum(mrr - prev) AS d_mrr, sum((mrr > 0)::int - (prev > 0)::int) AS d_paying
  FROM ch GROUP BY k
), ks AS (
  SELECT generate_series(0, $4) AS k
)
SELECT ks.k,
       ((SELECT mrr FROM base) + (SELECT mrr FROM partial)
         + sum(coalesce(d.d_mrr, 0)) OVER (ORDER BY ks.k))::float8 AS mrr,
       ((SELECT paying FROM base) + (SELECT paying FROM partial)
         + sum(coalesce(d.d_paying, 0)) OVER (ORDER BY ks.k))::bigint AS paying,
       coalesce(m.new_mrr, 0)::float8 AS new_mrr,
       coalesce(m.reactivation_mrr, 0)::float8 AS reactivation_mrr,
       coalesce(m.expansion_mrr, 0)::float8 AS expansion_mrr,
       coalesce(m.contraction_mrr, 0)::float8 AS contraction_mrr,
       coalesce(m.churned_mrr, 0)::float8 AS churned_mrr,
       coalesce(m.churned, 0) AS churned
FROM ks LEFT JOIN deltas d USING (k) LEFT JOIN moves m USING (k)
UNION ALL
SELECT -1, 0, 0, new_mrr::float8, reactivation_mrr::float8, expansion_mrr::float8,
       contraction_mrr::float8, churned_mrr::float8, churned
FROM moves WHERE k = -1
ORDER BY 1
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
    #[diesel(sql_type = Double)]
    new_mrr: f64,
    #[diesel(sql_type = Double)]
    reactivation_mrr: f64,
    #[diesel(sql_type = Double)]
    expansion_mrr: f64,
    #[diesel(sql_type = Double)]
    contraction_mrr: f64,
    #[diesel(sql_type = Double)]
    churned_mrr: f64,
    #[diesel(sql_type = BigInt)]
    churned: i64,
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

pub async fn report(conn: &mut Conn, tenant: Uuid, window: &Window) -> AppResult<Report> {
    let mut edges: Vec<DateTime<Utc>> = window.buckets.iter().map(|b| b.start).collect();
    edges.push(window.to);
    let n = window.buckets.len();
    let rows: Vec<Row> = diesel::sql_query(REPORT)
        .bind::<SqlUuid, _>(tenant)
        .bind::<Array<Timestamptz>, _>(&edges)
        .bind::<Timestamptz, _>(window.to)
        .bind::<Integer, _>(n as i32)
        .bind::<Timestamptz, _>(window.from)
        .load(conn)
        .await?;
    let whole = rows.iter().find(|r| r.k == -1).cloned().unwrap_or_default();
    let mut at = vec![Row::default(); n + 1];
    for r in rows.into_iter().filter(|r| r.k >= 0) {
        let k = r.k as usize;
        if k <= n {
            at[k] = r;
        }
    }
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
    Ok(Report {
        mrr: series(end.mrr, &|k| at[k].mrr),
        arr: series(end.mrr * 12.0, &|k| at[k].mrr * 12.0),
        paying_customers: series(end.paying as f64, &|k| at[k].paying as f64),
        arpu: series(arpu_at(n), &arpu_at),
        customer_churn_rate: series(customer_churn, &|k| {
            ratio(at[k].churned as f64, at[k - 1].paying as f64)
        }),
        revenue_churn_rate: series(
            ratio(whole.churned_mrr + whole.contraction_mrr, start.mrr),
            &|k| ratio(at[k].churned_mrr + at[k].contraction_mrr, at[k - 1].mrr),
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
                    new_mrr: r.new_mrr,
                    expansion_mrr: r.expansion_mrr,
                    contraction_mrr: r.contraction_mrr,
                    churned_mrr: r.churned_mrr,
                    reactivation_mrr: r.reactivation_mrr,
                    net_new_mrr: r.new_mrr + r.reactivation_mrr + r.expansion_mrr
                        - r.contraction_mrr
                        - r.churned_mrr,
                }
            })
            .collect(),
    })
}
