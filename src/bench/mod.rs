//! `fahwa bench`: seeds its own database, drives a real server over HTTP with concurrent
//! clients, and prints latency percentiles, throughput and the server's peak memory per
//! scenario, beside the naive SQL and a raw COPY for scale.

mod live;
mod load;
mod member;
mod reports;
mod scenarios;
mod server;

use std::time::{Duration, Instant};

use anyhow::Context;
use chrono::{DateTime, DurationRound, Utc};
use futures_util::pin_mut;
use scoped_futures::ScopedFutureExt;
use serde::Serialize;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::app::App;
use crate::auth::secrets;
use crate::config::Config;
use crate::db::api_keys::{ApiKeyRow, NewApiKey};
use crate::db::tenants::TenantRow;
use crate::seed::{Model, SeedOptions};
use load::LoadResult;
use server::Server;

#[derive(Debug, Clone, clap::Args)]
pub struct BenchOptions {
    #[arg(long, default_value_t = 10_000_000)]
    pub events: u64,
    #[arg(long, default_value_t = 100_000)]
    pub users: usize,
    /// Days of history
    #[arg(long, default_value_t = 400)]
    pub days: u32,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Concurrent clients per scenario
    #[arg(long, default_value_t = 32)]
    pub concurrency: usize,
    /// Seconds per scenario and mode
    #[arg(long, default_value_t = 10)]
    pub seconds: u64,
    /// Events sent through the REST path for the ingestion figure (0 skips it)
    #[arg(long, default_value_t = 200_000)]
    pub ingest_events: u64,
    /// Drop and re-seed the bench database
    #[arg(long)]
    pub reseed: bool,
    /// The bench database (default: the configured server's, named fahwa_bench)
    #[arg(long)]
    pub bench_database_url: Option<String>,
    /// Only scenarios whose name contains one of these (comma-separated)
    #[arg(long, value_delimiter = ',')]
    pub only: Vec<String>,
    /// Print one JSON document instead of a table
    #[arg(long)]
    pub json: bool,
    /// Send the scenarios as a signed-in ANALYST (an access token, as a dashboard does) instead
    /// of with a READ API key
    #[arg(long)]
    pub as_member: bool,
    /// WebSocket subscribers of the Live scenario (0 skips it)
    #[arg(long, default_value_t = 10_000)]
    pub subscribers: usize,
    /// Events per second ingested during the Live scenario
    #[arg(long, default_value_t = 5_000)]
    pub live_rate: u64,
    /// Seconds of ingestion during the Live scenario
    #[arg(long, default_value_t = 20)]
    pub live_seconds: u64,
}

impl BenchOptions {
    /// Whether `--only` leaves the scenario named `name` in.
    fn wants(&self, name: &str) -> bool {
        self.only.is_empty() || self.only.iter().any(|o| name.contains(o.as_str()))
    }
}

#[derive(Debug, Serialize)]
struct ScenarioFigures {
    scenario: String,
    mode: &'static str,
    #[serde(flatten)]
    load: LoadResult,
    /// SQL statements the server sent per request while measured (the session check and
    /// transaction control included).
    statements_per_request: Option<f64>,
    server_peak_mib: Option<f64>,
}

#[derive(Debug, Serialize)]
struct Report {
    events: u64,
    users: usize,
    concurrency: usize,
    scenarios: Vec<ScenarioFigures>,
    live: Value,
    naive: Value,
    ingestion: Value,
    report_run: Value,
}

const SLUG: &str = "bench";

fn bench_url(config: &Config, opts: &BenchOptions) -> String {
    opts.bench_database_url.clone().unwrap_or_else(|| {
        let base = config.database_url.split('?').next().unwrap_or_default();
        match base.rsplit_once('/') {
            Some((server, _)) => format!("{server}/fahwa_bench"),
            None => format!("{base}/fahwa_bench"),
        }
    })
}

fn say(opts: &BenchOptions, line: impl AsRef<str>) {
    if opts.json {
        eprintln!("{}", line.as_ref());
    } else {
        println!("{}", line.as_ref());
    }
}

