//! The newest bucket of a tenant's followed metrics, recomputed from the rollups.

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use scoped_futures::ScopedFutureExt;
use uuid::Uuid;

use crate::db::Db;
use crate::error::AppResult;
use crate::live::message::{LiveMessage, MetricKey, MetricValue};
use crate::metrics::cache::TenantContext;
use crate::metrics::engagement::{self, Measure};
use crate::metrics::{EventFilter, Granularity, Window};

/// A metric's newest bucket and its value.
#[derive(Debug, Clone, PartialEq)]
pub struct Computed {
    pub metric: MetricKey,
    pub granularity: Granularity,
    pub bucket: DateTime<Utc>,
    pub value: f64,
}

impl Computed {
    /// The message that carries this value, as of `version` (a log position).
    pub fn message(self, updated_at: DateTime<Utc>, version: u64) -> LiveMessage {
        LiveMessage::Metric(MetricValue {
            metric: self.metric,
            granularity: self.granularity,
            bucket: self.bucket,
            value: self.value,
            updated_at,
            version,
        })
    }
}

fn measure(metric: MetricKey) -> Option<Measure> {
    match metric {
        MetricKey::ActiveUsers => Some(Measure::ActiveUsers),
        MetricKey::NewUsers => Some(Measure::NewUsers),
        MetricKey::Events => Some(Measure::Events),
        // Revenue has no data to follow until revenue changes are stored.
        _ => None,
    }
}

/// The values of `wanted` for the buckets that contain `now`, with acknowledged ingestion merged
/// first, exactly as a dashboard read would see them.
pub async fn newest(
    db: &Db,
    tenant: Uuid,
    wanted: &[(MetricKey, Granularity)],
    now: DateTime<Utc>,
) -> AppResult<Vec<Computed>> {
    let wanted: Vec<(MetricKey, Measure, Granularity)> = wanted
        .iter()
        .filter_map(|&(m, g)| Some((m, measure(m)?, g)))
        .collect();
    if wanted.is_empty() {
        return Ok(Vec::new());
    }
    let context = db
        .outside_tenants(|conn| async move { TenantContext::get(conn, tenant).await }.scope_boxed())
        .await?;
    let tz: Tz = context.timezone.parse().unwrap_or(Tz::UTC);
    let tracked = &context.rollup_properties;
    let pending = context.pending;
    let wanted = &wanted;
    db.tenant(tenant, |conn| {
        async move {
            if pending {
                crate::events::rollups::flush(conn, tenant, true).await?;
            }
            let none = EventFilter::default();
            let mut out = Vec::with_capacity(wanted.len());
            for &(metric, measure, granularity) in wanted {
                let window = Window::current(now, granularity, tz)?;
                let series =
                    engagement::series(conn, tenant, &window, tracked, measure, &none, None)
                        .await?;
                out.push(Computed {
                    metric,
                    granularity,
                    bucket: window.from,
                    value: series.total,
                });
            }
            Ok(out)
        }
        .scope_boxed()
    })
    .await
}
