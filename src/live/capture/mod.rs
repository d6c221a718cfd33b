//! Change data capture: one instance at a time (the holder of an advisory lock) streams the
//! replication slot over the replication protocol (pgoutput), turns committed events into live
//! messages and newest-bucket values, publishes them, and only then confirms the slot's
//! position: a crash replays what was not confirmed, and never loses it.

pub mod pgoutput;
mod publish;
mod schedule;
pub mod values;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use pgwire_replication::{Lsn, ReplicationClient, ReplicationConfig, ReplicationEvent, TlsConfig};
use tokio_postgres::{Client, NoTls};
use uuid::Uuid;

use self::pgoutput::{Message, Relations};
use self::schedule::{Changes, Schedule};
use crate::db::Db;
use crate::kv::Kv;
use crate::live::Broker;

/// The publications the slot decodes (made by the baseline migration): inserted events, and
/// inserted or updated revenue changes.
pub const PUBLICATIONS: [&str; 2] = ["fahwa_live", "fahwa_live_revenue"];
/// Session advisory lock held by the capture leader, per database.
const LEADER_LOCK: i64 = 0x0066_6168_7761_4c56;
/// At most how often a tenant's metrics are published: its changes that arrive within a tick
/// of its last publication are published together.
const TICK: Duration = Duration::from_millis(250);
/// Events held unpublished at most: beyond it, reading the slot waits for publishing.
const MAX_CHANGES: usize = 20_000;
/// Events of one tenant published per turn at most; the older ones are counted as skipped.
const EVENTS_PER_TURN: usize = 5_000;
/// Tenants published at once (each tenant's messages stay in order: one job per tenant).
const TENANTS_AT_ONCE: usize = 16;
/// How long a quiet tenant's last published values are remembered.
const FORGET_AFTER: Duration = Duration::from_secs(3600);
/// How often the slot's backlog is measured: often enough that a bulk load is noticed while
/// it is written (a status update confirms at most a second behind), at the cost of one
/// catalog read.
const MEASURE_EVERY: Duration = Duration::from_millis(250);

/// The slot of a database: slot names are shared by every database of a server.
pub fn slot_name(database: &str) -> String {
    let clean: String = database
        .chars()
        .map(|c| match c {
            'a'..='z' | '0'..='9' | '_' => c,
            'A'..='Z' => c.to_ascii_lowercase(),
            _ => '_',
        })
        .collect();
    let mut name = format!("fahwa_live_{clean}");
    name.truncate(63);
    name
}

async fn connect(url: &str) -> anyhow::Result<Client> {
    let (client, connection) = tokio_postgres::connect(url, NoTls).await?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!(error = %e, "capture connection ended");
        }
    });
    client
        .batch_execute("SET application_name = 'fahwa-capture'")
        .await?;
    Ok(client)
}

/// This database's slot name, and whether the slot exists.
async fn this_slot(client: &Client) -> anyhow::Result<(String, bool)> {
    let database: String = client
        .query_one("SELECT current_database()::text", &[])
        .await?
        .get(0);
    let slot = slot_name(&database);
    let exists = client
        .query_opt(
            "SELECT 1 FROM pg_replication_slots WHERE slot_name = $1",
            &[&slot],
        )
        .await?
        .is_some();
    Ok((slot, exists))
}

/// This database's slot, created if missing.
async fn ensure_slot(client: &Client) -> anyhow::Result<String> {
    let (slot, exists) = this_slot(client).await?;
    if !exists {
        client
            .execute(
                "SELECT pg_create_logical_replication_slot($1, 'pgoutput')",
                &[&slot],
            )
            .await?;
        tracing::info!(slot, "created the change capture slot");
    }
    Ok(slot)
}

/// What `drop_slot` found.
#[derive(Debug, PartialEq, Eq)]
pub enum SlotDrop {
    Dropped,
    NoSlot,
    /// A running server's capture is reading it; stop the servers first.
    InUse,
}

/// Drops this database's slot (`fahwa drop-capture-slot`, and `fahwa seed` before a bulk load,
/// whose rows are not worth decoding one by one), unless a server leads capture; the next
/// leader creates it again.
pub async fn drop_slot(url: &str) -> anyhow::Result<SlotDrop> {
    let client = connect(url).await?;
    let (slot, exists) = this_slot(&client).await?;
    // A leader is known by its lock (PostgreSQL splits the key into two 32-bit halves): its
    // slot is not active yet between taking the lock and starting the stream.
    let leader: bool = client
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted \
             AND database = (SELECT oid FROM pg_database WHERE datname = current_database()) \
             AND classid::bigint = $1 AND objid::bigint = $2 AND objsubid = 1)",
            &[&(LEADER_LOCK >> 32), &(LEADER_LOCK & 0xFFFF_FFFF)],
        )
        .await?
        .get(0);
    Ok(match (exists, leader) {
        (false, _) => SlotDrop::NoSlot,
        (true, true) => SlotDrop::InUse,
        (true, false) => {
            client
                .execute("SELECT pg_drop_replication_slot($1)", &[&slot])
                .await?;
            SlotDrop::Dropped
        }
    })
}

