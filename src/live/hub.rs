//! In-process fan-out: every subscription of this instance has an inbox that holds at most a
//! bounded amount, so a slow client costs its own inbox and never the broker or other clients.
//! A metric inbox keeps only the newest value; an events inbox keeps the newest events and
//! counts the ones it had to drop.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, Weak};

use tokio::sync::{Notify, broadcast};
use uuid::Uuid;

use super::message::{LiveEvent, LiveMessage, MetricKey, MetricValue, ReportRunState};
use crate::calendar::Granularity;

/// Events an inbox holds before it drops the oldest.
pub const EVENTS_CAPACITY: usize = 1_000;
/// Events handed to a client in one frame at most.
pub const EVENTS_PER_FRAME: usize = 500;

/// What one subscription listens to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Topic {
    Metric(MetricKey, Granularity),
    Events { name: Option<String> },
    ReportRun(Uuid),
}

/// What an inbox hands to its subscriber.
#[derive(Debug, Clone, PartialEq)]
pub enum Delivery {
    Metric(MetricValue),
    Events {
        events: Vec<LiveEvent>,
        dropped: u64,
    },
    ReportRun(ReportRunState),
}

#[derive(Default)]
struct Pending {
    /// The newest version seen, delivered or not: anything older is ignored.
    newest: u64,
    value: Option<Delivery>,
    events: VecDeque<LiveEvent>,
    dropped: u64,
}

pub struct Inbox {
    topic: Topic,
    pending: Mutex<Pending>,
    ready: Notify,
}

impl Inbox {
    /// Takes `message` if it is for this inbox's topic (and newer than what it holds).
    pub fn offer(&self, message: &LiveMessage) {
        let mut p = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        let wake = match (&self.topic, message) {
            (Topic::Metric(key, granularity), LiveMessage::Metric(v))
                if v.metric == *key && v.granularity == *granularity && v.version > p.newest =>
            {
                p.newest = v.version;
                p.value = Some(Delivery::Metric(v.clone()));
                true
            }
            (Topic::ReportRun(id), LiveMessage::ReportRun(r))
                if r.id == *id && r.version > p.newest =>
            {
                p.newest = r.version;
                p.value = Some(Delivery::ReportRun(r.clone()));
                true
            }
            (Topic::Events { name }, LiveMessage::Events { events, skipped }) => {
                // What the publisher left out was lost to every subscriber of the name asked.
                if name.is_none() {
                    p.dropped += skipped;
                }
                let mut any = *skipped > 0 && name.is_none();
                for e in events {
                    if name.as_ref().is_none_or(|n| *n == e.name) {
                        if p.events.len() == EVENTS_CAPACITY {
                            p.events.pop_front();
                            p.dropped += 1;
                        }
                        p.events.push_back(e.clone());
                        any = true;
                    }
                }
                any
            }
            _ => false,
        };
        drop(p);
        if wake {
            self.ready.notify_one();
        }
    }

    /// What is waiting, if anything, leaving the inbox empty (events: one frame's worth).
    fn take(&self) -> Option<Delivery> {
        let mut p = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(value) = p.value.take() {
            return Some(value);
        }
        if p.events.is_empty() && p.dropped == 0 {
            return None;
        }
        let n = p.events.len().min(EVENTS_PER_FRAME);
        let events: Vec<LiveEvent> = p.events.drain(..n).collect();
        let dropped = std::mem::take(&mut p.dropped);
        if !p.events.is_empty() {
            self.ready.notify_one();
        }
        Some(Delivery::Events { events, dropped })
    }

    /// Waits for the next delivery.
    pub async fn next(&self) -> Delivery {
        loop {
            if let Some(d) = self.take() {
                return d;
            }
            self.ready.notified().await;
        }
    }
}

/// Every live inbox of this instance, by tenant.
pub struct Hub {
    tenants: Mutex<HashMap<Uuid, Vec<Weak<Inbox>>>>,
    /// Tenants (and members) whose sessions ended, for this instance's session checks.
    ended: broadcast::Sender<(Uuid, Option<Uuid>)>,
}

impl Default for Hub {
    fn default() -> Self {
        Hub {
            tenants: Mutex::default(),
            ended: broadcast::channel(1024).0,
        }
    }
}

impl Hub {
    /// A new inbox for `topic`; it leaves the hub when the subscription drops it.
    pub fn subscribe(&self, tenant: Uuid, topic: Topic) -> Arc<Inbox> {
        let inbox = Arc::new(Inbox {
            topic,
            pending: Mutex::default(),
            ready: Notify::new(),
        });
        let mut tenants = self.tenants.lock().unwrap_or_else(|e| e.into_inner());
        let list = tenants.entry(tenant).or_default();
        list.retain(|w| w.strong_count() > 0);
        list.push(Arc::downgrade(&inbox));
        inbox
    }

    /// What `SessionsEnded` messages say, as they arrive.
    pub fn sessions_ended(&self) -> broadcast::Receiver<(Uuid, Option<Uuid>)> {
        self.ended.subscribe()
    }

