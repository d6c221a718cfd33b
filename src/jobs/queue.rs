//! The queue's statements. [`enqueue`], [`find`] and [`cancel`] run in the caller's
//! transaction and scope; the worker's transitions call the `fahwa_jobs_*` definer functions
//! (one statement each, outside any transaction: `Db::outside_tenants`).

use std::time::Duration;

use chrono::{DateTime, Utc};
use diesel::QueryableByName;
use diesel::sql_types::{
    Array, BigInt, Bool, Double, Integer, Jsonb, Nullable, Text, Timestamptz, Uuid as SqlUuid,
};
use diesel_async::RunQueryDsl;
use uuid::Uuid;

use super::{Job, JobId, NewJob};
use crate::db::Conn;
use crate::error::{AppError, AppResult};

#[derive(QueryableByName)]
struct Id {
    #[diesel(sql_type = BigInt)]
    id: i64,
}

/// Enqueues `job` in the caller's transaction: it exists, and sleeping workers wake, exactly
/// when that transaction commits. A tenant's job needs the transaction in that tenant's scope
/// (row-level security refuses it otherwise); a system job (`tenant_id: None`) works in any.
pub async fn enqueue(conn: &mut Conn, job: NewJob<'_>) -> AppResult<JobId> {
    if job.max_attempts < 1 {
        return Err(AppError::internal(anyhow::anyhow!(
            "a job of kind {:?} needs at least one attempt",
            job.kind
        )));
    }
    let row: Id = match job.tenant_id {
        // The notification is sent in the same statement; PostgreSQL delivers it at commit,
        // once per kind and transaction.
        Some(tenant) => {
            diesel::sql_query(
                "WITH j AS ( \
                   INSERT INTO jobs (kind, tenant_id, payload, run_at, max_attempts) \
                   VALUES ($1, $2, $3, coalesce($4, now()), $5) RETURNING id, kind) \
                 SELECT j.id, pg_notify('fahwa_jobs', j.kind) AS notified FROM j",
            )
            .bind::<Text, _>(job.kind)
            .bind::<SqlUuid, _>(tenant)
            .bind::<Jsonb, _>(&job.payload)
            .bind::<Nullable<Timestamptz>, _>(job.run_at)
            .bind::<Integer, _>(job.max_attempts)
            .get_result(conn)
            .await?
        }
        None => {
            diesel::sql_query("SELECT fahwa_jobs_enqueue_system($1, $2, $3, $4) AS id")
                .bind::<Text, _>(job.kind)
                .bind::<Jsonb, _>(&job.payload)
                .bind::<Nullable<Timestamptz>, _>(job.run_at)
                .bind::<Integer, _>(job.max_attempts)
                .get_result(conn)
                .await?
        }
    };
    Ok(row.id)
}

/// Where a job is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobState {
    Queued,
    Running,
    Succeeded,
    Failed,
}

impl JobState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Running => "running",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
        }
    }

    fn parse(text: &str) -> AppResult<Self> {
        Ok(match text {
            "queued" => Self::Queued,
            "running" => Self::Running,
            "succeeded" => Self::Succeeded,
            "failed" => Self::Failed,
            other => {
                return Err(AppError::internal(anyhow::anyhow!(
                    "a job in the unknown state {other:?}"
                )));
            }
        })
    }
}

/// A job as stored.
#[derive(Debug, Clone)]
pub struct JobRecord {
    pub id: JobId,
    pub kind: String,
    pub tenant_id: Option<Uuid>,
    pub payload: serde_json::Value,
    pub state: JobState,
    pub attempts: i32,
    pub max_attempts: i32,
    pub run_at: DateTime<Utc>,
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
}

