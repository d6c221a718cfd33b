//! Saved reports, their widgets, schedules and runs. A list page comes with each report's
//! widgets and newest run in the same statement, so that a page costs one round trip however
//! long it is.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Jsonb, Nullable, Uuid as SqlUuid};
use diesel_async::RunQueryDsl;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::Conn;
use super::schema::{report_runs, report_schedules, report_widgets, reports};
use crate::error::{AppError, AppResult};

#[derive(Debug, Clone, Queryable, Selectable, Insertable, QueryableByName)]
#[diesel(table_name = reports)]
pub struct ReportRow {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub owner_id: Uuid,
    pub name: String,
    pub description: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Insertable, Deserialize)]
#[diesel(table_name = report_widgets)]
pub struct WidgetRow {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub report_id: Uuid,
    pub position: i32,
    pub title: String,
    pub metric: String,
    pub granularity: String,
    pub range: String,
    pub event_name: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Insertable, Deserialize)]
#[diesel(table_name = report_schedules)]
pub struct ScheduleRow {
    pub report_id: Uuid,
    pub tenant_id: Uuid,
    pub cron: String,
    pub format: String,
    pub recipients: Vec<Uuid>,
    pub next_run_at: DateTime<Utc>,
}

#[derive(
    Debug, Clone, PartialEq, Queryable, QueryableByName, Selectable, Serialize, Deserialize,
)]
#[diesel(table_name = report_runs)]
pub struct RunRow {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub report_id: Uuid,
    pub format: String,
    pub status: String,
    pub progress: f32,
    pub requested_by: Option<Uuid>,
    pub scheduled_for: Option<DateTime<Utc>>,
    pub has_revenue: bool,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    pub error: Option<String>,
    pub file_key: Option<String>,
    pub file_bytes: Option<i64>,
    pub row_count: Option<i64>,
}

#[derive(Debug, Insertable)]
#[diesel(table_name = report_runs)]
pub struct NewRun {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub report_id: Uuid,
    pub format: &'static str,
    pub status: &'static str,
    pub requested_by: Option<Uuid>,
    pub scheduled_for: Option<DateTime<Utc>>,
}

/// A report with what a list shows of it, read in one statement.
#[derive(Debug, Clone)]
pub struct ReportEntry {
    pub report: ReportRow,
    /// The tenant's data version in the same snapshot: a response that shows this report may
    /// be cached under it (report changes bump it too).
    pub data_version: i64,
    pub widgets: Vec<WidgetRow>,
    pub last_run: Option<RunRow>,
    pub schedule: Option<ScheduleRow>,
}

#[derive(QueryableByName)]
struct EntryRow {
    #[diesel(embed)]
    report: ReportRow,
    #[diesel(sql_type = Jsonb)]
    widgets: serde_json::Value,
    #[diesel(sql_type = Nullable<Jsonb>)]
    last_run: Option<serde_json::Value>,
    #[diesel(sql_type = Nullable<Jsonb>)]
    schedule: Option<serde_json::Value>,
    #[diesel(sql_type = BigInt)]
    total: i64,
    #[diesel(sql_type = BigInt)]
    data_version: i64,
}

/// Reports newest first (ids are time-ordered), with their widgets, newest run and schedule.
/// `$1`: only this report; `$2`: only reports older than this id; `$3`: how many.
const ENTRIES: &str = "
SELECT r.id, r.tenant_id, r.owner_id, r.name, r.description, r.created_at, r.updated_at,
       (SELECT count(*) FROM reports) AS total,
       (SELECT u.data_version FROM tenant_usage u WHERE u.tenant_id = r.tenant_id) AS data_version,
       (SELECT coalesce(jsonb_agg(to_jsonb(w) ORDER BY w.position), '[]'::jsonb)
          FROM report_widgets w WHERE w.report_id = r.id) AS widgets,
       (SELECT to_jsonb(x) FROM report_runs x WHERE x.report_id = r.id
         ORDER BY x.id DESC LIMIT 1) AS last_run,
       (SELECT to_jsonb(s) FROM report_schedules s WHERE s.report_id = r.id) AS schedule
  FROM reports r
 WHERE ($1::uuid IS NULL OR r.id = $1) AND ($2::uuid IS NULL OR r.id < $2)
 ORDER BY r.id DESC
 LIMIT $3";

fn decode<T: serde::de::DeserializeOwned>(value: serde_json::Value) -> AppResult<T> {
    serde_json::from_value(value).map_err(AppError::internal)
}

