//! The job queue: work that runs after the request that asked for it, stored in PostgreSQL's
//! `jobs` table (docs/decisions/0020) and run by workers on any instance.
//!
//! - [`enqueue`] inserts a job inside the caller's transaction, so a job exists exactly when the
//!   caller's change commits; the commit wakes sleeping workers (`NOTIFY fahwa_jobs`).
//! - A [`Worker`] ([`spawn`]) claims due jobs of the kinds its [`Registry`] holds, up to
//!   `concurrency` at once, each under a lease that it renews while the [`Handler`] runs.
//! - A failure marked [`JobError::Retry`] runs again after an exponential backoff with jitter,
//!   until `max_attempts` attempts were made; then, or on [`JobError::Permanent`], the job fails
//!   for good and its handler's [`Handler::failed`] hook is called.
//!
//! What a handler must know:
//!
//! - **Jobs run at least once, not exactly once.** A worker can die after the handler's effects
//!   committed and before it reported success, and a lease can expire under a worker that is
//!   alive but stalled (a long pause, a lost network): another worker then runs the job again.
//!   A handler's effects must therefore be idempotent per job id (for example keyed by
//!   [`Job::id`], or an upsert), never "add one more".
//! - **Completion is fenced.** The attempt number is a fencing token: success, failure and
//!   lease renewals are recorded only while that attempt is still the job's current one. A
//!   worker whose lease was taken over learns it, tells its handler through
//!   [`JobControl::lost`] / [`JobControl::is_lost`], and discards the outcome. A handler that
//!   commits its own effects in several transactions should check `is_lost` between them.
//! - The `failed` hook is called at most once per job: by the worker that recorded the final
//!   failure, or that found the job's last lease expired. A worker that dies between the two
//!   does not call it.
//! - The worker's own transitions (claim, complete, fail, heartbeat) and system jobs (no tenant)
//!   go through `SECURITY DEFINER` functions (`src/db/functions/fahwa_jobs_*.sql`): they act
//!   across tenants, which row-level security hides from the server's role. A handler reads and
//!   writes a tenant's data itself, in that tenant's scope (`Db::tenant(job.tenant_id, …)`).
//! - Payloads are never logged: they may hold secrets. Keep them small (ids, not data).

pub mod backoff;
mod listener;
pub mod queue;
mod worker;

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use tokio::sync::watch;
use uuid::Uuid;

use crate::error::AppError;

pub use queue::{JobRecord, JobState, enqueue};
pub use worker::{Worker, WorkerOptions, spawn};

/// A job's id (`jobs.id`).
pub type JobId = i64;

/// The channel of the notification every enqueue (and every retry) sends at commit; its payload
/// is the job's kind.
pub const CHANNEL: &str = "fahwa_jobs";

/// A job to enqueue.
#[derive(Debug, Clone)]
pub struct NewJob<'a> {
    /// The handler's stable name ([`Handler::kind`]).
    pub kind: &'a str,
    /// The tenant whose scope the caller's transaction is in; `None` for a system job.
    pub tenant_id: Option<Uuid>,
    pub payload: serde_json::Value,
    /// Not before this time; `None` is now.
    pub run_at: Option<DateTime<Utc>>,
    /// At least 1.
    pub max_attempts: i32,
}

impl<'a> NewJob<'a> {
    pub const DEFAULT_MAX_ATTEMPTS: i32 = 5;

    /// A job of `kind` due now, with [`Self::DEFAULT_MAX_ATTEMPTS`] attempts.
    pub fn new(kind: &'a str, tenant_id: Option<Uuid>, payload: serde_json::Value) -> Self {
        NewJob {
            kind,
            tenant_id,
            payload,
            run_at: None,
            max_attempts: Self::DEFAULT_MAX_ATTEMPTS,
        }
    }
}

/// A claimed job, as its handler sees it.
#[derive(Debug, Clone)]
pub struct Job {
    pub id: JobId,
    pub kind: String,
    pub tenant_id: Option<Uuid>,
    pub payload: serde_json::Value,
    /// This attempt's number, from 1; the job's fencing token.
    pub attempt: i32,
    pub max_attempts: i32,
}

impl Job {
    /// True when a failure of this attempt fails the job for good, retryable or not.
    pub fn is_last_attempt(&self) -> bool {
        self.attempt >= self.max_attempts
    }

