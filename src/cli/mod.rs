//! The `fahwa` command line: `serve`, `worker`, `migrate`, `seed`, `bench`, `retention`,
//! `drop-capture-slot`, `print-schema`, `create-operator`.

mod demo;
mod operations;
mod operator;

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Parser, Subcommand};

use crate::app::Keys;
use crate::config::{Config, ConfigFlags};
use crate::db::local_cluster::{self, LocalCluster};
use crate::{App, http, logging};

#[derive(Parser)]
#[command(
    name = "fahwa",
    version,
    about = "Live product and revenue analytics for SaaS companies"
)]
pub struct Cli {
    /// TOML file with settings (lower priority than environment variables and flags)
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server
    Serve {
        #[command(flatten)]
        flags: ConfigFlags,
        /// Create (or reuse) a demo tenant with one member per role, and print how to log in
        #[arg(long)]
        demo: bool,
    },
    /// Run jobs (report runs, mail) and report schedules without serving HTTP; any number of
    /// workers and servers share the queue, and no job runs twice at once
    Worker {
        #[command(flatten)]
        flags: ConfigFlags,
    },
    /// Create the database if needed and run pending migrations
    Migrate {
        #[command(flatten)]
        flags: ConfigFlags,
        /// Revert every migration instead (destroys all data)
        #[arg(long)]
        revert_all: bool,
    },
    /// Generate realistic events for a tenant (created if missing)
    Seed {
        #[command(flatten)]
        flags: ConfigFlags,
        /// The tenant's slug
        #[arg(long)]
        tenant: String,
        #[arg(long, default_value_t = 10_000)]
        users: usize,
        #[arg(long, default_value_t = 1_000_000)]
        events: u64,
        /// Days of history, ending today
        #[arg(long, default_value_t = 90)]
        days: u32,
        /// Random seed: the same seed gives the same data
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Property keys the tenant tracks, comma-separated (empty for none)
        #[arg(long, value_delimiter = ',', default_value = "plan,country,platform")]
        track: Vec<String>,
    },
    /// Measure latency, throughput and memory against a seeded database (see README)
    Bench {
        #[command(flatten)]
        flags: ConfigFlags,
        #[command(flatten)]
        options: crate::bench::BenchOptions,
    },
    /// Apply every tenant's event retention now (the server also does it daily)
    Retention {
        #[command(flatten)]
        flags: ConfigFlags,
    },
    /// Drop this database's change capture slot (a running server creates it again)
    DropCaptureSlot {
        #[command(flatten)]
        flags: ConfigFlags,
    },
    /// Set a tenant's exchange rates from a CSV file of `currency,date,rate` lines: one unit of
    /// the currency in the tenant's currency on that UTC day (as the setExchangeRates mutation)
    SetExchangeRates {
        #[command(flatten)]
        flags: ConfigFlags,
        /// The tenant's slug
        #[arg(long)]
        tenant: String,
        /// The CSV file; `-` reads standard input
        #[arg(long = "file")]
        csv: String,
    },
    /// Compare a tenant's revenue with what its providers' subscriptions imply, customer by
    /// customer; exits with status 1 when any differs
    Reconcile {
        #[command(flatten)]
        flags: ConfigFlags,
        /// The tenant's slug
        #[arg(long)]
        tenant: String,
        /// One integration's id (default: every standing one)
        #[arg(long)]
        integration: Option<String>,
        /// The UTC day whose end is compared (default: now)
        #[arg(long)]
        day: Option<chrono::NaiveDate>,
    },
    /// Register every operation of the `.graphql` files in a folder as a trusted document (the
    /// allow-list of FAHWA_TRUSTED_DOCUMENTS)
    TrustDocuments {
        #[command(flatten)]
        flags: ConfigFlags,
        /// The folder, e.g. the clients' contract
        #[arg(long)]
        dir: PathBuf,
        /// Where to write each operation's hash, as JSON `{ "Name": "sha256" }`, for clients
        #[arg(long)]
        manifest: Option<PathBuf>,
    },
    /// Seal every stored secret again under the first of FAHWA_SECRET_KEYS
    RotateKey {
        #[command(flatten)]
        flags: ConfigFlags,
    },
    /// Print the GraphQL schema (SDL); `schema.graphql` holds its output
    PrintSchema,
    /// Create a platform operator (or make an existing member one)
    CreateOperator {
        #[command(flatten)]
        flags: ConfigFlags,
        #[arg(long)]
        email: String,
        #[arg(long)]
        password: String,
        #[arg(long, default_value = "Operator")]
        name: String,
        /// The tenant the operator signs in to (created if missing)
        #[arg(long, default_value = operator::OPERATOR_TENANT)]
        tenant: String,
    },
}

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let file = cli.config.as_deref();
    match cli.command {
        Command::PrintSchema => {
            print!("{}", crate::graphql::sdl());
            Ok(())
        }
        Command::Serve { flags, demo } => {
            let (mut config, keys) = load(file, &flags)?;
            if demo && config.env == crate::config::Environment::Production {
                anyhow::bail!(
                    "--demo creates members with published passwords; it is refused in production"
                );
            }
            let own = local_cluster::when_unconfigured(&mut config).await?;
            let served = serve(config, keys, demo).await;
            stop(own);
            served
        }
        Command::Worker { flags } => {
            let (config, keys, own) = prepare(file, &flags).await?;
            let worked = work(config, keys).await;
            stop(own);
            worked
        }
        Command::Migrate { flags, revert_all } => {
            let mut config = Config::load(file, &flags)?;
            logging::init(config.log_format);
            let _own = local_cluster::when_unconfigured(&mut config).await?;
            let url = &config.database_url;
            crate::db::migrate::create_database_if_missing(url).await?;
            let n = if revert_all {
                crate::db::migrate::revert_all(url).await?
            } else {
                crate::db::migrate::run_pending(url).await?
            };
            println!(
                "{} {n} migration(s)",
                if revert_all { "reverted" } else { "applied" }
            );
            Ok(())
        }
        Command::Seed {
            flags,
            tenant,
            users,
            events,
            days,
            seed,
            track,
        } => {
            let (config, keys, _own) = prepare(file, &flags).await?;
            let app = App::with_keys(config, keys).await?;
            let opts = crate::seed::SeedOptions {
                tenant,
                users,
                events,
                days,
                seed,
                track: track.into_iter().filter(|k| !k.is_empty()).collect(),
                progress: std::io::IsTerminal::is_terminal(&std::io::stderr()),
            };
            let report = crate::seed::seed(&app, &opts).await?;
            let total = report.write_secs + report.rollup_secs;
            println!(
                "seeded {} events and {} revenue changes for {} users over {} days in {:.1} s: events written at {:.0} rows/s, rolled up in {:.1} s; {:.0} events/s overall",
                report.events,
                report.revenue_changes,
                opts.users,
                opts.days,
                total,
                report.events as f64 / report.write_secs.max(1e-9),
                report.rollup_secs,
                report.events as f64 / total.max(1e-9),
            );
            Ok(())
        }
        Command::Bench { flags, options } => {
            let mut config = Config::load(file, &flags)?;
            logging::init(crate::config::LogFormat::Text);
            let _own = local_cluster::when_unconfigured(&mut config).await?;
            crate::bench::run(config, options).await
        }
        Command::DropCaptureSlot { flags } => {
            let mut config = Config::load(file, &flags)?;
            logging::init(config.log_format);
            let _own = local_cluster::when_unconfigured(&mut config).await?;
            use crate::live::capture::{SlotDrop, drop_slot};
            match drop_slot(&config.database_url).await? {
                SlotDrop::Dropped => println!("dropped the change capture slot"),
                SlotDrop::NoSlot => println!("this database has no change capture slot"),
                SlotDrop::InUse => anyhow::bail!(
                    "a running server is reading the change capture slot; stop every server first"
                ),
            }
            Ok(())
        }
        Command::SetExchangeRates { flags, tenant, csv } => {
            let (config, keys, _own) = prepare(file, &flags).await?;
            let text = if csv == "-" {
                std::io::read_to_string(std::io::stdin())?
            } else {
                std::fs::read_to_string(&csv).with_context(|| format!("cannot read {csv}"))?
            };
            let rates = crate::revenue::rates::parse_csv(&text)?;
            let app = App::with_keys(config, keys).await?;
            let id = app
                .db
                .scoped(crate::db::Scope::Anonymous, |conn| {
                    let tenant = tenant.clone();
                    scoped_futures::ScopedFutureExt::scope_boxed(async move {
                        crate::db::tenants::TenantRow::id_by_slug(conn, &tenant).await
                    })
                })
                .await?
                .with_context(|| format!("no tenant has the slug {tenant}"))?;
            let meta = crate::db::audit::RequestMeta {
                ip: None,
                user_agent: Some("fahwa set-exchange-rates".into()),
                request_id: None,
            };
            let writer = crate::ingestion::Writer {
                db: &app.db,
                mirror: app.version_mirror(),
                principal: &crate::auth::Principal::Anonymous,
                meta: &meta,
            };
            let set =
                crate::revenue::rates::store(writer, id, crate::db::audit::Actor::System, rates)
                    .await?;
            println!("set {set} exchange rates for {tenant}");
            Ok(())
        }
        Command::Retention { flags } => {
            let (config, keys, _own) = prepare(file, &flags).await?;
            let app = App::with_keys(config, keys).await?;
            let r = crate::events::retention::apply(&app.db, chrono::Utc::now()).await?;
            println!(
                "retention: {} events deleted from {} tenants, {} partitions dropped",
                r.events_deleted, r.tenants_trimmed, r.partitions_dropped
            );
            Ok(())
        }
        Command::Reconcile {
            flags,
            tenant,
            integration,
            day,
        } => {
            let (config, keys, _own) = prepare(file, &flags).await?;
            let app = App::with_keys(config, keys).await?;
            let agree = operations::reconcile(&app, &tenant, integration.as_deref(), day).await?;
            anyhow::ensure!(agree, "some customers' revenue differs from the provider's");
            Ok(())
        }
        Command::TrustDocuments {
            flags,
            dir,
            manifest,
        } => {
            let (config, keys, _own) = prepare(file, &flags).await?;
            let app = App::with_keys(config, keys).await?;
            operations::trust_documents(&app, &dir, manifest.as_deref()).await
        }
        Command::RotateKey { flags } => {
            let (config, keys, _own) = prepare(file, &flags).await?;
            let app = App::with_keys(config, keys).await?;
            operations::rotate_key(&app).await
        }
        Command::CreateOperator {
            flags,
            email,
            password,
            name,
            tenant,
        } => {
            let (config, keys, _own) = prepare(file, &flags).await?;
            let app = App::with_keys(config, keys).await?;
            operator::create(&app, &tenant, &name, &email, &password).await
        }
    }
}

