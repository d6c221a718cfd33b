//! Runs: a member (or a schedule) asks for one, the job queue makes it, and every change of its
//! state goes to subscribers on any instance through the live broker.

use chrono::Utc;
use scoped_futures::ScopedFutureExt;
use serde_json::json;
use uuid::Uuid;

use super::{Acting, ReportFormat, Services, Stored};
use crate::auth::Role;
use crate::db::Conn;
use crate::db::audit::{self, Actor, AuditEntry};
use crate::db::reports::{NewRun, RunRow};
use crate::error::AppResult;
use crate::jobs::{self, NewJob};
use crate::live::message::{LiveMessage, ReportRunState};
use crate::validate;

/// The job that renders a run.
pub const RUN_KIND: &str = "report.run";
/// The job that mails a scheduled run's file to one recipient.
pub const MAIL_KIND: &str = "report.mail";
pub const RUN_ATTEMPTS: i32 = 3;
pub const MAIL_ATTEMPTS: i32 = 5;

/// Queues the rendering of `run`, in the transaction that made it.
pub async fn enqueue(conn: &mut Conn, run: &RunRow) -> AppResult<()> {
    let job = NewJob {
        max_attempts: RUN_ATTEMPTS,
        ..NewJob::new(RUN_KIND, Some(run.tenant_id), json!({ "run": run.id }))
    };
    jobs::enqueue(conn, job).await?;
    Ok(())
}

/// Tells subscribers of the run (on every instance) its new state.
pub async fn announce(services: &Services, run: &RunRow) {
    let state = ReportRunState {
        id: run.id,
        state: serde_json::to_value(run).unwrap_or_default(),
        // Later states carry later times; an inbox keeps the newest.
        version: u64::try_from(Utc::now().timestamp_micros()).unwrap_or_default(),
    };
    let message = vec![LiveMessage::ReportRun(state)];
    if let Err(e) = services.broker.publish(run.tenant_id, message).await {
        tracing::warn!(error = %e, run = %run.id, "could not announce a report run's state");
    }
}

/// `runReport`: ANALYSTs their own reports, ADMIN and OWNER any.
pub async fn request(acting: &Acting<'_>, id: &str, format: ReportFormat) -> AppResult<RunRow> {
    let actor = acting.principal.member_at_least(Role::Analyst)?.clone();
    let id = validate::uuid(id, "id")?;
    let meta = acting.meta;
    let tenant = actor.tenant_id;
    let run = acting
        .services
        .db
        .tenant(tenant, |conn| {
            async move {
                let report = super::access::editable(conn, &actor, id).await?;
                let run = RunRow::insert(
                    conn,
                    &NewRun {
                        id: Uuid::now_v7(),
                        tenant_id: tenant,
                        report_id: report.id,
                        format: format.stored(),
                        status: "QUEUED",
                        requested_by: Some(actor.member_id),
                        scheduled_for: None,
                    },
                )
                .await?;
                enqueue(conn, &run).await?;
                audit::record(
                    conn,
                    meta,
                    AuditEntry {
                        tenant_id: Some(tenant),
                        actor: Actor::Member(actor.member_id),
                        action: "report.run",
                        target_type: Some("ReportRun"),
                        target_id: Some(run.id.to_string()),
                        details: json!({ "report": report.id, "format": format.stored() }),
                    },
                )
                .await?;
                Ok(run)
            }
            .scope_boxed()
        })
        .await?;
    announce(acting.services, &run).await;
    Ok(run)
}