pub async fn run(config: Config, opts: BenchOptions) -> anyhow::Result<()> {
    let url = bench_url(&config, &opts);
    if opts.reseed {
        drop_database(&url).await?;
    }
    let mut config = config;
    config.database_url = url.clone();
    let app = App::build(config.clone()).await?;
    let tenant = ensure_seeded(&app, &opts).await?;
    // The last run's raw COPY (made with no server running) would otherwise be decoded by this
    // run's first server while it is measured.
    if let Err(e) = crate::live::capture::drop_slot(&url).await {
        tracing::warn!(error = %e, "could not drop the bench database's capture slot");
    }
    let key = api_key(&app, tenant, "READ").await?;
    let end = Utc::now().duration_trunc(chrono::Duration::days(1))?;
    member::ensure(&app, tenant).await?;
    let report = reports::prepare(&app, tenant, member::EMAIL).await?;
    let mut all = scenarios::all(end);
    all.push(scenarios::Scenario {
        name: "Reports, a page of 100",
        body: json!({ "query": reports::LIST, "variables": { "first": reports::REPORTS } }),
    });
    all.push(scenarios::Scenario {
        name: "ReportData, 8 widgets",
        body: json!({ "query": reports::DATA, "variables": { "id": report } }),
    });
    let wants_run = opts.wants("Report run");
    let mut report_run = Value::Null;

    let mut figures = Vec::new();
    for (mode, cache) in [("cold", false), ("warm", true)] {
        let server = Server::start(&url, config.redis_url.as_deref(), cache).await?;
        let gql = format!("{}/api/v1/graphql", server.base);
        // Each server signs with a key of its own: a member signs in to each.
        let key = match opts.as_member {
            true => member::access_token(&app, tenant, &gql).await?,
            false => key.clone(),
        };
        for s in &all {
            if !opts.wants(s.name) {
                continue;
            }
            // One client for a second first: warms PostgreSQL's buffers, the server's copy of
            // the tenant's revenue changes (read in the background on first use) and, warm,
            // the metric cache.
            load::run(
                &gql,
                &key,
                s.body.clone(),
                1,
                Duration::from_secs(1),
                usize::MAX,
            )
            .await;
            let sent_before = server.statements().await;
            let result = load::run(
                &gql,
                &key,
                s.body.clone(),
                opts.concurrency,
                Duration::from_secs(opts.seconds),
                usize::MAX,
            )
            .await;
            let statements = match (sent_before, server.statements().await) {
                (Some(a), Some(b)) if result.requests > 0 => {
                    Some((b - a) as f64 / result.requests as f64)
                }
                _ => None,
            };
            say(
                &opts,
                format!(
                    "{:<36} {mode:<4}  {:>6} req  {:>8.1}/s  p50 {:>8.1} ms  p95 {:>8.1} ms  p99 {:>8.1} ms  errors {}  {:.1} statements/req  server peak {:.0} MiB",
                    s.name,
                    result.requests,
                    result.throughput,
                    result.p50_ms,
                    result.p95_ms,
                    result.p99_ms,
                    result.errors,
                    statements.unwrap_or(f64::NAN),
                    server.peak_rss_mib().unwrap_or(0.0)
                ),
            );
            figures.push(ScenarioFigures {
                scenario: s.name.to_string(),
                mode,
                load: result,
                statements_per_request: statements,
                server_peak_mib: server.peak_rss_mib(),
            });
        }
        if mode == "warm" && wants_run {
            let token = member::access_token(&app, tenant, &gql).await?;
            let figures = reports::run_to_csv(&gql, &token, report).await?;
            say(
                &opts,
                format!(
                    "Report run of 8 widgets to CSV: succeeded after {:.3} s, downloaded after {:.3} s ({} rows, {} bytes)",
                    figures["seconds_to_succeeded"].as_f64().unwrap_or_default(),
                    figures["seconds_end_to_end"].as_f64().unwrap_or_default(),
                    figures["rows"],
                    figures["bytes"]
                ),
            );
            report_run = figures;
        }
        server.stop().await;
    }

    let wants_live = opts.wants("Live");
    let live = if opts.subscribers > 0 && wants_live {
        live::run(&app, &url, config.redis_url.as_deref(), &opts).await?
    } else {
        Value::Null
    };
    let naive = naive_comparison(&url, tenant, end, &key, &opts).await?;
    let ingestion = if opts.ingest_events > 0 {
        ingestion(&app, &url, &opts).await?
    } else {
        Value::Null
    };
    if opts.json {
        let report = Report {
            events: opts.events,
            users: opts.users,
            concurrency: opts.concurrency,
            scenarios: figures,
            live,
            naive,
            ingestion,
            report_run,
        };
        println!("{}", serde_json::to_string_pretty(&report)?);
    }
    Ok(())
}

