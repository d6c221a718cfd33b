//! Observations into revenue, the same for every provider. An object's newest applied state
//! wins: an observation older than the one applied is dropped, so a delivery that arrives late
//! never overwrites a newer state. An object's steps before its newest observation are history
//! and stay; from it on they follow from the state. Each customer's MRR is the sum of its
//! objects' steps, written through `revenue::sourced` (only what differs changes).

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use diesel::sql_types::{Array, Jsonb, Text, Timestamptz, Uuid as SqlUuid};
use diesel_async::RunQueryDsl;
use uuid::Uuid;

use super::provider::Observation;
use super::timeline::{self, Step};
use crate::db::Conn;
use crate::db::integrations::change_prefix;
use crate::error::AppResult;
use crate::revenue::sourced::{self, Desired, Replaced};

/// How an observation was made, which says where its history ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// A sync: steps before the object's previous observation stay, the rest follows the state.
    Sync,
    /// A webhook: the state holds from the event's time on.
    Webhook,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    pub applied: usize,
    /// Older than the state already applied: dropped.
    pub stale: usize,
    pub revenue: Replaced,
}

#[derive(diesel::QueryableByName)]
struct Known {
    #[diesel(sql_type = Text)]
    object_id: String,
    #[diesel(sql_type = Text)]
    customer_id: String,
    #[diesel(sql_type = Timestamptz)]
    observed_at: DateTime<Utc>,
    #[diesel(sql_type = Jsonb)]
    steps: serde_json::Value,
}

#[derive(diesel::QueryableByName)]
struct CustomerObject {
    #[diesel(sql_type = Text)]
    customer_id: String,
    #[diesel(sql_type = Text)]
    currency: String,
    #[diesel(sql_type = Jsonb)]
    steps: serde_json::Value,
}

/// Steps as `integration_objects.steps` stores them.
pub fn steps_from(value: &serde_json::Value) -> Vec<Step> {
    value
        .as_array()
        .map(|pairs| {
            pairs
                .iter()
                .filter_map(|p| {
                    Some(Step {
                        at: DateTime::from_timestamp(p.get(0)?.as_i64()?, 0)?,
                        amount_minor: p.get(1)?.as_i64()?,
                    })
                })
                .collect()
        })
        .unwrap_or_default()
}

fn steps_to(steps: &[Step]) -> serde_json::Value {
    steps
        .iter()
        .map(|s| serde_json::json!([s.at.timestamp(), s.amount_minor]))
        .collect()
}

impl Outcome {
    /// The tenant's new data version when revenue changed (inside the transaction that
    /// applied it; announced after it commits).
    pub async fn bump(&self, conn: &mut Conn, tenant: Uuid) -> AppResult<Option<i64>> {
        if self.revenue.inserted + self.revenue.deleted == 0 {
            return Ok(None);
        }
        let added = crate::analytics::versions::Added::RevenueChanges(self.revenue.inserted);
        Ok(Some(
            crate::analytics::versions::bump(conn, tenant, added).await?,
        ))
    }
}

/// When the state of an object observed at `seen_at` may be applied over what is `known` of
/// it: not when it is older (a late delivery).
pub fn is_stale(known: Option<DateTime<Utc>>, seen_at: DateTime<Utc>) -> bool {
    known.is_some_and(|k| k > seen_at)
}

/// The newest observation time of each of `objects` (for deciding before fetching).
pub async fn observed(
    conn: &mut Conn,
    integration: Uuid,
    objects: &[String],
) -> AppResult<BTreeMap<String, DateTime<Utc>>> {
    let known = load(conn, integration, objects).await?;
    Ok(known
        .into_iter()
        .map(|k| (k.object_id, k.observed_at))
        .collect())
}

async fn load(conn: &mut Conn, integration: Uuid, objects: &[String]) -> AppResult<Vec<Known>> {
    Ok(diesel::sql_query(
        "SELECT object_id, customer_id, observed_at, steps FROM integration_objects \
         WHERE integration_id = $1 AND object_id = ANY($2) FOR UPDATE",
    )
    .bind::<SqlUuid, _>(integration)
    .bind::<Array<Text>, _>(objects)
    .load(conn)
    .await?)
}

