//! Analytics (contract `analytics.graphql`): engagement here, revenue in `revenue.rs`.

use async_graphql::{Context, InputObject, InputType, Object, Result, SimpleObject};
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use scoped_futures::ScopedFutureExt;
use uuid::Uuid;

use super::revenue::RevenueAnalytics;
use super::series::MetricSeries;
use crate::analytics::answers::{Wanted, prefetch, range_key, series_key};
use crate::analytics::{self, EventFilter, cache, funnel, retention};
use crate::analytics::{Measure, engagement};
use crate::auth::guards::{RevenueGuard, principal};
use crate::calendar::{Granularity, Window};
use crate::error::AppError;
use crate::graphql::app;

const MAX_FILTERS: usize = 10;

#[derive(InputObject)]
pub struct TimeRangeInput {
    /// Inclusive.
    pub from: DateTime<Utc>,
    /// Exclusive.
    pub to: DateTime<Utc>,
}

/// Long ranges cost more points (`limits::cost`).
fn range_weight(range: &TimeRangeInput) -> usize {
    crate::limits::cost::range_weight((range.to - range.from).num_days())
}

#[derive(InputObject)]
pub struct PropertyFilter {
    pub key: String,
    pub equals: String,
}

#[derive(InputObject)]
#[graphql(name = "EventFilter")]
pub struct EventFilterInput {
    pub name: Option<String>,
    pub properties: Option<Vec<PropertyFilter>>,
}

fn check_key(value: &str, field: &str) -> Result<(), AppError> {
    if value.is_empty() || value.len() > 200 {
        return Err(AppError::bad_input(format!(
            "{field}: must be 1 to 200 bytes"
        )));
    }
    Ok(())
}

impl EventFilterInput {
    fn into_filter(self) -> Result<EventFilter, AppError> {
        let properties: Vec<(String, String)> = self
            .properties
            .unwrap_or_default()
            .into_iter()
            .map(|p| (p.key, p.equals))
            .collect();
        if properties.len() > MAX_FILTERS {
            return Err(AppError::bad_input(format!(
                "filter.properties: at most {MAX_FILTERS}"
            )));
        }
        for (k, _) in &properties {
            check_key(k, "filter.properties.key")?;
        }
        if let Some(n) = &self.name {
            check_key(n, "filter.name")?;
        }
        Ok(EventFilter {
            name: self.name,
            properties,
        })
    }
}

#[derive(SimpleObject)]
pub struct Cohort {
    pub cohort_start: DateTime<Utc>,
    pub size: i64,
    /// `retained[k]`: cohort members active in the k-th bucket after the cohort's own.
    pub retained: Vec<i64>,
}

#[derive(SimpleObject)]
pub struct Retention {
    pub cohorts: Vec<Cohort>,
}

#[derive(SimpleObject)]
pub struct FunnelStep {
    pub name: String,
    pub users: i64,
    /// Relative to the first step.
    pub conversion_rate: f64,
}

#[derive(SimpleObject)]
pub struct Funnel {
    pub steps: Vec<FunnelStep>,
}

pub struct Analytics {
    tenant: Uuid,
    window: Window,
    /// The tenant's data version when the request began: the metric cache's key.
    version: i64,
    /// The series the query asks for, computed in the request's first transaction.
    prefetched: Vec<(Wanted, analytics::Series)>,
    /// Property keys the segment rollup holds.
    tracked: Vec<String>,
}

/// The engagement series among the selected fields, with their arguments (variables applied).
/// A field whose arguments do not parse is left to its resolver, which reports the error.
fn series_requested(ctx: &Context<'_>) -> Vec<Wanted> {
    let mut out: Vec<Wanted> = Vec::new();
    for field in ctx.field().selection_set() {
        let measure = match field.name() {
            "activeUsers" => Measure::ActiveUsers,
            "newUsers" => Measure::NewUsers,
            "events" => Measure::Events,
            _ => continue,
        };
        let Ok(arguments) = field.arguments() else {
            continue;
        };
        let mut wanted = Wanted {
            measure,
            filter: EventFilter::default(),
            breakdown: None,
        };
        let mut understood = true;
        for (name, value) in arguments {
            match (name.as_str(), value) {
                ("filter", async_graphql::Value::Null) => {}
                ("filter", value) => match EventFilterInput::parse(Some(value))
                    .ok()
                    .map(EventFilterInput::into_filter)
                {
                    Some(Ok(filter)) => wanted.filter = filter,
                    _ => understood = false,
                },
                ("breakdownBy", async_graphql::Value::Null) => {}
                ("breakdownBy", async_graphql::Value::String(key))
                    if check_key(&key, "breakdownBy").is_ok() =>
                {
                    wanted.breakdown = Some(key)
                }
                _ => understood = false,
            }
        }
        if understood && !out.contains(&wanted) {
            out.push(wanted);
        }
    }
    out
}

fn cache_of<'a>(ctx: &Context<'a>) -> Option<&'a crate::kv::Kv> {
    let app = app(ctx);
    app.config.metric_cache.then_some(&app.kv)
}

impl Analytics {
    async fn series(
        &self,
        ctx: &Context<'_>,
        measure: Measure,
        filter: EventFilter,
        breakdown: Option<String>,
    ) -> Result<MetricSeries> {
        if let Some((_, s)) = self
            .prefetched
            .iter()
            .find(|(w, _)| w.measure == measure && w.filter == filter && w.breakdown == breakdown)
        {
            return Ok(s.clone().into());
        }
        let (tenant, window) = (self.tenant, &self.window);
        let kv = cache_of(ctx);
        let key = series_key(window, measure, &filter, &breakdown);
        let (filter, breakdown, key) = (&filter, &breakdown, &key);
        let tracked = &self.tracked;
        let db = &app(ctx).db;
        let series = cache::cached(kv, tenant, self.version, key, async || {
            db.analytics(tenant, |conn| {
                async move {
                    engagement::series(
                        conn,
                        tenant,
                        window,
                        tracked,
                        measure,
                        filter,
                        breakdown.as_deref(),
                    )
                    .await
                }
                .scope_boxed()
            })
            .await
        })
        .await?;
        Ok(series.into())
    }
}

