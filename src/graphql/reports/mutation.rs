use async_graphql::{Context, ID, InputObject, MaybeUndefined, Object, Result};

use super::types::Report;
use crate::calendar::Granularity;
use crate::graphql::caller;
use crate::live::message::MetricKey;
use crate::reports::RelativeRange;
use crate::reports::manage::{self, NewReport, ReportChanges};
use crate::reports::spec::{WidgetQuery, WidgetSpec};

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

#[derive(InputObject)]
pub struct CreateReportInput {
    /// 1 to 200 characters.
    pub name: String,
    /// At most 2,000 characters.
    pub description: Option<String>,
    /// 1 to 50 widgets.
    pub widgets: Vec<WidgetInput>,
}

#[derive(InputObject)]
pub struct UpdateReportInput {
    pub name: Option<String>,
    /// `null` clears it.
    pub description: MaybeUndefined<String>,
    /// Replaces every widget.
    pub widgets: Option<Vec<WidgetInput>>,
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
        };
        let entry = manage::create(&caller(ctx), new).await?;
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
        };
        let entry = manage::update(&caller(ctx), &id, changes).await?;
        Ok(Report::fed(ctx, entry).await)
    }

    /// Deletes the report with its schedule, runs and their files. ANALYSTs their own reports,
    /// ADMIN and OWNER any.
    async fn delete_report(&self, ctx: &Context<'_>, id: ID) -> Result<bool> {
        let caller = caller(ctx);
        let _files = manage::delete(&caller, &id).await?;
        Ok(true)
    }
}
