//! Revenue changes in: a batch is validated whole, converted into the tenant's currency with the
//! rate of each change's UTC day, and stored in one transaction with its customers' state, so
//! it is stored whole or not at all. Changes may arrive in any order: a customer's state and
//! movements are always derived from all its changes in time order.

use std::collections::HashSet;

use chrono::{DateTime, NaiveDate, Utc};
use diesel::sql_types::{
    Array, BigInt, Date, Integer, Nullable, Text, Timestamptz, Uuid as SqlUuid,
};
use diesel_async::RunQueryDsl;
use scoped_futures::ScopedFutureExt;
use serde::Deserialize;
use serde_json::Value;

use super::amount;
use crate::analytics::versions::Added;
use crate::auth::Role;
use crate::error::{AppError, AppResult};
use crate::ingestion::{Batch, IngestOutcome, Writer, close_batch, ingesting_tenant};

pub const MAX_BATCH: usize = 10_000;
/// One change as a client sends it: from `occurred_at` on, the customer's MRR is `mrr` (major
/// units of `currency`, as text or a JSON number).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NewRevenueChange {
    pub id: Option<String>,
    pub customer_id: String,
    pub occurred_at: DateTime<Utc>,
    pub mrr: Value,
    pub currency: String,
    pub plan: Option<String>,
}

/// Columns ready for the insert, without in-batch duplicates; `index` is each row's place in
/// the batch as sent, for errors found later.
#[derive(Default)]
struct Columns {
    index: Vec<i32>,
    client_ids: Vec<Option<String>>,
    customers: Vec<String>,
    times: Vec<DateTime<Utc>>,
    amounts: Vec<i64>,
    currencies: Vec<String>,
    exponents: Vec<i32>,
    plans: Vec<Option<String>>,
    in_batch_duplicates: i64,
}

fn check_text(value: &str, index: usize, field: &str) -> AppResult<()> {
    crate::validate::item_text(value, "changes", index, field)
}

fn mrr_text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn validate(changes: Vec<NewRevenueChange>, now: DateTime<Utc>) -> AppResult<Columns> {
    if changes.is_empty() {
        return Err(AppError::bad_input("changes: send at least one change"));
    }
    if changes.len() > MAX_BATCH {
        return Err(AppError::bad_input(format!(
            "changes: at most {MAX_BATCH} changes per batch, got {}",
            changes.len()
        )));
    }
    let mut seen = HashSet::new();
    let mut cols = Columns::default();
    for (i, c) in changes.into_iter().enumerate() {
        check_text(&c.customer_id, i, "customerId")?;
        if let Some(id) = &c.id {
            check_text(id, i, "id")?;
        }
        if let Some(plan) = &c.plan {
            check_text(plan, i, "plan")?;
        }
        crate::validate::occurred_at(c.occurred_at, now, &format!("changes[{i}].occurredAt"))?;
        let currency = c.currency.trim().to_uppercase();
        let Some(exponent) = amount::exponent(&currency) else {
            return Err(AppError::bad_input(format!(
                "changes[{i}].currency: '{}' is not an ISO 4217 currency with a minor unit",
                c.currency.chars().take(10).collect::<String>()
            )));
        };
        let minor = mrr_text(&c.mrr)
            .ok_or(amount::AmountError::NotANumber)
            .and_then(|t| amount::parse(&t))
            .and_then(|d| amount::to_minor(d, exponent))
            .map_err(|e| AppError::bad_input(format!("changes[{i}].mrr: {e}")))?;
        if let Some(id) = &c.id
            && !seen.insert(id.clone())
        {
            cols.in_batch_duplicates += 1;
            continue;
        }
        cols.index.push(i as i32);
        cols.client_ids.push(c.id);
        cols.customers.push(c.customer_id);
        cols.times.push(c.occurred_at);
        cols.amounts.push(minor);
        cols.currencies.push(currency);
        cols.exponents.push(exponent as i32);
        cols.plans.push(c.plan);
    }
    Ok(cols)
}

const INPUT: &str = r#"
  SELECT * FROM unnest($2::int[], $3::text[], $4::text[], $5::timestamptz[], $6::bigint[],
                       $7::text[], $8::int[], $9::text[])
    AS t(idx, client_id, customer_id, occurred_at, amount_minor, currency, exponent, plan)
"#;

#[derive(diesel::QueryableByName)]
struct MissingRate {
    #[diesel(sql_type = Integer)]
    idx: i32,
    #[diesel(sql_type = Text)]
    currency: String,
    #[diesel(sql_type = Date)]
    day: NaiveDate,
}

/// The first change (in batch order) in a foreign currency with no rate for its UTC day.
fn missing_rate_sql() -> String {
    format!(
        r#"WITH input AS ({INPUT})
SELECT i.idx, i.currency, (i.occurred_at AT TIME ZONE 'UTC')::date AS day
FROM input i, tenants t
WHERE t.id = $1 AND i.currency <> t.currency
  AND NOT EXISTS (SELECT 1 FROM exchange_rates r WHERE r.tenant_id = $1
                  AND r.currency = i.currency AND r.day = (i.occurred_at AT TIME ZONE 'UTC')::date)
ORDER BY i.idx LIMIT 1"#
    )
}

