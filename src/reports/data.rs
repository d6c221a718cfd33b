//! Widgets' data: each widget's series for its range as of now, computed by the analytics engine
//! through the dashboard's metric cache. Widgets that share a window share its work: their
//! engagement series come from one prefetch and their revenue from one report.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use futures_util::future::try_join_all;
use uuid::Uuid;

use super::RelativeRange;
use super::range;
use super::spec::WidgetQuery;
use crate::analytics::answers::{Wanted, prefetch};
use crate::analytics::{EventFilter, Measure, Point, Series};
use crate::calendar::{Granularity, Window};
use crate::db::Db;
use crate::error::AppResult;
use crate::kv::Kv;
use crate::live::message::MetricKey;
use crate::revenue::index::Index;
use crate::revenue::report::Report;

/// What reading widgets' data needs.
#[derive(Clone, Copy)]
pub struct Reading<'a> {
    pub db: &'a Db,
    /// The metric cache, when it is on.
    pub cache: Option<&'a Kv>,
    pub revenue_index: Option<&'a Arc<Index>>,
}

/// The engagement measure of a metric, if it is one.
pub fn measure(metric: MetricKey) -> Option<Measure> {
    match metric {
        MetricKey::ActiveUsers => Some(Measure::ActiveUsers),
        MetricKey::NewUsers => Some(Measure::NewUsers),
        MetricKey::Events => Some(Measure::Events),
        _ => None,
    }
}

/// A revenue metric's series out of the window's report.
fn from_report(report: &Report, metric: MetricKey) -> Series {
    match metric {
        MetricKey::Arr => report.arr.clone(),
        MetricKey::PayingCustomers => report.paying_customers.clone(),
        MetricKey::Arpu => report.arpu.clone(),
        MetricKey::CustomerChurnRate => report.customer_churn_rate.clone(),
        MetricKey::RevenueChurnRate => report.revenue_churn_rate.clone(),
        MetricKey::NetNewMrr => Series {
            total: report.movements.iter().map(|m| m.net_new_mrr).sum(),
            points: report
                .movements
                .iter()
                .map(|m| Point {
                    bucket: m.bucket,
                    value: m.net_new_mrr,
                    group: None,
                })
                .collect(),
        },
        _ => report.mrr.clone(),
    }
}

/// The tenant's zone as its settings name it (UTC if it no longer parses).
pub fn zone(name: &str) -> Tz {
    name.parse().unwrap_or(Tz::UTC)
}

/// The series of each query, in order, for `tenant` as of `now`, and the data version they
/// were computed at. Widgets are grouped by window: each window's engagement series come from
/// one prefetch and its revenue from one report.
pub async fn series(
    reading: Reading<'_>,
    tenant: Uuid,
    queries: &[WidgetQuery],
    now: DateTime<Utc>,
) -> AppResult<(i64, Vec<Series>)> {
    let context = crate::events::rollups::settled_context(reading.db, tenant).await?;
    let tz = zone(&context.timezone);
    let version = context.data_version;
    // Windows in the order first asked, each with the queries that share it.
    let mut groups: Vec<((RelativeRange, Granularity), Vec<usize>)> = Vec::new();
    for (i, q) in queries.iter().enumerate() {
        let key = (q.range, q.granularity);
        match groups.iter_mut().find(|(k, _)| *k == key) {
            Some((_, members)) => members.push(i),
            None => groups.push((key, vec![i])),
        }
    }
    let windows: Vec<Window> = groups
        .iter()
        .map(|((r, g), _)| range::window(*r, *g, tz, now))
        .collect::<AppResult<_>>()?;
    let asks: Vec<(&Window, Vec<Wanted>)> = windows
        .iter()
        .zip(&groups)
        .map(|(window, (_, members))| {
            let mut wanted: Vec<Wanted> = Vec::new();
            for w in members.iter().filter_map(|&i| wanted_of(&queries[i])) {
                if !wanted.contains(&w) {
                    wanted.push(w);
                }
            }
            (window, wanted)
        })
        .collect();
    let revenue_windows: Vec<&Window> = windows
        .iter()
        .zip(&groups)
        .filter(|(_, (_, members))| members.iter().any(|&i| queries[i].metric.is_revenue()))
        .map(|(w, _)| w)
        .collect();
    let tracked = &context.rollup_properties;
    // Each window on a connection of its own, engagement and revenue side by side: a report
    // of a day window and a month window then takes about as long as its longer window.
    let engagement = try_join_all(asks.into_iter().map(|(window, wanted)| async move {
        match wanted.is_empty() {
            true => Ok(Vec::new()),
            false => {
                prefetch(
                    reading.db,
                    reading.cache,
                    tenant,
                    version,
                    window,
                    tracked,
                    wanted,
                )
                .await
            }
        }
    }));
    let revenue = try_join_all(revenue_windows.iter().map(|w| async move {
        crate::revenue::report::cached(
            reading.db,
            reading.cache,
            reading.revenue_index,
            tenant,
            version,
            w,
        )
        .await
    }));
    let (engagement, revenue) = tokio::try_join!(engagement, revenue)?;
    let mut out: Vec<Series> = vec![Series::default(); queries.len()];
    for (g, (window, (_, members))) in windows.iter().zip(&groups).enumerate() {
        let report = revenue_windows
            .iter()
            .position(|w| std::ptr::eq(*w, window))
            .and_then(|r| revenue.get(r));
        for &i in members {
            let q = &queries[i];
            out[i] = match (wanted_of(q), report) {
                (Some(w), _) => engagement
                    .get(g)
                    .and_then(|found| found.iter().find(|(have, _)| *have == w))
                    .map(|(_, s)| s.clone())
                    .unwrap_or_default(),
                (None, Some(report)) => from_report(report, q.metric),
                (None, None) => Series::default(),
            };
        }
    }
    Ok((version, out))
}

/// The engagement series a query asks for, if it asks for one.
fn wanted_of(q: &WidgetQuery) -> Option<Wanted> {
    measure(q.metric).map(|m| Wanted {
        measure: m,
        filter: EventFilter {
            name: q.event_name.clone(),
            properties: Vec::new(),
        },
        breakdown: None,
    })
}
