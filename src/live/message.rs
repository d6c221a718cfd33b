//! What travels from the capture worker to subscribers, on Redis channels and in process.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::calendar::Granularity;

/// The metrics a live widget can follow (the contract's `MetricKey`).
#[derive(async_graphql::Enum, Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum MetricKey {
    ActiveUsers,
    NewUsers,
    Events,
    Mrr,
    Arr,
    PayingCustomers,
    Arpu,
    CustomerChurnRate,
    RevenueChurnRate,
    NetNewMrr,
}

impl MetricKey {
    /// Revenue metrics are for ANALYST and above (and READ keys), like `analytics.revenue`.
    pub fn is_revenue(self) -> bool {
        !matches!(
            self,
            MetricKey::ActiveUsers | MetricKey::NewUsers | MetricKey::Events
        )
    }

    pub const ENGAGEMENT: [MetricKey; 3] = [
        MetricKey::ActiveUsers,
        MetricKey::NewUsers,
        MetricKey::Events,
    ];

    pub const ALL: [MetricKey; 10] = [
        MetricKey::ActiveUsers,
        MetricKey::NewUsers,
        MetricKey::Events,
        MetricKey::Mrr,
        MetricKey::Arr,
        MetricKey::PayingCustomers,
        MetricKey::Arpu,
        MetricKey::CustomerChurnRate,
        MetricKey::RevenueChurnRate,
        MetricKey::NetNewMrr,
    ];
}

/// The value of the newest bucket of one metric. `version` is the log position of the change
/// that produced it: a consumer keeps the value with the highest one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricValue {
    pub metric: MetricKey,
    pub granularity: Granularity,
    pub bucket: DateTime<Utc>,
    pub value: f64,
    pub updated_at: DateTime<Utc>,
    pub version: u64,
}

/// One event as it landed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LiveEvent {
    /// The id the client sent (`EventInput.id`), or the server's row number without one.
    pub id: String,
    pub name: String,
    pub user_id: String,
    pub occurred_at: DateTime<Utc>,
    pub properties: serde_json::Value,
}

/// A report run's new state, passed through as the report worker wrote it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReportRunState {
    pub id: Uuid,
    pub state: serde_json::Value,
    pub version: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum LiveMessage {
    Metric(MetricValue),
    /// Events of one tenant in the order they were committed; `skipped` counts the ones the
    /// publisher left out to keep a message bounded.
    Events {
        events: Vec<LiveEvent>,
        skipped: u64,
    },
    ReportRun(ReportRunState),
    /// Sessions of the tenant ended (one member's, when given): every instance forgets what
    /// it knew of them and checks its sockets now.
    SessionsEnded {
        member: Option<Uuid>,
    },
}

/// A message for one tenant: the unit that goes through a channel.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    pub tenant: Uuid,
    pub message: LiveMessage,
}
