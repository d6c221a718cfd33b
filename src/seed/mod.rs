//! `fahwa seed`: realistic, deterministic data for a tenant, written with binary COPY and then
//! rolled up in one pass, and revenue that fits its users (`revenue.rs`).

mod model;
pub mod revenue;

use std::time::Instant;

use anyhow::Context;
use chrono::{DateTime, Duration, DurationRound, Utc};
use futures_util::pin_mut;
use indicatif::{ProgressBar, ProgressStyle};
use scoped_futures::ScopedFutureExt;
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::Type;
use uuid::Uuid;

pub use model::{Model, SeedEvent};

use crate::accounts::sessions::{self, SignUpOwner};
use crate::app::App;
use crate::db::Scope;
use crate::db::tenants::{TenantChanges, TenantRow};
use crate::events::{partitions, rollups};

/// The properties the generator writes that dashboards filter and split by.
pub const DEFAULT_TRACKED: [&str; 3] = ["plan", "country", "platform"];

#[derive(Debug, Clone)]
pub struct SeedOptions {
    pub tenant: String,
    pub users: usize,
    pub events: u64,
    pub days: u32,
    pub seed: u64,
    /// Property keys the tenant tracks (kept by the rollups for fast filters and breakdowns).
    pub track: Vec<String>,
    /// Draw a progress bar (off in tests and when stderr is not a terminal).
    pub progress: bool,
}

#[derive(Debug, Clone, Copy)]
pub struct SeedReport {
    pub tenant_id: Uuid,
    pub events: u64,
    pub revenue_changes: u64,
    pub write_secs: f64,
    pub rollup_secs: f64,
}

/// The tenant with this slug, created (with a random owner password, printed) if missing.
pub async fn ensure_tenant(app: &App, slug: &str) -> anyhow::Result<Uuid> {
    let password = crate::auth::secrets::generate("seed-");
    let email = format!("owner@{slug}.example.com");
    let owner = SignUpOwner {
        name: "Seed Owner",
        email: &email,
        password: &password,
    };
    let (id, created) = sessions::ensure_tenant(app, slug, slug, owner).await?;
    if created {
        println!("created tenant {slug}: log in as {email} / {password}");
    }
    Ok(id)
}

