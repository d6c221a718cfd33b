//! Engagement answers through the metric cache, shared by the dashboard's `analytics` query and
//! saved reports: the cache keys (one place, so both hit the same entries) and the prefetch
//! that reads every requested series in one round trip and computes the missing ones in one
//! transaction.

use chrono::{DateTime, Utc};
use scoped_futures::ScopedFutureExt;
use uuid::Uuid;

use super::{EventFilter, Measure, Series, cache, engagement};
use crate::calendar::{Granularity, Window};
use crate::db::Db;
use crate::error::AppError;
use crate::kv::Kv;

/// What identifies a query's kind and range in the metric cache.
pub type RangeKey = (
    &'static str,
    DateTime<Utc>,
    DateTime<Utc>,
    Granularity,
    &'static str,
);

pub fn range_key(what: &'static str, window: &Window) -> RangeKey {
    (
        what,
        window.from,
        window.to,
        window.granularity,
        window.tz.name(),
    )
}

pub type SeriesKey<'a> = (RangeKey, Measure, &'a EventFilter, &'a Option<String>);

/// What identifies a series in the metric cache.
pub fn series_key<'a>(
    window: &Window,
    measure: Measure,
    filter: &'a EventFilter,
    breakdown: &'a Option<String>,
) -> SeriesKey<'a> {
    (range_key("series", window), measure, filter, breakdown)
}

/// A series a query asks for: the measure, its filter and its breakdown key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wanted {
    pub measure: Measure,
    pub filter: EventFilter,
    pub breakdown: Option<String>,
}

impl Wanted {
    pub fn key<'a>(&'a self, window: &Window) -> SeriesKey<'a> {
        series_key(window, self.measure, &self.filter, &self.breakdown)
    }

    pub fn plain(&self) -> bool {
        self.filter == EventFilter::default() && self.breakdown.is_none()
    }
}

/// The requested series of one window: see [`prefetch_windows`].
pub async fn prefetch(
    db: &Db,
    kv: Option<&Kv>,
    tenant: Uuid,
    version: i64,
    window: &Window,
    tracked: &[String],
    wanted: Vec<Wanted>,
) -> Result<Vec<(Wanted, Series)>, AppError> {
    let mut all =
        prefetch_windows(db, kv, tenant, version, tracked, vec![(window, wanted)]).await?;
    Ok(all.pop().unwrap_or_default())
}

/// The series each window asks for: from the cache in one round trip, and the ones missing in
/// one transaction (per window, the plain ones from one rollup statement, the others one
/// statement each). Answers come back per window, in the order asked.
pub async fn prefetch_windows(
    db: &Db,
    kv: Option<&Kv>,
    tenant: Uuid,
    version: i64,
    tracked: &[String],
    asks: Vec<(&Window, Vec<Wanted>)>,
) -> Result<Vec<Vec<(Wanted, Series)>>, AppError> {
    let keys: Vec<SeriesKey> = asks
        .iter()
        .flat_map(|(window, wanted)| wanted.iter().map(|w| w.key(window)))
        .collect();
    let mut cached = cache::lookup_many::<Series, _>(kv, tenant, version, &keys)
        .await
        .into_iter();
    let mut found: Vec<Vec<(Wanted, Series)>> = Vec::with_capacity(asks.len());
    let mut missing: Vec<(&Window, Vec<Wanted>)> = Vec::new();
    for (window, wanted) in asks {
        let mut hits = Vec::with_capacity(wanted.len());
        let mut misses = Vec::new();
        for w in wanted {
            match cached.next().flatten() {
                Some(series) => hits.push((w, series)),
                None => misses.push(w),
            }
        }
        found.push(hits);
        missing.push((window, misses));
    }
    if missing.iter().all(|(_, m)| m.is_empty()) {
        return Ok(found);
    }
    let missing_ref = &missing;
    let computed: Vec<Vec<Series>> = db
        .tenant(tenant, |conn| {
            async move {
                let mut all = Vec::with_capacity(missing_ref.len());
                for (window, wanted) in missing_ref {
                    all.push(compute(conn, tenant, window, tracked, wanted).await?);
                }
                Ok(all)
            }
            .scope_boxed()
        })
        .await?;
    for ((window, wanted), series) in missing.iter().zip(&computed) {
        for (w, s) in wanted.iter().zip(series) {
            cache::store(kv, tenant, version, &w.key(window), s).await;
        }
    }
    for ((hits, (_, wanted)), series) in found.iter_mut().zip(missing).zip(computed) {
        hits.extend(wanted.into_iter().zip(series));
    }
    Ok(found)
}

/// The series of `wanted` over one window, in order: the plain ones from one rollup statement.
async fn compute(
    conn: &mut crate::db::Conn,
    tenant: Uuid,
    window: &Window,
    tracked: &[String],
    wanted: &[Wanted],
) -> Result<Vec<Series>, AppError> {
    let none = EventFilter::default();
    let plain: Vec<Measure> = wanted
        .iter()
        .filter(|w| w.plain())
        .map(|w| w.measure)
        .collect();
    let mut out: Vec<Series> = Vec::with_capacity(wanted.len());
    let mut from_one_statement = Vec::new();
    if !plain.is_empty() && engagement::uses_rollups(window, Measure::ActiveUsers, &none, None) {
        from_one_statement = engagement::from_rollups(conn, tenant, window, &plain, None).await?;
    }
    for w in wanted {
        let done = from_one_statement
            .iter()
            .position(|(m, _)| w.plain() && *m == w.measure);
        let series = match done {
            Some(i) => from_one_statement.swap_remove(i).1,
            None => {
                engagement::series(
                    conn,
                    tenant,
                    window,
                    tracked,
                    w.measure,
                    &w.filter,
                    w.breakdown.as_deref(),
                )
                .await?
            }
        };
        out.push(series);
    }
    Ok(out)
}