/// The configuration, the logs, and the keys: a bad key is refused before anything starts.
fn load(file: Option<&Path>, flags: &ConfigFlags) -> anyhow::Result<(Config, Keys)> {
    let config = Config::load(file, flags)?;
    logging::init(config.log_format);
    let keys = Keys::from_config(&config)?;
    Ok((config, keys))
}

/// What a command that builds the application starts with: `load`, then Fahwa's own
/// PostgreSQL when no database is configured.
async fn prepare(
    file: Option<&Path>,
    flags: &ConfigFlags,
) -> anyhow::Result<(Config, Keys, Option<LocalCluster>)> {
    let (mut config, keys) = load(file, flags)?;
    let own = local_cluster::when_unconfigured(&mut config).await?;
    Ok((config, keys, own))
}

fn stop(own: Option<LocalCluster>) {
    if let Some(cluster) = own
        && let Err(e) = cluster.stop()
    {
        tracing::warn!(error = %e, "could not stop Fahwa's own PostgreSQL");
    }
}

async fn serve(config: Config, keys: Keys, demo: bool) -> anyhow::Result<()> {
    let listen = config.listen;
    let scheme = if config.tls_cert.is_some() {
        "https"
    } else {
        "http"
    };
    let app = App::with_keys(config, keys).await?;
    if demo {
        demo::ensure(&app).await?;
    }
    spawn_partition_upkeep(&app);
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    tracing::info!(
        "listening on {scheme}://{listen}  (GraphQL /api/v1/graphql, playground {scheme}://{listen}/playground)"
    );
    http::serve(app, listener, http::shutdown_signal()).await
}

