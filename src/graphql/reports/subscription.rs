//! `reportRunUpdated` (contract `live.graphql`): a run's state now, then each change as the
//! worker (on any instance) announces it through the live broker, until it has finished.

use async_graphql::{Context, ID, Result, Subscription};
use futures_util::Stream;
use futures_util::stream::{self, StreamExt};

use super::query::find_run;
use super::types::ReportRun;
use crate::auth::guards::principal;
use crate::db::reports::RunRow;
use crate::graphql::app;
use crate::live::hub::{Delivery, Topic};

fn finished(run: &RunRow) -> bool {
    run.status == "SUCCEEDED" || run.status == "FAILED"
}

#[derive(Default)]
pub struct ReportSubscription;

#[Subscription]
impl ReportSubscription {
    /// The run's status and progress: its state at once, then every change; the stream ends
    /// after SUCCEEDED or FAILED. Same tenant and role rules as `reportRun`.
    async fn report_run_updated(
        &self,
        ctx: &Context<'_>,
        id: ID,
    ) -> Result<impl Stream<Item = ReportRun>> {
        let tenant = principal(ctx).reading_tenant()?;
        // Subscribed before the current state is read, so no change falls between the two.
        let run_id = crate::validate::uuid(&id, "id")?;
        let inbox = app(ctx)
            .live
            .hub()
            .subscribe(tenant, Topic::ReportRun(run_id));
        let current = find_run(ctx, &id).await?;
        let start_at = current.created_at;
        let updates = stream::unfold(Some(inbox), |inbox| async move {
            let inbox = inbox?;
            loop {
                if let Delivery::ReportRun(state) = inbox.next().await
                    && let Ok(run) = serde_json::from_value::<RunRow>(state.state)
                {
                    return Some((run, Some(inbox)));
                }
            }
        });
        let done_at_once = finished(&current);
        let first = stream::once(async move { current });
        let rest = updates.filter(move |run| {
            // What an earlier attempt announced before the state read above is not news.
            let keep = run.created_at >= start_at;
            async move { keep }
        });
        let all = first.chain(if done_at_once {
            stream::empty().boxed()
        } else {
            rest.boxed()
        });
        // The stream ends right after the first finished state, without waiting for another.
        Ok(
            stream::unfold((all.boxed(), false), |(mut states, ended)| async move {
                if ended {
                    return None;
                }
                let run = states.next().await?;
                let ended = finished(&run);
                Some((run, (states, ended)))
            })
            .map(ReportRun),
        )
    }
}