/// Applies `observations` of `integration` inside the caller's transaction, in the tenant's
/// scope; takes the tenant's revenue lock.
pub async fn apply(
    conn: &mut Conn,
    tenant: Uuid,
    integration: Uuid,
    observations: &[Observation],
    source: Source,
    now: DateTime<Utc>,
) -> AppResult<Outcome> {
    crate::revenue::lock(conn, tenant).await?;
    let ids: Vec<String> = observations.iter().map(|o| o.object_id.clone()).collect();
    let known: BTreeMap<String, Known> = load(conn, integration, &ids)
        .await?
        .into_iter()
        .map(|k| (k.object_id.clone(), k))
        .collect();
    let mut outcome = Outcome::default();
    let mut customers: BTreeSet<String> = BTreeSet::new();
    let mut latest: BTreeMap<&str, &Observation> = BTreeMap::new();
    for o in observations {
        match latest.get(o.object_id.as_str()) {
            Some(seen) if seen.seen_at > o.seen_at => {}
            _ => {
                latest.insert(&o.object_id, o);
            }
        }
    }
    for o in latest.into_values() {
        let before = known.get(&o.object_id);
        if is_stale(before.map(|k| k.observed_at), o.seen_at) {
            outcome.stale += 1;
            continue;
        }
        let known_steps = before.map(|k| steps_from(&k.steps)).unwrap_or_default();
        let cut = before.map(|k| match source {
            Source::Webhook => o.seen_at,
            Source::Sync => k.observed_at,
        });
        let steps = timeline::merge(&known_steps, &o.timeline.steps, cut, now);
        diesel::sql_query(
            "INSERT INTO integration_objects (tenant_id, integration_id, object_id, customer_id, \
               currency, observed_at, steps, left_out) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
             ON CONFLICT (integration_id, object_id) DO UPDATE SET customer_id = excluded.customer_id, \
               currency = excluded.currency, observed_at = excluded.observed_at, \
               steps = excluded.steps, left_out = excluded.left_out, updated_at = now()",
        )
        .bind::<SqlUuid, _>(tenant)
        .bind::<SqlUuid, _>(integration)
        .bind::<Text, _>(&o.object_id)
        .bind::<Text, _>(&o.timeline.customer)
        .bind::<Text, _>(&o.timeline.currency)
        .bind::<Timestamptz, _>(o.seen_at)
        .bind::<Jsonb, _>(steps_to(&steps))
        .bind::<Array<Text>, _>(&o.timeline.left_out)
        .execute(conn)
        .await?;
        if let Some(k) = before {
            customers.insert(k.customer_id.clone());
        }
        customers.insert(o.timeline.customer.clone());
        outcome.applied += 1;
    }
    let desired = customers_desired(conn, integration, &customers).await?;
    outcome.revenue = sourced::replace(conn, tenant, &change_prefix(integration), &desired).await?;
    Ok(outcome)
}

/// Each customer's MRR over time: the sum of its objects' steps, in the currency of its most
/// recently observed object (a provider bills one customer in one currency).
async fn customers_desired(
    conn: &mut Conn,
    integration: Uuid,
    customers: &BTreeSet<String>,
) -> AppResult<Vec<Desired>> {
    let names: Vec<&str> = customers.iter().map(String::as_str).collect();
    let objects: Vec<CustomerObject> = diesel::sql_query(
        "SELECT customer_id, currency, steps FROM integration_objects \
         WHERE integration_id = $1 AND customer_id = ANY($2) ORDER BY customer_id, observed_at DESC",
    )
    .bind::<SqlUuid, _>(integration)
    .bind::<Array<Text>, _>(&names)
    .load(conn)
    .await?;
    let mut out = Vec::with_capacity(customers.len());
    for customer in customers {
        let mine: Vec<&CustomerObject> = objects
            .iter()
            .filter(|o| &o.customer_id == customer)
            .collect();
        let currency = <[&CustomerObject]>::first(&mine)
            .map_or_else(|| "USD".to_string(), |o| o.currency.clone());
        let steps: Vec<Vec<Step>> = mine
            .iter()
            .filter(|o| o.currency == currency)
            .map(|o| steps_from(&o.steps))
            .collect();
        if mine.iter().any(|o| o.currency != currency) {
            tracing::warn!(%integration, "a customer's subscriptions are in several currencies; only the newest one's counts");
        }
        let refs: Vec<&[Step]> = steps.iter().map(Vec::as_slice).collect();
        out.push(Desired {
            customer: customer.clone(),
            currency,
            steps: timeline::sum(&refs)
                .into_iter()
                .map(|s| (s.at, s.amount_minor))
                .collect(),
        });
    }
    Ok(out)
}