async fn work(config: Config, keys: Keys) -> anyhow::Result<()> {
    let app = App::with_keys(config, keys).await?;
    let background = crate::background::spawn(&app);
    tracing::info!(
        kinds = ?crate::background::registry(&app).kinds(),
        "worker running; stop it with Ctrl-C"
    );
    http::shutdown_signal().await;
    background.shutdown().await;
    Ok(())
}

/// Keeps event partitions a few months ahead, so ingestion never waits on DDL, and applies the
/// tenants' retention. Safe on every instance at once: both are idempotent and take locks.
fn spawn_partition_upkeep(app: &App) {
    let db = app.db.clone();
    tokio::spawn(async move {
        let mut every = tokio::time::interval(std::time::Duration::from_secs(6 * 3600));
        loop {
            every.tick().await;
            match crate::events::partitions::ensure_ahead(&db).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(created = n, "created event partitions"),
                Err(e) => tracing::warn!(error = %e, "could not create event partitions"),
            }
            match crate::events::retention::apply(&db, chrono::Utc::now()).await {
                Ok(r) if r.events_deleted > 0 || r.partitions_dropped > 0 => tracing::info!(
                    events = r.events_deleted,
                    tenants = r.tenants_trimmed,
                    partitions = r.partitions_dropped,
                    "applied retention"
                ),
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "could not apply retention"),
            }
        }
    });
}
