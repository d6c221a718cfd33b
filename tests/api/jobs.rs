//! The job queue against a real PostgreSQL: several workers share jobs without running one
//! twice, a dead worker's job is taken over when its lease expires and its late report changes
//! nothing, failures are retried with growing waits, commits wake sleeping workers, and a
//! tenant's jobs stay its own.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use fahwa::db::{Db, Scope};
use fahwa::jobs::{
    self, Handler, Job, JobControl, JobError, JobId, JobState, NewJob, Registry, WorkerOptions,
    queue,
};
use scoped_futures::ScopedFutureExt;
use serde_json::json;
use tokio::sync::Notify;
use tokio::time::Instant;
use uuid::Uuid;

use crate::harness::fresh_database;

async fn superuser(url: &str) -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    client
}

async fn new_tenant(pg: &tokio_postgres::Client) -> Uuid {
    let id = Uuid::new_v4();
    let slug = format!("t-{}", &id.simple().to_string()[..12]);
    pg.execute(
        "INSERT INTO tenants (id, name, slug) VALUES ($1, $2, $2)",
        &[&id, &slug],
    )
    .await
    .unwrap();
    id
}

/// Options for tests: short waits, and a poll long enough that a test passing within it
/// proves a faster wake-up.
fn options(name: &str) -> WorkerOptions {
    WorkerOptions {
        name: name.into(),
        concurrency: 4,
        lease: Duration::from_secs(30),
        poll: Duration::from_secs(60),
        backoff_base: Duration::from_millis(300),
        backoff_cap: Duration::from_secs(5),
        shutdown_grace: Duration::from_secs(5),
    }
}

fn registry(handlers: Vec<Arc<dyn Handler>>) -> Registry {
    let mut registry = Registry::new();
    for h in handlers {
        registry.register(h);
    }
    registry
}

async fn enqueue(db: &Db, job: NewJob<'static>) -> JobId {
    let scope = match job.tenant_id {
        Some(t) => Scope::Tenant(t),
        None => Scope::Anonymous,
    };
    db.scoped(scope, |conn| {
        async move { jobs::enqueue(conn, job).await }.scope_boxed()
    })
    .await
    .unwrap()
}

#[derive(Debug)]
struct Row {
    state: String,
    attempts: i32,
    locked_by: Option<String>,
    last_error: Option<String>,
}

async fn row(pg: &tokio_postgres::Client, id: JobId) -> Row {
    let r = pg
        .query_one(
            "SELECT state, attempts, locked_by, last_error FROM jobs WHERE id = $1",
            &[&id],
        )
        .await
        .unwrap();
    Row {
        state: r.get(0),
        attempts: r.get(1),
        locked_by: r.get(2),
        last_error: r.get(3),
    }
}