pub async fn seed(app: &App, opts: &SeedOptions) -> anyhow::Result<SeedReport> {
    anyhow::ensure!(opts.users > 0, "--users must be at least 1");
    anyhow::ensure!((1..=3650).contains(&opts.days), "--days must be 1 to 3650");
    let track = crate::validate::tracked_properties(opts.track.clone(), "--track")?;
    let tenant = ensure_tenant(app, &opts.tenant).await?;
    app.db
        .tenant(tenant, |conn| {
            async move {
                let changes = TenantChanges {
                    tracked_properties: Some(track),
                    ..TenantChanges::default()
                };
                TenantRow::update(conn, tenant, &changes).await
            }
            .scope_boxed()
        })
        .await?;
    let end = Utc::now()
        .duration_trunc(Duration::days(1))
        .unwrap_or_else(|_| Utc::now());
    let start = end - Duration::days(opts.days as i64);
    let model = Model::new(opts.seed, opts.users, opts.events, start, end);

    app.db
        .scoped(Scope::Anonymous, |conn| {
            async move { partitions::ensure(conn, start, end).await }.scope_boxed()
        })
        .await?;

    let bar = if opts.progress {
        let bar = ProgressBar::new(opts.events);
        bar.set_style(
            ProgressStyle::with_template(
                "{spinner} {msg} [{bar:40}] {human_pos}/{human_len} events ({per_sec}, {eta} left)",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        bar.set_message(format!("seeding {}", opts.tenant));
        bar
    } else {
        ProgressBar::hidden()
    };
    let drop_slot = async || match crate::live::capture::drop_slot(&app.config.database_url).await {
        Ok(crate::live::capture::SlotDrop::InUse) => tracing::warn!(
            "a running server captures changes: it decodes the seeded events, passing over \
                 what exceeds FAHWA_CAPTURE_MAX_BACKLOG_MB"
        ),
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e, "could not drop the change capture slot"),
    };
    // A bulk load is not streamed live: without a slot its rows are not kept for decoding.
    drop_slot().await;
    let started = Instant::now();
    // One COPY stream per core: PostgreSQL spends most of the time on index upkeep.
    let model = std::sync::Arc::new(model);
    let workers = std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .clamp(1, 4);
    let mut tasks = Vec::new();
    for w in 0..workers {
        let (url, model, bar) = (app.config.database_url.clone(), model.clone(), bar.clone());
        tasks.push(tokio::spawn(async move {
            copy_events(&url, tenant, &model, &bar, w, workers).await
        }));
    }
    let mut written = 0;
    for t in tasks {
        written += t.await??;
    }
    bar.finish_and_clear();
    let write_secs = started.elapsed().as_secs_f64();

    let revenue_changes = revenue::write(&app.config.database_url, tenant, &model, start, end)
        .await
        .context("writing the revenue")?;
    // Again: a server that led capture when the load began may have stopped since, leaving a
    // slot that would hold the load's WAL until a server runs again.
    drop_slot().await;
    let rolled = Instant::now();
    rollups::rebuild(&app.db, tenant).await?;
    analyze(&app.config.database_url).await?;
    let rollup_secs = rolled.elapsed().as_secs_f64();
    Ok(SeedReport {
        tenant_id: tenant,
        events: written,
        revenue_changes,
        write_secs,
        rollup_secs,
    })
}

/// Streams the model's events into `events` with binary COPY. COPY cannot run under row-level
/// security, so this uses the connecting (owner) role, as migrations do.
/// A binary COPY into `events` (tenant, name, user, occurred_at, received_at, properties).
/// COPY cannot run under row-level security, so `tx` must belong to the owner role.
pub async fn copy_writer(
    tx: &tokio_postgres::Transaction<'_>,
) -> anyhow::Result<BinaryCopyInWriter> {
    let sink = tx
        .copy_in("COPY events (tenant_id, name, user_id, occurred_at, received_at, properties) FROM STDIN BINARY")
        .await
        .context("COPY into events was refused (it needs the database owner role)")?;
    Ok(BinaryCopyInWriter::new(
        sink,
        &[
            Type::UUID,
            Type::TEXT,
            Type::TEXT,
            Type::TIMESTAMPTZ,
            Type::TIMESTAMPTZ,
            Type::JSONB,
        ],
    ))
}

/// Writes the events of every `workers`-th user, starting with user `worker`.
/// Fresh statistics after a bulk load, so that the first dashboards get good plans (autovacuum
/// would catch up later). Runs as the database owner: only an owner may analyze.
async fn analyze(url: &str) -> anyhow::Result<()> {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .context("cannot connect to PostgreSQL")?;
    let driver = tokio::spawn(connection);
    client
        .batch_execute(
            "ANALYZE events, segment_days, event_counts_daily, user_days, active_transitions, \
             daily_activity, end_users, revenue_changes, customers, exchange_rates",
        )
        .await?;
    driver.abort();
    Ok(())
}

async fn copy_events(
    url: &str,
    tenant: Uuid,
    model: &Model,
    bar: &ProgressBar,
    worker: usize,
    workers: usize,
) -> anyhow::Result<u64> {
    let (mut client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .context("cannot connect to PostgreSQL")?;
    let driver = tokio::spawn(connection);
    let tx = client.transaction().await?;
    let writer = copy_writer(&tx).await?;
    pin_mut!(writer);
    let mut n = 0u64;
    let mut unreported = 0u64;
    for i in (worker..model.users.len()).step_by(workers) {
        let user = &model.users[i].id;
        for e in model.events_of(i) {
            let at: DateTime<Utc> = e.at;
            writer
                .as_mut()
                .write(&[&tenant, &e.name, user, &at, &at, &e.properties])
                .await?;
            n += 1;
            unreported += 1;
        }
        if unreported >= 10_000 {
            bar.inc(unreported);
            unreported = 0;
        }
    }
    bar.inc(unreported);
    writer.finish().await?;
    tx.commit().await?;
    drop(client);
    driver.abort();
    Ok(n)
}
