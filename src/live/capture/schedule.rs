//! What capture has read and not yet published, per tenant, and when each tenant may be
//! published next. A tenant is published as soon as its changes commit, unless it was
//! published less than a tick ago (then its changes wait out the tick and go together), so a
//! busy tenant is not published more than a few times a second and a quiet one waits for
//! nothing. The slot's position is confirmed only up to the first change not yet published.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::pgoutput::{Relation, Value};
use crate::calendar::Granularity;
use crate::live::message::MetricKey;

/// An inserted event as decoded, made into a `LiveEvent` only if someone follows the stream.
pub type Row = (Arc<Relation>, Vec<Value>);

/// What was last published for a tenant: per metric and granularity its bucket and value (an
/// unchanged value is not sent again), and the version it carried.
#[derive(Default)]
pub struct Published {
    pub values: HashMap<(MetricKey, Granularity), (DateTime<Utc>, f64)>,
    pub version: u64,
}

impl Published {
    /// The version of values computed now from a snapshot whose log position is `position`:
    /// that position, or one more than the last version when no log was written since (a
    /// value computed later must always win, and subscribers drop anything not newer than
    /// what they hold).
    pub fn next_version(&mut self, position: u64) -> u64 {
        self.version = position.max(self.version + 1);
        self.version
    }
}

/// What changed for a tenant: its newest events, at most `cap` of them (the older ones are
/// counted as skipped), and whether its revenue changed.
#[derive(Default)]
pub struct Changes {
    pub rows: VecDeque<Row>,
    pub skipped: u64,
    pub revenue: bool,
    /// The transactions they came from (the newest [`MAX_XIDS`]): values are computed from a
    /// snapshot that sees them all.
    pub xids: Vec<u32>,
}

/// Transactions remembered per tenant between two publications; older ones have long left
/// every snapshot's in-progress list.
pub const MAX_XIDS: usize = 256;

impl Changes {
    pub fn push(&mut self, row: Row, cap: usize) {
        if self.rows.len() == cap {
            self.rows.pop_front();
            self.skipped += 1;
        }
        self.rows.push_back(row);
    }

    /// Marks these changes as committed by transaction `xid`.
    pub fn committed_by(&mut self, xid: u32) {
        self.xids.push(xid);
        if self.xids.len() > MAX_XIDS {
            self.xids.drain(..self.xids.len() - MAX_XIDS);
        }
    }

    fn append(&mut self, other: Changes, cap: usize) {
        self.skipped += other.skipped;
        self.revenue |= other.revenue;
        for xid in other.xids {
            self.committed_by(xid);
        }
        for row in other.rows {
            self.push(row, cap);
        }
    }

    /// No events (revenue aside).
    pub fn no_events(&self) -> bool {
        self.rows.is_empty() && self.skipped == 0
    }

    fn len(&self) -> usize {
        self.rows.len()
    }
}

/// One tenant's work, handed to a publishing job.
pub struct Job {
    pub tenant: Uuid,
    pub events: Changes,
    pub published: Published,
}

#[derive(Default)]
struct Tenant {
    waiting: Changes,
    /// Where the slot may be confirmed up to without losing the waiting changes: the end of
    /// the transaction before the first of them.
    waiting_since: Option<u64>,
    /// The same for the changes a job is publishing now.
    publishing_since: Option<u64>,
    last_start: Option<Instant>,
    published: Published,
}

impl Tenant {
    /// When it may be published next, `now` being the earliest.
    fn due(&self, tick: Duration, now: Instant) -> Instant {
        self.last_start.map_or(now, |at| (at + tick).max(now))
    }

    fn idle(&self) -> bool {
        self.waiting_since.is_none() && self.publishing_since.is_none()
    }
}

pub struct Schedule {
    tick: Duration,
    /// Events kept per tenant between two of its publications.
    cap: usize,
    tenants: HashMap<Uuid, Tenant>,
    /// Tenants with changes and no job, by when they may start one.
    queue: BTreeSet<(Instant, Uuid)>,
    /// The end of the last transaction read.
    decoded_to: u64,
    waiting_rows: usize,
    busy: usize,
}

