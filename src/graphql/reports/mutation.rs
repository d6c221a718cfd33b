use async_graphql::{Context, ID, InputObject, MaybeUndefined, Object, Result};

use super::types::{Report, ReportRun};
use crate::calendar::Granularity;
use crate::graphql::caller;
use crate::live::message::MetricKey;
use crate::reports::manage::{self, NewReport, ReportChanges, ScheduleSpec};
use crate::reports::spec::{WidgetQuery, WidgetSpec};
use crate::reports::{RelativeRange, ReportFormat};

#[derive(InputObject)]
pub struct WidgetInput {
    pub title: String,
    pub metric: MetricKey,
    pub granularity: Granularity,
    pub range: RelativeRange,
    /// `EVENTS` only: count only events of this name.
    pub event_name: Option<String>,
}

impl From<WidgetInput> for WidgetSpec {
    fn from(w: WidgetInput) -> Self {
        WidgetSpec {
            title: w.title,
            query: WidgetQuery {
                metric: w.metric,
                granularity: w.granularity,
                range: w.range,
                event_name: w.event_name,
            },
        }
    }
}

/// When and to whom a report is mailed.
#[derive(InputObject)]
pub struct ReportScheduleInput {
    /// Five fields (minute hour day-of-month month day-of-week) in the tenant's time zone,
    /// e.g. `0 8 * * MON`; runs at least 15 minutes apart.
    pub cron: String,
    pub format: ReportFormat,
    /// 1 to 50 members of the tenant. A report with revenue widgets goes to ANALYST and above
    /// only.
    pub recipient_ids: Vec<ID>,
}

impl From<ReportScheduleInput> for ScheduleSpec {
    fn from(s: ReportScheduleInput) -> Self {
        ScheduleSpec {
            cron: s.cron,
            format: s.format,
            recipients: s.recipient_ids.into_iter().map(|id| id.0).collect(),
        }
    }
}

#[derive(InputObject)]
pub struct CreateReportInput {
    /// 1 to 200 characters.
    pub name: String,
    /// At most 2,000 characters.
    pub description: Option<String>,
    /// 1 to 50 widgets.
    pub widgets: Vec<WidgetInput>,
    /// Mail it on a schedule.
    pub schedule: Option<ReportScheduleInput>,
}

#[derive(InputObject)]
pub struct UpdateReportInput {
    pub name: Option<String>,
    /// `null` clears it.
    pub description: MaybeUndefined<String>,
    /// Replaces every widget.
    pub widgets: Option<Vec<WidgetInput>>,
    /// Replaces the schedule; `null` removes it.
    pub schedule: MaybeUndefined<ReportScheduleInput>,
}

#[derive(Default)]
pub struct ReportMutation;

#[Object]
impl ReportMutation {
    /// ANALYST and above.
    async fn create_report(&self, ctx: &Context<'_>, input: CreateReportInput) -> Result<Report> {
        let new = NewReport {
            name: input.name,
            description: input.description,
            widgets: input.widgets.into_iter().map(Into::into).collect(),
            schedule: input.schedule.map(Into::into),
        };
        let entry = manage::create(&caller(ctx).reports(), new).await?;
        Ok(Report::fed(ctx, entry).await)
    }

    /// ANALYSTs their own reports, ADMIN and OWNER any.
    async fn update_report(
        &self,
        ctx: &Context<'_>,
        id: ID,
        input: UpdateReportInput,
    ) -> Result<Report> {
        let changes = ReportChanges {
            name: input.name,
            description: match input.description {
                MaybeUndefined::Undefined => None,
                MaybeUndefined::Null => Some(None),
                MaybeUndefined::Value(text) => Some(Some(text)),
            },
            widgets: input
                .widgets
                .map(|ws| ws.into_iter().map(Into::into).collect()),
            schedule: match input.schedule {
                MaybeUndefined::Undefined => None,
                MaybeUndefined::Null => Some(None),
                MaybeUndefined::Value(s) => Some(Some(s.into())),
            },
        };
        let entry = manage::update(&caller(ctx).reports(), &id, changes).await?;
        Ok(Report::fed(ctx, entry).await)
    }

    /// Deletes the report with its schedule, runs and their files. ANALYSTs their own reports,
    /// ADMIN and OWNER any.
    async fn delete_report(&self, ctx: &Context<'_>, id: ID) -> Result<bool> {
        manage::delete(&caller(ctx).reports(), &id).await?;
        Ok(true)
    }

    /// Queues a run that renders the report to a file; follow it with `reportRun` or
    /// `reportRunUpdated`. ANALYSTs their own reports, ADMIN and OWNER any.
    async fn run_report(
        &self,
        ctx: &Context<'_>,
        id: ID,
        format: ReportFormat,
    ) -> Result<ReportRun> {
        let run = crate::reports::runs::request(&caller(ctx).reports(), &id, format).await?;
        Ok(ReportRun(run))
    }
}
