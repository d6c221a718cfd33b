//! The job handlers of reports: rendering a run to a file, and mailing a scheduled run to one
//! recipient. Both may run twice for one job (a lease taken over): rendering writes the same
//! key and finishes a run only while it is running; mail is one job per recipient.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use scoped_futures::ScopedFutureExt;
use serde_json::json;
use tokio::io::AsyncReadExt;

use super::render::{Heading, Renderer};
use super::runs::{self, MAIL_ATTEMPTS, MAIL_KIND, RUN_KIND};
use super::spec::WidgetQuery;
use super::{ReportFormat, Services, Stored, data};
use crate::db::members::MemberRow;
use crate::db::reports::{ReportEntry, RunRow};
use crate::db::tenants::TenantRow;
use crate::jobs::{self, Handler, Job, JobControl, JobError, NewJob, Registry};
use crate::role::Role;

/// What a member sees of a failure; the cause is in the server's log.
pub const FAILED: &str = "the report could not be rendered; run it again, or ask an administrator to look at the server log";
/// Files up to this size are attached to mail; larger ones are only linked.
pub const MAX_ATTACHMENT_BYTES: u64 = 10 * 1024 * 1024;
/// Progress is written and announced at most this often.
const PROGRESS_EVERY: Duration = Duration::from_millis(200);

/// Adds the reports' handlers to a worker's registry.
pub fn register(registry: &mut Registry, services: &Services) {
    registry.register(Arc::new(RenderRun(services.clone())));
    if services.mailer.is_some() {
        registry.register(Arc::new(MailRun(services.clone())));
    }
}

struct RenderRun(Services);

#[async_trait::async_trait]
impl Handler for RenderRun {
    fn kind(&self) -> &'static str {
        RUN_KIND
    }

    async fn run(&self, job: &Job, ctl: &JobControl) -> Result<(), JobError> {
        let (tenant, run_id) = job.tenant_and_id("run")?;
        let s = &self.0;
        let started =
            s.db.tenant(tenant, |conn| {
                async move {
                    // Gone with its report, or already finished by an earlier attempt.
                    let Some(run) = RunRow::lock(conn, run_id).await? else {
                        return Ok(None);
                    };
                    if run.status == "SUCCEEDED" || run.status == "FAILED" {
                        return Ok(None);
                    }
                    let entry = ReportEntry::find(conn, run.report_id).await?;
                    let tz = data::zone(&TenantRow::find(conn, tenant).await?.timezone);
                    let run = RunRow::start(conn, run_id).await?;
                    Ok(Some((run, entry, tz)))
                }
                .scope_boxed()
            })
            .await?;
        let Some((run, entry, tz)) = started else {
            return Ok(());
        };
        runs::announce(s, &run).await;
        let format = ReportFormat::from_stored(&run.format)?;
        let key = format!("{tenant}/{run_id}.{}", format.extension());
        let mut upload = s.storage.create(&key).await?;
        let now = Utc::now();
        let heading = Heading {
            report_id: entry.report.id,
            name: &entry.report.name,
            tz,
            generated_at: now,
        };
        let (mut renderer, head) = Renderer::begin(format, &heading)?;
        upload.write(&head).await?;
        let mut has_revenue = false;
        let mut reported = Instant::now();
        let n = entry.widgets.len();
        for (i, widget) in entry.widgets.iter().enumerate() {
            if ctl.is_lost() {
                return Err(JobError::retry(anyhow::anyhow!("the job's lease was lost")));
            }
            let query = WidgetQuery::of(widget)?;
            has_revenue |= query.metric.is_revenue();
            let series = data::series(s.reading(), tenant, std::slice::from_ref(&query), now)
                .await?
                .1
                .pop()
                .unwrap_or_default();
            upload.write(&renderer.widget(widget, &series)?).await?;
            if i + 1 < n && reported.elapsed() >= PROGRESS_EVERY {
                reported = Instant::now();
                let progress = (i + 1) as f32 / n as f32;
                let moved =
                    s.db.tenant(tenant, |conn| {
                        async move { RunRow::set_progress(conn, run_id, progress).await }
                            .scope_boxed()
                    })
                    .await?;
                if let Some(run) = moved {
                    runs::announce(s, &run).await;
                }
            }
        }
        let (tail, rows) = renderer.finish();
        upload.write(&tail).await?;
        let bytes = upload.commit().await?;
        if ctl.is_lost() {
            // Another attempt owns the run now; it writes the same file under the same key.
            return Err(JobError::retry(anyhow::anyhow!("the job's lease was lost")));
        }
        let mail = s.mailer.is_some();
        let key = &key;
        let done =
            s.db.tenant(tenant, |conn| {
                async move {
                    let Some(run) =
                        RunRow::succeed(conn, run_id, key, bytes, rows, has_revenue).await?
                    else {
                        return Ok(None);
                    };
                    if mail && run.scheduled_for.is_some() {
                        let recipients = entry.schedule.map(|s| s.recipients).unwrap_or_default();
                        for member in recipients {
                            let job = NewJob {
                                max_attempts: MAIL_ATTEMPTS,
                                ..NewJob::new(
                                    MAIL_KIND,
                                    Some(tenant),
                                    json!({ "run": run_id, "member": member }),
                                )
                            };
                            jobs::enqueue(conn, job).await?;
                        }
                    }
                    Ok(Some(run))
                }
                .scope_boxed()
            })
            .await?;
        match done {
            Some(run) => runs::announce(s, &run).await,
            // The report (and the run with it) was deleted meanwhile: no run names the file.
            None => s.storage.delete(key).await?,
        }
        Ok(())
    }

    async fn failed(&self, job: &Job, error: &str) {
        let Ok((tenant, run_id)) = job.tenant_and_id("run") else {
            return;
        };
        tracing::warn!(run = %run_id, error, "a report run failed for good");
        let failed = self
            .0
            .db
            .tenant(tenant, |conn| {
                async move { RunRow::fail(conn, run_id, FAILED).await }.scope_boxed()
            })
            .await;
        match failed {
            Ok(Some(run)) => runs::announce(&self.0, &run).await,
            Ok(None) => {}
            Err(e) => e.report("reports: marking a run failed"),
        }
    }
}