async fn drop_database(url: &str) -> anyhow::Result<()> {
    let config: tokio_postgres::Config = url.parse()?;
    let name = config.get_dbname().context("no database name")?.to_string();
    let mut admin = config.clone();
    admin.dbname("postgres");
    let (client, conn) = admin.connect(tokio_postgres::NoTls).await?;
    let driver = tokio::spawn(conn);
    // A database with a replication slot (change capture) cannot be dropped.
    client
        .execute(
            "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE database = $1",
            &[&name],
        )
        .await?;
    client
        .batch_execute(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
        .await?;
    driver.abort();
    Ok(())
}

async fn events_total(app: &App, tenant: Uuid) -> anyhow::Result<i64> {
    Ok(app
        .db
        .tenant(tenant, |conn| {
            async move { TenantRow::events_total(conn, tenant).await }.scope_boxed()
        })
        .await?)
}

/// A bench database seeded before revenue existed gets the revenue of the same users: the
/// seed's period ends at the midnight after its last event.
async fn add_missing_revenue(app: &App, opts: &BenchOptions, tenant: Uuid) -> anyhow::Result<()> {
    let (client, conn) =
        tokio_postgres::connect(&app.config.database_url, tokio_postgres::NoTls).await?;
    let driver = tokio::spawn(conn);
    let row = client
        .query_one(
            "SELECT (SELECT count(*) FROM revenue_changes WHERE tenant_id = $1), \
               (SELECT date_trunc('day', max(occurred_at) AT TIME ZONE 'UTC') + interval '1 day' \
                FROM events WHERE tenant_id = $1) AT TIME ZONE 'UTC'",
            &[&tenant],
        )
        .await?;
    let (changes, end): (i64, Option<DateTime<Utc>>) = (row.get(0), row.get(1));
    if changes == 0
        && let Some(end) = end
    {
        let start = end - chrono::Duration::days(opts.days as i64);
        let model = crate::seed::Model::new(opts.seed, opts.users, opts.events, start, end);
        let written =
            crate::seed::revenue::write(&app.config.database_url, tenant, &model, start, end)
                .await?;
        client
            .batch_execute("ANALYZE revenue_changes, customers, exchange_rates")
            .await?;
        say(
            opts,
            format!("added {written} revenue changes to the bench tenant"),
        );
    }
    driver.abort();
    Ok(())
}

async fn ensure_seeded(app: &App, opts: &BenchOptions) -> anyhow::Result<Uuid> {
    let tenant = crate::seed::ensure_tenant(app, SLUG).await?;
    let have = events_total(app, tenant).await?;
    if have == opts.events as i64 {
        say(
            opts,
            format!("bench database already holds {have} events; --reseed to start over"),
        );
        add_missing_revenue(app, opts, tenant).await?;
        return Ok(tenant);
    }
    anyhow::ensure!(
        have == 0,
        "the bench tenant holds {have} events, not {}; run with --reseed",
        opts.events
    );
    let seed_opts = SeedOptions {
        tenant: SLUG.into(),
        users: opts.users,
        events: opts.events,
        days: opts.days,
        seed: opts.seed,
        track: crate::seed::DEFAULT_TRACKED
            .iter()
            .map(|k| k.to_string())
            .collect(),
        progress: std::io::IsTerminal::is_terminal(&std::io::stderr()),
    };
    let report = crate::seed::seed(app, &seed_opts).await?;
    say(
        opts,
        format!(
            "seeded {} events and {} revenue changes in {:.1} s (+{:.1} s rollups)",
            report.events, report.revenue_changes, report.write_secs, report.rollup_secs
        ),
    );
    let (client, conn) =
        tokio_postgres::connect(&app.config.database_url, tokio_postgres::NoTls).await?;
    let driver = tokio::spawn(conn);
    client.batch_execute("VACUUM ANALYZE").await?;
    driver.abort();
    Ok(tenant)
}

async fn api_key(app: &App, tenant: Uuid, scope: &str) -> anyhow::Result<String> {
    let secret = secrets::generate(secrets::API_KEY_PREFIX);
    let hash = secrets::digest(&secret);
    let prefix = secrets::display_prefix(&secret);
    let scope = scope.to_string();
    app.db
        .tenant(tenant, |conn| {
            async move {
                ApiKeyRow::insert(
                    conn,
                    &NewApiKey {
                        id: Uuid::new_v4(),
                        tenant_id: tenant,
                        name: "fahwa bench",
                        key_prefix: &prefix,
                        key_hash: &hash,
                        scopes: vec![scope],
                        created_by: None,
                    },
                )
                .await
            }
            .scope_boxed()
        })
        .await?;
    Ok(secret)
}

async fn owner_client(
    url: &str,
) -> anyhow::Result<(tokio_postgres::Client, tokio::task::JoinHandle<()>)> {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls).await?;
    let driver = tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok((client, driver))
}