    /// Hands a message to every inbox of its tenant.
    pub fn dispatch(&self, tenant: Uuid, message: &LiveMessage) {
        if let LiveMessage::SessionsEnded { member } = message {
            // No receiver yet: nothing is remembered that could be stale.
            let _ = self.ended.send((tenant, *member));
            return;
        }
        let inboxes: Vec<Arc<Inbox>> = {
            let tenants = self.tenants.lock().unwrap_or_else(|e| e.into_inner());
            match tenants.get(&tenant) {
                Some(list) => list.iter().filter_map(Weak::upgrade).collect(),
                None => return,
            }
        };
        for inbox in inboxes {
            inbox.offer(message);
        }
    }

    /// The topics that have at least one live inbox, per tenant; forgets dropped inboxes.
    pub fn topics(&self) -> Vec<(Uuid, Topic)> {
        let mut tenants = self.tenants.lock().unwrap_or_else(|e| e.into_inner());
        tenants.retain(|_, list| {
            list.retain(|w| w.strong_count() > 0);
            !list.is_empty()
        });
        let topics: HashSet<(Uuid, Topic)> = tenants
            .iter()
            .flat_map(|(tenant, list)| {
                list.iter()
                    .filter_map(Weak::upgrade)
                    .map(|inbox| (*tenant, inbox.topic.clone()))
            })
            .collect();
        topics.into_iter().collect()
    }

    pub fn subscriptions(&self) -> usize {
        let tenants = self.tenants.lock().unwrap_or_else(|e| e.into_inner());
        tenants
            .values()
            .map(|l| l.iter().filter(|w| w.strong_count() > 0).count())
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use chrono::Utc;

    use super::*;

    fn value(version: u64, v: f64) -> LiveMessage {
        LiveMessage::Metric(MetricValue {
            metric: MetricKey::ActiveUsers,
            granularity: Granularity::Day,
            bucket: Utc::now(),
            value: v,
            updated_at: Utc::now(),
            version,
        })
    }

    fn event(name: &str, i: usize) -> LiveEvent {
        LiveEvent {
            id: i.to_string(),
            name: name.into(),
            user_id: format!("u{i}"),
            occurred_at: Utc::now(),
            properties: serde_json::json!({}),
        }
    }

    #[test]
    fn a_metric_inbox_keeps_the_newest_version_only() {
        let hub = Hub::default();
        let t = Uuid::new_v4();
        let inbox = hub.subscribe(t, Topic::Metric(MetricKey::ActiveUsers, Granularity::Day));
        hub.dispatch(t, &value(5, 1.0));
        hub.dispatch(t, &value(7, 2.0));
        hub.dispatch(t, &value(6, 9.0));
        match inbox.take() {
            Some(Delivery::Metric(v)) => assert_eq!((v.version, v.value), (7, 2.0)),
            other => panic!("{other:?}"),
        }
        assert_eq!(inbox.take(), None);
        // Older than what was delivered: still ignored.
        hub.dispatch(t, &value(7, 3.0));
        assert_eq!(inbox.take(), None);
        // Other tenants, metrics and granularities do not reach it.
        hub.dispatch(Uuid::new_v4(), &value(9, 1.0));
        let mut weekly = value(10, 1.0);
        if let LiveMessage::Metric(v) = &mut weekly {
            v.granularity = Granularity::Week;
        }
        hub.dispatch(t, &weekly);
        assert_eq!(inbox.take(), None);
    }

    #[test]
    fn an_events_inbox_is_bounded_and_counts_what_it_dropped() {
        let hub = Hub::default();
        let t = Uuid::new_v4();
        let all = hub.subscribe(t, Topic::Events { name: None });
        let logins = hub.subscribe(
            t,
            Topic::Events {
                name: Some("login".into()),
            },
        );
        let batch: Vec<LiveEvent> = (0..EVENTS_CAPACITY + 20)
            .map(|i| event(if i % 2 == 0 { "login" } else { "page_view" }, i))
            .collect();
        hub.dispatch(
            t,
            &LiveMessage::Events {
                events: batch.clone(),
                skipped: 3,
            },
        );
        let mut got = Vec::new();
        let mut dropped = 0;
        while let Some(Delivery::Events { events, dropped: d }) = all.take() {
            assert!(events.len() <= EVENTS_PER_FRAME);
            got.extend(events);
            dropped += d;
        }
        assert_eq!(dropped, 20 + 3);
        assert_eq!(got, batch[20..].to_vec(), "the newest events, in order");
        let mut logins_got = Vec::new();
        while let Some(Delivery::Events { events, dropped }) = logins.take() {
            assert_eq!(dropped, 0);
            logins_got.extend(events);
        }
        assert_eq!(logins_got.len(), (EVENTS_CAPACITY + 20) / 2);
        assert!(logins_got.iter().all(|e| e.name == "login"));
    }

    #[test]
    fn dropped_inboxes_leave_the_hub() {
        let hub = Hub::default();
        let t = Uuid::new_v4();
        let a = hub.subscribe(t, Topic::Events { name: None });
        let b = hub.subscribe(t, Topic::Metric(MetricKey::Mrr, Granularity::Month));
        assert_eq!(hub.subscriptions(), 2);
        drop(a);
        assert_eq!(
            hub.topics(),
            vec![(t, Topic::Metric(MetricKey::Mrr, Granularity::Month))]
        );
        drop(b);
        assert!(hub.topics().is_empty());
        assert_eq!(hub.subscriptions(), 0);
    }
}