/// Waits (at most `within`) until `check` holds.
async fn eventually<F, Fut>(within: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let end = Instant::now() + within;
    while !check().await {
        assert!(Instant::now() < end, "not within {within:?}: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn wait_for_state(pg: &tokio_postgres::Client, id: JobId, state: &str, within: Duration) {
    eventually(within, &format!("job {id} {state}"), || async {
        row(pg, id).await.state == state
    })
    .await;
}

/// Records each attempt it runs, after a short sleep.
struct Record {
    runs: Arc<Mutex<Vec<(JobId, i32)>>>,
}

#[async_trait::async_trait]
impl Handler for Record {
    fn kind(&self) -> &'static str {
        "test.record"
    }

    async fn run(&self, job: &Job, _ctl: &JobControl) -> Result<(), JobError> {
        tokio::time::sleep(Duration::from_millis(3)).await;
        self.runs.lock().unwrap().push((job.id, job.attempt));
        Ok(())
    }
}

#[tokio::test]
async fn concurrent_workers_run_every_job_once() {
    let url = fresh_database().await;
    let pg = superuser(&url).await;
    let tenant = new_tenant(&pg).await;
    let db = Db::new(&url, 2);
    let runs = Arc::new(Mutex::new(Vec::new()));

    // Half the jobs wait before any worker runs (a tenant's, in one transaction), half are
    // enqueued while they run (system jobs).
    let first: Vec<JobId> = db
        .tenant(tenant, |conn| {
            async move {
                let mut ids = Vec::new();
                for n in 0..100 {
                    let job = NewJob::new("test.record", Some(tenant), json!({ "n": n }));
                    ids.push(jobs::enqueue(conn, job).await?);
                }
                Ok(ids)
            }
            .scope_boxed()
        })
        .await
        .unwrap();
    let workers: Vec<_> = ["a", "b", "c"]
        .into_iter()
        .map(|name| {
            let handlers: Vec<Arc<dyn Handler>> = vec![Arc::new(Record { runs: runs.clone() })];
            jobs::spawn(
                Db::new(&url, 3),
                url.clone(),
                registry(handlers),
                options(name),
            )
        })
        .collect();
    let mut ids = first;
    for n in 100..200 {
        ids.push(enqueue(&db, NewJob::new("test.record", None, json!({ "n": n }))).await);
    }

    eventually(Duration::from_secs(30), "200 jobs succeeded", || async {
        let done: i64 = pg
            .query_one("SELECT count(*) FROM jobs WHERE state = 'succeeded'", &[])
            .await
            .unwrap()
            .get(0);
        done == 200
    })
    .await;
    for worker in workers {
        worker.shutdown().await;
    }

    let runs = runs.lock().unwrap().clone();
    assert_eq!(runs.len(), 200, "each job ran once");
    let mut times: HashMap<JobId, usize> = HashMap::new();
    for (id, attempt) in &runs {
        assert_eq!(*attempt, 1);
        *times.entry(*id).or_default() += 1;
    }
    ids.sort();
    let mut ran: Vec<JobId> = times.keys().copied().collect();
    ran.sort();
    assert_eq!(ran, ids, "every job enqueued ran, and no other");
    let stats = pg
        .query_one(
            "SELECT count(*) FILTER (WHERE attempts <> 1 OR finished_at IS NULL), \
                    count(DISTINCT locked_by) FROM jobs",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(stats.get::<_, i64>(0), 0, "one attempt each, all finished");
    assert!(
        stats.get::<_, i64>(1) >= 2,
        "the workers shared the jobs: {}",
        stats.get::<_, i64>(1)
    );
}

/// Attempt 1 stalls (for a minute, or until told its lease is lost); later attempts succeed,
/// once released when `hold` is set.
struct Stall {
    kind: &'static str,
    started: Arc<Notify>,
    hold: bool,
    second_started: Notify,
    release: Notify,
    runs: Arc<Mutex<Vec<(JobId, i32)>>>,
    /// What attempt 1 learnt from its control once it stopped stalling.
    told_lost: Arc<Mutex<Option<bool>>>,
    failed: Arc<Mutex<Vec<(JobId, String)>>>,
}

impl Stall {
    fn new(kind: &'static str) -> Arc<Self> {
        Self::holding(kind, false)
    }

    fn holding(kind: &'static str, hold: bool) -> Arc<Self> {
        Arc::new(Stall {
            kind,
            started: Arc::new(Notify::new()),
            hold,
            second_started: Notify::new(),
            release: Notify::new(),
            runs: Arc::default(),
            told_lost: Arc::default(),
            failed: Arc::default(),
        })
    }
}

#[async_trait::async_trait]
impl Handler for Stall {
    fn kind(&self) -> &'static str {
        self.kind
    }

    async fn run(&self, job: &Job, ctl: &JobControl) -> Result<(), JobError> {
        self.runs.lock().unwrap().push((job.id, job.attempt));
        if job.attempt == 1 {
            self.started.notify_one();
            let _ = tokio::time::timeout(Duration::from_secs(60), ctl.lost()).await;
            *self.told_lost.lock().unwrap() = Some(ctl.is_lost());
        } else if self.hold {
            self.second_started.notify_one();
            self.release.notified().await;
        }
        Ok(())
    }

    async fn failed(&self, job: &Job, error: &str) {
        self.failed
            .lock()
            .unwrap()
            .push((job.id, error.to_string()));
    }
}

fn short_lease(name: &str) -> WorkerOptions {
    WorkerOptions {
        lease: Duration::from_secs(1),
        ..options(name)
    }
}

#[tokio::test]
async fn a_dead_workers_job_is_taken_over_and_its_late_report_changes_nothing() {
    let url = fresh_database().await;
    let pg = superuser(&url).await;
    let db = Db::new(&url, 2);
    let stall = Stall::holding("test.stall", true);

    let dead = jobs::spawn(
        Db::new(&url, 2),
        url.clone(),
        registry(vec![stall.clone()]),
        short_lease("dead"),
    );
    let id = enqueue(&db, NewJob::new("test.stall", None, json!({}))).await;
    tokio::time::timeout(Duration::from_secs(5), stall.started.notified())
        .await
        .expect("attempt 1 started");
    drop(dead);
    let killed = Instant::now();

    // The other worker sleeps until the lease expires (its poll is a minute), then takes over.
    let alive = jobs::spawn(
        Db::new(&url, 2),
        url.clone(),
        registry(vec![stall.clone()]),
        short_lease("alive"),
    );
    tokio::time::timeout(Duration::from_secs(10), stall.second_started.notified())
        .await
        .expect("attempt 2 started");
    assert!(
        killed.elapsed() < Duration::from_secs(5),
        "taken over soon after the lease expired"
    );
    let running = row(&pg, id).await;
    assert_eq!(
        (
            running.state.as_str(),
            running.attempts,
            running.locked_by.as_deref()
        ),
        ("running", 2, Some("alive"))
    );
    let error = running.last_error.unwrap();
    assert!(error.contains("lease of attempt 1 expired"), "{error}");

    // The dead worker's reports for attempt 1, arriving while attempt 2 runs, are refused.
    assert_eq!(late_reports(&db, id, 1).await, (false, None, false));
    let unchanged = row(&pg, id).await;
    assert_eq!(
        (unchanged.state.as_str(), unchanged.attempts),
        ("running", 2)
    );

    stall.release.notify_one();
    wait_for_state(&pg, id, "succeeded", Duration::from_secs(5)).await;
    alive.shutdown().await;
    assert_eq!(*stall.runs.lock().unwrap(), [(id, 1), (id, 2)]);
    // Nor do they change a finished job.
    assert_eq!(late_reports(&db, id, 1).await, (false, None, false));
    let done = row(&pg, id).await;
    assert_eq!((done.state.as_str(), done.attempts), ("succeeded", 2));
    assert!(stall.failed.lock().unwrap().is_empty());
}

/// Attempt `attempt` of job `id` reports success, a retryable failure and a heartbeat.
async fn late_reports(db: &Db, id: JobId, attempt: i32) -> (bool, Option<JobState>, bool) {
    db.outside_tenants(|conn| {
        async move {
            Ok((
                queue::complete(conn, id, attempt).await?,
                queue::fail(conn, id, attempt, "late", true, Duration::ZERO).await?,
                queue::heartbeat(conn, id, attempt, Duration::from_secs(60)).await?,
            ))
        }
        .scope_boxed()
    })
    .await
    .unwrap()
}

#[tokio::test]
async fn a_live_worker_whose_lease_was_taken_over_is_told_and_its_success_discarded() {
    let url = fresh_database().await;
    let mut pg = superuser(&url).await;
    let db = Db::new(&url, 2);
    let stall = Stall::new("test.stall");
    let worker = jobs::spawn(
        Db::new(&url, 2),
        url.clone(),
        registry(vec![stall.clone()]),
        short_lease("stalled"),
    );
    let id = enqueue(&db, NewJob::new("test.stall", None, json!({}))).await;
    tokio::time::timeout(Duration::from_secs(5), stall.started.notified())
        .await
        .expect("attempt 1 started");

    // As if the worker had stalled past its lease: another claims the job.
    let tx = pg.transaction().await.unwrap();
    tx.execute(
        "UPDATE jobs SET lease_expires_at = now() - interval '1 second' WHERE id = $1",
        &[&id],
    )
    .await
    .unwrap();
    let claimed = tx
        .query(
            "SELECT id, attempt FROM fahwa_jobs_claim(ARRAY['test.stall'], 1, 60, 'thief')",
            &[],
        )
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].get::<_, i32>(1), 2);

    // The next renewal (every third of a second) finds the job gone; the handler is told, and
    // the success it then returns is not recorded.
    eventually(Duration::from_secs(3), "the handler was told", || async {
        stall.told_lost.lock().unwrap().is_some()
    })
    .await;
    assert_eq!(*stall.told_lost.lock().unwrap(), Some(true));
    worker.shutdown().await;
    let taken = row(&pg, id).await;
    assert_eq!(
        (
            taken.state.as_str(),
            taken.attempts,
            taken.locked_by.as_deref()
        ),
        ("running", 2, Some("thief"))
    );
    assert_eq!(late_reports(&db, id, 1).await, (false, None, false));
    // The thief's own report stands.
    let done = db
        .outside_tenants(|conn| async move { queue::complete(conn, id, 2).await }.scope_boxed())
        .await
        .unwrap();
    assert!(done);
}