impl Schedule {
    pub fn new(tick: Duration, cap: usize) -> Self {
        Schedule {
            tick,
            cap,
            tenants: HashMap::new(),
            queue: BTreeSet::new(),
            decoded_to: 0,
            waiting_rows: 0,
            busy: 0,
        }
    }

    /// A transaction committed at `end_lsn` with these events per tenant (none for one that
    /// touched no events), read at `now`.
    pub fn commit(&mut self, changes: HashMap<Uuid, Changes>, end_lsn: u64, now: Instant) {
        let before = self.decoded_to;
        for (id, events) in changes {
            let tenant = self.tenants.entry(id).or_default();
            if tenant.waiting_since.is_none() {
                tenant.waiting_since = Some(before);
                if tenant.publishing_since.is_none() {
                    self.queue.insert((tenant.due(self.tick, now), id));
                }
            }
            self.waiting_rows -= tenant.waiting.len();
            tenant.waiting.append(events, self.cap);
            self.waiting_rows += tenant.waiting.len();
        }
        self.decoded_to = end_lsn;
    }

    /// The next tenant whose changes may be published now, if fewer than `at_most` jobs run.
    pub fn next_job(&mut self, now: Instant, at_most: usize) -> Option<Job> {
        if self.busy >= at_most {
            return None;
        }
        let &(due, id) = self.queue.first()?;
        if due > now {
            return None;
        }
        self.queue.pop_first();
        let tenant = self.tenants.get_mut(&id)?;
        tenant.publishing_since = tenant.waiting_since.take();
        tenant.last_start = Some(now);
        self.waiting_rows -= tenant.waiting.len();
        self.busy += 1;
        Some(Job {
            tenant: id,
            events: std::mem::take(&mut tenant.waiting),
            published: std::mem::take(&mut tenant.published),
        })
    }

    /// A job ended well: what it published is remembered, and the tenant's later changes
    /// queue for their turn.
    pub fn done(&mut self, id: Uuid, published: Published, now: Instant) {
        self.busy -= 1;
        let tick = self.tick;
        if let Some(tenant) = self.tenants.get_mut(&id) {
            tenant.published = published;
            tenant.publishing_since = None;
            if tenant.waiting_since.is_some() {
                self.queue.insert((tenant.due(tick, now), id));
            }
        }
    }

    /// When the first queued tenant may start, if any may (with `at_most` jobs at once).
    pub fn next_due(&self, at_most: usize) -> Option<Instant> {
        if self.busy >= at_most {
            return None;
        }
        self.queue.first().map(|(due, _)| *due)
    }

    /// How far the slot may be confirmed: up to the first change not yet published.
    pub fn confirmable(&self) -> u64 {
        self.tenants
            .values()
            .flat_map(|t| [t.waiting_since, t.publishing_since])
            .flatten()
            .min()
            .unwrap_or(self.decoded_to)
    }

    /// Nothing read is waiting or being published.
    pub fn is_idle(&self) -> bool {
        self.busy == 0 && self.queue.is_empty()
    }

    pub fn waiting_rows(&self) -> usize {
        self.waiting_rows
    }

