//! The analytics engine: engagement series from rollups (whole local days) and raw events (the
//! cut edges of a range, hourly buckets, property filters), retention and funnels.

pub mod answers;
pub mod cache;
pub mod engagement;
pub mod funnel;
pub mod retention;
pub mod rows;
pub mod segments;
pub mod versions;

use chrono::{DateTime, Utc};

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Point {
    /// Whole seconds (every bucket starts on one) as a number in the metric cache: parsing the
    /// RFC 3339 text of each cached point was a tenth of the server's time on a cache hit.
    #[serde(with = "chrono::serde::ts_seconds")]
    pub bucket: DateTime<Utc>,
    pub value: f64,
    pub group: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Series {
    pub total: f64,
    pub points: Vec<Point>,
}

/// Which events count: by name and by property values (all must match).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, serde::Serialize)]
pub struct EventFilter {
    pub name: Option<String>,
    pub properties: Vec<(String, String)>,
}

/// What an engagement series counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum Measure {
    ActiveUsers,
    NewUsers,
    Events,
}
