//! Ingestion mutations (contract `ingest.graphql`).

use async_graphql::{Context, InputObject, Json, Object, Result, SimpleObject};
use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;

use crate::events::{self, NewEvent};
use crate::graphql::caller;
use crate::revenue::rates::NewRate;
use crate::revenue::{self, NewRevenueChange};

/// One event. `id` is the client's idempotency key: the same id twice is stored once.
#[derive(InputObject)]
pub struct EventInput {
    pub id: Option<String>,
    pub name: String,
    pub user_id: String,
    /// Defaults to the time of receipt; at most an hour in the future.
    pub occurred_at: Option<DateTime<Utc>>,
    /// A JSON object of event properties.
    pub properties: Option<Json<serde_json::Value>>,
}

/// From `occurredAt` on, the customer's monthly recurring revenue is `mrr`, in major units of
/// `currency` ("49.00"). `id` is the client's idempotency key.
#[derive(InputObject)]
pub struct RevenueChangeInput {
    pub id: Option<String>,
    pub customer_id: String,
    pub occurred_at: DateTime<Utc>,
    pub mrr: Decimal,
    /// ISO 4217 code; other than the tenant's currency, it needs a rate for the change's UTC
    /// day (`setExchangeRates`).
    pub currency: String,
    pub plan: Option<String>,
}

/// One unit of `currency` was worth `rate` units of the tenant's currency on `date` (UTC).
#[derive(InputObject)]
pub struct ExchangeRateInput {
    pub currency: String,
    pub date: NaiveDate,
    pub rate: Decimal,
}

#[derive(SimpleObject)]
pub struct SetExchangeRatesResult {
    /// Rates stored (new or replaced).
    pub set: i64,
}

#[derive(SimpleObject)]
pub struct IngestResult {
    /// Events stored by this call.
    pub accepted: i64,
    /// Events not stored again because their id was already seen.
    pub duplicates: i64,
}

#[derive(Default)]
pub struct IngestMutation;

#[Object]
impl IngestMutation {
    /// Up to 10,000 events, stored whole or not at all. INGEST API keys and ADMIN+ members.
    async fn ingest_events(
        &self,
        ctx: &Context<'_>,
        events: Vec<EventInput>,
    ) -> Result<IngestResult> {
        let events = events
            .into_iter()
            .map(|e| NewEvent {
                id: e.id,
                name: e.name,
                user_id: e.user_id,
                occurred_at: e.occurred_at,
                properties: e.properties.map(|j| j.0),
            })
            .collect();
        let outcome = events::ingest_events(caller(ctx).writer(), events).await?;
        Ok(IngestResult {
            accepted: outcome.accepted,
            duplicates: outcome.duplicates,
        })
    }

    /// Up to 10,000 revenue changes, stored whole or not at all, in any order. INGEST API keys
    /// and ADMIN+ members.
    async fn ingest_revenue_changes(
        &self,
        ctx: &Context<'_>,
        changes: Vec<RevenueChangeInput>,
    ) -> Result<IngestResult> {
        let changes = changes
            .into_iter()
            .map(|c| NewRevenueChange {
                id: c.id,
                customer_id: c.customer_id,
                occurred_at: c.occurred_at,
                mrr: serde_json::Value::String(c.mrr.to_string()),
                currency: c.currency,
                plan: c.plan,
            })
            .collect();
        let outcome = revenue::ingest_revenue(caller(ctx).writer(), changes).await?;
        Ok(IngestResult {
            accepted: outcome.accepted,
            duplicates: outcome.duplicates,
        })
    }

    /// Exchange rates into the tenant's currency, by UTC day (ADMIN+). Setting a day's rate
    /// again converts that day's changes again.
    async fn set_exchange_rates(
        &self,
        ctx: &Context<'_>,
        rates: Vec<ExchangeRateInput>,
    ) -> Result<SetExchangeRatesResult> {
        let rates = rates
            .into_iter()
            .map(|r| NewRate {
                currency: r.currency,
                day: r.date,
                rate: r.rate.to_string(),
            })
            .collect();
        let set = revenue::rates::set_rates(caller(ctx).writer(), rates).await?;
        Ok(SetExchangeRatesResult { set })
    }
}