/// What capture works with.
#[derive(Clone)]
pub struct Capture {
    /// Read over a replication connection of its own.
    pub database_url: String,
    /// Where values are computed from.
    pub db: Db,
    /// Where instances mark what their subscribers follow.
    pub kv: Kv,
    pub broker: Broker,
    /// The slot's backlog (bytes of WAL not yet confirmed) beyond which event rows are passed
    /// over rather than kept for live event feeds, so that capture catches up at the speed of
    /// decoding and the slot holds back a bounded amount of WAL.
    pub max_backlog: u64,
}

/// Runs capture for as long as the process lives: waits to lead, then leads until it fails.
pub async fn run(app: Capture) {
    loop {
        let mut pause = Duration::from_secs(1);
        if let Err(e) = lead(&app).await {
            let text = format!("{e:#}");
            if let Some(why) = text.strip_prefix(CANNOT_DECODE) {
                // Said once, and kept for /readyz, until the server can decode.
                if app.broker.capture_off().is_none() {
                    tracing::error!("live updates are off: {why}");
                }
                app.broker
                    .set_capture_off(Some(why.trim_start_matches(": ").to_string()));
                pause = Duration::from_secs(30);
            } else {
                tracing::warn!(error = %text, "change capture stopped; trying again");
            }
        }
        app.broker.set_leading(false);
        tokio::time::sleep(pause).await;
    }
}

const CANNOT_DECODE: &str = "cannot decode logically";

/// Refuses (with [`CANNOT_DECODE`] and what fixes it) a server that cannot decode logically.
async fn check_decoding(client: &Client) -> anyhow::Result<()> {
    let wal_level: String = client
        .query_one("SELECT current_setting('wal_level')", &[])
        .await?
        .get(0);
    if wal_level != "logical" {
        anyhow::bail!(
            "{CANNOT_DECODE}: the database's PostgreSQL has wal_level = {wal_level}; live updates \
             need wal_level = logical (ALTER SYSTEM SET wal_level = 'logical' and a restart of \
             that server), or leave FAHWA_DATABASE_URL unset and Fahwa runs a PostgreSQL of \
             its own that can"
        );
    }
    Ok(())
}