#[derive(QueryableByName)]
struct RecordRow {
    #[diesel(sql_type = BigInt)]
    id: i64,
    #[diesel(sql_type = Text)]
    kind: String,
    #[diesel(sql_type = Nullable<SqlUuid>)]
    tenant_id: Option<Uuid>,
    #[diesel(sql_type = Jsonb)]
    payload: serde_json::Value,
    #[diesel(sql_type = Text)]
    state: String,
    #[diesel(sql_type = Integer)]
    attempts: i32,
    #[diesel(sql_type = Integer)]
    max_attempts: i32,
    #[diesel(sql_type = Timestamptz)]
    run_at: DateTime<Utc>,
    #[diesel(sql_type = Nullable<Text>)]
    last_error: Option<String>,
    #[diesel(sql_type = Timestamptz)]
    created_at: DateTime<Utc>,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    finished_at: Option<DateTime<Utc>>,
}

/// The job `id`, if the caller's scope sees it (a tenant sees its own jobs; no scope sees a
/// system job).
pub async fn find(conn: &mut Conn, id: JobId) -> AppResult<Option<JobRecord>> {
    let row: Option<RecordRow> = diesel::OptionalExtension::optional(
        diesel::sql_query(
            "SELECT id, kind, tenant_id, payload, state, attempts, max_attempts, run_at, \
                    last_error, created_at, finished_at \
             FROM jobs WHERE id = $1",
        )
        .bind::<BigInt, _>(id)
        .get_result(conn)
        .await,
    )?;
    row.map(|r| {
        Ok(JobRecord {
            id: r.id,
            kind: r.kind,
            tenant_id: r.tenant_id,
            payload: r.payload,
            state: JobState::parse(&r.state)?,
            attempts: r.attempts,
            max_attempts: r.max_attempts,
            run_at: r.run_at,
            last_error: r.last_error,
            created_at: r.created_at,
            finished_at: r.finished_at,
        })
    })
    .transpose()
}

/// Removes the job `id` if the caller's scope sees it and it is still queued (not running nor
/// finished); returns whether it did.
pub async fn cancel(conn: &mut Conn, id: JobId) -> AppResult<bool> {
    let removed = diesel::sql_query("DELETE FROM jobs WHERE id = $1 AND state = 'queued'")
        .bind::<BigInt, _>(id)
        .execute(conn)
        .await?;
    Ok(removed == 1)
}

/// A row `fahwa_jobs_claim` returns.
#[derive(QueryableByName)]
pub(crate) struct Claimed {
    #[diesel(sql_type = BigInt)]
    id: i64,
    #[diesel(sql_type = Text)]
    kind: String,
    #[diesel(sql_type = Nullable<SqlUuid>)]
    tenant_id: Option<Uuid>,
    #[diesel(sql_type = Jsonb)]
    payload: serde_json::Value,
    #[diesel(sql_type = Integer)]
    attempt: i32,
    #[diesel(sql_type = Integer)]
    max_attempts: i32,
    /// The job's last lease expired with no attempt left: it failed, and is not to run.
    #[diesel(sql_type = Bool)]
    pub(crate) expired: bool,
    #[diesel(sql_type = Nullable<Text>)]
    pub(crate) last_error: Option<String>,
}

impl Claimed {
    pub(crate) fn job(&self) -> Job {
        Job {
            id: self.id,
            kind: self.kind.clone(),
            tenant_id: self.tenant_id,
            payload: self.payload.clone(),
            attempt: self.attempt,
            max_attempts: self.max_attempts,
        }
    }
}

/// Claims up to `limit` due jobs of `kinds` for `worker` under a lease of `lease` (see
/// `fahwa_jobs_claim.sql`).
pub(crate) async fn claim(
    conn: &mut Conn,
    kinds: &[&str],
    limit: usize,
    lease: Duration,
    worker: &str,
) -> AppResult<Vec<Claimed>> {
    Ok(
        diesel::sql_query("SELECT * FROM fahwa_jobs_claim($1, $2, $3, $4)")
            .bind::<Array<Text>, _>(kinds)
            .bind::<Integer, _>(i32::try_from(limit).unwrap_or(i32::MAX))
            .bind::<Double, _>(lease.as_secs_f64())
            .bind::<Text, _>(worker)
            .load(conn)
            .await?,
    )
}

#[derive(QueryableByName)]
struct Done {
    #[diesel(sql_type = Bool)]
    done: bool,
}

