//! Change data capture: one instance at a time (the holder of an advisory lock) streams the
//! replication slot over the replication protocol (pgoutput), turns committed events into live
//! messages and newest-bucket values, publishes them, and only then confirms the slot's
//! position: a crash replays what was not confirmed, and never loses it.

pub mod pgoutput;
pub mod values;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use pgwire_replication::{Lsn, ReplicationClient, ReplicationConfig, ReplicationEvent, TlsConfig};
use tokio_postgres::{Client, NoTls};
use uuid::Uuid;

use self::pgoutput::{Message, Relations};
use super::message::{LiveEvent, LiveMessage, MetricKey};
use super::watch::{self, Watched};
use crate::App;
use crate::metrics::Granularity;

/// The publication the slot decodes (migration `live_capture`).
pub const PUBLICATION: &str = "fahwa_live";
/// Session advisory lock held by the capture leader, per database.
const LEADER_LOCK: i64 = 0x0066_6168_7761_4c56;
/// At most how often a tenant's metrics are published: changes that arrive within it are
/// published together.
const TICK: Duration = Duration::from_millis(250);
/// Changes held unpublished at most (a pass may hold a transaction's worth more).
const MAX_CHANGES: usize = 20_000;
/// Events of one tenant published per pass at most; the rest are counted as skipped.
const EVENTS_PER_PASS: usize = 5_000;
/// A slot further behind than this is worth a warning.
const LAG_WARNING_BYTES: i64 = 1 << 30;

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

/// Runs capture for as long as the process lives: waits to lead, then leads until it fails.
pub async fn run(app: App) {
    loop {
        let mut pause = Duration::from_secs(1);
        if let Err(e) = lead(&app).await {
            let text = format!("{e:#}");
            if text.contains("wal_level") {
                tracing::error!(
                    "change capture needs wal_level = logical (ALTER SYSTEM SET wal_level = 'logical', then restart PostgreSQL); live metrics wait until then"
                );
                pause = Duration::from_secs(60);
            } else {
                tracing::warn!(error = %text, "change capture stopped; trying again");
            }
        }
        app.live.set_leading(false);
        tokio::time::sleep(pause).await;
    }
}

async fn lead(app: &App) -> anyhow::Result<()> {
    let client = connect(&app.config.database_url).await?;
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
        ReplicationClient::connect(replication_config(&app.config.database_url, &slot)?).await?;
    stream.wait_started().await?;
    tracing::info!(slot, "leading change capture");
    app.live.set_leading(true);
    let mut published = Published::default();
    let mut relations = Relations::default();
    let mut open: Vec<OpenRow> = Vec::new();
    let mut pass = Pass::default();
    let mut handled = Instant::now() - TICK;
    let mut lag = tokio::time::interval(Duration::from_secs(2));
    loop {
        let due = handled + TICK;
        tokio::select! {
            event = stream.recv() => {
                let Some(event) = event? else {
                    anyhow::bail!("the replication stream ended");
                };
                match event {
                    ReplicationEvent::Begin { .. } => open.clear(),
                    ReplicationEvent::XLogData { data, .. } => {
                        decode_change(&data, &mut relations, &mut open)?
                    }
                    ReplicationEvent::Commit { end_lsn, .. } => {
                        pass.commit(&mut open, end_lsn.0);
                        if pass.tenants.is_empty() {
                            stream.update_applied_lsn(end_lsn);
                        }
                    }
                    // Nothing unpublished: WAL without events is confirmed as it passes.
                    ReplicationEvent::KeepAlive { wal_end, .. }
                        if pass.tenants.is_empty() && open.is_empty() =>
                    {
                        stream.update_applied_lsn(wal_end)
                    }
                    _ => {}
                }
            }
            _ = tokio::time::sleep_until(due.into()), if !pass.tenants.is_empty() => {}
            _ = lag.tick() => report_lag(&client, &slot).await?,
        }
        // One pass at most every TICK (the coalescing), sooner when it grows large.
        if !pass.tenants.is_empty() && (pass.changes >= MAX_CHANGES || Instant::now() >= due) {
            let started = Instant::now();
            handle(app, &mut published, &pass).await?;
            // Only now: a crash before this reads the pass again.
            stream.update_applied_lsn(Lsn(pass.decoded_to));
            metrics::counter!("fahwa_live_changes_total").increment(pass.changes as u64);
            metrics::histogram!("fahwa_live_pass_seconds").record(started.elapsed().as_secs_f64());
            pass = Pass::default();
            // From the pass's start: a pass longer than TICK is followed at once.
            handled = started;
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
        PUBLICATION,
    )
    .with_port(pg.get_ports().first().copied().unwrap_or(5432))
    .with_tls(TlsConfig::disabled())
    .with_status_interval(Duration::from_secs(1))
    .with_application_name("fahwa-capture"))
}

async fn report_lag(client: &Client, slot: &str) -> anyhow::Result<()> {
    let lag: Option<i64> = client
        .query_one(
            "SELECT (pg_current_wal_lsn() - confirmed_flush_lsn)::bigint FROM pg_replication_slots WHERE slot_name = $1",
            &[&slot],
        )
        .await?
        .get(0);
    let lag = lag.unwrap_or(0);
    metrics::gauge!("fahwa_live_slot_lag_bytes").set(lag as f64);
    if lag > LAG_WARNING_BYTES {
        tracing::warn!(
            slot,
            lag_bytes = lag,
            "the change capture slot is far behind"
        );
    }
    Ok(())
}

/// `16/B374D848` as a number.
pub fn parse_lsn(text: &str) -> Option<u64> {
    let (hi, lo) = text.split_once('/')?;
    Some((u64::from_str_radix(hi, 16).ok()? << 32) | u64::from_str_radix(lo, 16).ok()?)
}