/// Fails in a way chosen by kind, recording when each attempt started and ended.
struct Flaky {
    kind: &'static str,
    times: Mutex<Vec<(i32, Instant, Instant)>>,
    failed: Mutex<Vec<(JobId, String)>>,
}

impl Flaky {
    fn new(kind: &'static str) -> Arc<Self> {
        Arc::new(Flaky {
            kind,
            times: Mutex::default(),
            failed: Mutex::default(),
        })
    }
}

#[async_trait::async_trait]
impl Handler for Flaky {
    fn kind(&self) -> &'static str {
        self.kind
    }

    async fn run(&self, job: &Job, _ctl: &JobControl) -> Result<(), JobError> {
        let start = Instant::now();
        let outcome = match (self.kind, job.attempt) {
            ("test.twice", 1 | 2) => Err(JobError::retry(anyhow::anyhow!("twice {}", job.attempt))),
            ("test.doomed", n) => Err(JobError::retry(anyhow::anyhow!("doomed {n}"))),
            ("test.refused", _) => Err(JobError::permanent(anyhow::anyhow!("refused"))),
            ("test.panicky", 1) => panic!("boom"),
            _ => Ok(()),
        };
        self.times
            .lock()
            .unwrap()
            .push((job.attempt, start, Instant::now()));
        outcome
    }

    async fn failed(&self, job: &Job, error: &str) {
        self.failed
            .lock()
            .unwrap()
            .push((job.id, error.to_string()));
    }
}

