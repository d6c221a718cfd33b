//! Faults an SRE would inject: a runaway analytics query, a pool held by slow queries, and
//! PostgreSQL restarted under sustained ingestion. Each ends in a clear answer within a bound,
//! nothing acknowledged is lost or stored twice, and the server recovers by itself.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use fahwa::db::local_cluster::{LocalCluster, Purpose};
use serde_json::{Value, json};

use crate::harness::{Session, TestApp, codes};

async fn funnel(t: &TestApp, s: &Session) -> Value {
    let to = chrono::Utc::now();
    let from = to - chrono::Duration::days(30);
    t.op(
        Some(&s.access),
        "analytics.graphql",
        "Funnel",
        json!({ "range": { "from": from, "to": to }, "steps": ["a", "b"], "windowHours": 24 }),
    )
    .await
}

/// A read that needs a connection of the pool and none of the events.
async fn members(t: &TestApp, s: &Session) -> Value {
    t.op(
        Some(&s.access),
        "tenant.graphql",
        "Members",
        json!({ "first": 5 }),
    )
    .await
}

#[tokio::test]
async fn a_runaway_analytics_query_is_stopped_and_a_held_pool_answers_busy_within_a_bound() {
    let t = TestApp::spawn_configured(|c| {
        c.db_pool_size = 2;
        c.db_acquire_timeout_ms = 500;
        c.analytics_statement_timeout_secs = 2.0;
        c.metric_cache = false;
    })
    .await;
    let s = t.sign_up("acme").await;
    // A funnel reads raw events: holding their lock makes it run as long as the lock is held.
    let mut locker = t.pg().await;
    let lock = locker.transaction().await.unwrap();
    lock.batch_execute("LOCK TABLE events IN ACCESS EXCLUSIVE MODE")
        .await
        .unwrap();

    let started = Instant::now();
    let slow = {
        let (t, s) = (&t, &s);
        async move { futures_util::join!(funnel(t, s), funnel(t, s)) }
    };
    let busy = async {
        // Once both connections are held by the waiting funnels.
        tokio::time::sleep(Duration::from_millis(700)).await;
        let asked = Instant::now();
        let r = members(&t, &s).await;
        (r, asked.elapsed())
    };
    let ((first, second), (held, waited)) = futures_util::join!(slow, busy);
    let stopped_after = started.elapsed();
    for r in [&first, &second] {
        assert_eq!(codes(r), ["QUERY_TOO_COMPLEX"], "{r}");
        let message = r["errors"][0]["message"].as_str().unwrap();
        assert!(message.contains("longer than 2 s"), "{message}");
    }
    assert!(
        stopped_after < Duration::from_secs(10),
        "stopped by the 2 s statement timeout, not left hanging: {stopped_after:?}"
    );
    assert_eq!(codes(&held), ["RATE_LIMITED"], "{held}");
    assert!(held["errors"][0]["extensions"]["retryAfterSeconds"].as_u64() >= Some(1));
    assert!(
        waited < Duration::from_secs(5),
        "a request waits the configured 500 ms for a connection, not forever: {waited:?}"
    );

    lock.rollback().await.unwrap();
    let served = funnel(&t, &s).await;
    assert!(served["errors"].is_null(), "{served}");
    let again = members(&t, &s).await;
    assert!(again["errors"].is_null(), "{again}");
}

/// Sends `batches` of events with ids of its own, each until acknowledged (what an SDK does
/// with a client id); returns the acknowledged ids.
async fn ingest_until_acknowledged(
    base: String,
    key: String,
    client: usize,
    batches: usize,
) -> Vec<String> {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let mut acknowledged = Vec::new();
    for batch in 0..batches {
        let ids: Vec<String> = (0..25)
            .map(|i| format!("c{client}-b{batch}-e{i}"))
            .collect();
        let events: Vec<Value> = ids
            .iter()
            .map(|id| json!({ "id": id, "name": "tick", "userId": format!("u{client}") }))
            .collect();
        let body = json!({ "events": events });
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let sent = http
                .post(format!("{base}/api/v1/events"))
                .bearer_auth(&key)
                .json(&body)
                .send()
                .await;
            if let Ok(r) = sent
                && r.status() == 200
            {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "batch {batch} of client {client} never acknowledged"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        acknowledged.extend(ids);
    }
    acknowledged
}

#[tokio::test]
async fn postgres_restarted_under_ingestion_loses_no_acknowledged_event_and_stores_none_twice() {
    let cluster = tokio::task::spawn_blocking(|| {
        LocalCluster::temporary("fahwa-test-restart", Purpose::TestsWithoutDecoding).unwrap()
    })
    .await
    .unwrap();
    let url = format!("{}/fahwa_restart", cluster.server_url());
    let t = TestApp::spawn_configured(|c| c.database_url = url.clone()).await;
    let owner = t.sign_up("acme").await;
    let key = t.api_key(&owner.access, &["INGEST"]).await;

    let clients: Vec<_> = (0..4)
        .map(|c| {
            tokio::spawn(ingest_until_acknowledged(
                t.base.clone(),
                key.clone(),
                c,
                40,
            ))
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(800)).await;

    let (dir, port) = (cluster.dir().to_path_buf(), cluster.port());
    let cluster = Arc::new(Mutex::new(Some(cluster)));
    let stopping = cluster.clone();
    tokio::task::spawn_blocking(move || {
        stopping.lock().unwrap().as_ref().unwrap().stop().unwrap();
    })
    .await
    .unwrap();
    let ready_while_down = t.get("/readyz").await.status();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let restarted = tokio::task::spawn_blocking(move || {
        LocalCluster::start(&dir, port, Purpose::TestsWithoutDecoding).unwrap()
    })
    .await
    .unwrap();
    *cluster.lock().unwrap() = Some(restarted);

    let mut acknowledged = BTreeSet::new();
    for c in clients {
        acknowledged.extend(c.await.unwrap());
    }
    assert_eq!(ready_while_down, 503, "/readyz says the database is gone");
    let mut ready = false;
    for _ in 0..100 {
        if t.get("/readyz").await.status() == 200 {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(ready, "the server recovers without a restart");

    let pg = t.pg().await;
    let rows = pg.query("SELECT client_id FROM events", &[]).await.unwrap();
    let stored: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
    let distinct: BTreeSet<String> = stored.iter().cloned().collect();
    assert_eq!(stored.len(), distinct.len(), "no event stored twice");
    assert_eq!(acknowledged.len(), 4 * 40 * 25);
    let lost: Vec<&String> = acknowledged.difference(&distinct).take(5).collect();
    assert!(lost.is_empty(), "acknowledged and lost: {lost:?}");
    drop(cluster);
}
