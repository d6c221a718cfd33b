//! The GraphQL shapes of reports, their widgets and runs. Relations go through the request's
//! loaders, which a list page has already fed.

use async_graphql::connection::{Connection, Edge, EmptyFields};
use async_graphql::{Context, ID, Object, Result};
use chrono::{DateTime, Utc};

use crate::auth::guards::{may_read_revenue, principal};
use crate::calendar::Granularity;
use crate::db::reports::{ReportEntry, ReportRow, RunRow, ScheduleRow, WidgetRow};
use crate::error::AppError;
use crate::graphql::app;
use crate::graphql::loaders::{Loaders, RunPage};
use crate::graphql::pagination::{decode_id, encode_id, page_cost, page_size};
use crate::graphql::series::MetricSeries;
use crate::graphql::tenant::types::User;
use crate::live::message::MetricKey;
use crate::reports::spec::WidgetQuery;
use crate::reports::{RelativeRange, ReportFormat, ReportRunStatus, Stored};

fn loaders<'a>(ctx: &Context<'a>) -> &'a Loaders {
    ctx.data_unchecked::<Loaders>()
}

/// Notes the data version an answer was computed at, for the response cache.
fn read_at(ctx: &Context<'_>, version: i64) {
    if let Some(read) = ctx.data_opt::<std::sync::Arc<crate::analytics::versions::VersionsRead>>() {
        read.record(version);
    }
}

pub struct Report(pub ReportRow);

impl Report {
    /// The report, its relations fed to the request's loaders.
    pub async fn fed(ctx: &Context<'_>, entry: ReportEntry) -> Report {
        read_at(ctx, entry.data_version);
        let l = loaders(ctx);
        let id = entry.report.id;
        l.report_widgets.feed_one(id, entry.widgets).await;
        l.last_runs.feed_one(id, entry.last_run).await;
        l.schedules.feed_one(id, entry.schedule).await;
        l.reports.feed_one(id, entry.report.clone()).await;
        Report(entry.report)
    }
}

#[Object]
impl Report {
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }

    async fn name(&self) -> &str {
        &self.0.name
    }

    async fn description(&self) -> Option<&str> {
        self.0.description.as_deref()
    }

    /// The member who created it (kept, by name, after they leave the tenant).
    async fn owner(&self, ctx: &Context<'_>) -> Result<User> {
        let row = loaders(ctx)
            .report_owners
            .load_one(self.0.owner_id)
            .await?
            .ok_or(AppError::NotFound("member"))?;
        Ok(User::new(row))
    }

    /// In the order they were given.
    async fn widgets(&self, ctx: &Context<'_>) -> Result<Vec<Widget>> {
        let rows = loaders(ctx)
            .report_widgets
            .load_one(self.0.id)
            .await?
            .unwrap_or_default();
        rows.into_iter()
            .map(|row| {
                Ok(Widget {
                    query: WidgetQuery::of(&row)?,
                    row,
                })
            })
            .collect()
    }

    /// The newest run, whatever its status.
    async fn last_run(&self, ctx: &Context<'_>) -> Result<Option<ReportRun>> {
        Ok(loaders(ctx)
            .last_runs
            .load_one(self.0.id)
            .await?
            .flatten()
            .map(ReportRun))
    }

    /// When and to whom the report is mailed, if it is.
    async fn schedule(&self, ctx: &Context<'_>) -> Result<Option<ReportSchedule>> {
        Ok(loaders(ctx)
            .schedules
            .load_one(self.0.id)
            .await?
            .flatten()
            .map(ReportSchedule))
    }

    /// Its runs, newest first (at most 100 a page).
    #[graphql(complexity = "page_cost(first) * child_complexity / 2 + 2")]
    async fn runs(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
    ) -> Result<Connection<String, ReportRun, EmptyFields>> {
        let limit = page_size(first)?;
        let before = after.map(|c| decode_id("run", &c)).transpose()?;
        let key = RunPage {
            report: self.0.id,
            before,
            limit: limit + 1,
        };
        let rows = loaders(ctx)
            .run_pages
            .load_one(key)
            .await?
            .unwrap_or_default();
        let mut connection = Connection::new(before.is_some(), rows.len() as i64 > limit);
        connection.edges.extend(
            rows.into_iter()
                .take(limit as usize)
                .map(|row| Edge::new(encode_id("run", row.id), ReportRun(row))),
        );
        Ok(connection)
    }

    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }

    async fn updated_at(&self) -> DateTime<Utc> {
        self.0.updated_at
    }
}