#[tokio::test]
async fn failures_are_retried_with_growing_waits_until_the_attempts_run_out() {
    let url = fresh_database().await;
    let pg = superuser(&url).await;
    let db = Db::new(&url, 2);
    let twice = Flaky::new("test.twice");
    let doomed = Flaky::new("test.doomed");
    let refused = Flaky::new("test.refused");
    let panicky = Flaky::new("test.panicky");
    let worker = jobs::spawn(
        Db::new(&url, 3),
        url.clone(),
        registry(vec![
            twice.clone(),
            doomed.clone(),
            refused.clone(),
            panicky.clone(),
        ]),
        options("w"),
    );
    let job = |kind| NewJob {
        max_attempts: 3,
        ..NewJob::new(kind, None, json!({}))
    };
    let twice_id = enqueue(&db, job("test.twice")).await;
    let doomed_id = enqueue(&db, job("test.doomed")).await;
    let refused_id = enqueue(&db, job("test.refused")).await;
    let panicky_id = enqueue(&db, job("test.panicky")).await;

    // Waits of at least 150 ms then 300 ms (base 300 ms, equal jitter): well within the
    // worker's poll of a minute, so it woke when the retries were due.
    wait_for_state(&pg, twice_id, "succeeded", Duration::from_secs(10)).await;
    wait_for_state(&pg, doomed_id, "failed", Duration::from_secs(10)).await;
    wait_for_state(&pg, refused_id, "failed", Duration::from_secs(10)).await;
    wait_for_state(&pg, panicky_id, "succeeded", Duration::from_secs(10)).await;
    // The hooks run before the worker's tasks end.
    worker.shutdown().await;

    let t = row(&pg, twice_id).await;
    assert_eq!(t.attempts, 3);
    assert_eq!(t.last_error.as_deref(), Some("twice 2"));
    let times = twice.times.lock().unwrap().clone();
    assert_eq!(
        times.iter().map(|t| t.0).collect::<Vec<_>>(),
        [1, 2, 3],
        "{times:?}"
    );
    let first_wait = times[1].1 - times[0].2;
    let second_wait = times[2].1 - times[1].2;
    assert!(first_wait >= Duration::from_millis(150), "{first_wait:?}");
    assert!(second_wait >= Duration::from_millis(300), "{second_wait:?}");
    assert!(second_wait < Duration::from_secs(3), "{second_wait:?}");
    assert!(twice.failed.lock().unwrap().is_empty());

    let d = row(&pg, doomed_id).await;
    assert_eq!(d.attempts, 3);
    assert_eq!(d.last_error.as_deref(), Some("doomed 3"));
    assert_eq!(
        *doomed.failed.lock().unwrap(),
        [(doomed_id, "doomed 3".to_string())],
        "the hook ran once"
    );
    assert_eq!(doomed.times.lock().unwrap().len(), 3);

    let r = row(&pg, refused_id).await;
    assert_eq!((r.attempts, r.last_error.as_deref()), (1, Some("refused")));
    assert_eq!(
        *refused.failed.lock().unwrap(),
        [(refused_id, "refused".to_string())]
    );

    let p = row(&pg, panicky_id).await;
    assert_eq!(p.attempts, 2);
    let error = p.last_error.unwrap();
    assert!(error.contains("the handler panicked: boom"), "{error}");
}

