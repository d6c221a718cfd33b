//! A metric over a range as the API returns it: a total and one point per bucket, shared by
//! engagement and revenue analytics.

use async_graphql::{ScalarType, SimpleObject, Value};
use chrono::{DateTime, Utc};

use super::flat_list::{Flat, FlatList};
use crate::analytics;

#[derive(SimpleObject)]
pub struct MetricPoint {
    /// Start of the bucket in the tenant's time zone.
    pub bucket: DateTime<Utc>,
    pub value: f64,
    /// The property value of this point, with `breakdownBy`.
    pub group: Option<String>,
}

impl Flat for MetricPoint {
    fn field(name: &str) -> Option<usize> {
        ["bucket", "value", "group"].iter().position(|f| *f == name)
    }

    fn value(&self, field: usize) -> Value {
        match field {
            0 => ScalarType::to_value(&self.bucket),
            1 => ScalarType::to_value(&self.value),
            _ => self.group.clone().map_or(Value::Null, Value::String),
        }
    }
}

#[derive(SimpleObject)]
pub struct MetricSeries {
    /// The metric over the whole range as one bucket.
    pub total: f64,
    /// One per bucket, oldest first, empty buckets included.
    pub points: FlatList<MetricPoint>,
}

impl From<analytics::Series> for MetricSeries {
    fn from(s: analytics::Series) -> Self {
        Self {
            total: s.total,
            points: FlatList(
                s.points
                    .into_iter()
                    .map(|p| MetricPoint {
                        bucket: p.bucket,
                        value: p.value,
                        group: p.group,
                    })
                    .collect(),
            ),
        }
    }
}
