//! The live scenario: many WebSocket subscribers, spread over tenants and metrics, on one
//! server while events are ingested at a steady rate. Latency is measured from an ingest
//! call's return to the first frame that includes its events.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::sync::Semaphore;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use uuid::Uuid;

use super::load::percentile;
use super::server::Server;
use super::{BenchOptions, api_key, say};
use crate::app::App;

/// Tenants the subscribers and the ingestion are spread over.
const TENANTS: usize = 20;
const BATCH: usize = 100;
/// One subscriber in this many follows `liveEvents(name: "upgrade")`; the others a metric.
const EVENT_SUBSCRIBER_EVERY: usize = 5;

enum Follows {
    /// `metricUpdated(EVENTS, DAY)`: the tenant's events today, which every batch moves.
    Count,
    /// `liveEvents(name: "upgrade")`: one event of each batch.
    Upgrades,
}

/// What one subscriber received: when, and the count (metric) or batch numbers (events).
struct Received {
    tenant: usize,
    follows: Follows,
    frames: Vec<(Instant, Vec<f64>)>,
    dropped: i64,
    /// Per metric frame: from the server starting to compute the value (`updatedAt`) to the
    /// frame's arrival, in ms: the fan-out's share of the latency.
    fanout_ms: Vec<f64>,
}

struct Sent {
    tenant: usize,
    batch: usize,
    /// The tenant's events after this batch.
    total: f64,
    returned: Instant,
}

const LIVE_METRIC: &str =
    "subscription { metricUpdated(metric: EVENTS, granularity: DAY) { value updatedAt } }";
const LIVE_UPGRADES: &str =
    "subscription { liveEvents(name: \"upgrade\") { dropped events { properties } } }";