impl ReportEntry {
    /// A page of the scoped tenant's reports, and how many it has in all.
    pub async fn page(
        conn: &mut Conn,
        before: Option<Uuid>,
        limit: i64,
    ) -> AppResult<(Vec<ReportEntry>, i64)> {
        let rows = Self::load(conn, None, before, limit).await?;
        let total = <[EntryRow]>::first(&rows).map_or(0, |r| r.total);
        let entries = rows
            .into_iter()
            .map(Self::from_row)
            .collect::<AppResult<_>>()?;
        if total == 0 && before.is_some() {
            // A page past the end holds no row to carry the total.
            return Ok((entries, Self::count(conn).await?));
        }
        Ok((entries, total))
    }

    /// One report of the scoped tenant.
    pub async fn find(conn: &mut Conn, id: Uuid) -> AppResult<ReportEntry> {
        let row = Self::load(conn, Some(id), None, 1)
            .await?
            .pop()
            .ok_or(AppError::NotFound("report"))?;
        Self::from_row(row)
    }

    async fn load(
        conn: &mut Conn,
        only: Option<Uuid>,
        before: Option<Uuid>,
        limit: i64,
    ) -> AppResult<Vec<EntryRow>> {
        Ok(diesel::sql_query(ENTRIES)
            .bind::<Nullable<SqlUuid>, _>(only)
            .bind::<Nullable<SqlUuid>, _>(before)
            .bind::<BigInt, _>(limit)
            .load(conn)
            .await?)
    }

    async fn count(conn: &mut Conn) -> AppResult<i64> {
        Ok(reports::table.count().get_result(conn).await?)
    }

    fn from_row(row: EntryRow) -> AppResult<ReportEntry> {
        Ok(ReportEntry {
            report: row.report,
            data_version: row.data_version,
            widgets: decode(row.widgets)?,
            last_run: row.last_run.map(decode).transpose()?,
            schedule: row.schedule.map(decode).transpose()?,
        })
    }
}

impl ReportRow {
    pub async fn insert(conn: &mut Conn, row: &ReportRow) -> AppResult<()> {
        diesel::insert_into(reports::table)
            .values(row)
            .execute(conn)
            .await?;
        Ok(())
    }

    /// The report, locked until the transaction ends (edits and runs of it wait in turn).
    pub async fn lock(conn: &mut Conn, id: Uuid) -> AppResult<ReportRow> {
        reports::table
            .find(id)
            .select(ReportRow::as_select())
            .for_update()
            .first(conn)
            .await
            .optional()?
            .ok_or(AppError::NotFound("report"))
    }

    pub async fn find_many(conn: &mut Conn, ids: &[Uuid]) -> AppResult<Vec<ReportRow>> {
        Ok(reports::table
            .filter(reports::id.eq_any(ids))
            .select(ReportRow::as_select())
            .load(conn)
            .await?)
    }

    pub async fn rename(
        conn: &mut Conn,
        id: Uuid,
        name: &str,
        description: Option<&str>,
    ) -> AppResult<ReportRow> {
        Ok(diesel::update(reports::table.find(id))
            .set((
                reports::name.eq(name),
                reports::description.eq(description),
                reports::updated_at.eq(diesel::dsl::now),
            ))
            .returning(ReportRow::as_returning())
            .get_result(conn)
            .await?)
    }

    pub async fn delete(conn: &mut Conn, id: Uuid) -> AppResult<()> {
        diesel::delete(reports::table.find(id))
            .execute(conn)
            .await?;
        Ok(())
    }
}

impl WidgetRow {
    /// Replaces the report's widgets.
    pub async fn replace(conn: &mut Conn, report: Uuid, widgets: &[WidgetRow]) -> AppResult<()> {
        diesel::delete(report_widgets::table.filter(report_widgets::report_id.eq(report)))
            .execute(conn)
            .await?;
        diesel::insert_into(report_widgets::table)
            .values(widgets)
            .execute(conn)
            .await?;
        Ok(())
    }

    pub async fn for_reports(conn: &mut Conn, reports: &[Uuid]) -> AppResult<Vec<WidgetRow>> {
        Ok(report_widgets::table
            .filter(report_widgets::report_id.eq_any(reports))
            .select(WidgetRow::as_select())
            .order((report_widgets::report_id, report_widgets::position))
            .load(conn)
            .await?)
    }
}

