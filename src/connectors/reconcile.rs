//! Reconciliation: a customer's MRR on a moment as Fahwa stores it, against what the provider's
//! subscriptions imply for that moment. `fahwa reconcile` asks the provider afresh (every page);
//! after each sync the same comparison runs against the objects the sync just stored, so that
//! what was written is checked against what was read.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use diesel::sql_types::{Array, BigInt, Text, Timestamptz, Uuid as SqlUuid};
use diesel_async::RunQueryDsl;
use scoped_futures::ScopedFutureExt;
use uuid::Uuid;

use super::Services;
use super::apply::steps_from;
use super::provider::Observation;
use super::timeline::{self, Step};
use crate::db::Conn;
use crate::db::integrations::IntegrationRow;
use crate::error::{AppError, AppResult};

/// A customer whose MRR differs: amounts in minor units of `currency`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Difference {
    pub customer: String,
    pub currency: String,
    pub fahwa: i64,
    pub provider: i64,
}

#[derive(Debug, Clone)]
pub struct Reconciliation {
    pub at: DateTime<Utc>,
    pub customers: usize,
    pub differences: Vec<Difference>,
}

impl std::fmt::Display for Difference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: Fahwa {} {}, provider {} {}",
            self.customer, self.fahwa, self.currency, self.provider, self.currency
        )
    }
}

/// Each customer's MRR at `at` from objects' steps: `(customer, currency) -> minor units`.
fn implied<'a>(
    objects: impl Iterator<Item = (&'a str, &'a str, &'a [Step])>,
    at: DateTime<Utc>,
) -> BTreeMap<String, (String, i64)> {
    let mut out: BTreeMap<String, (String, i64)> = BTreeMap::new();
    for (customer, currency, steps) in objects {
        let amount = timeline::amount_at(steps, at);
        let entry = out
            .entry(customer.to_string())
            .or_insert_with(|| (currency.to_string(), 0));
        if entry.0 == currency {
            entry.1 += amount;
        } else if amount > 0 {
            entry.0 = currency.to_string();
            entry.1 = amount;
        }
    }
    out
}

#[derive(diesel::QueryableByName)]
struct Stored {
    #[diesel(sql_type = Text)]
    customer_id: String,
    #[diesel(sql_type = BigInt)]
    amount_minor: i64,
    #[diesel(sql_type = Text)]
    currency: String,
}

/// Compares `implied` with the stored MRR of the same customers (and of every customer the
/// integration wrote) at `at`.
async fn compare(
    conn: &mut Conn,
    integration: Uuid,
    implied: BTreeMap<String, (String, i64)>,
    at: DateTime<Utc>,
) -> AppResult<Reconciliation> {
    let customers: Vec<&str> = implied.keys().map(String::as_str).collect();
    let stored: Vec<Stored> = diesel::sql_query(
        "SELECT DISTINCT ON (customer_id) customer_id, amount_minor, currency \
         FROM revenue_changes \
         WHERE (customer_id = ANY($1) OR starts_with(client_id, $2)) AND occurred_at <= $3 \
         ORDER BY customer_id, occurred_at DESC, id DESC",
    )
    .bind::<Array<Text>, _>(&customers)
    .bind::<Text, _>(crate::db::integrations::change_prefix(integration))
    .bind::<Timestamptz, _>(at)
    .load(conn)
    .await?;
    let stored: BTreeMap<String, (String, i64)> = stored
        .into_iter()
        .map(|s| (s.customer_id, (s.currency, s.amount_minor)))
        .collect();
    let mut names: Vec<&String> = implied.keys().chain(stored.keys()).collect();
    names.sort();
    names.dedup();
    let mut differences = Vec::new();
    for name in &names {
        let (p_currency, provider) = implied.get(*name).cloned().unwrap_or_default();
        let (f_currency, fahwa) = stored.get(*name).cloned().unwrap_or_default();
        let same = provider == fahwa && (provider == 0 || p_currency == f_currency);
        if !same {
            differences.push(Difference {
                customer: (*name).clone(),
                currency: if p_currency.is_empty() {
                    f_currency
                } else {
                    p_currency
                },
                fahwa,
                provider,
            });
        }
    }
    Ok(Reconciliation {
        at,
        customers: names.len(),
        differences,
    })
}

#[derive(diesel::QueryableByName)]
struct Object {
    #[diesel(sql_type = Text)]
    customer_id: String,
    #[diesel(sql_type = Text)]
    currency: String,
    #[diesel(sql_type = diesel::sql_types::Jsonb)]
    steps: serde_json::Value,
}

/// The stored objects of `integration` against the stored revenue, at `at` (inside the
/// caller's transaction, in the tenant's scope).
pub async fn stored(
    conn: &mut Conn,
    integration: Uuid,
    at: DateTime<Utc>,
) -> AppResult<Reconciliation> {
    let objects: Vec<Object> = diesel::sql_query(
        "SELECT customer_id, currency, steps FROM integration_objects WHERE integration_id = $1 \
         ORDER BY customer_id, observed_at DESC",
    )
    .bind::<SqlUuid, _>(integration)
    .load(conn)
    .await?;
    let steps: Vec<Vec<Step>> = objects.iter().map(|o| steps_from(&o.steps)).collect();
    let implied = implied(
        objects
            .iter()
            .zip(&steps)
            .map(|(o, s)| (o.customer_id.as_str(), o.currency.as_str(), s.as_slice())),
        at,
    );
    compare(conn, integration, implied, at).await
}

/// The provider's subscriptions as it has them now, every page, against the stored revenue at
/// `at` (at most now).
pub async fn with_provider(
    services: &Services,
    row: &IntegrationRow,
    at: DateTime<Utc>,
) -> AppResult<Reconciliation> {
    let connector = super::manage::connector(services, row)?;
    let mut observations: Vec<Observation> = Vec::new();
    let mut checkpoint = None;
    loop {
        let page = connector
            .pull(checkpoint.as_ref())
            .await
            .map_err(|e| AppError::bad_input(format!("the provider could not be read: {e}")))?;
        observations.extend(page.observations);
        checkpoint = page.next;
        if checkpoint.is_none() {
            break;
        }
    }
    let implied = implied(
        observations.iter().map(|o| {
            (
                o.timeline.customer.as_str(),
                o.timeline.currency.as_str(),
                o.timeline.steps.as_slice(),
            )
        }),
        at,
    );
    let (tenant, integration) = (row.tenant_id, row.id);
    services
        .db
        .tenant(tenant, |conn| {
            async move { compare(conn, integration, implied, at).await }.scope_boxed()
        })
        .await
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    #[test]
    fn a_customers_subscriptions_add_up_at_the_moment_asked() {
        let t = |d| Utc.with_ymd_and_hms(2026, 3, d, 0, 0, 0).unwrap();
        let a = [
            Step {
                at: t(1),
                amount_minor: 1_000,
            },
            Step {
                at: t(10),
                amount_minor: 0,
            },
        ];
        let b = [Step {
            at: t(5),
            amount_minor: 500,
        }];
        let objects = [
            ("c1", "USD", &a[..]),
            ("c1", "USD", &b[..]),
            ("c2", "EUR", &b[..]),
        ];
        let at = |d| implied(objects.iter().copied(), t(d));
        assert_eq!(at(6)["c1"], ("USD".to_string(), 1_500));
        assert_eq!(at(12)["c1"], ("USD".to_string(), 500));
        assert_eq!(at(2)["c2"], ("EUR".to_string(), 0));
    }
}