#[test]
fn retry_waits_double_with_jitter_up_to_the_cap() {
    let (base, cap) = (Duration::from_secs(1), Duration::from_secs(20));
    for attempt in 1..=8 {
        let step = (base * 2u32.pow(attempt as u32 - 1)).min(cap);
        for _ in 0..50 {
            let wait = jobs::backoff::retry_delay(attempt, base, cap);
            assert!(
                wait >= step / 2 && wait <= step,
                "attempt {attempt}: {wait:?}"
            );
        }
    }
    // Huge attempt numbers neither overflow nor pass the cap.
    assert!(jobs::backoff::retry_delay(i32::MAX, base, cap) <= cap);
}

/// The server's process of this worker's notification connection.
async fn listener_pid(pg: &tokio_postgres::Client) -> Option<i32> {
    pg.query_opt(
        "SELECT pid FROM pg_stat_activity WHERE datname = current_database() \
           AND application_name = 'fahwa-jobs' AND query = 'LISTEN fahwa_jobs'",
        &[],
    )
    .await
    .unwrap()
    .map(|r| r.get(0))
}

#[tokio::test]
async fn a_commit_wakes_a_sleeping_worker_and_the_listener_reconnects() {
    let url = fresh_database().await;
    let pg = superuser(&url).await;
    let tenant = new_tenant(&pg).await;
    let db = Db::new(&url, 2);
    let runs = Arc::new(Mutex::new(Vec::new()));
    // Poll and lease far longer than the bound below: only a notification wakes it in time.
    let worker = jobs::spawn(
        Db::new(&url, 2),
        url.clone(),
        registry(vec![Arc::new(Record { runs: runs.clone() })]),
        options("sleeper"),
    );
    let bound = Duration::from_secs(5);
    eventually(bound, "the worker listens", || async {
        listener_pid(&pg).await.is_some()
    })
    .await;

    // A system job, then a tenant's: each committed while the worker sleeps.
    let system = enqueue(&db, NewJob::new("test.record", None, json!({}))).await;
    wait_for_state(&pg, system, "succeeded", bound).await;
    let tenants = enqueue(&db, NewJob::new("test.record", Some(tenant), json!({}))).await;
    wait_for_state(&pg, tenants, "succeeded", bound).await;

    // A job of a kind the worker does not run stays queued (and does not make it claim).
    let other = enqueue(&db, NewJob::new("test.other", None, json!({}))).await;

    // The connection is cut: the worker connects again and is woken as before.
    let old = listener_pid(&pg).await.unwrap();
    pg.execute("SELECT pg_terminate_backend($1)", &[&old])
        .await
        .unwrap();
    eventually(bound, "a new notification connection", || async {
        listener_pid(&pg).await.is_some_and(|pid| pid != old)
    })
    .await;
    let after = enqueue(&db, NewJob::new("test.record", None, json!({}))).await;
    wait_for_state(&pg, after, "succeeded", bound).await;

    worker.shutdown().await;
    assert_eq!(row(&pg, other).await.state, "queued");
    assert_eq!(runs.lock().unwrap().len(), 3);
}