/// The Engagement numbers computed the plain way, over the raw events.
async fn naive_comparison(
    url: &str,
    tenant: Uuid,
    end: DateTime<Utc>,
    key: &str,
    opts: &BenchOptions,
) -> anyhow::Result<Value> {
    let (client, driver) = owner_client(url).await?;
    let from = end - chrono::Duration::days(90);
    let sqls = [
        "SELECT (occurred_at AT TIME ZONE 'UTC')::date, count(DISTINCT user_id), count(*) FROM events WHERE tenant_id = $1 AND occurred_at >= $2 AND occurred_at < $3 GROUP BY 1",
        "SELECT count(DISTINCT user_id), count(*) FROM events WHERE tenant_id = $1 AND occurred_at >= $2 AND occurred_at < $3",
        "SELECT (f AT TIME ZONE 'UTC')::date, count(*) FROM (SELECT min(occurred_at) AS f FROM events WHERE tenant_id = $1 GROUP BY user_id) s WHERE f >= $2 AND f < $3 GROUP BY 1",
    ];
    let mut runs = Vec::new();
    for _ in 0..3 {
        let started = Instant::now();
        for sql in sqls {
            client.query(sql, &[&tenant, &from, &end]).await?;
        }
        runs.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    runs.sort_by(f64::total_cmp);
    let naive_ms = runs[1];
    driver.abort();

    let server = Server::start(url, None, false).await?;
    let body = scenarios::all(end).remove(0).body;
    let gql = format!("{}/api/v1/graphql", server.base);
    load::run(&gql, key, body.clone(), 1, Duration::from_secs(60), 1).await;
    let ours = load::run(
        &gql,
        key,
        body,
        1,
        Duration::from_secs(opts.seconds.min(5)),
        200,
    )
    .await;
    server.stop().await;
    let ratio = naive_ms / ours.p50_ms.max(1e-9);
    say(
        opts,
        format!(
            "naive SQL for Engagement 90 days by DAY: {naive_ms:.0} ms; Fahwa cold, one client: p50 {:.1} ms; {ratio:.0}x faster",
            ours.p50_ms
        ),
    );
    Ok(json!({ "naive_ms": naive_ms, "fahwa_cold_p50_ms": ours.p50_ms, "ratio": ratio }))
}

/// REST ingestion in batches of 1,000 beside a raw COPY of the same rows into the same table.
async fn ingestion(app: &App, url: &str, opts: &BenchOptions) -> anyhow::Result<Value> {
    let suffix = &Uuid::new_v4().simple().to_string()[..8];
    let rest_slug = format!("ingest-{suffix}");
    let copy_slug = format!("copy-{suffix}");
    let rest_tenant = crate::seed::ensure_tenant(app, &rest_slug).await?;
    let copy_tenant = crate::seed::ensure_tenant(app, &copy_slug).await?;
    let key = api_key(app, rest_tenant, "INGEST").await?;
    // Tracked like the seeded tenant, so the segment rollup is part of the cost.
    let (mut owner, owner_driver) = owner_client(url).await?;
    let tracked: Vec<String> = crate::seed::DEFAULT_TRACKED.map(String::from).to_vec();
    owner
        .execute(
            "UPDATE tenants SET tracked_properties = $2, rollup_properties = $2 WHERE id = $1",
            &[&rest_tenant, &tracked],
        )
        .await?;

    let end = Utc::now().duration_trunc(chrono::Duration::hours(1))?;
    let model = Model::new(
        opts.seed + 1,
        5_000,
        opts.ingest_events,
        end - chrono::Duration::days(30),
        end,
    );
    let mut rows = Vec::with_capacity(opts.ingest_events as usize);
    for i in 0..model.users.len() {
        rows.extend(model.events_of(i));
    }
    rows.sort_by_key(|e| e.at);
    // Serialized once, before the clock starts: the senders share the server's two cores.
    let bodies: Vec<Vec<u8>> = rows
        .chunks(1_000)
        .map(|chunk| {
            let events: Vec<Value> = chunk
                .iter()
                .map(|e| json!({ "name": e.name, "userId": model.users[e.user].id, "occurredAt": e.at.to_rfc3339(), "properties": e.properties }))
                .collect();
            serde_json::to_vec(&json!({ "events": events }))
        })
        .collect::<Result<_, _>>()?;

    let server = Server::start(url, app.config.redis_url.as_deref(), true).await?;
    let endpoint = format!("{}/api/v1/events", server.base);
    let http = reqwest::Client::new();
    let started = Instant::now();
    let senders = 4;
    let mut tasks = Vec::new();
    let bodies = std::sync::Arc::new(bodies);
    for s in 0..senders {
        let (http, endpoint, key, bodies) =
            (http.clone(), endpoint.clone(), key.clone(), bodies.clone());
        tasks.push(tokio::spawn(async move {
            let mut accepted = 0i64;
            for body in bodies.iter().skip(s).step_by(senders) {
                let r: Value = http
                    .post(&endpoint)
                    .bearer_auth(&key)
                    .header(reqwest::header::CONTENT_TYPE, "application/json")
                    .body(body.clone())
                    .send()
                    .await?
                    .json()
                    .await?;
                accepted += r["accepted"].as_i64().unwrap_or(0);
            }
            anyhow::Ok(accepted)
        }));
    }
    let mut accepted = 0;
    for t in tasks {
        accepted += t.await??;
    }
    let acked_secs = started.elapsed().as_secs_f64();
    // Sustained means the rollups kept up: the clock stops when every delta is merged.
    crate::events::rollups::flush_all(&app.db, true).await?;
    let rest_secs = started.elapsed().as_secs_f64();
    let rest_peak = server.peak_rss_mib();
    server.stop().await;
    anyhow::ensure!(
        accepted == rows.len() as i64,
        "only {accepted} of {} events were accepted",
        rows.len()
    );

    let started = Instant::now();
    let tx = owner.transaction().await?;
    let writer = crate::seed::copy_writer(&tx).await?;
    pin_mut!(writer);
    for e in &rows {
        writer
            .as_mut()
            .write(&[
                &copy_tenant,
                &e.name,
                &model.users[e.user].id,
                &e.at,
                &e.at,
                &e.properties,
            ])
            .await?;
    }
    writer.finish().await?;
    tx.commit().await?;
    let copy_secs = started.elapsed().as_secs_f64();

    for t in [rest_tenant, copy_tenant] {
        owner
            .execute("SELECT fahwa_delete_event_data($1)", &[&t])
            .await?;
        owner
            .execute("DELETE FROM tenants WHERE id = $1", &[&t])
            .await?;
    }
    owner_driver.abort();

    let rest_rate = rows.len() as f64 / rest_secs;
    let copy_rate = rows.len() as f64 / copy_secs;
    say(
        opts,
        format!(
            "ingestion: REST in batches of 1,000 ({senders} senders): {rest_rate:.0} events/s with the rollups caught up ({:.0} events/s acknowledged; server peak {:.0} MiB); raw COPY of the same rows: {copy_rate:.0} rows/s; REST/COPY = {:.2}",
            rows.len() as f64 / acked_secs,
            rest_peak.unwrap_or(0.0),
            rest_rate / copy_rate
        ),
    );
    Ok(json!({
        "events": rows.len(),
        "rest_events_per_s": rest_rate,
        "rest_acknowledged_events_per_s": rows.len() as f64 / acked_secs,
        "copy_rows_per_s": copy_rate,
        "ratio": rest_rate / copy_rate,
        "server_peak_mib": rest_peak,
    }))
}
