//! Schedules: a cron expression in the tenant's time zone. Every worker instance ticks; a due
//! schedule is taken by one of them (a row lock skipped by the others), its run is made once
//! for that occurrence (a unique key), and the schedule moves on to its next occurrence after
//! now, so that occurrences missed while no instance ran are made once, not once each.

use chrono::{DateTime, Duration, Utc};
use chrono_tz::Tz;
use croner::Cron;
use croner::parser::{CronParser, Seconds, Year};
use scoped_futures::ScopedFutureExt;
use uuid::Uuid;

use super::runs;
use super::{ReportFormat, Stored};
use crate::db::reports::{DueSchedule, NewRun, ScheduleRow};
use crate::error::{AppError, AppResult};

/// Runs of one schedule are at least this far apart.
pub const MIN_INTERVAL: Duration = Duration::minutes(15);

/// A cron expression of five fields (minute, hour, day of month, month, day of week), whose
/// runs are at least [`MIN_INTERVAL`] apart.
pub fn parse(expression: &str, field: &str) -> AppResult<Cron> {
    let bad = |why: String| AppError::bad_input(format!("{field}: {why}"));
    if expression.len() > 200 {
        return Err(bad("at most 200 characters".into()));
    }
    let cron = CronParser::builder()
        .seconds(Seconds::Disallowed)
        .year(Year::Disallowed)
        .build()
        .parse(expression.trim())
        .map_err(|e| bad(format!("'{expression}' is not a cron expression ({e})")))?;
    let mut at = Utc::now();
    let mut previous: Option<DateTime<Utc>> = None;
    // The first occurrences show whether it runs too often (and whether it runs at all).
    for _ in 0..8 {
        let next = cron
            .find_next_occurrence(&at, false)
            .map_err(|_| bad(format!("'{expression}' never runs")))?;
        if let Some(p) = previous
            && next - p < MIN_INTERVAL
        {
            return Err(bad(format!(
                "'{expression}' runs more often than every {} minutes",
                MIN_INTERVAL.num_minutes()
            )));
        }
        previous = Some(next);
        at = next;
    }
    Ok(cron)
}

/// The first occurrence after `after`, in `tz`.
pub fn next_after(cron: &Cron, tz: Tz, after: DateTime<Utc>) -> AppResult<DateTime<Utc>> {
    cron.find_next_occurrence(&after.with_timezone(&tz), false)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| AppError::internal(anyhow::anyhow!("no next occurrence: {e}")))
}

/// Makes the runs of every schedule due at `now`; returns how many this instance made.
pub async fn tick(services: &super::Services, now: DateTime<Utc>) -> AppResult<usize> {
    let db = &services.db;
    let due = db
        .outside_tenants(|conn| {
            async move { DueSchedule::list(conn, now, 100).await }.scope_boxed()
        })
        .await?;
    let mut made = 0;
    for d in due {
        match take(services, d.tenant_id, d.report_id, now).await {
            Ok(Some(run)) => {
                made += 1;
                runs::announce(services, &run).await;
            }
            Ok(None) => {}
            Err(e) => e.report("reports: a due schedule"),
        }
    }
    Ok(made)
}

/// One due schedule, in its tenant's scope: the run for its occurrence (unless another
/// instance made it), and the schedule moved to its next occurrence after `now`.
async fn take(
    services: &super::Services,
    tenant: Uuid,
    report: Uuid,
    now: DateTime<Utc>,
) -> AppResult<Option<crate::db::reports::RunRow>> {
    services
        .db
        .tenant(tenant, |conn| {
            async move {
                let Some(schedule) = ScheduleRow::lock_due(conn, report, now).await? else {
                    return Ok(None);
                };
                let tz = super::data::zone(
                    &crate::db::tenants::TenantRow::find(conn, tenant)
                        .await?
                        .timezone,
                );
                let next = match parse(&schedule.cron, "cron") {
                    Ok(cron) => next_after(&cron, tz, now)?,
                    // Stored expressions were checked; one that no longer parses (a newer
                    // parser) must not fire every tick.
                    Err(_) => now + Duration::days(3650),
                };
                ScheduleRow::advance(conn, report, next).await?;
                let run = NewRun {
                    id: Uuid::now_v7(),
                    tenant_id: tenant,
                    report_id: report,
                    format: ReportFormat::from_stored(&schedule.format).map(Stored::stored)?,
                    status: "QUEUED",
                    requested_by: None,
                    scheduled_for: Some(schedule.next_run_at),
                };
                match run.insert_once(conn).await? {
                    Some(row) => {
                        runs::enqueue(conn, &row).await?;
                        Ok(Some(row))
                    }
                    None => Ok(None),
                }
            }
            .scope_boxed()
        })
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expressions_are_checked() {
        assert!(parse("0 8 * * MON", "cron").is_ok());
        assert!(parse("*/15 * * * *", "cron").is_ok());
        assert!(
            parse("* * * * *", "cron").is_err(),
            "every minute is too often"
        );
        assert!(parse("0 0 8 * * MON", "cron").is_err(), "no seconds field");
        assert!(parse("61 * * * *", "cron").is_err());
        assert!(parse("not a cron", "cron").is_err());
        assert!(
            parse("0 0 31 2 *", "cron").is_err(),
            "February 31st never comes"
        );
    }

    #[test]
    fn occurrences_follow_the_zone_across_daylight_saving() {
        let cron = parse("0 8 * * *", "cron").unwrap();
        let tz: Tz = "Europe/Berlin".parse().unwrap();
        let at = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().to_utc();
        // 08:00 in Berlin is 07:00 UTC in winter and 06:00 UTC in summer (from 29 March 2026).
        assert_eq!(
            next_after(&cron, tz, at("2026-03-28T12:00:00Z")).unwrap(),
            at("2026-03-29T06:00:00Z")
        );
        assert_eq!(
            next_after(&cron, tz, at("2026-03-27T12:00:00Z")).unwrap(),
            at("2026-03-28T07:00:00Z")
        );
    }
}
