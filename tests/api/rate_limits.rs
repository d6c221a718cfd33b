//! Rate limits in tiers and cost points: every answer says what it cost and what is left,
//! budgets follow the caller's role and scope, a spent budget refuses with `RATE_LIMITED` and
//! a wait (429 and `Retry-After` on REST), and one budget is shared by every instance.

use std::time::Duration;

use chrono::Utc;
use reqwest::header::HeaderMap;
use serde_json::{Value, json};

use crate::harness::{Session, TestApp, codes};
use crate::live::{Ws, ws_codes};

/// A server whose budgets are `adjust`ed and never off-peak, so that they are exact.
async fn server(adjust: impl FnOnce(&mut fahwa::config::RateLimits)) -> TestApp {
    TestApp::spawn_configured(|c| {
        adjust(&mut c.limits);
        c.limits.off_peak_hours = "0-0".into();
    })
    .await
}

/// A GraphQL POST: its headers and body.
async fn post(t: &TestApp, token: Option<&str>, body: Value) -> (HeaderMap, Value) {
    let mut req = t
        .client
        .post(format!("{}/api/v1/graphql", t.base))
        .json(&body);
    if let Some(token) = token {
        req = req.bearer_auth(token);
    }
    let resp = req.send().await.unwrap();
    let headers = resp.headers().clone();
    (headers, resp.json().await.unwrap())
}

async fn query(t: &TestApp, token: Option<&str>, query: &str) -> (HeaderMap, Value) {
    post(t, token, json!({ "query": query })).await
}

async fn overview(t: &TestApp, s: &Session, days: i64) -> (HeaderMap, Value) {
    // Whole days, so that the same question asked twice is the same request.
    let to = Utc::now()
        .date_naive()
        .and_hms_opt(0, 0, 0)
        .unwrap()
        .and_utc();
    let from = to - chrono::Duration::days(days);
    let doc = crate::contract::operation("analytics.graphql", "Overview");
    let variables = json!({ "range": { "from": from, "to": to }, "granularity": "DAY" });
    post(
        t,
        Some(&s.access),
        json!({ "query": doc, "operationName": "Overview", "variables": variables }),
    )
    .await
}

fn header(h: &HeaderMap, name: &str) -> u64 {
    h.get(name)
        .unwrap_or_else(|| panic!("no {name} header"))
        .to_str()
        .unwrap()
        .parse()
        .unwrap()
}

fn points(body: &Value) -> u64 {
    body["extensions"]["cost"]["points"]
        .as_u64()
        .unwrap_or_else(|| panic!("no extensions.cost: {body}"))
}

#[tokio::test]
async fn every_answer_says_what_it_cost_and_what_is_left_in_body_and_headers() {
    let t = server(|l| l.points_per_minute_admin = 600).await;
    let s = t.sign_up("acme").await;
    let (h, body) = query(&t, Some(&s.access), "{ me { id } }").await;
    assert!(body["errors"].is_null(), "{body}");
    let cost = &body["extensions"]["cost"];
    assert_eq!(cost["points"], 1, "{body}");
    assert_eq!(cost["limit"], 600);
    assert_eq!(cost["windowSeconds"], 60);
    assert_eq!(header(&h, "ratelimit-limit"), 600);
    assert_eq!(h["ratelimit-policy"], "600;w=60");
    assert_eq!(
        header(&h, "ratelimit-remaining"),
        cost["remaining"].as_u64().unwrap()
    );
    assert!(header(&h, "ratelimit-remaining") <= 599);

    // A change costs more than a read, and what is left goes down by it.
    let before = header(&h, "ratelimit-remaining");
    let (h, body) = post(
        &t,
        Some(&s.access),
        json!({
            "query": crate::contract::operation("tenant.graphql", "UpdateTenant"),
            "variables": { "input": { "name": "Acme Inc" } },
        }),
    )
    .await;
    assert!(body["errors"].is_null(), "{body}");
    let spent = points(&body);
    assert!(spent >= 10, "a mutation costs at least 10 points: {body}");
    // Points come back at 10 a second; the two requests are well within a second apart.
    assert!(header(&h, "ratelimit-remaining") <= before + 10 - spent);
}