#[tokio::test]
async fn a_lease_expired_with_no_attempt_left_fails_the_job_and_calls_its_hook() {
    let url = fresh_database().await;
    let pg = superuser(&url).await;
    let db = Db::new(&url, 2);
    let stall = Stall::new("test.stall");
    let dead = jobs::spawn(
        Db::new(&url, 2),
        url.clone(),
        registry(vec![stall.clone()]),
        short_lease("dead"),
    );
    let job = NewJob {
        max_attempts: 1,
        ..NewJob::new("test.stall", None, json!({}))
    };
    let id = enqueue(&db, job).await;
    tokio::time::timeout(Duration::from_secs(5), stall.started.notified())
        .await
        .expect("attempt 1 started");
    drop(dead);

    let alive = jobs::spawn(
        Db::new(&url, 2),
        url.clone(),
        registry(vec![stall.clone()]),
        short_lease("alive"),
    );
    wait_for_state(&pg, id, "failed", Duration::from_secs(10)).await;
    alive.shutdown().await;

    let failed = row(&pg, id).await;
    assert_eq!(failed.attempts, 1, "not run again");
    let error = failed.last_error.unwrap();
    assert!(
        error.contains("lease of attempt 1 expired: worker dead"),
        "{error}"
    );
    assert_eq!(*stall.runs.lock().unwrap(), [(id, 1)]);
    assert_eq!(
        *stall.failed.lock().unwrap(),
        [(id, error)],
        "the hook ran once"
    );
}