/// Inserts the changes not seen before (by client id), converted exactly; returns the
/// customers they belong to.
fn insert_sql() -> String {
    format!(
        r#"WITH input AS ({INPUT}),
ins AS (
  INSERT INTO revenue_changes (tenant_id, client_id, customer_id, occurred_at, amount_minor,
                               currency, exponent, mrr, plan)
  SELECT $1, i.client_id, i.customer_id, i.occurred_at, i.amount_minor, i.currency, i.exponent,
         i.amount_minor * power(10::numeric, -i.exponent)
           * CASE WHEN i.currency = t.currency THEN 1 ELSE r.rate END,
         i.plan
  FROM input i
  JOIN tenants t ON t.id = $1
  LEFT JOIN exchange_rates r ON r.tenant_id = $1 AND r.currency = i.currency
    AND r.day = (i.occurred_at AT TIME ZONE 'UTC')::date
  ORDER BY i.idx
  ON CONFLICT (tenant_id, client_id) WHERE client_id IS NOT NULL DO NOTHING
  RETURNING customer_id, occurred_at
)
SELECT count(*) AS inserted, coalesce(array_agg(DISTINCT customer_id), '{{}}') AS touched,
       min(occurred_at) AS since
FROM ins"#
    )
}

#[derive(diesel::QueryableByName)]
struct Written {
    #[diesel(sql_type = BigInt)]
    inserted: i64,
    #[diesel(sql_type = Array<Text>)]
    touched: Vec<String>,
    /// The earliest change inserted: what depends on later ones is derived again.
    #[diesel(sql_type = Nullable<Timestamptz>)]
    since: Option<DateTime<Utc>>,
}

pub async fn ingest_revenue(
    writer: Writer<'_>,
    changes: Vec<NewRevenueChange>,
) -> AppResult<IngestOutcome> {
    let (tenant_id, actor) = ingesting_tenant(writer.principal)?;
    let cols = validate(changes, Utc::now())?;
    let sent = cols.customers.len() as i64;
    let in_batch_duplicates = cols.in_batch_duplicates;
    let (meta, principal) = (writer.meta, writer.principal);
    let cols = &cols;
    let (inserted, version) = writer
        .db
        .tenant(tenant_id, |conn| {
            async move {
                crate::auth::acting::confirm(conn, principal, Role::Admin).await?;
                super::lock(conn, tenant_id).await?;
                let bind = |sql: String| {
                    diesel::sql_query(sql)
                        .bind::<SqlUuid, _>(tenant_id)
                        .bind::<Array<Integer>, _>(&cols.index)
                        .bind::<Array<Nullable<Text>>, _>(&cols.client_ids)
                        .bind::<Array<Text>, _>(&cols.customers)
                        .bind::<Array<Timestamptz>, _>(&cols.times)
                        .bind::<Array<BigInt>, _>(&cols.amounts)
                        .bind::<Array<Text>, _>(&cols.currencies)
                        .bind::<Array<Integer>, _>(&cols.exponents)
                        .bind::<Array<Nullable<Text>>, _>(&cols.plans)
                };
                let missing: Vec<MissingRate> = bind(missing_rate_sql()).load(conn).await?;
                if let Some(m) = missing.into_iter().next() {
                    return Err(AppError::bad_input(format!(
                        "changes[{}].currency: no exchange rate from {} for {} (set it with setExchangeRates)",
                        m.idx, m.currency, m.day
                    )));
                }
                let written: Written = bind(insert_sql()).get_result(conn).await?;
                super::recompute_customers(conn, tenant_id, &written.touched, written.since)
                    .await?;
                let version = close_batch(
                    conn,
                    meta,
                    Batch {
                        tenant_id,
                        actor,
                        action: "revenue.ingest",
                        target_type: "RevenueChanges",
                        received: sent + in_batch_duplicates,
                        added: Added::RevenueChanges(written.inserted),
                    },
                )
                .await?;
                Ok((written.inserted, version))
            }
            .scope_boxed()
        })
        .await?;
    writer.announce(tenant_id, version).await;
    Ok(IngestOutcome::of(sent, in_batch_duplicates, inserted))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn change(i: usize, mrr: Value, currency: &str) -> NewRevenueChange {
        NewRevenueChange {
            id: Some(format!("c{i}")),
            customer_id: "cus_1".into(),
            occurred_at: Utc::now(),
            mrr,
            currency: currency.into(),
            plan: None,
        }
    }

    fn error_of(changes: Vec<NewRevenueChange>) -> String {
        match validate(changes, Utc::now()) {
            Err(AppError::BadInput(m)) => m,
            Err(other) => panic!("{other:?}"),
            Ok(_) => panic!("accepted"),
        }
    }

    #[test]
    fn bad_changes_are_named_by_index_and_field() {
        let ok = change(0, json!("49.00"), "USD");
        let mut future = change(1, json!("1"), "USD");
        future.occurred_at = Utc::now() + chrono::Duration::days(2);
        assert!(error_of(vec![ok.clone(), future]).starts_with("changes[1].occurredAt"));
        assert!(
            error_of(vec![ok.clone(), change(1, json!("-5"), "USD")])
                .starts_with("changes[1].mrr: must not be negative")
        );
        assert!(
            error_of(vec![change(0, json!("4.999"), "USD")])
                .starts_with("changes[0].mrr: at most 2")
        );
        assert!(error_of(vec![change(0, json!(true), "USD")]).starts_with("changes[0].mrr"));
        assert!(
            error_of(vec![ok.clone(), ok.clone(), change(2, json!("1"), "ZZZ")])
                .starts_with("changes[2].currency")
        );
        assert!(error_of(vec![]).starts_with("changes:"));
    }

    #[test]
    fn numbers_and_text_are_read_alike_and_duplicates_counted_once() {
        let cols = validate(
            vec![
                change(0, json!(49.5), "eur"),
                change(0, json!("49.50"), "EUR"),
                change(1, json!(1500), "JPY"),
            ],
            Utc::now(),
        )
        .expect("valid");
        assert_eq!(cols.amounts, vec![4950, 1500]);
        assert_eq!(cols.currencies, vec!["EUR", "JPY"]);
        assert_eq!(cols.index, vec![0, 2]);
        assert_eq!(cols.in_batch_duplicates, 1);
    }
}
