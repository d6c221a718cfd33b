//! Unrestricted resource consumption (OWASP API4:2023): bodies of 10 MB, batches past their
//! bound, lists of a hundred thousand items, a socket asking for a thousand subscriptions.
//! Each is refused with the contract's code before the work it asks for, and another
//! tenant is served meanwhile.

use std::time::Duration;

use serde_json::{Value, json};

use crate::harness::{Session, TestApp, codes};
use crate::live::{Ws, ws_codes};

/// Another tenant's ordinary read, which must keep being answered.
async fn bystander_served(t: &TestApp, s: &Session) {
    let r = t.op(Some(&s.access), "auth.graphql", "Me", json!({})).await;
    assert!(r["errors"].is_null(), "another tenant is still served: {r}");
}

#[tokio::test]
async fn bodies_of_ten_megabytes_are_refused_before_they_are_read_whole() {
    // The default body limits, not the harness's smaller one.
    let t =
        TestApp::spawn_configured(|c| c.max_body_bytes = fahwa::Config::default().max_body_bytes)
            .await;
    let attacker = t.sign_up("acme").await;
    let bystander = t.sign_up("globex").await;
    let key = t.api_key(&attacker.access, &["INGEST"]).await;
    let padding = "x".repeat(10 * 1024 * 1024);
    let graphql = format!(r#"{{"query":"{{ me {{ id }} }}","variables":{{"p":"{padding}"}}}}"#);
    let events = format!(r#"{{"events":[{{"name":"a","userId":"{padding}"}}]}}"#);
    for (path, token, body) in [
        ("/api/v1/graphql", &attacker.access, graphql),
        ("/api/v1/events", &key, events),
    ] {
        let (status, body) = t.post_bytes(path, token, body.into_bytes()).await;
        assert_eq!(status, 413, "{path}");
        assert_eq!(codes(&body), ["BAD_USER_INPUT"], "{path}: {body}");
    }
    bystander_served(&t, &bystander).await;
}

#[tokio::test]
async fn batches_are_bounded_and_each_operation_of_a_batch_is_charged() {
    // 60 points a minute, never off-peak: one point comes back a second, so what the batch
    // spends is seen whole.
    let t = TestApp::spawn_configured(|c| {
        c.limits.points_per_minute_admin = 60;
        c.limits.off_peak_hours = "0-0".into();
    })
    .await;
    let attacker = t.sign_up("acme").await;
    let me = json!({ "query": "{ me { id } }" });
    let eleven: Vec<Value> = (0..11).map(|_| me.clone()).collect();
    let (status, body) = t
        .post_bytes(
            "/api/v1/graphql",
            &attacker.access,
            serde_json::to_vec(&eleven).unwrap(),
        )
        .await;
    assert_eq!(status, 400);
    assert_eq!(codes(&body), ["QUERY_TOO_COMPLEX"], "{body}");

    let ten: Vec<Value> = (0..10).map(|_| me.clone()).collect();
    let (status, body) = t
        .post_bytes(
            "/api/v1/graphql",
            &attacker.access,
            serde_json::to_vec(&ten).unwrap(),
        )
        .await;
    assert_eq!(status, 200);
    let remaining: Vec<u64> = body
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["extensions"]["cost"]["remaining"].as_u64().unwrap())
        .collect();
    // Each operation paid its own point (at most one may come back while the batch runs).
    let spent = remaining.first().unwrap() - remaining.last().unwrap();
    assert!((8..=9).contains(&spent), "{remaining:?}");
}

#[tokio::test]
async fn lists_of_a_hundred_thousand_items_are_refused_with_the_contracts_codes() {
    let t =
        TestApp::spawn_configured(|c| c.max_body_bytes = fahwa::Config::default().max_body_bytes)
            .await;
    let attacker = t.sign_up("acme").await;
    let bystander = t.sign_up("globex").await;
    let to = chrono::Utc::now();
    let from = to - chrono::Duration::days(7);
    let steps: Vec<String> = (0..100_000).map(|i| format!("s{i}")).collect();
    let funnel = t
        .op(
            Some(&attacker.access),
            "analytics.graphql",
            "Funnel",
            json!({ "range": { "from": from, "to": to }, "steps": steps, "windowHours": 24 }),
        )
        .await;
    let refused = codes(&funnel);
    assert!(
        refused == ["BAD_USER_INPUT"] || refused == ["QUERY_TOO_COMPLEX"],
        "{refused:?}"
    );
    let events: Vec<Value> = (0..10_001)
        .map(|i| json!({ "name": "a", "userId": format!("u{i}") }))
        .collect();
    let ingest = t
        .op(
            Some(&attacker.access),
            "ingest.graphql",
            "IngestEvents",
            json!({ "events": events }),
        )
        .await;
    assert_eq!(codes(&ingest), ["BAD_USER_INPUT"], "{}", ingest["errors"]);
    let stored = t.stored_events().await;
    assert_eq!(stored, 0, "a refused batch stores nothing");
    bystander_served(&t, &bystander).await;
}

#[tokio::test]
async fn a_socket_asking_for_a_thousand_subscriptions_runs_only_its_bound() {
    let t = TestApp::spawn().await;
    let attacker = t.sign_up("acme").await;
    let bystander = t.sign_up("globex").await;
    let bound = t.app.config.max_subscriptions_per_socket;
    let mut ws = Ws::connect(&t, &attacker.access).await;
    for i in 0..1_000 {
        ws.send(json!({ "id": format!("s{i}"), "type": "subscribe",
            "payload": { "query": "subscription { liveEvents { dropped } }" } }))
            .await;
    }
    let mut refused = 0;
    while let Some(msg) = ws.message(Duration::from_secs(2)).await {
        if msg["type"] == "error" {
            let code = ws_codes(&msg);
            assert!(
                code == ["QUERY_TOO_COMPLEX"] || code == ["RATE_LIMITED"],
                "{msg}"
            );
            refused += 1;
        }
    }
    assert_eq!(
        refused,
        1_000 - bound,
        "all but the socket's bound are refused"
    );
    assert_eq!(t.app.live.hub().subscriptions(), bound);
    bystander_served(&t, &bystander).await;
}