#[tokio::test]
async fn long_ranges_cost_more_than_short_ones_and_a_cached_answer_costs_one_point() {
    let t = server(|_| {}).await;
    let s = t.sign_up("acme").await;
    let (_, week) = overview(&t, &s, 7).await;
    let (_, year) = overview(&t, &s, 365).await;
    assert!(
        week["errors"].is_null() && year["errors"].is_null(),
        "{year}"
    );
    assert!(
        points(&year) >= 4 * points(&week),
        "a year ({}) should cost several times a week ({})",
        points(&year),
        points(&week)
    );
    assert!(points(&week) > 1, "{week}");
    // The same question again is answered from the response cache.
    let (h, again) = overview(&t, &s, 7).await;
    assert_eq!(again["data"], week["data"]);
    assert_eq!(points(&again), 1, "{again}");
    assert!(h.get("ratelimit-remaining").is_some());
}

#[tokio::test]
async fn budgets_are_tiered_by_role_and_api_key_scope() {
    // The built-in budgets, the anonymous one too (the harness raises it).
    let t = server(|l| *l = fahwa::config::RateLimits::default()).await;
    let owner = t.sign_up("acme").await;
    let analyst = t.member(&owner, "acme", "ANALYST").await;
    let viewer = t.member(&owner, "acme", "VIEWER").await;
    let ingest = t.api_key(&owner.access, &["INGEST"]).await;
    let read = t.api_key(&owner.access, &["READ"]).await;
    let limits = &t.app.config.limits;
    let cases = [
        (Some(owner.access.as_str()), limits.points_per_minute_admin),
        (
            Some(analyst.access.as_str()),
            limits.points_per_minute_analyst,
        ),
        (
            Some(viewer.access.as_str()),
            limits.points_per_minute_viewer,
        ),
        (Some(ingest.as_str()), limits.points_per_minute_ingest_key),
        (Some(read.as_str()), limits.points_per_minute_read_key),
        (None, limits.points_per_minute_anonymous),
    ];
    for (token, expected) in cases {
        let (h, body) = query(&t, token, "{ __typename }").await;
        assert_eq!(header(&h, "ratelimit-limit"), expected, "{body}");
    }
    let tiers: Vec<u64> = cases.iter().map(|(_, l)| *l).collect();
    assert!(tiers[0] > tiers[1] && tiers[1] > tiers[2] && tiers[2] > tiers[5]);
    assert!(tiers[3] > tiers[4]);
}

#[tokio::test]
async fn a_spent_budget_refuses_with_rate_limited_and_when_to_retry_and_others_are_unaffected() {
    let t = server(|l| l.points_per_minute_viewer = 60).await;
    let owner = t.sign_up("acme").await;
    let viewer = t.member(&owner, "acme", "VIEWER").await;
    let mut refused = None;
    for _ in 0..200 {
        let (h, body) = query(&t, Some(&viewer.access), "{ me { id } }").await;
        if body["errors"].is_null() {
            continue;
        }
        refused = Some((h, body));
        break;
    }
    let (h, refused) = refused.expect("60 points a minute run out within 200 requests");
    assert_eq!(codes(&refused), ["RATE_LIMITED"], "{refused}");
    assert!(refused["data"].is_null(), "nothing ran: {refused}");
    let wait = refused["errors"][0]["extensions"]["retryAfterSeconds"]
        .as_u64()
        .expect("retryAfterSeconds");
    assert!(
        (1..=2).contains(&wait),
        "one point comes back a second: {wait}"
    );
    assert_eq!(header(&h, "retry-after"), wait);
    assert_eq!(header(&h, "ratelimit-remaining"), 0);

    // Another member's budget is their own.
    let (_, other) = query(&t, Some(&owner.access), "{ me { id } }").await;
    assert!(other["errors"].is_null(), "{other}");

    tokio::time::sleep(Duration::from_secs(wait)).await;
    let (_, served) = query(&t, Some(&viewer.access), "{ me { id } }").await;
    assert!(
        served["errors"].is_null(),
        "served after the wait: {served}"
    );
}