struct MailRun(Services);

/// What one mail needs, read in the tenant's scope.
struct Letter {
    run: RunRow,
    report: String,
    to: lettre::message::Mailbox,
}

#[async_trait::async_trait]
impl Handler for MailRun {
    fn kind(&self) -> &'static str {
        MAIL_KIND
    }

    async fn run(&self, job: &Job, _ctl: &JobControl) -> Result<(), JobError> {
        let (tenant, run_id) = job.tenant_and_id("run")?;
        let (_, member_id) = job.tenant_and_id("member")?;
        let s = &self.0;
        let Some(mailer) = &s.mailer else {
            return Ok(());
        };
        let letter =
            s.db.tenant(tenant, |conn| {
                async move {
                    let run = match RunRow::find(conn, run_id).await {
                        Ok(run) => run,
                        Err(crate::error::AppError::NotFound(_)) => return Ok(None),
                        Err(e) => return Err(e),
                    };
                    let entry = match ReportEntry::find(conn, run.report_id).await {
                        Ok(entry) => entry,
                        Err(crate::error::AppError::NotFound(_)) => return Ok(None),
                        Err(e) => return Err(e),
                    };
                    // Only members the schedule still names, who are still members, and who
                    // may read everything the file holds.
                    let named = entry
                        .schedule
                        .as_ref()
                        .is_some_and(|s| s.recipients.contains(&member_id));
                    let member = match MemberRow::find_active(conn, member_id).await {
                        Ok(m) => m,
                        Err(crate::error::AppError::NotFound(_)) => return Ok(None),
                        Err(e) => return Err(e),
                    };
                    let allowed = !run.has_revenue || member.role().at_least(Role::Analyst);
                    if !named || !allowed {
                        return Ok(None);
                    }
                    let to = lettre::message::Mailbox::new(
                        Some(member.name.clone()),
                        member
                            .email
                            .parse()
                            .map_err(crate::error::AppError::internal)?,
                    );
                    Ok(Some(Letter {
                        run,
                        report: entry.report.name,
                        to,
                    }))
                }
                .scope_boxed()
            })
            .await?;
        let Some(letter) = letter else {
            return Ok(());
        };
        let Some(key) = &letter.run.file_key else {
            return Ok(());
        };
        let format = ReportFormat::from_stored(&letter.run.format)?;
        let link = s.links.url(&letter.run);
        let mut text = format!(
            "Your scheduled report \"{}\" is ready.\n\nDownload it (the link works for {} hours): {link}\n",
            letter.report,
            s.links.ttl.num_hours().max(1)
        );
        let file = match s.storage.open(key).await? {
            Some(f) if f.size <= MAX_ATTACHMENT_BYTES => {
                let mut bytes = Vec::with_capacity(f.size as usize);
                f.body
                    .take(MAX_ATTACHMENT_BYTES)
                    .read_to_end(&mut bytes)
                    .await
                    .map_err(JobError::retry)?;
                text.push_str("\nThe file is attached.\n");
                Some(crate::mail::File {
                    name: format!("{}.{}", file_name(&letter.report), format.extension()),
                    content_type: format.content_type().to_string(),
                    bytes,
                })
            }
            Some(_) => None,
            // Past its retention: nothing to send.
            None => return Ok(()),
        };
        let subject = format!("Report: {}", letter.report);
        mailer
            .send(letter.to, &subject, text, file)
            .await
            .map_err(JobError::retry)
    }
}

/// A report's name as a file name: letters, digits, `-` and `_`, at most 80 characters.
pub fn file_name(name: &str) -> String {
    let cleaned: String = name
        .chars()
        .map(|c| {
            if c.is_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .take(80)
        .collect();
    let trimmed = cleaned.trim_matches('-');
    if trimmed.is_empty() {
        "report".to_string()
    } else {
        trimmed.to_string()
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn file_names_are_safe() {
        assert_eq!(super::file_name("Weekly KPIs / EU"), "Weekly-KPIs---EU");
        assert_eq!(super::file_name("../../etc"), "etc");
        assert_eq!(super::file_name("***"), "report");
    }
}
