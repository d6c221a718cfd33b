//! The worker: a loop that claims due jobs for its free slots, a task per claimed job that runs
//! its handler and renews its lease, and the listener that wakes the loop.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use scoped_futures::ScopedFutureExt;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, watch};
use tokio::task::{JoinError, JoinHandle, JoinSet};
use tokio::time::{Instant, MissedTickBehavior};
use tracing::Instrument;

use super::backoff::{doubled, retry_delay};
use super::queue::{self, Claimed, JobState};
use super::{Handler, Job, JobControl, JobError, Registry, listener};
use crate::db::Db;
use crate::error::AppResult;

/// How a worker runs.
#[derive(Debug, Clone)]
pub struct WorkerOptions {
    /// Recorded as `jobs.locked_by`; unique per worker, for people reading the table.
    pub name: String,
    /// Handlers run at once, at most.
    pub concurrency: usize,
    /// How long a claimed job stays this worker's without news from it; renewed every third
    /// of it while the handler runs.
    pub lease: Duration,
    /// The longest an idle worker sleeps without looking for due jobs (notifications and the
    /// next job's due time usually wake it sooner).
    pub poll: Duration,
    /// The first retry's wait; it doubles with each attempt (with jitter) up to `backoff_cap`.
    pub backoff_base: Duration,
    pub backoff_cap: Duration,
    /// How long [`Worker::shutdown`] waits for running handlers before it stops them.
    pub shutdown_grace: Duration,
}

impl Default for WorkerOptions {
    fn default() -> Self {
        let id = uuid::Uuid::new_v4().simple().to_string();
        WorkerOptions {
            name: format!("fahwa-{}-{}", std::process::id(), &id[..8]),
            concurrency: 4,
            lease: Duration::from_secs(60),
            poll: Duration::from_secs(10),
            backoff_base: Duration::from_secs(10),
            backoff_cap: Duration::from_secs(30 * 60),
            shutdown_grace: Duration::from_secs(30),
        }
    }
}

/// The shortest wait between two claims when jobs are due that another worker holds (being
/// claimed at that moment).
const LEAST_WAIT: Duration = Duration::from_millis(50);

/// Reports the worker makes after a handler returns are tried this many times.
const REPORT_TRIES: u32 = 3;

/// A running worker. Dropping it stops it at once (as a crash would: its jobs run again
/// elsewhere when their leases expire); [`Worker::shutdown`] lets running handlers finish.
pub struct Worker {
    name: String,
    stop: watch::Sender<bool>,
    main: Option<JoinHandle<()>>,
    listener: JoinHandle<()>,
}