impl ScheduleRow {
    /// Sets the report's schedule (`None` removes it).
    pub async fn set(
        conn: &mut Conn,
        report: Uuid,
        schedule: Option<&ScheduleRow>,
    ) -> AppResult<()> {
        diesel::delete(report_schedules::table.find(report))
            .execute(conn)
            .await?;
        if let Some(s) = schedule {
            diesel::insert_into(report_schedules::table)
                .values(s)
                .execute(conn)
                .await?;
        }
        Ok(())
    }

    pub async fn for_reports(conn: &mut Conn, reports: &[Uuid]) -> AppResult<Vec<ScheduleRow>> {
        Ok(report_schedules::table
            .filter(report_schedules::report_id.eq_any(reports))
            .select(ScheduleRow::as_select())
            .load(conn)
            .await?)
    }
}

impl RunRow {
    pub async fn insert(conn: &mut Conn, run: &NewRun) -> AppResult<RunRow> {
        Ok(diesel::insert_into(report_runs::table)
            .values(run)
            .returning(RunRow::as_returning())
            .get_result(conn)
            .await?)
    }

    /// The run, locked until the transaction ends; `None` if it is gone (with its report).
    pub async fn lock(conn: &mut Conn, id: Uuid) -> AppResult<Option<RunRow>> {
        Ok(report_runs::table
            .find(id)
            .select(RunRow::as_select())
            .for_update()
            .first(conn)
            .await
            .optional()?)
    }

    /// A queued (or retried) run starts again from nothing.
    pub async fn start(conn: &mut Conn, id: Uuid) -> AppResult<RunRow> {
        Ok(diesel::update(report_runs::table.find(id))
            .set((
                report_runs::status.eq("RUNNING"),
                report_runs::progress.eq(0.0),
                report_runs::started_at.eq(diesel::dsl::now),
                report_runs::error.eq(None::<String>),
            ))
            .returning(RunRow::as_returning())
            .get_result(conn)
            .await?)
    }

    pub async fn set_progress(
        conn: &mut Conn,
        id: Uuid,
        progress: f32,
    ) -> AppResult<Option<RunRow>> {
        Ok(diesel::update(
            report_runs::table
                .find(id)
                .filter(report_runs::status.eq("RUNNING")),
        )
        .set(report_runs::progress.eq(progress.clamp(0.0, 1.0)))
        .returning(RunRow::as_returning())
        .get_result(conn)
        .await
        .optional()?)
    }

    /// A running run's file is complete; `None` if the run is no longer running.
    pub async fn succeed(
        conn: &mut Conn,
        id: Uuid,
        file: &str,
        bytes: u64,
        rows: u64,
        has_revenue: bool,
    ) -> AppResult<Option<RunRow>> {
        Ok(diesel::update(
            report_runs::table
                .find(id)
                .filter(report_runs::status.eq("RUNNING")),
        )
        .set((
            report_runs::status.eq("SUCCEEDED"),
            report_runs::progress.eq(1.0),
            report_runs::finished_at.eq(diesel::dsl::now),
            report_runs::file_key.eq(file),
            report_runs::file_bytes.eq(i64::try_from(bytes).unwrap_or(i64::MAX)),
            report_runs::row_count.eq(i64::try_from(rows).unwrap_or(i64::MAX)),
            report_runs::has_revenue.eq(has_revenue),
        ))
        .returning(RunRow::as_returning())
        .get_result(conn)
        .await
        .optional()?)
    }

    /// A run that has not finished fails with `error` (shown to members).
    pub async fn fail(conn: &mut Conn, id: Uuid, error: &str) -> AppResult<Option<RunRow>> {
        Ok(diesel::update(
            report_runs::table
                .find(id)
                .filter(report_runs::status.eq_any(["QUEUED", "RUNNING"])),
        )
        .set((
            report_runs::status.eq("FAILED"),
            report_runs::finished_at.eq(diesel::dsl::now),
            report_runs::error.eq(error),
        ))
        .returning(RunRow::as_returning())
        .get_result(conn)
        .await
        .optional()?)
    }

    pub async fn find(conn: &mut Conn, id: Uuid) -> AppResult<RunRow> {
        report_runs::table
            .find(id)
            .select(RunRow::as_select())
            .first(conn)
            .await
            .optional()?
            .ok_or(AppError::NotFound("report run"))
    }

