//! Exchange rates into a tenant's reporting currency, one per currency and UTC day. Setting a
//! rate again converts the changes of that currency and day again, so that no stored amount
//! keeps a corrected rate.

use std::collections::HashSet;

use chrono::NaiveDate;
use diesel::sql_types::{Array, BigInt, Date, Text, Uuid as SqlUuid};
use diesel_async::RunQueryDsl;
use rust_decimal::Decimal;
use scoped_futures::ScopedFutureExt;
use serde_json::json;

use super::amount;
use crate::analytics::versions::{self, Added};
use crate::auth::Role;
use crate::db::audit::{self, Actor, AuditEntry};
use crate::db::tenants::TenantRow;
use crate::error::{AppError, AppResult};
use crate::ingestion::Writer;

pub const MAX_RATES: usize = 10_000;

/// One unit of `currency` was worth `rate` units of the tenant's currency on `day` (UTC).
#[derive(Debug, Clone)]
pub struct NewRate {
    pub currency: String,
    pub day: NaiveDate,
    pub rate: String,
}

struct Columns {
    currencies: Vec<String>,
    days: Vec<NaiveDate>,
    rates: Vec<String>,
}

fn validate(rates: Vec<NewRate>, now: chrono::DateTime<chrono::Utc>) -> AppResult<Columns> {
    if rates.is_empty() || rates.len() > MAX_RATES {
        return Err(AppError::bad_input(format!(
            "rates: send 1 to {MAX_RATES} rates, got {}",
            rates.len()
        )));
    }
    let mut seen = HashSet::new();
    let mut cols = Columns {
        currencies: Vec::with_capacity(rates.len()),
        days: Vec::with_capacity(rates.len()),
        rates: Vec::with_capacity(rates.len()),
    };
    for (i, r) in rates.into_iter().enumerate() {
        let currency = r.currency.trim().to_uppercase();
        if iso_currency::Currency::from_code(&currency).is_none() {
            return Err(AppError::bad_input(format!(
                "rates[{i}].currency: '{}' is not an ISO 4217 currency code",
                r.currency.chars().take(10).collect::<String>()
            )));
        }
        let rate: Decimal = amount::parse(&r.rate)
            .ok()
            .filter(|d| *d > Decimal::ZERO && *d < Decimal::from(1_000_000_000i64))
            .ok_or_else(|| {
                AppError::bad_input(format!(
                    "rates[{i}].rate: must be a positive decimal below 1,000,000,000"
                ))
            })?;
        crate::validate::data_day(r.day, now, &format!("rates[{i}].date"))?;
        if !seen.insert((currency.clone(), r.day)) {
            return Err(AppError::bad_input(format!(
                "rates[{i}]: {currency} on {} is given twice",
                r.day
            )));
        }
        cols.currencies.push(currency);
        cols.days.push(r.day);
        cols.rates.push(rate.normalize().to_string());
    }
    Ok(cols)
}

const SET_RATES: &str = r#"
WITH input AS (
  SELECT * FROM unnest($2::text[], $3::date[], $4::text[]::numeric[]) AS t(currency, day, rate)
), up AS (
  INSERT INTO exchange_rates (tenant_id, currency, day, rate)
  SELECT $1, currency, day, rate FROM input
  ON CONFLICT (tenant_id, currency, day) DO UPDATE SET rate = excluded.rate, updated_at = now()
  RETURNING 1
), converted AS (
  UPDATE revenue_changes c
  SET mrr = c.amount_minor * power(10::numeric, -c.exponent) * i.rate
  FROM input i
  WHERE c.tenant_id = $1 AND c.currency = i.currency
    AND (c.occurred_at AT TIME ZONE 'UTC')::date = i.day
    AND c.mrr <> c.amount_minor * power(10::numeric, -c.exponent) * i.rate
  RETURNING c.customer_id, c.occurred_at
)
SELECT (SELECT count(*) FROM up) AS set,
       coalesce((SELECT array_agg(DISTINCT customer_id) FROM converted), '{}') AS touched,
       (SELECT min(occurred_at) FROM converted) AS since
"#;

#[derive(diesel::QueryableByName)]
struct Set {
    #[diesel(sql_type = BigInt)]
    set: i64,
    #[diesel(sql_type = Array<Text>)]
    touched: Vec<String>,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Timestamptz>)]
    since: Option<chrono::DateTime<chrono::Utc>>,
}

/// Sets rates (ADMIN and above); returns how many were set.
pub async fn set_rates(writer: Writer<'_>, rates: Vec<NewRate>) -> AppResult<i64> {
    let member = writer.principal.member_at_least(Role::Admin)?;
    let actor = Actor::Member(member.member_id);
    store(writer, member.tenant_id, actor, rates).await
}

/// Reads `currency,date,rate` lines (a header line is allowed), as `fahwa set-exchange-rates`
/// takes them; errors name the line.
pub fn parse_csv(text: &str) -> AppResult<Vec<NewRate>> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || (n == 0 && line.to_lowercase().starts_with("currency")) {
            continue;
        }
        let fields: Vec<&str> = line.split(',').map(str::trim).collect();
        let [currency, day, rate] = fields[..] else {
            return Err(AppError::bad_input(format!(
                "line {}: expected currency,date,rate",
                n + 1
            )));
        };
        let day = day.parse().map_err(|_| {
            AppError::bad_input(format!(
                "line {}: '{day}' is not a date (YYYY-MM-DD)",
                n + 1
            ))
        })?;
        out.push(NewRate {
            currency: currency.to_string(),
            day,
            rate: rate.to_string(),
        });
    }
    Ok(out)
}

