//! Each tenant's revenue changes in memory, in time order, for the totals of a range.
//!
//! A range's totals net every customer over the whole range (contract: "as if it were one
//! bucket"), which no per-period rollup holds: it takes each customer's MRR at both ends. In
//! SQL that is a hash aggregation over every change in the range (50 ms for 90 days of the
//! bench tenant); here it is one pass over columns with customers numbered densely (well
//! under a millisecond). A copy is used only while the tenant's `revenue_version` (raised by a
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

/// One tenant's changes as columns, ordered by (time, arrival).
pub struct Changes {
    version: i64,
    at: Vec<i64>,
    customer: Vec<u32>,
    /// The customer's previous and next change times; `i64::MIN` and `i64::MAX` for none.
    prev_at: Vec<i64>,
    next_at: Vec<i64>,
    mrr: Vec<f64>,
    prev_mrr: Vec<f64>,
    paid_before: Vec<bool>,
    customers: usize,
}

/// A range's movements with each customer netted over all of it.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Totals {
    pub new_mrr: f64,
    pub reactivation_mrr: f64,
    pub expansion_mrr: f64,
    pub contraction_mrr: f64,
    pub churned_mrr: f64,
    pub churned: i64,
}

#[derive(diesel::QueryableByName)]
struct Row {
    #[diesel(sql_type = BigInt)]
    version: i64,
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

/// The version travels with every row so that the copy and its version share one snapshot.
const LOAD: &str = "SELECT u.revenue_version AS version, c.customer_id, c.occurred_at, c.prev_at, \
    c.next_at, c.mrr::float8 AS mrr, c.prev_mrr::float8 AS prev_mrr, c.paid_before \
    FROM revenue_changes c JOIN tenant_usage u ON u.tenant_id = c.tenant_id \
    WHERE c.tenant_id = $1 ORDER BY c.occurred_at, c.id";

const VERSION: &str = "SELECT revenue_version AS version FROM tenant_usage WHERE tenant_id = $1";

#[derive(diesel::QueryableByName)]
struct Version {
    #[diesel(sql_type = BigInt)]
    version: i64,
}

/// The tenant's revenue version in the caller's snapshot.
pub async fn version(conn: &mut Conn, tenant: Uuid) -> AppResult<i64> {
    let v: Version = diesel::sql_query(VERSION)
        .bind::<SqlUuid, _>(tenant)
        .get_result(conn)
        .await?;
    Ok(v.version)
}

fn micros(t: DateTime<Utc>) -> i64 {
    t.timestamp_micros()
}

impl Changes {
    /// Reads the tenant's changes; None when it has none (nothing worth keeping).
    pub async fn load(conn: &mut Conn, tenant: Uuid) -> AppResult<Option<Changes>> {
        let rows: Vec<Row> = diesel::sql_query(LOAD)
            .bind::<SqlUuid, _>(tenant)
            .load(conn)
            .await?;
        let Some(version) = <[Row]>::first(&rows).map(|r| r.version) else {
            return Ok(None);
        };
        let n = rows.len();
        let mut numbers: HashMap<String, u32> = HashMap::new();
        let mut c = Changes {
            version,
            at: Vec::with_capacity(n),
            customer: Vec::with_capacity(n),
            prev_at: Vec::with_capacity(n),
            next_at: Vec::with_capacity(n),
            mrr: Vec::with_capacity(n),
            prev_mrr: Vec::with_capacity(n),
            paid_before: Vec::with_capacity(n),
            customers: 0,
        };
        for r in rows {
            let next = numbers.len() as u32;
            let number = *numbers.entry(r.customer_id).or_insert(next);
            c.at.push(micros(r.occurred_at));
            c.customer.push(number);
            c.prev_at.push(r.prev_at.map_or(i64::MIN, micros));
            c.next_at.push(r.next_at.map_or(i64::MAX, micros));
            c.mrr.push(r.mrr);
            c.prev_mrr.push(r.prev_mrr);
            c.paid_before.push(r.paid_before);
        }
        c.customers = numbers.len();
        Ok(Some(c))
    }

    pub fn version(&self) -> i64 {
        self.version
    }

    /// Bytes held, for the cache's bound.
    fn weight(&self) -> u32 {
        let per_change = 8 * 5 + 4 + 1;
        u32::try_from(self.at.len() * per_change).unwrap_or(u32::MAX)
    }

    /// Movements over `[from, to)`, each customer netted from its MRR before its first change
    /// in the range to its MRR after its last, as `REPORT` does for a bucket.
    pub fn totals(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> Totals {
        let (from, to) = (micros(from), micros(to));
        let lo = self.at.partition_point(|&t| t < from);
        let hi = self.at.partition_point(|&t| t < to);
        // A customer's MRR before its first change in the range, and whether it had paid.
        let mut start = vec![(0.0, false); self.customers];
        let mut t = Totals::default();
        for i in lo..hi {
            let c = self.customer[i] as usize;
            if self.prev_at[i] < from {
                start[c] = (self.prev_mrr[i], self.paid_before[i]);
            }
            if self.next_at[i] < to {
                continue;
            }
            let ((s, paid), e) = (start[c], self.mrr[i]);
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
    }
}

/// The copies of this instance, bounded in bytes.
pub struct Index {
    copies: moka::future::Cache<Uuid, Arc<Changes>>,
    loading: Mutex<HashSet<Uuid>>,
    db: Db,
}

impl Index {
    pub fn new(db: Db, max_bytes: u64) -> Arc<Index> {
        Arc::new(Index {
            copies: moka::future::Cache::builder()
                .max_capacity(max_bytes)
                .weigher(|_, c: &Arc<Changes>| c.weight())
                .time_to_idle(Duration::from_secs(3600))
                .build(),
            loading: Mutex::default(),
            db,
        })
    }

    /// The tenant's copy if it is at `version`. Otherwise None, and a new copy is read in the
    /// background unless one is being read already.
    pub async fn at_version(self: &Arc<Self>, tenant: Uuid, version: i64) -> Option<Arc<Changes>> {
        if let Some(c) = self.copies.get(&tenant).await
            && c.version == version
        {
            return Some(c);
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

    /// Reads the tenant's changes into memory now (or forgets them if it has none).
    pub async fn refresh(&self, tenant: Uuid) -> AppResult<()> {
        let started = std::time::Instant::now();
        let loaded = self
            .db
            .tenant_snapshot(tenant, |conn| Changes::load(conn, tenant).scope_boxed())
            .await?;
        match loaded {
            Some(c) => {
                tracing::debug!(%tenant, changes = c.at.len(), ms = started.elapsed().as_millis() as u64, "revenue changes read into memory");
                self.copies.insert(tenant, Arc::new(c)).await;
            }
            None => self.copies.invalidate(&tenant).await,
        }
        Ok(())
    }
}