/// An inserted event of the transaction being read: its tenant and its row.
type OpenRow = (Uuid, Arc<pgoutput::Relation>, Vec<pgoutput::Value>);

/// What has been read and not yet published: committed transactions only, in commit order.
#[derive(Default)]
struct Pass {
    changes: usize,
    /// The end of the last transaction read: the position to confirm once published.
    decoded_to: u64,
    /// Per tenant, its new events in commit order and the position of its last change.
    tenants: HashMap<Uuid, TenantChanges>,
}

impl Pass {
    fn commit(&mut self, open: &mut Vec<OpenRow>, end_lsn: u64) {
        self.changes += open.len();
        for (tenant, relation, row) in open.drain(..) {
            let t = self.tenants.entry(tenant).or_default();
            t.rows.push((relation, row));
            t.version = end_lsn;
        }
        self.decoded_to = end_lsn;
    }
}

#[derive(Default)]
struct TenantChanges {
    /// Inserted events as decoded, made into `LiveEvent`s only if someone follows them.
    rows: Vec<(Arc<pgoutput::Relation>, Vec<pgoutput::Value>)>,
    version: u64,
}

/// One pgoutput message of a transaction: relations are remembered, events kept.
fn decode_change(
    data: &[u8],
    relations: &mut Relations,
    open: &mut Vec<OpenRow>,
) -> Result<(), pgoutput::DecodeError> {
    match pgoutput::decode(data)? {
        Message::Relation(r) => relations.learn(r),
        Message::Insert { relation, new } => {
            let relation = relations.get(relation)?;
            if relation.name == "events"
                && let Some(tenant) = relation
                    .text(&new, "tenant_id")
                    .and_then(|t| t.parse().ok())
            {
                open.push((tenant, relation.clone(), new));
            }
        }
        _ => {}
    }
    Ok(())
}

fn event_of(relation: &pgoutput::Relation, values: &[pgoutput::Value]) -> Option<LiveEvent> {
    let text = |name| relation.text(values, name);
    let occurred_at = DateTime::parse_from_str(text("occurred_at")?, "%Y-%m-%d %H:%M:%S%.f%#z")
        .ok()?
        .with_timezone(&Utc);
    Some(LiveEvent {
        id: text("id")?.parse().ok()?,
        name: text("name")?.to_string(),
        user_id: text("user_id")?.to_string(),
        occurred_at,
        properties: text("properties")
            .and_then(|p| serde_json::from_str(p).ok())
            .unwrap_or_else(|| serde_json::json!({})),
    })
}

type PublishedKey = (Uuid, MetricKey, Granularity);
/// A value as published: its bucket and value.
type PublishedValue = (DateTime<Utc>, f64);

/// The last value published per tenant, metric and granularity: an unchanged value is not sent
/// again.
type Published = HashMap<PublishedKey, PublishedValue>;

/// Tenants whose changes are published side by side (each tenant's messages stay in order).
const TENANTS_AT_ONCE: usize = 16;

/// Publishes what a pass changed for the topics someone follows. A failed publish fails the
/// pass, so that its changes are read again.
async fn handle(app: &App, published: &mut Published, pass: &Pass) -> anyhow::Result<()> {
    let now = Utc::now();
    let before = &*published;
    let tenants: Vec<Uuid> = pass.tenants.keys().copied().collect();
    let followed = watch::followed(&app.kv, &tenants).await?;
    let none = Vec::new();
    // Made up front: a stream mapping borrowed entries trips the spawned task's lifetimes.
    let jobs: Vec<_> = pass
        .tenants
        .iter()
        .map(|(tenant, changes)| {
            let followed = followed.get(tenant).unwrap_or(&none);
            publish_tenant(app, before, *tenant, changes, followed, now)
        })
        .collect();
    let sent: Vec<anyhow::Result<Vec<(PublishedKey, PublishedValue)>>> =
        futures_util::stream::iter(jobs)
            .buffer_unordered(TENANTS_AT_ONCE)
            .collect()
            .await;
    for values in sent {
        published.extend(values?);
    }
    Ok(())
}

/// One tenant's part of a pass; returns the metric values it published.
async fn publish_tenant(
    app: &App,
    published: &Published,
    tenant: Uuid,
    changes: &TenantChanges,
    followed: &[Watched],
    now: DateTime<Utc>,
) -> anyhow::Result<Vec<(PublishedKey, PublishedValue)>> {
    if followed.contains(&Watched::Events) && !changes.rows.is_empty() {
        let skip = changes.rows.len().saturating_sub(EVENTS_PER_PASS);
        let kept: Vec<LiveEvent> = changes.rows[skip..]
            .iter()
            .filter_map(|(relation, row)| event_of(relation, row))
            .collect();
        for (i, chunk) in kept.chunks(1_000).enumerate() {
            let message = LiveMessage::Events {
                events: chunk.to_vec(),
                skipped: if i == 0 { skip as u64 } else { 0 },
            };
            app.live.publish(tenant, message).await?;
        }
    }
    let wanted: Vec<(MetricKey, Granularity)> = followed
        .iter()
        .filter_map(|w| match w {
            Watched::Metric(m, g) => Some((*m, *g)),
            Watched::Events => None,
        })
        .collect();
    let computed = match values::newest(&app.db, tenant, &wanted, now).await {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(tenant = %tenant, error = %e, "live: could not compute values");
            return Ok(Vec::new());
        }
    };
    let mut sent = Vec::new();
    for c in computed {
        let key = (tenant, c.metric, c.granularity);
        let seen = (c.bucket, c.value);
        if published.get(&key) == Some(&seen) {
            continue;
        }
        app.live
            .publish(tenant, c.message(now, changes.version))
            .await?;
        sent.push((key, seen));
    }
    Ok(sent)
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
}