async fn lead(app: &Capture) -> anyhow::Result<()> {
    let client = connect(&app.database_url).await?;
    check_decoding(&client).await?;
    app.broker.set_capture_off(None);
    loop {
        let got: bool = client
            .query_one("SELECT pg_try_advisory_lock($1)", &[&LEADER_LOCK])
            .await?
            .get(0);
        if got {
            break;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let slot = ensure_slot(&client).await?;
    let mut stream =
        ReplicationClient::connect(replication_config(&app.database_url, &slot)?).await?;
    stream.wait_started().await?;
    tracing::info!(slot, "leading change capture");
    app.broker.set_leading(true);
    let mut relations = Relations::default();
    let mut open: HashMap<Uuid, Changes> = HashMap::new();
    let mut schedule = Schedule::new(TICK, EVENTS_PER_TURN);
    let mut jobs = FuturesUnordered::new();
    let mut lag = tokio::time::interval(MEASURE_EVERY);
    lag.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut xid = 0;
    let mut passing_over = false;
    loop {
        let now = Instant::now();
        while let Some(job) = schedule.next_job(now, TENANTS_AT_ONCE) {
            let app = app.clone();
            jobs.push(async move {
                let tenant = job.tenant;
                (tenant, Instant::now(), publish::publish(&app, job).await)
            });
        }
        let due = schedule.next_due(TENANTS_AT_ONCE);
        tokio::select! {
            event = stream.recv(), if schedule.waiting_rows() < MAX_CHANGES => {
                let Some(event) = event? else {
                    anyhow::bail!("the replication stream ended");
                };
                match event {
                    ReplicationEvent::Begin { xid: begun, .. } => {
                        open.clear();
                        xid = begun;
                    }
                    ReplicationEvent::XLogData { data, .. } => {
                        decode_change(&data, &mut relations, &mut open, !passing_over)?
                    }
                    ReplicationEvent::Commit { end_lsn, .. } => {
                        let mut changes = std::mem::take(&mut open);
                        for c in changes.values_mut() {
                            c.committed_by(xid);
                        }
                        metrics::counter!("fahwa_live_changes_total")
                            .increment(changes.values().map(|c| c.rows.len() as u64 + c.skipped).sum());
                        schedule.commit(changes, end_lsn.0, Instant::now());
                        stream.update_applied_lsn(Lsn(schedule.confirmable()));
                    }
                    // Nothing unpublished: WAL without events is confirmed as it passes.
                    ReplicationEvent::KeepAlive { wal_end, .. }
                        if schedule.is_idle() && open.is_empty() =>
                    {
                        stream.update_applied_lsn(wal_end)
                    }
                    _ => {}
                }
            }
            Some((tenant, started, result)) = jobs.next(), if !jobs.is_empty() => {
                // A failed publish ends this leadership: the next one reads the changes again.
                schedule.done(tenant, result?, Instant::now());
                metrics::histogram!("fahwa_live_publish_seconds").record(started.elapsed().as_secs_f64());
                stream.update_applied_lsn(Lsn(schedule.confirmable()));
            }
            _ = tokio::time::sleep_until(due.unwrap_or(now).into()), if due.is_some() => {}
            _ = lag.tick() => {
                let backlog = report_lag(&client, &slot).await?;
                app.broker.set_capture_backlog(backlog);
                passing_over = pass_over(passing_over, backlog, app.max_backlog);
                schedule.forget_older_than(FORGET_AFTER, Instant::now());
            }
        }
    }
}

/// A replication connection to the database of `url`, streaming `slot`.
fn replication_config(url: &str, slot: &str) -> anyhow::Result<ReplicationConfig> {
    let pg: tokio_postgres::Config = url.parse()?;
    let host = match pg.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
        Some(tokio_postgres::config::Host::Unix(p)) => p.to_string_lossy().into_owned(),
        None => "127.0.0.1".into(),
    };
    let user = pg.get_user().unwrap_or("postgres");
    let password = pg
        .get_password()
        .map(|p| String::from_utf8_lossy(p).into_owned())
        .unwrap_or_default();
    Ok(ReplicationConfig::new(
        host,
        user,
        password,
        pg.get_dbname().unwrap_or(user),
        slot,
        PUBLICATIONS,
    )
    .with_port(pg.get_ports().first().copied().unwrap_or(5432))
    .with_tls(TlsConfig::disabled())
    .with_status_interval(Duration::from_secs(1))
    .with_application_name("fahwa-capture"))
}

/// Whether to pass over event rows now: from a backlog over `max` until it is under half of
/// it, said in the log each way.
fn pass_over(was: bool, backlog: i64, max: u64) -> bool {
    let now = if was {
        backlog as u64 > max / 2
    } else {
        backlog as u64 > max
    };
    if now != was {
        if now {
            tracing::warn!(
                backlog_bytes = backlog,
                max_bytes = max,
                "change capture is behind: passing over event rows (live event feeds get counts of what was skipped) until it catches up"
            );
        } else {
            tracing::info!(backlog_bytes = backlog, "change capture caught up");
        }
        metrics::gauge!("fahwa_live_passing_over").set(if now { 1.0 } else { 0.0 });
    }
    now
}

/// The slot's backlog: WAL written since the position last confirmed.
async fn report_lag(client: &Client, slot: &str) -> anyhow::Result<i64> {
    let lag: Option<i64> = client
        .query_one(
            "SELECT (pg_current_wal_lsn() - confirmed_flush_lsn)::bigint FROM pg_replication_slots WHERE slot_name = $1",
            &[&slot],
        )
        .await?
        .get(0);
    let lag = lag.unwrap_or(0);
    metrics::gauge!("fahwa_live_slot_lag_bytes").set(lag as f64);
    Ok(lag)
}

/// `16/B374D848` as a number.
pub fn parse_lsn(text: &str) -> Option<u64> {
    let (hi, lo) = text.split_once('/')?;
    Some((u64::from_str_radix(hi, 16).ok()? << 32) | u64::from_str_radix(lo, 16).ok()?)
}

/// One pgoutput message of a transaction: relations are remembered, events kept (or, when
/// not `keep_rows`, only counted); a revenue change only marks its tenant, whose revenue values
/// are computed again.
fn decode_change(
    data: &[u8],
    relations: &mut Relations,
    open: &mut HashMap<Uuid, Changes>,
    keep_rows: bool,
) -> Result<(), pgoutput::DecodeError> {
    match pgoutput::decode(data)? {
        Message::Relation(r) => relations.learn(r),
        Message::Insert { relation, new } | Message::Update { relation, new } => {
            let relation = relations.get(relation)?;
            let Some(tenant) = relation
                .text(&new, "tenant_id")
                .and_then(|t| t.parse::<Uuid>().ok())
            else {
                return Ok(());
            };
            let changes = open.entry(tenant).or_default();
            if relation.name == "events" && keep_rows {
                changes.push((relation.clone(), new), EVENTS_PER_TURN);
            } else if relation.name == "events" {
                changes.skipped += 1;
                metrics::counter!("fahwa_live_passed_over_total").increment(1);
            } else {
                changes.revenue = true;
            }
        }
        _ => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slot_names_are_valid_and_per_database() {
        assert_eq!(slot_name("fahwa"), "fahwa_live_fahwa");
        assert_eq!(slot_name("My-DB"), "fahwa_live_my_db");
        assert_eq!(slot_name(&"x".repeat(100)).len(), 63);
        assert_eq!(parse_lsn("1/AB"), Some(0x0000_0001_0000_00AB));
        assert_eq!(parse_lsn("16/B374D848"), Some(0x16_B374_D848));
        assert_eq!(parse_lsn("nope"), None);
    }

    #[test]
    fn rows_are_passed_over_beyond_the_bound_until_a_quarter_of_it() {
        assert!(!pass_over(false, 900, 1000));
        assert!(pass_over(false, 1001, 1000));
        assert!(pass_over(true, 600, 1000));
        assert!(!pass_over(true, 400, 1000));
    }
}
