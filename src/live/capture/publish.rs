//! One tenant's turn: what its changes mean for the topics someone follows, published in one
//! round trip.

use chrono::{DateTime, Utc};

use super::Capture;
use super::pgoutput::{Relation, Value};
use super::schedule::{Job, Published};
use super::values;
use crate::live::message::{LiveEvent, LiveMessage, MetricKey};
use crate::live::watch::{self, Watched};

/// Events handed to the broker in one message at most.
const EVENTS_PER_MESSAGE: usize = 1_000;

fn event_of(relation: &Relation, values: &[Value]) -> Option<LiveEvent> {
    let text = |name| relation.text(values, name);
    let occurred_at = DateTime::parse_from_str(text("occurred_at")?, "%Y-%m-%d %H:%M:%S%.f%#z")
        .ok()?
        .with_timezone(&Utc);
    Some(LiveEvent {
        id: text("client_id").or_else(|| text("id"))?.to_string(),
        name: text("name")?.to_string(),
        user_id: text("user_id")?.to_string(),
        occurred_at,
        properties: text("properties")
            .and_then(|p| serde_json::from_str(p).ok())
            .unwrap_or_else(|| serde_json::json!({})),
    })
}

/// Publishes a job's events and changed values; returns the values now published. A failed
/// publish fails the job, so that its changes are read again.
pub async fn publish(app: &Capture, job: Job) -> anyhow::Result<Published> {
    let Job {
        tenant,
        events,
        mut published,
    } = job;
    let now = Utc::now();
    let followed = watch::followed(&app.kv, &[tenant])
        .await?
        .remove(&tenant)
        .unwrap_or_default();
    let mut messages = Vec::new();
    let events_changed = !events.no_events();
    if followed.contains(&Watched::Events) && events_changed {
        let kept: Vec<LiveEvent> = events
            .rows
            .iter()
            .filter_map(|(relation, row)| event_of(relation, row))
            .collect();
        let mut skipped = events.skipped;
        for chunk in kept.chunks(EVENTS_PER_MESSAGE) {
            messages.push(LiveMessage::Events {
                events: chunk.to_vec(),
                skipped: std::mem::take(&mut skipped),
            });
        }
        if skipped > 0 {
            messages.push(LiveMessage::Events {
                events: Vec::new(),
                skipped,
            });
        }
    }
    // Only what the changes can move: engagement with events, revenue with revenue changes.
    let moved = |m: MetricKey| {
        if m.is_revenue() {
            events.revenue
        } else {
            events_changed
        }
    };
    let wanted: Vec<_> = followed
        .iter()
        .filter_map(|w| match w {
            Watched::Metric(m, g) if moved(*m) => Some((*m, *g)),
            _ => None,
        })
        .collect();
    match values::newest(&app.db, tenant, &wanted, now, &events.xids).await {
        Ok((position, computed)) => {
            let version = published.next_version(position);
            for c in computed {
                let key = (c.metric, c.granularity);
                let seen = (c.bucket, c.value);
                if published.values.get(&key) != Some(&seen) {
                    published.values.insert(key, seen);
                    messages.push(c.message(now, version));
                }
            }
        }
        Err(e) => tracing::warn!(tenant = %tenant, error = %e, "live: could not compute values"),
    }
    app.broker.publish(tenant, messages).await?;
    Ok(published)
}
