//! Ingestion mutations (contract `ingest.graphql`).

use async_graphql::{Context, InputObject, Json, Object, Result, SimpleObject};
use chrono::{DateTime, Utc};

use crate::events::{self, NewEvent};
use crate::graphql::caller;

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
        let outcome = events::ingest_events(&caller(ctx), events).await?;
        Ok(IngestResult {
            accepted: outcome.accepted,
            duplicates: outcome.duplicates,
        })
    }
}