#[tokio::test]
async fn a_tenants_jobs_are_seen_only_in_its_scope() {
    let url = fresh_database().await;
    let pg = superuser(&url).await;
    let (a, b) = (new_tenant(&pg).await, new_tenant(&pg).await);
    let db = Db::new(&url, 2);
    let id = enqueue(&db, NewJob::new("test.record", Some(a), json!({ "k": 1 }))).await;
    let system = enqueue(&db, NewJob::new("test.record", None, json!({}))).await;

    let seen = |scope: Scope| {
        let db = db.clone();
        async move {
            db.scoped(scope, |conn| {
                async move {
                    let found = queue::find(conn, id).await?.map(|j| j.state);
                    let system = queue::find(conn, system).await?.is_some();
                    Ok((found, system))
                }
                .scope_boxed()
            })
            .await
            .unwrap()
        }
    };
    assert_eq!(
        seen(Scope::Tenant(a)).await,
        (Some(JobState::Queued), false)
    );
    assert_eq!(seen(Scope::Tenant(b)).await, (None, false));
    assert_eq!(seen(Scope::Anonymous).await, (None, false));
    assert_eq!(seen(Scope::Operator).await, (None, false));

    // B can neither cancel A's job nor enqueue one for A.
    let cancelled = db
        .tenant(b, |conn| {
            async move { queue::cancel(conn, id).await }.scope_boxed()
        })
        .await
        .unwrap();
    assert!(!cancelled);
    let forged = db
        .tenant(b, |conn| {
            async move { jobs::enqueue(conn, NewJob::new("test.record", Some(a), json!({}))).await }
                .scope_boxed()
        })
        .await;
    assert!(forged.is_err());
    let rows: i64 = pg
        .query_one("SELECT count(*) FROM jobs", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(rows, 2);
    // A cancels its own queued job.
    let cancelled = db
        .tenant(a, |conn| {
            async move { queue::cancel(conn, id).await }.scope_boxed()
        })
        .await
        .unwrap();
    assert!(cancelled);
}

#[tokio::test]
async fn claims_read_only_unfinished_jobs_through_the_claim_index() {
    let url = fresh_database().await;
    let pg = superuser(&url).await;
    // Many finished jobs, a few due ones, as a queue looks after a while.
    pg.batch_execute(
        "INSERT INTO jobs (kind, payload, state, attempts, max_attempts, finished_at) \
           SELECT 'test.record', '{}', 'succeeded', 1, 1, now() FROM generate_series(1, 20000); \
         INSERT INTO jobs (kind, payload, max_attempts) \
           SELECT 'test.record', '{}', 1 FROM generate_series(1, 10); \
         INSERT INTO jobs (kind, payload, max_attempts, run_at) \
           SELECT 'test.record', '{}', 1, now() + interval '1 day' FROM generate_series(1, 1000); \
         ANALYZE jobs",
    )
    .await
    .unwrap();
    // The plans of the statements inside the functions, sent to this client as notices.
    let (client, mut conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap();
    let plans = Arc::new(Mutex::new(Vec::new()));
    let sink = plans.clone();
    tokio::spawn(async move {
        use futures_util::StreamExt;
        let mut messages = futures_util::stream::poll_fn(move |cx| conn.poll_message(cx));
        while let Some(Ok(message)) = messages.next().await {
            if let tokio_postgres::AsyncMessage::Notice(n) = message {
                sink.lock().unwrap().push(n.message().to_string());
            }
        }
    });
    client
        .batch_execute(
            "LOAD 'auto_explain'; SET auto_explain.log_min_duration = 0; \
             SET auto_explain.log_nested_statements = on; SET auto_explain.log_level = notice",
        )
        .await
        .unwrap();
    let claimed = client
        .query(
            "SELECT * FROM fahwa_jobs_claim(ARRAY['test.record'], 4, 60, 'w')",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(claimed.len(), 4);
    client
        .query("SELECT fahwa_jobs_next_due(ARRAY['test.record'])", &[])
        .await
        .unwrap();
    let plans = plans.lock().unwrap().clone();
    // The statements of the functions' bodies (the calls above read no table).
    let inner: Vec<&String> = plans.iter().filter(|p| p.contains("FROM jobs j")).collect();
    assert_eq!(inner.len(), 2, "{plans:#?}");
    for plan in &inner {
        assert!(plan.contains("Index Scan using jobs_claim_idx"), "{plan}");
        assert!(!plan.contains("Seq Scan"), "{plan}");
    }
    // The claim reads due jobs in the index's order and stops before those due later.
    assert!(
        inner[0].contains("Index Cond: (run_at <= now())"),
        "{}",
        inner[0]
    );
    assert!(!inner[0].contains("Sort"), "{}", inner[0]);
}