    /// Forgets tenants with nothing pending that were last published longer ago than `age`.
    pub fn forget_older_than(&mut self, age: Duration, now: Instant) {
        self.tenants
            .retain(|_, t| !t.idle() || t.last_start.is_none_or(|at| now.duration_since(at) < age));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn changes(tenants: &[Uuid]) -> HashMap<Uuid, Changes> {
        tenants.iter().map(|t| (*t, Changes::default())).collect()
    }

    const TICK: Duration = Duration::from_millis(250);

    /// Ties in the queue go by tenant id: `a` before `b`.
    fn two() -> (Uuid, Uuid) {
        (Uuid::from_u128(1), Uuid::from_u128(2))
    }

    #[test]
    fn a_quiet_tenant_goes_at_once_and_a_busy_one_waits_out_its_tick() {
        let (a, b) = two();
        let mut s = Schedule::new(TICK, 10);
        let t0 = Instant::now();
        s.commit(changes(&[a]), 100, t0);
        let job = s.next_job(t0, 4).expect("a goes at once");
        assert_eq!(job.tenant, a);
        assert!(s.next_job(t0, 4).is_none());
        // More for a while its job runs, and b for the first time.
        s.commit(changes(&[a, b]), 200, t0);
        let job_b = s.next_job(t0, 4).expect("b goes at once");
        assert_eq!(job_b.tenant, b);
        s.done(a, Published::default(), t0);
        assert!(
            s.next_job(t0 + TICK / 2, 4).is_none(),
            "a waits for its tick"
        );
        assert_eq!(s.next_due(4), Some(t0 + TICK));
        let again = s.next_job(t0 + TICK, 4).expect("a after its tick");
        assert_eq!(again.tenant, a);
    }

    #[test]
    fn the_slot_is_confirmed_only_up_to_the_first_unpublished_change() {
        let (a, b) = two();
        let mut s = Schedule::new(TICK, 10);
        let now = Instant::now();
        s.commit(HashMap::new(), 50, now);
        assert_eq!(s.confirmable(), 50, "a transaction without events");
        s.commit(changes(&[a]), 100, now);
        s.commit(changes(&[b]), 200, now);
        assert_eq!(s.confirmable(), 50);
        let job_a = s.next_job(now, 1).expect("a");
        assert_eq!(job_a.tenant, a);
        assert!(s.next_job(now, 1).is_none(), "one job at a time here");
        s.commit(changes(&[a]), 300, now);
        assert_eq!(
            s.confirmable(),
            50,
            "a's first change is still being published"
        );
        s.done(job_a.tenant, job_a.published, now);
        assert_eq!(
            s.confirmable(),
            100,
            "b's change, after a's first, is not published"
        );
        let job_b = s.next_job(now, 1).expect("b");
        s.done(job_b.tenant, job_b.published, now);
        assert_eq!(s.confirmable(), 200, "a's second change waits for its tick");
        let job_a = s.next_job(now + TICK, 1).expect("a again");
        s.done(job_a.tenant, job_a.published, now);
        assert_eq!(s.confirmable(), 300);
        assert!(s.is_idle());
    }

    #[test]
    fn versions_only_grow_even_when_the_log_stands_still() {
        let mut p = Published::default();
        assert_eq!(p.next_version(100), 100);
        assert_eq!(p.next_version(100), 101, "no log written since: one more");
        assert_eq!(p.next_version(100), 102);
        assert_eq!(p.next_version(500), 500);
    }

    #[test]
    fn events_are_capped_per_tenant_and_counted_when_skipped_and_revenue_is_kept() {
        let a = Uuid::new_v4();
        let relation = Arc::new(Relation {
            id: 1,
            namespace: "public".into(),
            name: "events".into(),
            columns: vec!["id".into()],
        });
        let mut s = Schedule::new(TICK, 3);
        let now = Instant::now();
        for i in 0..5u64 {
            let mut c = Changes::default();
            c.push((relation.clone(), vec![Value::Text(i.to_string())]), 3);
            // A revenue change in one transaction of several.
            c.revenue = i == 1;
            s.commit(HashMap::from([(a, c)]), 100 + i, now);
        }
        assert_eq!(s.waiting_rows(), 3);
        let job = s.next_job(now, 4).expect("a");
        assert_eq!(job.events.skipped, 2);
        assert!(
            job.events.revenue,
            "a revenue change among the events is not forgotten"
        );
        let kept: Vec<_> = job
            .events
            .rows
            .iter()
            .map(|(r, v)| r.text(v, "id").map(str::to_string))
            .collect();
        assert_eq!(kept, ["2", "3", "4"].map(|s| Some(s.to_string())));
        assert_eq!(s.waiting_rows(), 0);
    }
}