async fn subscribe(
    ws_url: String,
    key: String,
    follows: Follows,
    tenant: usize,
    handshakes: Arc<Semaphore>,
    ready: Arc<AtomicUsize>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<Received> {
    // Held until the server acknowledges: connections are opened a few hundred at a time.
    let mut permit = Some(handshakes.acquire_owned().await?);
    let mut request = ws_url.into_client_request()?;
    request
        .headers_mut()
        .insert("sec-websocket-protocol", "graphql-transport-ws".parse()?);
    // Small buffers, as the server has: the default 128 KiB read buffer is zeroed on every read,
    // which cost the load driver (sharing the server's two cores) a tenth of the machine.
    let config = WebSocketConfig::default()
        .read_buffer_size(4 * 1024)
        .write_buffer_size(4 * 1024);
    let (mut ws, _) =
        tokio_tungstenite::connect_async_with_config(request, Some(config), true).await?;
    let send = |v: Value| Message::Text(v.to_string().into());
    ws.send(send(json!({ "type": "connection_init", "payload": { "authorization": format!("Bearer {key}") } })))
        .await?;
    let query = match follows {
        Follows::Count => LIVE_METRIC,
        Follows::Upgrades => LIVE_UPGRADES,
    };
    ws.send(send(
        json!({ "id": "1", "type": "subscribe", "payload": { "query": query } }),
    ))
    .await?;
    let mut received = Received {
        tenant,
        follows,
        frames: Vec::new(),
        dropped: 0,
        fanout_ms: Vec::new(),
    };
    let mut acked = false;
    loop {
        let next = tokio::select! {
            m = ws.next() => m,
            _ = stop.changed() => break,
        };
        let Some(Ok(Message::Text(text))) = next else {
            if matches!(next, Some(Ok(_))) {
                continue;
            }
            break;
        };
        let at = Instant::now();
        let wall = chrono::Utc::now();
        let msg: Value = serde_json::from_str(&text)?;
        match msg["type"].as_str() {
            Some("connection_ack") if !acked => {
                acked = true;
                permit = None;
                ready.fetch_add(1, Ordering::Relaxed);
            }
            Some("next") => {
                let data = &msg["payload"]["data"];
                let values = match received.follows {
                    Follows::Count => {
                        if let Some(updated) = data["metricUpdated"]["updatedAt"]
                            .as_str()
                            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
                        {
                            let lag = wall.signed_duration_since(updated);
                            received
                                .fanout_ms
                                .push(lag.num_microseconds().unwrap_or(0) as f64 / 1000.0);
                        }
                        data["metricUpdated"]["value"]
                            .as_f64()
                            .into_iter()
                            .collect()
                    }
                    Follows::Upgrades => {
                        received.dropped += data["liveEvents"]["dropped"].as_i64().unwrap_or(0);
                        data["liveEvents"]["events"]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .filter_map(|e| e["properties"]["batch"].as_f64())
                            .collect()
                    }
                };
                received.frames.push((at, values));
            }
            Some("ping") => ws.send(send(json!({ "type": "pong" }))).await?,
            Some("error") => anyhow::bail!("subscription refused: {msg}"),
            _ => {}
        }
    }
    drop(permit);
    Ok(received)
}

pub async fn run(
    app: &App,
    url: &str,
    redis: Option<&str>,
    opts: &BenchOptions,
) -> anyhow::Result<Value> {
    let suffix = &Uuid::new_v4().simple().to_string()[..8];
    let mut read_keys = Vec::new();
    let mut ingest_keys = Vec::new();
    for t in 0..TENANTS {
        let tenant = crate::seed::ensure_tenant(app, &format!("live-{suffix}-{t}")).await?;
        read_keys.push(api_key(app, tenant, "READ").await?);
        ingest_keys.push(api_key(app, tenant, "INGEST").await?);
    }
    let server = Server::start(url, redis, true).await?;
    let ws_url = format!(
        "{}/api/v1/graphql/ws",
        server.base.replace("http://", "ws://")
    );

    let connecting = Instant::now();
    let handshakes = Arc::new(Semaphore::new(200));
    let ready = Arc::new(AtomicUsize::new(0));
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let mut sockets = Vec::with_capacity(opts.subscribers);
    for i in 0..opts.subscribers {
        let tenant = i % TENANTS;
        let follows = if i % EVENT_SUBSCRIBER_EVERY == EVENT_SUBSCRIBER_EVERY - 1 {
            Follows::Upgrades
        } else {
            Follows::Count
        };
        sockets.push(tokio::spawn(subscribe(
            ws_url.clone(),
            read_keys[tenant].clone(),
            follows,
            tenant,
            handshakes.clone(),
            ready.clone(),
            stopped.clone(),
        )));
    }
    while ready.load(Ordering::Relaxed) < opts.subscribers {
        anyhow::ensure!(
            connecting.elapsed() < Duration::from_secs(120),
            "only {} of {} subscribers connected in 2 minutes",
            ready.load(Ordering::Relaxed),
            opts.subscribers
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The last subscriptions start right after their acknowledgement.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let connect_secs = connecting.elapsed().as_secs_f64();
    let idle_peak = server.peak_rss_mib();

    let http = reqwest::Client::new();
    let endpoint = format!("{}/api/v1/events", server.base);
    let every = Duration::from_secs_f64(BATCH as f64 / opts.live_rate.max(1) as f64);
    let batches = (opts.live_seconds as f64 / every.as_secs_f64()) as usize;
    let mut totals = [0f64; TENANTS];
    let mut senders = Vec::with_capacity(batches);
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let driving = Instant::now();
    for b in 0..batches {
        tick.tick().await;
        let tenant = b % TENANTS;
        totals[tenant] += BATCH as f64;
        let total = totals[tenant];
        let events: Vec<Value> = (0..BATCH)
            .map(|i| {
                let name = if i == 0 { "upgrade" } else { "feature_used" };
                json!({ "name": name, "userId": format!("u{}", (b * 7 + i) % 1_000), "properties": { "batch": b } })
            })
            .collect();
        let (http, endpoint, key) = (http.clone(), endpoint.clone(), ingest_keys[tenant].clone());
        senders.push(tokio::spawn(async move {
            let r = http
                .post(&endpoint)
                .bearer_auth(&key)
                .json(&json!({ "events": events }))
                .send()
                .await?;
            anyhow::ensure!(r.status().is_success(), "ingestion answered {}", r.status());
            anyhow::Ok(Sent {
                tenant,
                batch: b,
                total,
                returned: Instant::now(),
            })
        }));
    }
    let mut sent = Vec::with_capacity(batches);
    for s in senders {
        sent.push(s.await??);
    }
    let drive_secs = driving.elapsed().as_secs_f64();
    // Time for the last batches to arrive, then every subscriber hangs up.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let peak = server.peak_rss_mib();
    let _ = stop.send(true);
    let mut received = Vec::with_capacity(sockets.len());
    for s in sockets {
        received.push(s.await??);
    }
    server.stop().await;

    let figures = measure(&sent, &received);
    say(
        opts,
        format!(
            "live: {} subscribers ({} following a metric, {} an event stream) over {TENANTS} tenants, connected in {connect_secs:.1} s; {} events ingested in {drive_secs:.1} s ({:.0}/s)",
            opts.subscribers,
            figures.metric_subscribers,
            figures.event_subscribers,
            sent.len() * BATCH,
            (sent.len() * BATCH) as f64 / drive_secs,
        ),
    );
    say(
        opts,
        format!(
            "live: ingest return to frame p50 {:.1} ms, p95 {:.1} ms, p99 {:.1} ms over {} (subscriber, batch) pairs (of which from computing the value to the metric frame p50 {:.1} ms, p99 {:.1} ms); frames {} delivered, {} if none were coalesced; batches never seen {}; upgrade events {} of {} delivered, {} reported dropped; server peak {:.0} MiB ({:.0} MiB with the subscribers idle)",
            figures.p50,
            figures.p95,
            figures.p99,
            figures.samples,
            figures.fanout_p50,
            figures.fanout_p99,
            figures.frames,
            figures.uncoalesced,
            figures.missed,
            figures.events_delivered,
            figures.events_expected,
            figures.events_dropped,
            peak.unwrap_or(0.0),
            idle_peak.unwrap_or(0.0),
        ),
    );
    Ok(json!({
        "subscribers": opts.subscribers,
        "rate": opts.live_rate,
        "connect_secs": connect_secs,
        "p50_ms": figures.p50,
        "p95_ms": figures.p95,
        "p99_ms": figures.p99,
        "samples": figures.samples,
        "fanout_p50_ms": figures.fanout_p50,
        "fanout_p99_ms": figures.fanout_p99,
        "frames": figures.frames,
        "frames_uncoalesced": figures.uncoalesced,
        "batches_missed": figures.missed,
        "events_delivered": figures.events_delivered,
        "events_expected": figures.events_expected,
        "events_dropped": figures.events_dropped,
        "server_peak_mib": peak,
        "server_idle_peak_mib": idle_peak,
    }))
}

struct Figures {
    metric_subscribers: usize,
    event_subscribers: usize,
    p50: f64,
    p95: f64,
    p99: f64,
    samples: usize,
    fanout_p50: f64,
    fanout_p99: f64,
    frames: usize,
    uncoalesced: usize,
    missed: usize,
    events_delivered: usize,
    events_expected: usize,
    events_dropped: i64,
}

/// For every subscriber and every batch of its tenant: the first frame that includes the
/// batch (a count at least the tenant's total after it, or the batch's upgrade event).
fn measure(sent: &[Sent], received: &[Received]) -> Figures {
    let mut latencies = Vec::new();
    let mut fanout: Vec<f64> = received
        .iter()
        .flat_map(|r| r.fanout_ms.iter().copied())
        .collect();
    fanout.sort_by(f64::total_cmp);
    let (mut frames, mut uncoalesced, mut missed) = (0, 0, 0);
    let (mut metric_subscribers, mut event_subscribers) = (0, 0);
    let (mut events_delivered, mut events_expected, mut events_dropped) = (0, 0, 0);
    for r in received {
        frames += r.frames.len();
        let batches: Vec<&Sent> = sent.iter().filter(|s| s.tenant == r.tenant).collect();
        uncoalesced += batches.len();
        for s in &batches {
            let seen = r.frames.iter().find(|(_, values)| match r.follows {
                Follows::Count => values.iter().any(|v| *v >= s.total),
                Follows::Upgrades => values.contains(&(s.batch as f64)),
            });
            match seen {
                Some((at, _)) => {
                    latencies.push(at.saturating_duration_since(s.returned).as_secs_f64() * 1000.0)
                }
                None => missed += 1,
            }
        }
        match r.follows {
            Follows::Count => metric_subscribers += 1,
            Follows::Upgrades => {
                event_subscribers += 1;
                events_expected += batches.len();
                events_delivered += r.frames.iter().map(|(_, v)| v.len()).sum::<usize>();
                events_dropped += r.dropped;
            }
        }
    }
    latencies.sort_by(f64::total_cmp);
    Figures {
        metric_subscribers,
        event_subscribers,
        p50: percentile(&latencies, 50.0),
        p95: percentile(&latencies, 95.0),
        p99: percentile(&latencies, 99.0),
        samples: latencies.len(),
        fanout_p50: percentile(&fanout, 50.0),
        fanout_p99: percentile(&fanout, 99.0),
        frames,
        uncoalesced,
        missed,
        events_delivered,
        events_expected,
        events_dropped,
    }
}
