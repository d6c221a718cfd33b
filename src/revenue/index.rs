//! Each tenant's revenue changes in memory, in time order, for the totals of a range.
//!
//! A range's totals net every customer over the whole range (contract: "as if it were one
//! bucket"), which no per-period rollup holds: it takes each customer's MRR at both ends. In
//! SQL that is a hash aggregation over every change in the range (50 ms for 90 days of the
//! bench tenant); here it is one pass over an array with customers numbered densely, and
//! stocks are prefix sums, so a whole report costs one pass over the range's changes. A copy is used only while the tenant's `revenue_version` (raised by a
//! trigger on every write of `revenue_changes`) still equals the one it was read at, in the
//! reading transaction's snapshot; a stale or missing copy makes that request take the SQL
//! path while one background task per tenant reads a new copy. Copies are bounded in bytes.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use diesel::sql_types::{BigInt, Bool, Double, Nullable, Text, Timestamptz, Uuid as SqlUuid};
use diesel_async::RunQueryDsl;
use scoped_futures::ScopedFutureExt;
use uuid::Uuid;

use crate::db::{Conn, Db};
use crate::error::AppResult;

/// One tenant's changes, ordered by (time, arrival): their times apart, for binary search.
pub struct Changes {
    version: i64,
    at: Vec<i64>,
    rows: Vec<Change>,
    /// MRR and paying customers after the first `i` changes (`n + 1` entries).
    cum_mrr: Vec<f64>,
    cum_paying: Vec<i64>,
    customers: usize,
}

/// What a pass over a span reads of one change, together in memory.
struct Change {
    /// The customer's previous and next change times; `i64::MIN` and `i64::MAX` for none.
    prev_at: i64,
    next_at: i64,
    mrr: f64,
    prev_mrr: f64,
    customer: u32,
    paid_before: bool,
}

