//! Widgets' data: each widget's series for its range as of now, computed by the analytics engine
//! through the dashboard's metric cache. Widgets that share a window share its work: their
//! engagement series come from one prefetch and their revenue from one report.

use std::collections::HashMap;
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
/// were computed at.
pub async fn series(
    reading: Reading<'_>,
    tenant: Uuid,
    queries: &[WidgetQuery],
    now: DateTime<Utc>,
) -> AppResult<(i64, Vec<Series>)> {
    let context = crate::events::rollups::settled_context(reading.db, tenant).await?;
    let tz = zone(&context.timezone);
    let version = context.data_version;
    let tracked = &context.rollup_properties;
    let mut groups: HashMap<(RelativeRange, Granularity), Vec<usize>> = HashMap::new();
    for (i, q) in queries.iter().enumerate() {
        groups.entry((q.range, q.granularity)).or_default().push(i);
    }
    let work = groups.into_iter().map(|((r, g), members)| async move {
        let window = range::window(r, g, tz, now)?;
        let found = window_series(
            reading, tenant, version, tracked, &window, queries, &members,
        )
        .await?;
        AppResult::Ok(members.into_iter().zip(found).collect::<Vec<_>>())
    });
    let mut out: Vec<Option<Series>> = vec![None; queries.len()];
    for (i, s) in try_join_all(work).await?.into_iter().flatten() {
        out[i] = Some(s);
    }
    Ok((
        version,
        out.into_iter().map(Option::unwrap_or_default).collect(),
    ))
}

/// The series of `queries[members]`, which share `window`.
async fn window_series(
    reading: Reading<'_>,
    tenant: Uuid,
    version: i64,
    tracked: &[String],
    window: &Window,
    queries: &[WidgetQuery],
    members: &[usize],
) -> AppResult<Vec<Series>> {
    let wanted_of = |q: &WidgetQuery| {
        measure(q.metric).map(|m| Wanted {
            measure: m,
            filter: EventFilter {
                name: q.event_name.clone(),
                properties: Vec::new(),
            },
            breakdown: None,
        })
    };
    let mut wanted: Vec<Wanted> = Vec::new();
    for w in members.iter().filter_map(|&i| wanted_of(&queries[i])) {
        if !wanted.contains(&w) {
            wanted.push(w);
        }
    }
    let any_revenue = members.iter().any(|&i| queries[i].metric.is_revenue());
    let engagement = async {
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
    };
    let revenue = async {
        match any_revenue {
            false => Ok(None),
            true => crate::revenue::report::cached(
                reading.db,
                reading.cache,
                reading.revenue_index,
                tenant,
                version,
                window,
            )
            .await
            .map(Some),
        }
    };
    let (engagement, revenue) = tokio::try_join!(engagement, revenue)?;
    Ok(members
        .iter()
        .map(|&i| {
            let q = &queries[i];
            match (wanted_of(q), &revenue) {
                (Some(w), _) => engagement
                    .iter()
                    .find(|(have, _)| *have == w)
                    .map(|(_, s)| s.clone())
                    .unwrap_or_default(),
                (None, Some(report)) => from_report(report, q.metric),
                (None, None) => Series::default(),
            }
        })
        .collect())
}
