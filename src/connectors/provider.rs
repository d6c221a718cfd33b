//! The trait every connector implements, and what it hands back: pages of observations for a
//! sync, and verified deliveries for webhooks. What is done with them (ordering, history,
//! revenue) is the same for every provider and lives in `apply`.

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::api::ApiError;
use super::timeline::Timeline;

/// A provider object's state as seen at `seen_at`.
#[derive(Debug, Clone)]
pub struct Observation {
    pub object_id: String,
    /// When the provider says the object was in this state: the event's time for a webhook,
    /// the time of the request for a fetch.
    pub seen_at: DateTime<Utc>,
    pub timeline: Timeline,
}

/// One page of a sync, and where the next starts (`None`: this was the last).
#[derive(Debug)]
pub struct Page {
    pub observations: Vec<Observation>,
    pub next: Option<Value>,
}

/// A delivery whose signature held: its envelope.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// The provider's event id: the key of the replay ledger.
    pub event_id: String,
    pub event_type: String,
    /// Whether this connector does anything with the type; others are acknowledged only.
    pub handled: bool,
    pub payload: Value,
}

/// Why a delivery was refused (the sender gets 400 and nothing is stored).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal(pub String);

/// What a delivery changes.
#[derive(Debug)]
pub enum Interpreted {
    Observations(Vec<Observation>),
    /// Nothing for revenue (an event of a type the connector handles that carries nothing).
    Nothing(String),
}

#[async_trait::async_trait]
pub trait Connector: Send + Sync {
    /// Checks the credentials with the provider (at connect).
    async fn authenticate(&self) -> Result<(), ApiError>;

    /// One page of the provider's objects from `checkpoint` (`None`: from the start).
    async fn pull(&self, checkpoint: Option<&Value>) -> Result<Page, ApiError>;

    /// The object as the provider has it now (authoritative: for ties between deliveries and
    /// for payloads that lack what is needed); `None` when it no longer exists.
    async fn fetch(&self, object_id: &str) -> Result<Option<Observation>, ApiError>;

    /// Checks a delivery's signature and reads its envelope.
    async fn verify(
        &self,
        headers: &axum::http::HeaderMap,
        body: &[u8],
    ) -> Result<Delivery, Refusal>;

    /// What a verified delivery says about the provider's objects.
    async fn interpret(&self, delivery: &Delivery) -> Result<Interpreted, ApiError>;
}