/// Records that attempt `attempt` of job `id` succeeded; false (and nothing changed) when that
/// attempt no longer holds the job.
pub async fn complete(conn: &mut Conn, id: JobId, attempt: i32) -> AppResult<bool> {
    let row: Done = diesel::sql_query("SELECT fahwa_jobs_complete($1, $2) AS done")
        .bind::<BigInt, _>(id)
        .bind::<Integer, _>(attempt)
        .get_result(conn)
        .await?;
    Ok(row.done)
}

/// Extends the lease of attempt `attempt` of job `id` to `lease` from now; false when that
/// attempt no longer holds the job.
pub async fn heartbeat(
    conn: &mut Conn,
    id: JobId,
    attempt: i32,
    lease: Duration,
) -> AppResult<bool> {
    let row: Done = diesel::sql_query("SELECT fahwa_jobs_heartbeat($1, $2, $3) AS done")
        .bind::<BigInt, _>(id)
        .bind::<Integer, _>(attempt)
        .bind::<Double, _>(lease.as_secs_f64())
        .get_result(conn)
        .await?;
    Ok(row.done)
}

#[derive(QueryableByName)]
struct NewState {
    #[diesel(sql_type = Nullable<Text>)]
    state: Option<String>,
}

/// Records that attempt `attempt` of job `id` failed with `error`. When `retry` and attempts
/// are left, the job is queued again `delay` from now; otherwise it fails for good. Returns the
/// job's new state (`Queued` or `Failed`), or `None` when that attempt no longer holds the job.
pub async fn fail(
    conn: &mut Conn,
    id: JobId,
    attempt: i32,
    error: &str,
    retry: bool,
    delay: Duration,
) -> AppResult<Option<JobState>> {
    let row: NewState = diesel::sql_query("SELECT fahwa_jobs_fail($1, $2, $3, $4, $5) AS state")
        .bind::<BigInt, _>(id)
        .bind::<Integer, _>(attempt)
        .bind::<Text, _>(error)
        .bind::<Bool, _>(retry)
        .bind::<Double, _>(delay.as_secs_f64())
        .get_result(conn)
        .await?;
    row.state.as_deref().map(JobState::parse).transpose()
}

#[derive(QueryableByName)]
struct Due {
    #[diesel(sql_type = Nullable<Double>)]
    secs: Option<f64>,
}

/// How long until a job of `kinds` is due (zero: now), or `None` when none is queued or
/// running.
pub(crate) async fn next_due(conn: &mut Conn, kinds: &[&str]) -> AppResult<Option<Duration>> {
    let row: Due = diesel::sql_query("SELECT fahwa_jobs_next_due($1) AS secs")
        .bind::<Array<Text>, _>(kinds)
        .get_result(conn)
        .await?;
    Ok(row
        .secs
        .map(|s| Duration::try_from_secs_f64(s.max(0.0)).unwrap_or(Duration::MAX)))
}

/// Deletes jobs that finished before `before`, at most `limit`; returns how many.
pub async fn prune(conn: &mut Conn, before: DateTime<Utc>, limit: i32) -> AppResult<i32> {
    #[derive(diesel::QueryableByName)]
    struct Pruned {
        #[diesel(sql_type = diesel::sql_types::Integer)]
        pruned: i32,
    }
    let row: Pruned = diesel::sql_query("SELECT fahwa_jobs_prune($1, $2) AS pruned")
        .bind::<diesel::sql_types::Timestamptz, _>(before)
        .bind::<diesel::sql_types::Integer, _>(limit)
        .get_result(conn)
        .await?;
    Ok(row.pruned)
}

/// Whether attempt `attempt` of job `id` still holds it (in the tenant's scope the caller's
/// transaction is in): a handler checks before writing what a newer attempt owns.
pub async fn holds(conn: &mut Conn, id: JobId, attempt: i32) -> AppResult<bool> {
    let row: Done = diesel::sql_query(
        "SELECT EXISTS (SELECT 1 FROM jobs WHERE id = $1 AND attempts = $2 AND state = 'running') \
         AS done",
    )
    .bind::<BigInt, _>(id)
    .bind::<Integer, _>(attempt)
    .get_result(conn)
    .await?;
    Ok(row.done)
}