#[tokio::test]
async fn rest_ingestion_over_budget_gets_429_with_retry_after_and_stores_nothing() {
    let t = server(|l| l.points_per_minute_ingest_key = 30).await;
    let owner = t.sign_up("acme").await;
    let key = t.api_key(&owner.access, &["INGEST"]).await;
    let batch = |id: &str| json!({ "events": [{ "id": id, "name": "signup", "userId": "u1" }] });
    let first = t.post("/api/v1/events", &key, &batch("e1")).await;
    assert_eq!(first.status(), 200);
    assert_eq!(header(first.headers(), "ratelimit-limit"), 30);
    assert!(header(first.headers(), "ratelimit-remaining") <= 9);

    let second = t.post("/api/v1/events", &key, &batch("e2")).await;
    assert_eq!(second.status(), 429);
    let wait = header(second.headers(), "retry-after");
    assert!(wait >= 1, "{wait}");
    let body: Value = second.json().await.unwrap();
    assert_eq!(body["errors"][0]["extensions"]["code"], "RATE_LIMITED");
    assert_eq!(body["errors"][0]["extensions"]["retryAfterSeconds"], wait);

    let stored = t.stored_events().await;
    assert_eq!(stored, 1, "the refused batch stored nothing");
}

#[tokio::test]
async fn opening_a_subscription_costs_points_and_is_refused_once_the_budget_is_spent() {
    let t = server(|l| l.points_per_minute_admin = 15).await;
    let s = t.sign_up("acme").await;
    let mut ws = Ws::connect(&t, &s.access).await;
    ws.send(json!({ "id": "a", "type": "subscribe", "payload": { "query": "subscription { liveEvents { dropped } }" } }))
        .await;
    assert!(
        ws.message(Duration::from_millis(500)).await.is_none(),
        "the first one runs quietly"
    );
    ws.send(json!({ "id": "b", "type": "subscribe", "payload": { "query": "subscription { liveEvents { dropped } }" } }))
        .await;
    let msg = ws.message(Duration::from_secs(5)).await.expect("an answer");
    assert_eq!(msg["type"], "error", "{msg}");
    assert_eq!(msg["id"], "b");
    assert_eq!(ws_codes(&msg), ["RATE_LIMITED"], "{msg}");
}

#[tokio::test]
async fn instances_share_one_budget_through_redis() {
    let t = server(|l| l.points_per_minute_admin = 60).await;
    let peer = t.peer().await;
    let s = t.sign_up("acme").await;
    let (h1, _) = query(&t, Some(&s.access), "{ me { id } }").await;
    let (h2, _) = query(&peer, Some(&s.access), "{ me { id } }").await;
    // One point comes back a second; both requests fall within that second.
    assert_eq!(header(&h1, "ratelimit-remaining"), 59);
    assert_eq!(header(&h2, "ratelimit-remaining"), 58);
}

#[tokio::test]
async fn with_redis_down_budgets_are_kept_in_process_and_still_refuse() {
    let t = server(|l| l.points_per_minute_admin = 20).await;
    let down = t
        .peer_configured(|c| c.redis_url = Some("redis://127.0.0.1:1".into()))
        .await;
    let s = t.sign_up("acme").await;
    let mut answers = Vec::new();
    for _ in 0..40 {
        answers.push(query(&down, Some(&s.access), "{ me { id } }").await);
    }
    let (h, first) = &answers[0];
    assert!(first["errors"].is_null(), "{first}");
    assert_eq!(header(h, "ratelimit-limit"), 20);
    let refused = answers
        .iter()
        .filter(|(_, b)| codes(b) == ["RATE_LIMITED"])
        .count();
    assert!(
        refused >= 15,
        "20 points a minute are counted in process: {refused} of 40 refused"
    );
}