    /// The job's tenant and the id its payload holds under `field`; a job without them can
    /// never succeed.
    pub fn tenant_and_id(&self, field: &str) -> Result<(Uuid, Uuid), JobError> {
        let tenant = self.tenant_id.ok_or_else(|| {
            JobError::permanent(anyhow::anyhow!("a {} job has no tenant", self.kind))
        })?;
        let id = self.payload[field]
            .as_str()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| {
                JobError::permanent(anyhow::anyhow!("a {} job has no {field}", self.kind))
            })?;
        Ok((tenant, id))
    }
}

/// Why a handler did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// Worth another attempt (a timeout, a busy database); becomes permanent when the
    /// attempts are used up.
    #[error("{0:#}")]
    Retry(anyhow::Error),
    /// No attempt will do better (bad input, a deleted tenant): the job fails now.
    #[error("{0:#}")]
    Permanent(anyhow::Error),
}

impl JobError {
    pub fn retry(err: impl Into<anyhow::Error>) -> Self {
        Self::Retry(err.into())
    }

    pub fn permanent(err: impl Into<anyhow::Error>) -> Self {
        Self::Permanent(err.into())
    }
}

/// `?` on an `anyhow::Result` in a handler: retryable.
impl From<anyhow::Error> for JobError {
    fn from(err: anyhow::Error) -> Self {
        Self::Retry(err)
    }
}

/// `?` on an [`crate::error::AppResult`] in a handler: the database being busy or failing is
/// worth retrying; a refusal (bad input, not found, forbidden) is not.
impl From<AppError> for JobError {
    fn from(err: AppError) -> Self {
        match err {
            AppError::Internal(_) | AppError::Busy { .. } | AppError::RateLimited { .. } => {
                Self::Retry(err.into())
            }
            _ => Self::Permanent(err.into()),
        }
    }
}

/// Runs the jobs of one kind.
#[async_trait::async_trait]
pub trait Handler: Send + Sync + 'static {
    /// Stable text name stored in the table (never a Rust type name).
    fn kind(&self) -> &'static str;

    /// Runs one attempt of `job`. Its effects must be idempotent per `job.id` (see the module
    /// documentation); `ctl` says when the lease was lost.
    async fn run(&self, job: &Job, ctl: &JobControl) -> Result<(), JobError>;

    /// Called once when the job has failed for good (after its last attempt, or its lease
    /// expired with no attempts left), with the last error; default does nothing.
    async fn failed(&self, _job: &Job, _error: &str) {}
}

/// The handlers a worker runs, by kind.
#[derive(Clone, Default)]
pub struct Registry {
    handlers: BTreeMap<&'static str, Arc<dyn Handler>>,
}

impl Registry {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `handler` for its kind.
    ///
    /// # Panics
    /// When another handler has the same kind, or the kind is empty or longer than 100 bytes
    /// (the table refuses it): both are mistakes in the code, not in data.
    pub fn register(&mut self, handler: Arc<dyn Handler>) {
        let kind = handler.kind();
        assert!(
            !kind.is_empty() && kind.len() <= 100,
            "a job kind has 1 to 100 bytes: {kind:?}"
        );
        let earlier = self.handlers.insert(kind, handler);
        assert!(earlier.is_none(), "two job handlers for the kind {kind:?}");
    }

    /// The kinds registered, in name order.
    pub fn kinds(&self) -> Vec<&'static str> {
        self.handlers.keys().copied().collect()
    }

    fn get(&self, kind: &str) -> Option<&Arc<dyn Handler>> {
        self.handlers.get(kind)
    }
}

/// What a running handler can ask of its worker: whether the job is still its own.
pub struct JobControl {
    lost: watch::Receiver<bool>,
}

impl JobControl {
    fn new(lost: watch::Receiver<bool>) -> Self {
        Self { lost }
    }

    /// True once the worker found that this attempt no longer holds the job (its lease expired
    /// and another worker took it over, or it failed for good): whatever the handler does from
    /// then on is discarded, and the job runs (or ran) elsewhere.
    pub fn is_lost(&self) -> bool {
        *self.lost.borrow()
    }

    /// Resolves when the lease is lost (at once if it already is); never while it is held. For
    /// `tokio::select!` around a long step.
    pub async fn lost(&self) {
        let mut lost = self.lost.clone();
        if lost.wait_for(|l| *l).await.is_err() {
            // The worker stopped watching the lease: this attempt's outcome no longer matters
            // to anyone, and the handler is being stopped.
            std::future::pending::<()>().await;
        }
    }
}
