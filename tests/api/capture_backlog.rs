//! A bulk load while a server leads change capture: beyond the configured backlog, capture
//! passes over event rows (subscribers get a count of what was skipped), so the slot holds a
//! bounded amount of WAL back and live updates come back within seconds of the load.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::harness::TestApp;
use crate::live::Ws;

/// WAL the slot holds back beyond its confirmed position.
async fn backlog(t: &TestApp) -> i64 {
    let pg = t.pg().await;
    let database: String = pg
        .query_one("SELECT current_database()::text", &[])
        .await
        .unwrap()
        .get(0);
    let slot = fahwa::live::capture::slot_name(&database);
    pg.query_one(
        "SELECT (pg_current_wal_lsn() - confirmed_flush_lsn)::bigint FROM pg_replication_slots \
         WHERE slot_name = $1",
        &[&slot],
    )
    .await
    .unwrap()
    .get(0)
}

fn batch(msg: &Value) -> (Vec<Value>, i64) {
    let batch = &msg["payload"]["data"]["liveEvents"];
    (
        batch["events"].as_array().cloned().unwrap_or_default(),
        batch["dropped"].as_i64().unwrap_or(0),
    )
}

#[tokio::test]
async fn a_bulk_load_under_capture_is_passed_over_and_the_slot_backlog_stays_bounded() {
    // Other tests write to the same cluster, whose WAL the backlog counts too: a bound well
    // above theirs and well below the load's.
    const BOUND: i64 = 8 * 1024 * 1024;
    let t = TestApp::spawn_configured(|c| {
        c.live_capture = true;
        c.capture_max_backlog_mb = 8;
    })
    .await;
    let s = t.sign_up("acme").await;
    let mut ws = Ws::connect(&t, &s.access).await;
    ws.subscribe("all", "LiveEvents", json!({})).await;
    for _ in 0..400 {
        if t.app.live.leading() && t.app.live.hub().subscriptions() >= 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(t.app.live.leading(), "capture leads");

    // 200,000 rows in 40 transactions: tens of MiB of WAL, far beyond the bound.
    let pg = t.pg().await;
    for _ in 0..40 {
        pg.execute(
            "INSERT INTO events (tenant_id, client_id, name, user_id, occurred_at) \
             SELECT $1::text::uuid, 'bulk-' || gen_random_uuid(), 'bulk', 'u' || (g % 100), now() \
             FROM generate_series(1, 5000) g",
            &[&s.tenant_id],
        )
        .await
        .unwrap();
    }
    let loaded = Instant::now();

    // The subscriber hears of the load as rows passed over, not as 200,000 events.
    let mut seen_rows = 0usize;
    let mut dropped = 0i64;
    // Rows passed over come as counts alone; rows kept come as events (with a count of the
    // oldest a turn could not hold).
    let mut counts_alone = 0;
    ws.until(Duration::from_secs(90), |_, msg| {
        let (events, skipped) = batch(msg);
        if events.is_empty() && skipped > 0 {
            counts_alone += 1;
        }
        seen_rows += events.len();
        dropped += skipped;
        seen_rows + dropped as usize >= 200_000
    })
    .await;
    assert!(
        dropped > 150_000,
        "most rows were passed over ({dropped} dropped, {seen_rows} delivered)"
    );
    assert!(
        counts_alone > 0,
        "capture passed rows over, sending counts without events ({dropped} dropped, \
         {seen_rows} delivered)"
    );

    let mut bounded = false;
    let mut last = 0;
    for _ in 0..600 {
        last = backlog(&t).await;
        if last < BOUND {
            bounded = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        bounded,
        "the slot's backlog came back under its bound (still {last} bytes)"
    );

    // Live updates come back: a new event (one a second) soon reaches the subscriber as itself,
    // once capture has measured that it caught up.
    let mut delivered = false;
    for attempt in 0..30 {
        let id = format!("after-the-load-{attempt}");
        t.ingest_ok(
            &s.access,
            vec![json!({ "id": id, "name": "signup", "userId": "u-new" })],
        )
        .await;
        let deadline = Instant::now() + Duration::from_secs(1);
        while let Some(msg) = ws
            .message(deadline.saturating_duration_since(Instant::now()))
            .await
        {
            if batch(&msg).0.iter().any(|e| {
                e["id"]
                    .as_str()
                    .is_some_and(|i| i.starts_with("after-the-load"))
            }) {
                delivered = true;
            }
        }
        if delivered {
            break;
        }
    }
    assert!(delivered, "live events are delivered as events again");
    eprintln!(
        "bulk load passed over and live again {:?} after it was committed",
        loaded.elapsed()
    );
}