thread_local! {
    /// Per customer, its MRR before its first change in the span being read, and whether it
    /// had paid. Never reset: a customer's first change in a span comes before its last, so
    /// each entry is written before it is read. Kept per thread so that a pass allocates
    /// nothing.
    static START: std::cell::RefCell<Vec<(f64, bool)>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// A span's movements with each customer netted over all of it (also a row of `REPORT` and of
/// `revenue_periods`).
#[derive(diesel::QueryableByName, Debug, Default, Clone, PartialEq)]
pub struct Totals {
    #[diesel(sql_type = Double)]
    pub new_mrr: f64,
    #[diesel(sql_type = Double)]
    pub reactivation_mrr: f64,
    #[diesel(sql_type = Double)]
    pub expansion_mrr: f64,
    #[diesel(sql_type = Double)]
    pub contraction_mrr: f64,
    #[diesel(sql_type = Double)]
    pub churned_mrr: f64,
    #[diesel(sql_type = BigInt)]
    pub churned: i64,
}

#[derive(diesel::QueryableByName)]
struct Row {
    #[diesel(sql_type = Text)]
    customer_id: String,
    #[diesel(sql_type = Timestamptz)]
    occurred_at: DateTime<Utc>,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    prev_at: Option<DateTime<Utc>>,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    next_at: Option<DateTime<Utc>>,
    #[diesel(sql_type = Double)]
    mrr: f64,
    #[diesel(sql_type = Double)]
    prev_mrr: f64,
    #[diesel(sql_type = Bool)]
    paid_before: bool,
}

const LOAD: &str = "SELECT customer_id, occurred_at, prev_at, next_at, mrr::float8 AS mrr, \
    prev_mrr::float8 AS prev_mrr, paid_before \
    FROM revenue_changes WHERE tenant_id = $1 ORDER BY occurred_at, id";

const STAMP: &str = "SELECT revenue_version AS version, revenue_changes_total AS changes \
    FROM tenant_usage WHERE tenant_id = $1";

/// The tenant's revenue version and how many changes it has stored, in the caller's snapshot.
#[derive(diesel::QueryableByName, Debug, Clone, Copy)]
pub struct Stamp {
    #[diesel(sql_type = BigInt)]
    pub version: i64,
    #[diesel(sql_type = BigInt)]
    pub changes: i64,
}

pub async fn stamp(conn: &mut Conn, tenant: Uuid) -> AppResult<Stamp> {
    Ok(diesel::sql_query(STAMP)
        .bind::<SqlUuid, _>(tenant)
        .get_result(conn)
        .await?)
}

/// Bytes a copy holds per change: its time, what a pass reads, and two prefix sums.
const PER_CHANGE: usize =
    size_of::<i64>() + size_of::<Change>() + size_of::<f64>() + size_of::<i64>();
// The README's configuration table gives this figure.
const _: () = assert!(PER_CHANGE == 64);

fn micros(t: DateTime<Utc>) -> i64 {
    t.timestamp_micros()
}

impl Changes {
    /// Reads the tenant's changes and their version; call inside `tenant_snapshot`, so that
    /// both come from one snapshot.
    pub async fn load(conn: &mut Conn, tenant: Uuid) -> AppResult<Changes> {
        let version = stamp(conn, tenant).await?.version;
        let rows: Vec<Row> = diesel::sql_query(LOAD)
            .bind::<SqlUuid, _>(tenant)
            .load(conn)
            .await?;
        let n = rows.len();
        let mut numbers: HashMap<String, u32> = HashMap::new();
        let mut c = Changes {
            version,
            at: Vec::with_capacity(n),
            rows: Vec::with_capacity(n),
            cum_mrr: Vec::with_capacity(n + 1),
            cum_paying: Vec::with_capacity(n + 1),
            customers: 0,
        };
        let (mut mrr, mut paying) = (0.0, 0);
        c.cum_mrr.push(mrr);
        c.cum_paying.push(paying);
        for r in rows {
            let next = numbers.len() as u32;
            let customer = *numbers.entry(r.customer_id).or_insert(next);
            c.at.push(micros(r.occurred_at));
            c.rows.push(Change {
                prev_at: r.prev_at.map_or(i64::MIN, micros),
                next_at: r.next_at.map_or(i64::MAX, micros),
                mrr: r.mrr,
                prev_mrr: r.prev_mrr,
                customer,
                paid_before: r.paid_before,
            });
            mrr += r.mrr - r.prev_mrr;
            paying += i64::from(r.mrr > 0.0) - i64::from(r.prev_mrr > 0.0);
            c.cum_mrr.push(mrr);
            c.cum_paying.push(paying);
        }
        c.customers = numbers.len();
        Ok(c)
    }

    /// Bytes held, for the cache's bound.
    fn weight(&self) -> u32 {
        u32::try_from(256 + self.at.len() * PER_CHANGE).unwrap_or(u32::MAX)
    }

    /// MRR and paying customers at `t`: every change before it counted.
    pub fn stock_before(&self, t: DateTime<Utc>) -> (f64, i64) {
        let i = self.at.partition_point(|&a| a < micros(t));
        (self.cum_mrr[i], self.cum_paying[i])
    }

    /// Movements over `[from, to)`, each customer netted from its MRR before its first change
    /// in the span to its MRR after its last, as `REPORT` does.
    pub fn movements(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> Totals {
        let (from, to) = (micros(from), micros(to));
        let lo = self.at.partition_point(|&t| t < from);
        let hi = lo + self.at[lo..].partition_point(|&t| t < to);
        START.with_borrow_mut(|start| {
            if start.len() < self.customers {
                start.resize(self.customers, (0.0, false));
            }
            let mut t = Totals::default();
            for ch in &self.rows[lo..hi] {
                let c = ch.customer as usize;
                if ch.prev_at < from {
                    start[c] = (ch.prev_mrr, ch.paid_before);
                }
                if ch.next_at < to {
                    continue;
                }
                let ((s, paid), e) = (start[c], ch.mrr);
                if s == 0.0 && e > 0.0 {
                    if paid {
                        t.reactivation_mrr += e;
                    } else {
                        t.new_mrr += e;
                    }
                } else if s > 0.0 && e > s {
                    t.expansion_mrr += e - s;
                } else if e > 0.0 && e < s {
                    t.contraction_mrr += s - e;
                } else if s > 0.0 && e == 0.0 {
                    t.churned_mrr += s;
                    t.churned += 1;
                }
            }
            t
        })
    }
}

/// The copies of this instance, bounded in bytes.
pub struct Index {
    copies: moka::future::Cache<Uuid, Arc<Changes>>,
    loading: Mutex<HashSet<Uuid>>,
    /// A tenant whose copy would take more than this is always answered from SQL, so that one
    /// tenant cannot take the memory of all (nor be read again and again, never admitted).
    largest: u64,
    db: Db,
}

impl Index {
    /// None when `max_bytes` is 0: revenue is then always read from PostgreSQL.
    pub fn new(db: Db, max_bytes: u64) -> Option<Arc<Index>> {
        (max_bytes > 0).then(|| {
            Arc::new(Index {
                copies: moka::future::Cache::builder()
                    .max_capacity(max_bytes)
                    .weigher(|_, c: &Arc<Changes>| c.weight())
                    .time_to_idle(Duration::from_secs(3600))
                    .build(),
                loading: Mutex::default(),
                largest: max_bytes / 4,
                db,
            })
        })
    }

    /// The tenant's copy if it is at the stamp's version. Otherwise None, and a new copy is
    /// read in the background unless one is being read already or it would be too large.
    pub async fn at(self: &Arc<Self>, tenant: Uuid, stamp: Stamp) -> Option<Arc<Changes>> {
        if let Some(c) = self.copies.get(&tenant).await
            && c.version == stamp.version
        {
            return Some(c);
        }
        let bytes = u64::try_from(stamp.changes).unwrap_or(0) * PER_CHANGE as u64;
        if bytes > self.largest {
            return None;
        }
        let started = self.loading.lock().is_ok_and(|mut l| l.insert(tenant));
        if started {
            let index = self.clone();
            tokio::spawn(async move {
                if let Err(e) = index.refresh(tenant).await {
                    tracing::warn!(error = %e, %tenant, "could not read revenue changes into memory");
                }
                if let Ok(mut l) = index.loading.lock() {
                    l.remove(&tenant);
                }
            });
        }
        None
    }

    /// Drops the tenant's copy: its next reads take the SQL path until a new copy is read.
    pub async fn forget(&self, tenant: Uuid) {
        self.copies.invalidate(&tenant).await;
    }

    /// Reads the tenant's changes into memory now.
    pub async fn refresh(&self, tenant: Uuid) -> AppResult<()> {
        let started = std::time::Instant::now();
        let copy = self
            .db
            .tenant_snapshot(tenant, |conn| Changes::load(conn, tenant).scope_boxed())
            .await?;
        tracing::debug!(
            %tenant,
            changes = copy.at.len(),
            ms = started.elapsed().as_millis() as u64,
            "revenue changes read into memory"
        );
        self.copies.insert(tenant, Arc::new(copy)).await;
        Ok(())
    }
}