#[tokio::test]
async fn an_operation_over_websocket_says_what_it_cost_in_its_first_answer() {
    let t = server(|l| l.points_per_minute_admin = 600).await;
    let s = t.sign_up("acme").await;
    let mut ws = Ws::connect(&t, &s.access).await;
    ws.send(json!({ "id": "q", "type": "subscribe", "payload": { "query": "{ me { id } }" } }))
        .await;
    let msg = ws.message(Duration::from_secs(5)).await.expect("an answer");
    assert_eq!(msg["type"], "next", "{msg}");
    let cost = &msg["payload"]["extensions"]["cost"];
    assert_eq!(cost["points"], 1, "{msg}");
    assert_eq!(cost["limit"], 600);
    assert!(cost["remaining"].as_u64().unwrap() < 600, "{msg}");
}

#[tokio::test]
async fn off_peak_hours_can_be_read_in_each_tenants_own_zone() {
    // Two hours starting at this hour in UTC+12: off-peak there, not in UTC.
    let local = (chrono::Timelike::hour(&Utc::now()) + 12) % 24;
    let hours = format!("{local}-{}", (local + 2) % 24);
    let per_tenant = TestApp::spawn_configured(|c| {
        c.limits.off_peak_hours = hours.clone();
        c.limits.off_peak_zone = "tenant".into();
    })
    .await;
    let fixed = TestApp::spawn_configured(|c| {
        c.limits.off_peak_hours = hours.clone();
        c.limits.off_peak_zone = "UTC".into();
    })
    .await;
    let budget = fahwa::config::RateLimits::default().points_per_minute_admin;
    for (t, expected) in [(&per_tenant, 2 * budget), (&fixed, budget)] {
        let s = t.sign_up("acme").await;
        let set = t
            .op(
                Some(&s.access),
                "tenant.graphql",
                "UpdateTenant",
                json!({ "input": { "timezone": "Etc/GMT-12" } }),
            )
            .await;
        assert!(set["errors"].is_null(), "{set}");
        let (h, body) = query(t, Some(&s.access), "{ me { id } }").await;
        assert_eq!(header(&h, "ratelimit-limit"), expected, "{body}");
    }
}

#[tokio::test]
async fn ingestion_costs_by_its_items_on_graphql_and_on_rest() {
    let t = server(|l| l.points_per_minute_admin = 600).await;
    let s = t.sign_up("acme").await;
    let events = |prefix: &str| -> Vec<Value> {
        (0..1_000)
            .map(|i| json!({ "id": format!("{prefix}{i}"), "name": "a", "userId": "u" }))
            .collect()
    };
    let doc = crate::contract::operation("ingest.graphql", "IngestEvents");
    let (_, body) = post(
        &t,
        Some(&s.access),
        json!({ "query": doc, "operationName": "IngestEvents", "variables": { "events": events("g") } }),
    )
    .await;
    assert!(body["errors"].is_null(), "{body}");
    // 20 for ingesting, one per 100 items, one for the selection.
    assert_eq!(points(&body), 20 + 10 + 1, "{body}");

    let before = t
        .post("/api/v1/events", &s.access, &json!({ "events": [] }))
        .await;
    let left = header(before.headers(), "ratelimit-remaining");
    let rest = t
        .post(
            "/api/v1/events",
            &s.access,
            &json!({ "events": events("r") }),
        )
        .await;
    assert_eq!(rest.status(), 200);
    // 30 points, less what came back at 10 a second between the two requests.
    let spent = left - header(rest.headers(), "ratelimit-remaining");
    assert!((28..=30).contains(&spent), "{spent}");
}
