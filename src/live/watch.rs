//! Which metrics and event streams have subscribers on some instance: each instance marks its
//! topics every few seconds (keys that expire), and the capture worker computes and publishes
//! only what someone follows.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use uuid::Uuid;

use super::hub::Topic;
use super::message::MetricKey;
use crate::calendar::Granularity;
use crate::kv::Kv;

/// How often an instance marks its topics, and how long a mark lives.
pub const REFRESH: Duration = Duration::from_secs(5);
const LIFETIME: Duration = Duration::from_secs(20);

const GRANULARITIES: [Granularity; 4] = [
    Granularity::Hour,
    Granularity::Day,
    Granularity::Week,
    Granularity::Month,
];

/// What the capture worker publishes for: events are published whatever the name asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Watched {
    Metric(MetricKey, Granularity),
    Events,
}

impl Watched {
    pub fn of(topic: &Topic) -> Option<Watched> {
        match topic {
            Topic::Metric(m, g) => Some(Watched::Metric(*m, *g)),
            Topic::Events { .. } => Some(Watched::Events),
            Topic::ReportRun(_) => None,
        }
    }

    fn key(self, tenant: Uuid) -> String {
        match self {
            Watched::Metric(m, g) => format!("watch:{tenant}:{m:?}:{g:?}"),
            Watched::Events => format!("watch:{tenant}:events"),
        }
    }

    /// Everything that can be watched.
    fn all() -> Vec<Watched> {
        let mut out = vec![Watched::Events];
        for m in MetricKey::ALL {
            for g in GRANULARITIES {
                out.push(Watched::Metric(m, g));
            }
        }
        out
    }
}

/// Marks `topics` as followed for the next while.
pub async fn mark(kv: &Kv, topics: &[(Uuid, Topic)]) {
    let mut seen = HashSet::new();
    for (tenant, topic) in topics {
        let Some(w) = Watched::of(topic) else {
            continue;
        };
        if seen.insert((*tenant, w))
            && let Err(e) = kv.set_shared(&w.key(*tenant), 1, LIFETIME).await
        {
            if !kv.redis_down() {
                tracing::warn!(error = %e, "could not mark a live topic");
            }
            return;
        }
    }
}

/// What someone follows of each tenant's data, in one round trip.
pub async fn followed(
    kv: &Kv,
    tenants: &[Uuid],
) -> crate::error::AppResult<HashMap<Uuid, Vec<Watched>>> {
    let all = Watched::all();
    let keys: Vec<String> = tenants
        .iter()
        .flat_map(|t| all.iter().map(|w| w.key(*t)))
        .collect();
    let marks = kv.get_many(&keys).await?;
    Ok(tenants
        .iter()
        .zip(marks.chunks(all.len()))
        .map(|(t, marks)| {
            let followed = all
                .iter()
                .zip(marks)
                .filter_map(|(w, m)| m.map(|_| *w))
                .collect();
            (*t, followed)
        })
        .collect())
}
