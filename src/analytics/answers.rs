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

/// The requested series from the cache (one round trip), and the ones missing in one
/// transaction: the plain ones from one rollup statement, the others one statement each.
pub async fn prefetch(
    db: &Db,
    kv: Option<&Kv>,
    tenant: Uuid,
    version: i64,
    window: &Window,
    tracked: &[String],
    wanted: Vec<Wanted>,
) -> Result<Vec<(Wanted, Series)>, AppError> {
    let keys: Vec<SeriesKey> = wanted.iter().map(|w| w.key(window)).collect();
    let cached: Vec<Option<Series>> = cache::lookup_many(kv, tenant, version, &keys).await;
    let mut found = Vec::with_capacity(wanted.len());
    let mut missing = Vec::new();
    for (w, hit) in wanted.into_iter().zip(cached) {
        match hit {
            Some(series) => found.push((w, series)),
            None => missing.push(w),
        }
    }
    if missing.is_empty() {
        return Ok(found);
    }
    let missing_ref = &missing;
    let computed = db
        .analytics(tenant, |conn| {
            async move {
                let none = EventFilter::default();
                let plain: Vec<Measure> = missing_ref
                    .iter()
                    .filter(|w| w.plain())
                    .map(|w| w.measure)
                    .collect();
                let mut out: Vec<Series> = Vec::with_capacity(missing_ref.len());
                let mut from_one_statement = Vec::new();
                if !plain.is_empty()
                    && engagement::uses_rollups(window, Measure::ActiveUsers, &none, None)
                {
                    from_one_statement =
                        engagement::from_rollups(conn, tenant, window, &plain, None).await?;
                }
                for w in missing_ref {
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
            .scope_boxed()
        })
        .await?;
    for (w, series) in missing.iter().zip(&computed) {
        cache::store(kv, tenant, version, &w.key(window), series).await;
    }
    found.extend(missing.into_iter().zip(computed));
    Ok(found)
}