impl Worker {
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Stops claiming, waits for running handlers (at most `shutdown_grace`, after which they
    /// are stopped and their jobs run again elsewhere once their leases expire), and stops.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        if let Some(main) = self.main.take()
            && let Err(e) = main.await
            && e.is_panic()
        {
            tracing::error!(worker = %self.name, "jobs: the worker's loop panicked");
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        if let Some(main) = &self.main {
            main.abort();
        }
        self.listener.abort();
    }
}

struct Shared {
    db: Db,
    registry: Registry,
    kinds: Vec<&'static str>,
    options: WorkerOptions,
    wake: Arc<Notify>,
}

/// Starts a worker for the kinds of `registry`: it claims through `db`'s pool and listens for
/// notifications on a connection of its own to `database_url`.
pub fn spawn(db: Db, database_url: String, registry: Registry, options: WorkerOptions) -> Worker {
    let mut options = options;
    options.concurrency = options.concurrency.max(1);
    let kinds = registry.kinds();
    let wake = Arc::new(Notify::new());
    let listener = tokio::spawn(listener::listen(database_url, kinds.clone(), wake.clone()));
    let (stop, stopping) = watch::channel(false);
    let name = options.name.clone();
    let shared = Arc::new(Shared {
        db,
        registry,
        kinds,
        options,
        wake,
    });
    let span = tracing::info_span!("jobs", worker = %name);
    let main = tokio::spawn(run(shared, stopping).instrument(span));
    Worker {
        name,
        stop,
        main: Some(main),
        listener,
    }
}

/// The claiming loop, until told to stop; then the grace for running handlers.
async fn run(shared: Arc<Shared>, mut stopping: watch::Receiver<bool>) {
    let options = &shared.options;
    let slots = Arc::new(Semaphore::new(options.concurrency));
    let mut running = JoinSet::new();
    let mut errors_wait = Duration::ZERO;
    loop {
        while let Some(done) = running.try_join_next() {
            log_task_end(done);
        }
        // One free slot, then every other free one.
        let first = tokio::select! {
            permit = slots.clone().acquire_owned() => permit.expect("the semaphore is never closed"),
            _ = stopping.wait_for(|stop| *stop) => break,
        };
        let mut permits = vec![first];
        while let Ok(permit) = slots.clone().try_acquire_owned() {
            permits.push(permit);
        }
        let wanted = permits.len();
        let claimed_at = Instant::now();
        let (kinds, lease, name) = (&shared.kinds, options.lease, &options.name);
        let claimed = shared
            .db
            .outside_tenants(|conn| {
                async move { queue::claim(conn, kinds, wanted, lease, name).await }.scope_boxed()
            })
            .await;
        let wait = match claimed {
            Ok(claimed) => {
                errors_wait = Duration::ZERO;
                let all = claimed.len() == wanted;
                for row in claimed {
                    if row.expired {
                        running.spawn(expired(shared.clone(), row));
                    } else if let Some(permit) = permits.pop() {
                        running.spawn(run_job(shared.clone(), row, claimed_at, permit));
                    }
                }
                drop(permits);
                if all {
                    // Perhaps more are due: claim again as soon as a slot is free.
                    continue;
                }
                idle_wait(&shared).await
            }
            Err(e) => {
                drop(permits);
                errors_wait = doubled(errors_wait.max(LEAST_WAIT), options.poll);
                tracing::warn!(error = %e, retry_in = ?errors_wait, "jobs: could not claim");
                errors_wait
            }
        };
        tokio::select! {
            () = shared.wake.notified() => {}
            () = tokio::time::sleep(wait) => {}
            _ = stopping.wait_for(|stop| *stop) => break,
        }
    }
    // Stopping: no more claims; running handlers have the grace to finish, then are stopped
    // (dropping the set aborts its tasks, and each task its handler).
    let drained = tokio::time::timeout(options.shutdown_grace, async {
        while let Some(done) = running.join_next().await {
            log_task_end(done);
        }
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            handlers = running.len(),
            "jobs: handlers still running after the shutdown grace are stopped"
        );
    }
}

/// How long an idle loop sleeps (unless woken): until the next job of its kinds is due, at most
/// the poll interval.
async fn idle_wait(shared: &Shared) -> Duration {
    let poll = shared.options.poll;
    let kinds = &shared.kinds;
    let due = shared
        .db
        .outside_tenants(|conn| async move { queue::next_due(conn, kinds).await }.scope_boxed())
        .await;
    match due {
        Ok(Some(due)) => due.clamp(LEAST_WAIT, poll.max(LEAST_WAIT)),
        Ok(None) => poll,
        Err(e) => {
            tracing::warn!(error = %e, "jobs: could not read when the next job is due");
            poll
        }
    }
}

fn log_task_end(done: Result<(), JoinError>) {
    if let Err(e) = done
        && e.is_panic()
    {
        tracing::error!("jobs: a job's task panicked (in its failed hook)");
    }
}

/// Aborts a task when dropped: a job's task that is stopped stops its handler with it.
struct AbortOnDrop<T>(JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

fn record(kind: &'static str, outcome: &'static str) {
    metrics::counter!("fahwa_jobs_total", "kind" => kind, "outcome" => outcome).increment(1);
}

/// The handler of `kind` and its static name (the kinds claimed are the registry's).
fn handler_of(shared: &Shared, kind: &str) -> Option<(&'static str, Arc<dyn Handler>)> {
    let handler = shared.registry.get(kind)?.clone();
    Some((handler.kind(), handler))
}

/// A job that failed for good when its last lease expired: its hook.
async fn expired(shared: Arc<Shared>, row: Claimed) {
    let job = row.job();
    let Some((kind, handler)) = handler_of(&shared, &job.kind) else {
        return;
    };
    let error = row.last_error.unwrap_or_default();
    let span = tracing::info_span!("job", id = job.id, kind, attempt = job.attempt);
    async move {
        tracing::warn!(error = %error, "jobs: the job's last lease expired; it failed");
        record(kind, "expired");
        handler.failed(&job, &error).await;
    }
    .instrument(span)
    .await
}

/// Runs one claimed attempt: the handler in a task of its own (a panic is a failure, not the
/// worker's end), the lease renewed beside it, then the fenced report.
async fn run_job(
    shared: Arc<Shared>,
    row: Claimed,
    claimed_at: Instant,
    _slot: OwnedSemaphorePermit,
) {
    let job = Arc::new(row.job());
    let Some((kind, handler)) = handler_of(&shared, &job.kind) else {
        return;
    };
    let span = tracing::info_span!(
        "job",
        id = job.id,
        kind,
        attempt = job.attempt,
        tenant = ?job.tenant_id
    );
    async move {
        let lease = shared.options.lease;
        let (lost_tx, lost_rx) = watch::channel(false);
        let ctl = JobControl::new(lost_rx);
        let mut task = AbortOnDrop(tokio::spawn({
            let (job, handler) = (job.clone(), handler.clone());
            async move { handler.run(&job, &ctl).await }.in_current_span()
        }));
        // The lease runs from the claim's statement, which began after `claimed_at`.
        let mut leased_until = claimed_at + lease;
        let every = (lease / 3).max(Duration::from_millis(10));
        let mut beats = tokio::time::interval_at(Instant::now() + every, every);
        beats.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut lost = false;
        let outcome = loop {
            tokio::select! {
                outcome = &mut task.0 => break outcome,
                _ = beats.tick(), if !lost => {
                    let sent = Instant::now();
                    let (id, attempt) = (job.id, job.attempt);
                    let beat = shared
                        .db
                        .outside_tenants(|conn| {
                            async move { queue::heartbeat(conn, id, attempt, lease).await }
                                .scope_boxed()
                        })
                        .await;
                    match beat {
                        Ok(true) => leased_until = sent + lease,
                        Ok(false) => lost = true,
                        Err(e) => {
                            tracing::warn!(error = %e, "jobs: could not renew the lease");
                            // Past its end without a renewal, the lease may be another's.
                            lost = Instant::now() >= leased_until;
                        }
                    }
                    if lost {
                        tracing::warn!("jobs: the job's lease was lost; its outcome will be discarded");
                        let _ = lost_tx.send(true);
                    }
                }
            }
        };
        if lost {
            record(kind, "lost");
            return;
        }
        let (error, retry) = match outcome {
            Ok(Ok(())) => {
                report_success(&shared, &job, kind).await;
                return;
            }
            Ok(Err(JobError::Retry(e))) => (format!("{e:#}"), true),
            Ok(Err(JobError::Permanent(e))) => (format!("{e:#}"), false),
            Err(e) => (panic_message(e), true),
        };
        report_failure(&shared, &job, kind, handler.as_ref(), error, retry).await;
    }
    .instrument(span)
    .await
}

async fn report_success(shared: &Shared, job: &Job, kind: &'static str) {
    let (id, attempt) = (job.id, job.attempt);
    let done = with_tries("record its success", || {
        shared.db.outside_tenants(move |conn| {
            async move { queue::complete(conn, id, attempt).await }.scope_boxed()
        })
    })
    .await;
    match done {
        Some(true) => {
            tracing::debug!("jobs: the job succeeded");
            record(kind, "succeeded");
        }
        Some(false) => {
            tracing::warn!("jobs: the job succeeded after its lease was lost; discarded");
            record(kind, "lost");
        }
        // Still running in the table: it runs again when the lease expires.
        None => record(kind, "unreported"),
    }
}

async fn report_failure(
    shared: &Shared,
    job: &Job,
    kind: &'static str,
    handler: &dyn Handler,
    error: String,
    retry: bool,
) {
    let error = truncated(error);
    let options = &shared.options;
    let delay = retry_delay(job.attempt, options.backoff_base, options.backoff_cap);
    let (id, attempt) = (job.id, job.attempt);
    let state = with_tries("record its failure", || {
        let error = &error;
        shared.db.outside_tenants(move |conn| {
            async move { queue::fail(conn, id, attempt, error, retry, delay).await }.scope_boxed()
        })
    })
    .await;
    match state {
        Some(Some(JobState::Queued)) => {
            tracing::info!(error = %error, retry_in = ?delay, "jobs: the attempt failed; retrying");
            record(kind, "retried");
        }
        Some(Some(_)) => {
            tracing::warn!(error = %error, "jobs: the job failed");
            record(kind, "failed");
            handler.failed(job, &error).await;
        }
        Some(None) => {
            tracing::warn!("jobs: the attempt failed after its lease was lost; discarded");
            record(kind, "lost");
        }
        None => record(kind, "unreported"),
    }
}

/// Runs `report` until it succeeds, [`REPORT_TRIES`] times at most; `None` when it never did
/// (the job stays running until its lease expires, then runs again).
async fn with_tries<T, F, Fut>(what: &str, mut report: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = AppResult<T>>,
{
    let mut wait = Duration::from_millis(200);
    for tried in 1..=REPORT_TRIES {
        match report().await {
            Ok(value) => return Some(value),
            Err(e) if tried == REPORT_TRIES => {
                tracing::error!(error = %e, "jobs: could not {what}; the job runs again later");
            }
            Err(e) => {
                tracing::warn!(error = %e, "jobs: could not {what}; trying again");
                tokio::time::sleep(wait).await;
                wait = doubled(wait, Duration::from_secs(5));
            }
        }
    }
    None
}

/// What a stopped handler task says: its panic's message (a retryable failure).
fn panic_message(err: JoinError) -> String {
    if !err.is_panic() {
        return "the handler was stopped".into();
    }
    let panic = err.into_panic();
    let text = panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a value that is not text".into());
    format!("the handler panicked: {text}")
}

/// `jobs.last_error` keeps the first 2,000 characters of an error.
fn truncated(mut error: String) -> String {
    const MOST: usize = 2000;
    if let Some((at, _)) = error.char_indices().nth(MOST) {
        error.truncate(at);
        error.push('…');
    }
    error
}