/// A report mailed on a schedule.
pub struct ReportSchedule(pub ScheduleRow);

#[Object]
impl ReportSchedule {
    /// Five fields (minute hour day-of-month month day-of-week), in the tenant's time zone.
    async fn cron(&self) -> &str {
        &self.0.cron
    }

    async fn format(&self) -> Result<ReportFormat> {
        Ok(ReportFormat::from_stored(&self.0.format)?)
    }

    /// Members who receive it. One who left the tenant, or may no longer read all of it, gets
    /// nothing.
    async fn recipients(&self, ctx: &Context<'_>) -> Result<Vec<User>> {
        let found = loaders(ctx)
            .report_owners
            .load_many(self.0.recipients.iter().copied())
            .await?;
        Ok(self
            .0
            .recipients
            .iter()
            .filter_map(|id| found.get(id).cloned().map(User::new))
            .collect())
    }

    /// The next occurrence.
    async fn next_run_at(&self) -> DateTime<Utc> {
        self.0.next_run_at
    }
}

/// One metric of a report over a range relative to today, in the tenant's time zone.
pub struct Widget {
    row: WidgetRow,
    query: WidgetQuery,
}

#[Object]
impl Widget {
    async fn id(&self) -> ID {
        ID(self.row.id.to_string())
    }

    async fn title(&self) -> &str {
        &self.row.title
    }

    async fn metric(&self) -> MetricKey {
        self.query.metric
    }

    async fn granularity(&self) -> Granularity {
        self.query.granularity
    }

    async fn range(&self) -> RelativeRange {
        self.query.range
    }

    /// `EVENTS` widgets only: the event name counted.
    async fn event_name(&self) -> Option<&str> {
        self.query.event_name.as_deref()
    }

    /// The metric over the range as of now. Revenue metrics need the ANALYST role or higher
    /// (or a READ API key): others get null with FORBIDDEN here and the rest of the report.
    #[graphql(complexity = "20 + child_complexity")]
    async fn data(&self, ctx: &Context<'_>) -> Result<Option<MetricSeries>> {
        if self.query.metric.is_revenue() {
            may_read_revenue(principal(ctx))?;
        }
        let (series, version) = loaders(ctx)
            .widget_data
            .load_one(self.query.clone())
            .await?
            .unwrap_or_default();
        read_at(ctx, version);
        Ok(Some(series.into()))
    }
}

/// A report rendered to a file, or on its way there.
pub struct ReportRun(pub RunRow);

#[Object]
impl ReportRun {
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }

    async fn status(&self) -> Result<ReportRunStatus> {
        Ok(ReportRunStatus::from_stored(&self.0.status)?)
    }

    async fn format(&self) -> Result<ReportFormat> {
        Ok(ReportFormat::from_stored(&self.0.format)?)
    }

    /// From 0 to 1 while it runs.
    async fn progress(&self) -> f64 {
        f64::from(self.0.progress)
    }

    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }

    async fn started_at(&self) -> Option<DateTime<Utc>> {
        self.0.started_at
    }

    async fn finished_at(&self) -> Option<DateTime<Utc>> {
        self.0.finished_at
    }

    /// Why it failed, when it did.
    async fn error(&self) -> Option<&str> {
        self.0.error.as_deref()
    }

    /// The schedule's occurrence it was made for; null when a member asked for it.
    async fn scheduled_for(&self) -> Option<DateTime<Utc>> {
        self.0.scheduled_for
    }

    /// A link to the file once it succeeded; it works for an hour (configurable) for whoever
    /// holds it. A file with revenue is for ANALYST and above (and READ API keys): others get
    /// null with FORBIDDEN here.
    async fn download_url(&self, ctx: &Context<'_>) -> Result<Option<String>> {
        if self.0.status != "SUCCEEDED" || self.0.file_key.is_none() {
            return Ok(None);
        }
        if self.0.has_revenue {
            may_read_revenue(principal(ctx))?;
        }
        Ok(Some(app(ctx).reports.links.url(&self.0)))
    }

    /// Rows in the file (one per widget and bucket), once it succeeded.
    async fn row_count(&self) -> Option<i64> {
        self.0.row_count
    }

    /// Size of the file in bytes, once it succeeded.
    async fn size_bytes(&self) -> Option<i64> {
        self.0.file_bytes
    }

    async fn report(&self, ctx: &Context<'_>) -> Result<Report> {
        let row = loaders(ctx)
            .reports
            .load_one(self.0.report_id)
            .await?
            .ok_or(AppError::NotFound("report"))?;
        Ok(Report(row))
    }
}