/// Stores rates for `tenant_id` on behalf of `actor` (a member, whose standing is checked in
/// the transaction, or the CLI as the system, the writer's principal anonymous).
pub async fn store(
    writer: Writer<'_>,
    tenant_id: uuid::Uuid,
    actor: Actor,
    rates: Vec<NewRate>,
) -> AppResult<i64> {
    let cols = validate(rates, chrono::Utc::now())?;
    let cols = &cols;
    let (principal, meta) = (writer.principal, writer.meta);
    let (set, version) = writer
        .db
        .tenant(tenant_id, |conn| {
            async move {
                crate::auth::acting::confirm(conn, principal, Role::Admin).await?;
                let reporting = TenantRow::find(conn, tenant_id).await?;
                if let Some(i) = cols.currencies.iter().position(|c| *c == reporting.currency) {
                    return Err(AppError::bad_input(format!(
                        "rates[{i}].currency: {} is the tenant's own currency, whose rate is always 1",
                        reporting.currency
                    )));
                }
                // The same lock as ingestion: a batch converted at the old rate must not land
                // after the new one is applied.
                super::lock(conn, tenant_id).await?;
                let done: Set = diesel::sql_query(SET_RATES)
                    .bind::<SqlUuid, _>(tenant_id)
                    .bind::<Array<Text>, _>(&cols.currencies)
                    .bind::<Array<Date>, _>(&cols.days)
                    .bind::<Array<Text>, _>(&cols.rates)
                    .get_result(conn)
                    .await?;
                super::recompute_customers(conn, tenant_id, &done.touched, done.since).await?;
                let released = super::sourced::release_waiting(conn, tenant_id).await?;
                audit::record(
                    conn,
                    meta,
                    AuditEntry {
                        tenant_id: Some(tenant_id),
                        actor,
                        action: "revenue.set_exchange_rates",
                        target_type: Some("ExchangeRates"),
                        target_id: None,
                        details: json!({
                            "rates": done.set,
                            "customersReconverted": done.touched.len(),
                            "waitingChangesApplied": released,
                        }),
                    },
                )
                .await?;
                let added = match released {
                    0 => Added::Nothing,
                    n => Added::RevenueChanges(n),
                };
                let version = versions::bump(conn, tenant_id, added).await?;
                Ok((done.set, version))
            }
            .scope_boxed()
        })
        .await?;
    writer.announce(tenant_id, version).await;
    Ok(set)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rate(currency: &str, day: &str, rate: &str) -> NewRate {
        NewRate {
            currency: currency.into(),
            day: day.parse().expect("a date"),
            rate: rate.into(),
        }
    }

    #[test]
    fn csv_lines_become_rates_and_bad_lines_are_named() {
        let rates =
            parse_csv("currency,date,rate\nEUR,2026-01-01,1.08\n\n GBP , 2026-01-01 , 1.27 \n")
                .expect("valid");
        assert_eq!(rates.len(), 2);
        assert_eq!(
            (rates[1].currency.as_str(), rates[1].rate.as_str()),
            ("GBP", "1.27")
        );
        let message = |text| match parse_csv(text) {
            Err(AppError::BadInput(m)) => m,
            _ => panic!("accepted"),
        };
        assert!(message("EUR,2026-01-01").starts_with("line 1"));
        assert!(message("EUR,2026-01-01,1\nEUR,01/02/2026,1").starts_with("line 2"));
    }

    #[test]
    fn rates_are_checked_before_anything_is_stored() {
        let now = chrono::Utc::now();
        let ok = validate(
            vec![
                rate("eur", "2026-01-01", "1.0850"),
                rate("EUR", "2026-01-02", "1.09"),
            ],
            now,
        )
        .expect("valid");
        assert_eq!(ok.currencies, ["EUR", "EUR"]);
        assert_eq!(ok.rates, ["1.085", "1.09"]);
        let message = |rates| match validate(rates, now) {
            Err(AppError::BadInput(m)) => m,
            _ => panic!("accepted"),
        };
        assert!(message(vec![rate("EUR", "2026-01-01", "0")]).starts_with("rates[0].rate"));
        assert!(message(vec![rate("EUR", "2026-01-01", "-1.2")]).starts_with("rates[0].rate"));
        assert!(message(vec![rate("ABC", "2026-01-01", "1")]).starts_with("rates[0].currency"));
        assert!(
            message(vec![
                rate("EUR", "2026-01-01", "1"),
                rate("EUR", "2026-01-01", "2")
            ])
            .starts_with("rates[1]: EUR on 2026-01-01 is given twice")
        );
        assert!(message(vec![]).starts_with("rates:"));
        assert!(message(vec![rate("EUR", "1969-12-31", "1")]).starts_with("rates[0].date"));
        let later = (now + chrono::Duration::days(2)).date_naive().to_string();
        assert!(message(vec![rate("EUR", &later, "1")]).starts_with("rates[0].date"));
    }
}