    /// The newest run of each report that has one.
    pub async fn last_for_reports(conn: &mut Conn, reports: &[Uuid]) -> AppResult<Vec<RunRow>> {
        Ok(report_runs::table
            .filter(report_runs::report_id.eq_any(reports))
            .distinct_on(report_runs::report_id)
            .select(RunRow::as_select())
            .order((report_runs::report_id, report_runs::id.desc()))
            .load(conn)
            .await?)
    }

    /// A page of each report's runs, newest first, in one statement.
    pub async fn pages(
        conn: &mut Conn,
        reports: &[Uuid],
        before: Option<Uuid>,
        limit: i64,
    ) -> AppResult<Vec<RunRow>> {
        Ok(diesel::sql_query(
            "SELECT x.* FROM unnest($1::uuid[]) AS k(report_id)
             CROSS JOIN LATERAL (
               SELECT * FROM report_runs r
                WHERE r.report_id = k.report_id AND ($2::uuid IS NULL OR r.id < $2)
                ORDER BY r.id DESC LIMIT $3) x",
        )
        .bind::<diesel::sql_types::Array<SqlUuid>, _>(reports)
        .bind::<Nullable<SqlUuid>, _>(before)
        .bind::<BigInt, _>(limit)
        .load(conn)
        .await?)
    }

    /// The files of a report's runs (before deleting them with the report).
    pub async fn files_of_report(conn: &mut Conn, report: Uuid) -> AppResult<Vec<String>> {
        Ok(report_runs::table
            .filter(report_runs::report_id.eq(report))
            .filter(report_runs::file_key.is_not_null())
            .select(report_runs::file_key.assume_not_null())
            .load(conn)
            .await?)
    }
}

/// A schedule that is due, found across tenants (before any tenant is in scope).
#[derive(Debug, QueryableByName)]
pub struct DueSchedule {
    #[diesel(sql_type = SqlUuid)]
    pub tenant_id: Uuid,
    #[diesel(sql_type = SqlUuid)]
    pub report_id: Uuid,
}

impl DueSchedule {
    pub async fn list(
        conn: &mut Conn,
        now: DateTime<Utc>,
        limit: i64,
    ) -> AppResult<Vec<DueSchedule>> {
        Ok(
            diesel::sql_query("SELECT * FROM fahwa_due_report_schedules($1, $2)")
                .bind::<diesel::sql_types::Timestamptz, _>(now)
                .bind::<BigInt, _>(limit)
                .load(conn)
                .await?,
        )
    }
}

impl ScheduleRow {
    /// The schedule if it is due at `now`, locked; `None` when another instance holds it or
    /// has already moved it on.
    pub async fn lock_due(
        conn: &mut Conn,
        report: Uuid,
        now: DateTime<Utc>,
    ) -> AppResult<Option<ScheduleRow>> {
        Ok(report_schedules::table
            .find(report)
            .filter(report_schedules::next_run_at.le(now))
            .select(ScheduleRow::as_select())
            .for_update()
            .skip_locked()
            .first(conn)
            .await
            .optional()?)
    }

    pub async fn advance(conn: &mut Conn, report: Uuid, next: DateTime<Utc>) -> AppResult<()> {
        diesel::update(report_schedules::table.find(report))
            .set(report_schedules::next_run_at.eq(next))
            .execute(conn)
            .await?;
        Ok(())
    }
}

impl NewRun {
    /// Inserts the run unless one exists for the same scheduled occurrence.
    pub async fn insert_once(&self, conn: &mut Conn) -> AppResult<Option<RunRow>> {
        Ok(diesel::insert_into(report_runs::table)
            .values(self)
            .on_conflict((report_runs::report_id, report_runs::scheduled_for))
            .do_nothing()
            .returning(RunRow::as_returning())
            .get_result(conn)
            .await
            .optional()?)
    }
}

/// Files of runs that finished before `before`, forgotten by their runs (across tenants) so
/// that the caller deletes them; at most `limit` at a time.
pub async fn expire_files(
    conn: &mut Conn,
    before: DateTime<Utc>,
    limit: i64,
) -> AppResult<Vec<String>> {
    #[derive(QueryableByName)]
    struct Key {
        #[diesel(sql_type = diesel::sql_types::Text)]
        file_key: String,
    }
    let keys: Vec<Key> =
        diesel::sql_query("SELECT file_key FROM fahwa_expire_report_files($1, $2)")
            .bind::<diesel::sql_types::Timestamptz, _>(before)
            .bind::<BigInt, _>(limit)
            .load(conn)
            .await?;
    Ok(keys.into_iter().map(|k| k.file_key).collect())
}
