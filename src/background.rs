//! Work that runs beside the requests, on every instance that runs a worker (`serve`, or
//! `fahwa worker`): the job queue's worker with every kind of job registered, the schedules of
//! reports, and the retention of report files.

use std::time::Duration;

use chrono::Utc;
use scoped_futures::ScopedFutureExt;
use tokio::task::JoinHandle;

use crate::App;
use crate::jobs::{self, Registry, WorkerOptions};

/// The background work of one instance; dropping it stops everything at once.
pub struct Background {
    worker: Option<jobs::Worker>,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for Background {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl Background {
    /// Stops claiming jobs and lets the running ones finish (for a bounded time).
    pub async fn shutdown(mut self) {
        if let Some(worker) = self.worker.take() {
            worker.shutdown().await;
        }
    }
}

/// Every kind of job this build knows.
pub fn registry(app: &App) -> Registry {
    let mut registry = Registry::new();
    crate::reports::worker::register(&mut registry, &app.reports);
    crate::connectors::sync::register(&mut registry, &app.connectors);
    registry
}

pub fn spawn(app: &App) -> Background {
    let config = &app.config;
    if app.reports.mailer.is_none() {
        tracing::info!("mail is off (no smtp_host): scheduled reports are stored, not mailed");
    }
    let options = WorkerOptions {
        concurrency: config.worker_concurrency.max(1),
        lease: Duration::from_secs(config.job_lease_secs),
        poll: Duration::from_secs(config.job_poll_secs),
        ..WorkerOptions::default()
    };
    let worker = jobs::spawn(
        app.db.clone(),
        config.database_url.clone(),
        registry(app),
        options,
    );
    let mut tasks = Vec::new();
    let services = app.reports.clone();
    let tick = Duration::from_millis(config.schedule_tick_ms);
    tasks.push(tokio::spawn(async move {
        let mut every = tokio::time::interval(tick);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            every.tick().await;
            match crate::reports::schedule::tick(&services, Utc::now()).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(runs = n, "made the runs of due report schedules"),
                Err(e) => e.report("reports: the schedule tick"),
            }
        }
    }));
    let services = app.reports.clone();
    let retention = chrono::Duration::days(i64::from(config.report_retention_days));
    tasks.push(tokio::spawn(async move {
        let mut every = tokio::time::interval(Duration::from_secs(3600));
        loop {
            every.tick().await;
            match expire_report_files(&services, Utc::now() - retention).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(files = n, "deleted report files past their retention"),
                Err(e) => e.report("reports: file retention"),
            }
            match prune_jobs(&services.db, Utc::now() - JOB_HISTORY).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(jobs = n, "deleted finished jobs past their history"),
                Err(e) => e.report("jobs: pruning finished jobs"),
            }
        }
    }));
    Background {
        worker: Some(worker),
        tasks,
    }
}

/// How long finished jobs stay in the table.
pub const JOB_HISTORY: chrono::Duration = chrono::Duration::days(7);

/// Deletes the jobs that finished before `before`.
pub async fn prune_jobs(
    db: &crate::db::Db,
    before: chrono::DateTime<Utc>,
) -> crate::error::AppResult<i64> {
    let mut total = 0i64;
    loop {
        let n = db
            .outside_tenants(|conn| {
                async move { jobs::queue::prune(conn, before, 1_000).await }.scope_boxed()
            })
            .await?;
        total += i64::from(n);
        if n < 1_000 {
            return Ok(total);
        }
    }
}

/// Deletes the files of runs that finished before `before`, and what dead writers left.
pub async fn expire_report_files(
    services: &crate::reports::Services,
    before: chrono::DateTime<Utc>,
) -> crate::error::AppResult<usize> {
    let mut deleted = 0;
    loop {
        let keys = services
            .db
            .outside_tenants(|conn| {
                async move { crate::db::reports::expire_files(conn, before, 500).await }
                    .scope_boxed()
            })
            .await?;
        for key in &keys {
            match services.storage.delete(key).await {
                Ok(()) => deleted += 1,
                Err(e) => e.report("reports: deleting an expired file"),
            }
        }
        if keys.len() < 500 {
            break;
        }
    }
    services
        .storage
        .sweep_partial(Duration::from_secs(86_400))
        .await?;
    Ok(deleted)
}
