//! Revenue changes that a source (a provider's integration) keeps on a customer's behalf: the
//! source says what the customer's MRR was over time, and the stored changes are made to match,
//! row by row (only what differs is deleted or inserted, so what depends on it is derived again
//! from the earliest difference only). A change in a currency with no rate for its day is not
//! lost: it waits in `revenue_changes_waiting` and moves in when the rate is set.

use std::collections::{BTreeMap, HashSet};

use chrono::{DateTime, Utc};
use diesel::sql_types::{Array, BigInt, Integer, Text, Timestamptz, Uuid as SqlUuid};
use diesel_async::RunQueryDsl;
use uuid::Uuid;

use crate::db::Conn;
use crate::error::AppResult;

/// A customer's MRR over time as a source has it: from each `(at, amount)` on, the MRR is
/// `amount` minor units of `currency`.
#[derive(Debug, Clone)]
pub struct Desired {
    pub customer: String,
    pub currency: String,
    pub steps: Vec<(DateTime<Utc>, i64)>,
}

#[derive(diesel::QueryableByName, Debug)]
struct Existing {
    #[diesel(sql_type = Text)]
    client_id: String,
    #[diesel(sql_type = Text)]
    customer_id: String,
    #[diesel(sql_type = Timestamptz)]
    occurred_at: DateTime<Utc>,
    #[diesel(sql_type = BigInt)]
    amount_minor: i64,
    #[diesel(sql_type = Text)]
    currency: String,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Replaced {
    pub inserted: i64,
    pub deleted: i64,
    /// Of the inserted, how many wait for a rate.
    pub waiting: i64,
}

fn client_id(prefix: &str, customer: &str, at: DateTime<Utc>) -> String {
    format!("{prefix}{customer}:{}", at.timestamp())
}

/// Makes the stored changes of `customers` under `prefix` what they desire, inside the
/// caller's transaction (which holds the tenant's revenue lock).
pub async fn replace(
    conn: &mut Conn,
    tenant: Uuid,
    prefix: &str,
    customers: &[Desired],
) -> AppResult<Replaced> {
    if customers.is_empty() {
        return Ok(Replaced::default());
    }
    let names: Vec<&str> = customers.iter().map(|c| c.customer.as_str()).collect();
    let existing: Vec<Existing> = diesel::sql_query(
        "SELECT client_id, customer_id, occurred_at, amount_minor, currency FROM revenue_changes \
           WHERE tenant_id = $1 AND customer_id = ANY($2) AND starts_with(client_id, $3) \
         UNION ALL \
         SELECT client_id, customer_id, occurred_at, amount_minor, currency \
           FROM revenue_changes_waiting \
           WHERE tenant_id = $1 AND customer_id = ANY($2) AND starts_with(client_id, $3)",
    )
    .bind::<SqlUuid, _>(tenant)
    .bind::<Array<Text>, _>(&names)
    .bind::<Text, _>(prefix)
    .load(conn)
    .await?;
    let mut want: BTreeMap<String, (&str, DateTime<Utc>, i64, &str)> = BTreeMap::new();
    for c in customers {
        for (at, amount) in &c.steps {
            want.insert(
                client_id(prefix, &c.customer, *at),
                (&c.customer, *at, *amount, &c.currency),
            );
        }
    }
    let mut keep: HashSet<&str> = HashSet::new();
    let mut delete: Vec<&str> = Vec::new();
    let mut since: Option<DateTime<Utc>> = None;
    let mut touched: HashSet<&str> = HashSet::new();
    for e in &existing {
        match want.get(&e.client_id) {
            Some((_, _, amount, currency))
                if *amount == e.amount_minor && *currency == e.currency =>
            {
                keep.insert(&e.client_id);
            }
            _ => {
                delete.push(&e.client_id);
                since = Some(since.map_or(e.occurred_at, |s| s.min(e.occurred_at)));
                touched.insert(&e.customer_id);
            }
        }
    }
    let mut insert = Rows::default();
    for (id, (customer, at, amount, currency)) in &want {
        if keep.contains(id.as_str()) {
            continue;
        }
        if super::amount::exponent(currency).is_none() {
            tracing::warn!(
                currency,
                "a source gave a currency with no minor unit; left out"
            );
            continue;
        }
        insert.push(id, customer, *at, *amount, currency);
        since = Some(since.map_or(*at, |s| s.min(*at)));
        touched.insert(customer);
    }
    let mut replaced = Replaced::default();
    if !delete.is_empty() {
        replaced.deleted = diesel::sql_query(
            "WITH a AS (DELETE FROM revenue_changes WHERE tenant_id = $1 AND client_id = ANY($2) \
                        RETURNING 1), \
                  b AS (DELETE FROM revenue_changes_waiting WHERE tenant_id = $1 \
                        AND client_id = ANY($2) RETURNING 1) \
             SELECT (SELECT count(*) FROM a) + (SELECT count(*) FROM b) AS n",
        )
        .bind::<SqlUuid, _>(tenant)
        .bind::<Array<Text>, _>(&delete)
        .get_result::<Count>(conn)
        .await?
        .n;
    }
    if !insert.ids.is_empty() {
        let done: Inserted = diesel::sql_query(INSERT)
            .bind::<SqlUuid, _>(tenant)
            .bind::<Array<Text>, _>(&insert.ids)
            .bind::<Array<Text>, _>(&insert.customers)
            .bind::<Array<Timestamptz>, _>(&insert.times)
            .bind::<Array<BigInt>, _>(&insert.amounts)
            .bind::<Array<Text>, _>(&insert.currencies)
            .bind::<Array<Integer>, _>(&insert.exponents)
            .get_result(conn)
            .await?;
        replaced.inserted = done.inserted + done.waiting;
        replaced.waiting = done.waiting;
    }
    let touched: Vec<String> = touched.into_iter().map(str::to_string).collect();
    super::recompute_customers(conn, tenant, &touched, since).await?;
    Ok(replaced)
}

#[derive(Default)]
struct Rows {
    ids: Vec<String>,
    customers: Vec<String>,
    times: Vec<DateTime<Utc>>,
    amounts: Vec<i64>,
    currencies: Vec<String>,
    exponents: Vec<i32>,
}

impl Rows {
    fn push(&mut self, id: &str, customer: &str, at: DateTime<Utc>, amount: i64, currency: &str) {
        let exponent = super::amount::exponent(currency).unwrap_or(2) as i32;
        self.ids.push(id.to_string());
        self.customers.push(customer.to_string());
        self.times.push(at);
        self.amounts.push(amount);
        self.currencies.push(currency.to_string());
        self.exponents.push(exponent);
    }
}

#[derive(diesel::QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

#[derive(diesel::QueryableByName)]
struct Inserted {
    #[diesel(sql_type = BigInt)]
    inserted: i64,
    #[diesel(sql_type = BigInt)]
    waiting: i64,
}

/// Converted where the tenant's currency or a rate for the day allows, waiting otherwise.
const INSERT: &str = r#"
WITH input AS (
  SELECT i.*, CASE WHEN i.currency = t.currency THEN 1 ELSE r.rate END AS rate
  FROM unnest($2::text[], $3::text[], $4::timestamptz[], $5::bigint[], $6::text[], $7::int[])
    AS i(client_id, customer_id, occurred_at, amount_minor, currency, exponent)
  JOIN tenants t ON t.id = $1
  LEFT JOIN exchange_rates r ON r.tenant_id = $1 AND r.currency = i.currency
    AND r.day = (i.occurred_at AT TIME ZONE 'UTC')::date
), ready AS (
  INSERT INTO revenue_changes (tenant_id, client_id, customer_id, occurred_at, amount_minor,
                               currency, exponent, mrr)
  SELECT $1, client_id, customer_id, occurred_at, amount_minor, currency, exponent,
         amount_minor * power(10::numeric, -exponent) * rate
  FROM input WHERE rate IS NOT NULL
  RETURNING 1
), waits AS (
  INSERT INTO revenue_changes_waiting (tenant_id, client_id, customer_id, occurred_at,
                                       amount_minor, currency, exponent)
  SELECT $1, client_id, customer_id, occurred_at, amount_minor, currency, exponent
  FROM input WHERE rate IS NULL
  RETURNING 1
)
SELECT (SELECT count(*) FROM ready) AS inserted, (SELECT count(*) FROM waits) AS waiting
"#;

#[derive(diesel::QueryableByName)]
struct Released {
    #[diesel(sql_type = BigInt)]
    moved: i64,
    #[diesel(sql_type = Array<Text>)]
    touched: Vec<String>,
    #[diesel(sql_type = diesel::sql_types::Nullable<Timestamptz>)]
    since: Option<DateTime<Utc>>,
}

/// Moves the waiting changes whose rate is now known into revenue, inside the caller's
/// transaction (which holds the tenant's revenue lock); returns how many moved.
pub async fn release_waiting(conn: &mut Conn, tenant: Uuid) -> AppResult<i64> {
    let done: Released = diesel::sql_query(
        r#"
WITH ready AS (
  DELETE FROM revenue_changes_waiting w
  USING tenants t
  WHERE w.tenant_id = $1 AND t.id = $1 AND (w.currency = t.currency OR EXISTS (
    SELECT 1 FROM exchange_rates r WHERE r.tenant_id = $1 AND r.currency = w.currency
      AND r.day = (w.occurred_at AT TIME ZONE 'UTC')::date))
  RETURNING w.*
), moved AS (
  INSERT INTO revenue_changes (tenant_id, client_id, customer_id, occurred_at, amount_minor,
                               currency, exponent, mrr, plan)
  SELECT $1, w.client_id, w.customer_id, w.occurred_at, w.amount_minor, w.currency, w.exponent,
         w.amount_minor * power(10::numeric, -w.exponent)
           * CASE WHEN w.currency = t.currency THEN 1 ELSE r.rate END,
         w.plan
  FROM ready w
  JOIN tenants t ON t.id = $1
  LEFT JOIN exchange_rates r ON r.tenant_id = $1 AND r.currency = w.currency
    AND r.day = (w.occurred_at AT TIME ZONE 'UTC')::date
  ON CONFLICT (tenant_id, client_id) WHERE client_id IS NOT NULL DO NOTHING
  RETURNING customer_id, occurred_at
)
SELECT count(*) AS moved, coalesce(array_agg(DISTINCT customer_id), '{}') AS touched,
       min(occurred_at) AS since
FROM moved"#,
    )
    .bind::<SqlUuid, _>(tenant)
    .get_result(conn)
    .await?;
    super::recompute_customers(conn, tenant, &done.touched, done.since).await?;
    Ok(done.moved)
}