#[Object]
impl Analytics {
    /// Distinct users with at least one (matching) event per bucket: DAU, WAU or MAU.
    async fn active_users(
        &self,
        ctx: &Context<'_>,
        filter: Option<EventFilterInput>,
    ) -> Result<MetricSeries> {
        let filter = filter
            .map(EventFilterInput::into_filter)
            .transpose()?
            .unwrap_or_default();
        self.series(ctx, Measure::ActiveUsers, filter, None).await
    }

    /// Users whose first-ever event falls in the bucket.
    async fn new_users(&self, ctx: &Context<'_>) -> Result<MetricSeries> {
        self.series(ctx, Measure::NewUsers, EventFilter::default(), None)
            .await
    }

    /// Event counts, optionally filtered and split by a property's value.
    async fn events(
        &self,
        ctx: &Context<'_>,
        filter: Option<EventFilterInput>,
        breakdown_by: Option<String>,
    ) -> Result<MetricSeries> {
        let filter = filter
            .map(EventFilterInput::into_filter)
            .transpose()?
            .unwrap_or_default();
        if let Some(b) = &breakdown_by {
            check_key(b, "breakdownBy")?;
        }
        self.series(ctx, Measure::Events, filter, breakdown_by)
            .await
    }

    /// One cohort per bucket of the range.
    // Cohorts are computed from raw activity: they weigh as much as twenty fields.
    #[graphql(complexity = "20 + child_complexity")]
    async fn retention(&self, ctx: &Context<'_>, periods: i32) -> Result<Retention> {
        let (tenant, window) = (self.tenant, &self.window);
        let kv = cache_of(ctx);
        let key = &(range_key("retention", &self.window), periods);
        let db = &app(ctx).db;
        let cohorts = cache::cached(kv, tenant, self.version, key, async || {
            db.analytics(tenant, |conn| {
                async move { retention::retention(conn, tenant, window, periods).await }
                    .scope_boxed()
            })
            .await
        })
        .await?;
        Ok(Retention {
            cohorts: cohorts
                .into_iter()
                .map(|c| Cohort {
                    cohort_start: c.start,
                    size: c.size,
                    retained: c.retained,
                })
                .collect(),
        })
    }

    /// Revenue: ANALYST and above, and READ API keys; others get null with FORBIDDEN here and
    /// the rest of the answer intact.
    #[graphql(guard = "RevenueGuard")]
    async fn revenue(&self, ctx: &Context<'_>) -> Result<Option<RevenueAnalytics>> {
        let (db, index) = (&app(ctx).db, app(ctx).revenue_index.as_ref());
        let report = crate::revenue::report::cached(
            db,
            cache_of(ctx),
            index,
            self.tenant,
            self.version,
            &self.window,
        )
        .await?;
        Ok(Some(RevenueAnalytics(report)))
    }

    /// Users who did the steps in order, within `conversionWindowHours` of the first.
    // Computed from raw events: it weighs as much as twenty fields.
    #[graphql(complexity = "20 + child_complexity")]
    async fn funnel(
        &self,
        ctx: &Context<'_>,
        steps: Vec<String>,
        conversion_window_hours: i32,
    ) -> Result<Funnel> {
        let (tenant, from, to) = (self.tenant, self.window.from, self.window.to);
        let kv = cache_of(ctx);
        let key = &(
            range_key("funnel", &self.window),
            &steps,
            conversion_window_hours,
        );
        let steps = &steps;
        let db = &app(ctx).db;
        let steps = cache::cached(kv, tenant, self.version, key, async || {
            db.analytics(tenant, |conn| {
                async move {
                    funnel::funnel(conn, tenant, from, to, steps, conversion_window_hours).await
                }
                .scope_boxed()
            })
            .await
        })
        .await?;
        Ok(Funnel {
            steps: steps
                .into_iter()
                .map(|s| FunnelStep {
                    name: s.name,
                    users: s.users,
                    conversion_rate: s.conversion_rate,
                })
                .collect(),
        })
    }
}

#[derive(Default)]
pub struct AnalyticsQuery;

#[Object]
impl AnalyticsQuery {
    /// The tenant's analytics over `range`, bucketed by `granularity` in the tenant's time zone.
    /// Members of any role and READ API keys.
    #[graphql(complexity = "child_complexity * range_weight(&range)")]
    async fn analytics(
        &self,
        ctx: &Context<'_>,
        range: TimeRangeInput,
        granularity: Granularity,
    ) -> Result<Analytics> {
        let tenant = principal(ctx).reading_tenant()?;
        let wanted = series_requested(ctx);
        let kv = cache_of(ctx);
        let db = &app(ctx).db;
        let context = crate::events::rollups::settled_context(db, tenant).await?;
        let version = context.data_version;
        if let Some(read) =
            ctx.data_opt::<std::sync::Arc<crate::analytics::versions::VersionsRead>>()
        {
            read.record(version);
        }
        let tz: Tz = context.timezone.parse().unwrap_or(Tz::UTC);
        let window = Window::new(range.from, range.to, granularity, tz)?;
        let tracked = context.rollup_properties;
        let prefetched = prefetch(db, kv, tenant, version, &window, &tracked, wanted).await?;
        Ok(Analytics {
            tenant,
            window,
            version,
            prefetched,
            tracked,
        })
    }
}
