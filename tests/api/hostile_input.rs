//! What an attacker or a careless client sends: documents nested thousands deep, fragments that
//! multiply or cycle, JSON nested past any use. Each is answered with the contract's code, and
//! the server goes on serving.

use std::time::Duration;

use serde_json::{Value, json};

use crate::harness::{TestApp, codes};
use crate::live::{Ws, ws_codes};

const LEVELS: usize = 10_000;

/// `{a:{a:…1…}}`, `[[…1…]]`, nested selections, and a directive argument nested as deep:
/// 2,000 levels parse and then overflow a recursive pass, 10,000 are past the parser's own
/// guard.
fn deep_documents() -> Vec<(&'static str, String)> {
    [2_000, LEVELS]
        .into_iter()
        .flat_map(documents_of_depth)
        .collect()
}

fn documents_of_depth(levels: usize) -> Vec<(&'static str, String)> {
    let object = format!("{}1{}", "{a:".repeat(levels), "}".repeat(levels));
    let list = format!("{}1{}", "[".repeat(levels), "]".repeat(levels));
    vec![
        ("object literal", format!("{{ me(x: {object}) {{ id }} }}")),
        ("list literal", format!("{{ me(x: {list}) {{ id }} }}")),
        (
            "selections",
            format!("{{ {} id {} }}", "me {".repeat(levels), "}".repeat(levels)),
        ),
        (
            "directive argument",
            format!("{{ me @include(if: {list}) {{ id }} }}"),
        ),
        (
            "variable default",
            format!("query($v: Int = {list}) {{ me {{ id }} }}"),
        ),
    ]
}

async fn still_serves(t: &TestApp) {
    let r = t.gql(None, "{ __typename }", json!({})).await;
    assert_eq!(r["data"]["__typename"], "Query", "{r}");
}

#[tokio::test]
async fn documents_nested_thousands_deep_are_refused_on_every_transport() {
    let t = TestApp::spawn().await;
    for (shape, doc) in deep_documents() {
        let r = t.gql(None, &doc, json!({})).await;
        assert_eq!(codes(&r), ["QUERY_TOO_COMPLEX"], "POST {shape}: {r}");
        let mut ws = Ws::connect_with(&t, json!({})).await;
        ws.send(json!({ "id": "1", "type": "subscribe", "payload": { "query": doc } }))
            .await;
        let msg = ws
            .message(Duration::from_secs(10))
            .await
            .expect("an answer");
        assert_eq!(
            ws_codes(&msg),
            ["QUERY_TOO_COMPLEX"],
            "WebSocket {shape}: {msg}"
        );
    }
    let list = format!("{}1{}", "[".repeat(LEVELS), "]".repeat(LEVELS));
    let r: Value = t
        .client
        .get(format!("{}/api/v1/graphql", t.base))
        .query(&[("query", format!("{{ me(x: {list}) {{ id }} }}"))])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(codes(&r), ["QUERY_TOO_COMPLEX"], "GET: {r}");
    still_serves(&t).await;
}

#[tokio::test]
async fn fragments_that_multiply_or_cycle_are_refused_at_once() {
    let t = TestApp::spawn().await;
    // Each fragment spreads the next twice: 2^40 selections if expanded naively.
    let mut doc = String::from("query { ...F0 }\n");
    for i in 0..40 {
        doc.push_str(&format!(
            "fragment F{i} on Query {{ ...F{n} ...F{n} }}\n",
            n = i + 1
        ));
    }
    doc.push_str("fragment F40 on Query { __typename }\n");
    let started = std::time::Instant::now();
    let r = t.gql(None, &doc, json!({})).await;
    assert_eq!(codes(&r), ["QUERY_TOO_COMPLEX"], "{r}");
    let cycle =
        "query { ...A } fragment A on Query { ...B ...B } fragment B on Query { ...A ...A }";
    let r = t.gql(None, cycle, json!({})).await;
    assert_eq!(codes(&r), ["BAD_USER_INPUT"], "{r}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "answered without expanding: {:?}",
        started.elapsed()
    );
    still_serves(&t).await;
}

/// 10,000 levels of JSON: past serde_json's bound of 128, refused as a bad body.
#[tokio::test]
async fn json_nested_ten_thousand_deep_is_a_bad_body() {
    let t = TestApp::spawn().await;
    let s = t.sign_up("acme").await;
    let deep = format!("{}1{}", "{\"a\":".repeat(LEVELS), "}".repeat(LEVELS));
    let graphql =
        format!(r#"{{"query":"query($v: JSON) {{ __typename }}","variables":{{"v":{deep}}}}}"#);
    let events = format!(r#"{{"events":[{{"name":"a","userId":"u","properties":{deep}}}]}}"#);
    for (path, body) in [("/api/v1/graphql", graphql), ("/api/v1/events", events)] {
        let resp = t
            .client
            .post(format!("{}{path}", t.base))
            .bearer_auth(&s.access)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 400, "{path}");
        let r: Value = resp.json().await.unwrap();
        assert_eq!(codes(&r), ["BAD_USER_INPUT"], "{path}: {r}");
    }
    // Deep but bounded properties are stored as sent.
    let nested = (0..100).fold(json!(1), |v, _| json!({ "a": v }));
    t.ingest_ok(
        &s.access,
        vec![json!({ "name": "a", "userId": "u", "properties": nested })],
    )
    .await;
    still_serves(&t).await;
}

/// Dates chrono can hold but no calendar arithmetic should meet: refused before any bucket is
/// cut, at every granularity, and never a 500.
#[tokio::test]
async fn ranges_beyond_the_sane_span_of_years_are_bad_input() {
    let t = TestApp::spawn().await;
    let s = t.sign_up("acme").await;
    let ranges = [
        ("+262142-12-01T00:00:00Z", "+262142-12-31T23:59:59Z"),
        ("-262143-01-01T00:00:00Z", "-262143-01-31T00:00:00Z"),
        ("1969-12-01T00:00:00Z", "1970-01-02T00:00:00Z"),
        ("2199-12-01T00:00:00Z", "2200-02-01T00:00:00Z"),
    ];
    for (from, to) in ranges {
        for granularity in ["HOUR", "DAY", "WEEK", "MONTH"] {
            let resp = t
                .client
                .post(format!("{}/api/v1/graphql", t.base))
                .bearer_auth(&s.access)
                .json(&json!({
                    "query": "query($r: TimeRangeInput!, $g: Granularity!) { analytics(range: $r, granularity: $g) { activeUsers { total } retention(periods: 2) { cohorts { size } } } }",
                    "variables": { "r": { "from": from, "to": to }, "g": granularity },
                }))
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), 200, "{from} {granularity}");
            let r: Value = resp.json().await.unwrap();
            assert_eq!(codes(&r), ["BAD_USER_INPUT"], "{from} {granularity}: {r}");
        }
    }
    // Exchange rates for days no event may be stamped with.
    let tomorrow_but_one = (chrono::Utc::now() + chrono::Duration::days(2)).date_naive();
    for day in [
        "1969-12-31".to_string(),
        "+262142-01-01".to_string(),
        tomorrow_but_one.to_string(),
    ] {
        let r = t
            .gql(
                Some(&s.access),
                "mutation($rates: [ExchangeRateInput!]!) { setExchangeRates(rates: $rates) { __typename } }",
                json!({ "rates": [{ "currency": "EUR", "date": day, "rate": "1.1" }] }),
            )
            .await;
        assert_eq!(codes(&r), ["BAD_USER_INPUT"], "{day}: {r}");
    }
    still_serves(&t).await;
}

/// PostgreSQL stores no NUL character: every string that would reach it is refused first,
/// named by where it was given, and nothing is stored.
#[tokio::test]
async fn nul_characters_are_bad_input_named_by_field() {
    let t = TestApp::spawn().await;
    let s = t.sign_up("acme").await;
    let key = t.api_key(&s.access, &["INGEST"]).await;
    let nul = "a\u{0}b";
    let event =
        |properties: Value| json!({ "name": "signup", "userId": "u1", "properties": properties });
    let ingest = "mutation($events: [EventInput!]!) { ingestEvents(events: $events) { accepted } }";
    for properties in [
        json!({ "plan": nul }),
        json!({ nul: "pro" }),
        json!({ "deep": [{ "x": nul }] }),
    ] {
        let r = t
            .gql(
                Some(&s.access),
                ingest,
                json!({ "events": [event(json!({})), event(properties.clone())] }),
            )
            .await;
        assert_eq!(codes(&r), ["BAD_USER_INPUT"], "{r}");
        let message = r["errors"][0]["message"].as_str().unwrap();
        assert!(message.starts_with("$events[1].properties."), "{message}");
        let resp = t
            .post(
                "/api/v1/events",
                &key,
                &json!({ "events": [event(json!({})), event(properties)] }),
            )
            .await;
        assert_eq!(resp.status(), 400);
        let r: Value = resp.json().await.unwrap();
        assert_eq!(codes(&r), ["BAD_USER_INPUT"], "{r}");
        let message = r["errors"][0]["message"].as_str().unwrap();
        assert!(message.starts_with("events[1].properties."), "{message}");
    }
    let literal = r#"mutation { ingestEvents(events: [{ name: "a", userId: "u", properties: { plan: "x\u0000" } }]) { accepted } }"#;
    let r = t.gql(Some(&s.access), literal, json!({})).await;
    assert_eq!(codes(&r), ["BAD_USER_INPUT"], "{r}");
    assert!(
        r["errors"][0]["message"]
            .as_str()
            .unwrap()
            .starts_with("ingestEvents.events[0].properties.plan"),
        "{r}"
    );

    let range = json!({ "from": "2026-11-01T00:00:00Z", "to": "2026-11-02T00:00:00Z" });
    for (filter, breakdown, field) in [
        (json!({ "name": nul }), Value::Null, "$filter.name"),
        (
            json!({ "properties": [{ "key": nul, "equals": "x" }] }),
            Value::Null,
            "$filter.properties[0].key",
        ),
        (
            json!({ "properties": [{ "key": "plan", "equals": nul }] }),
            Value::Null,
            "$filter.properties[0].equals",
        ),
        (Value::Null, json!(nul), "$breakdownBy"),
    ] {
        let r = t
            .op(Some(&s.access), "analytics.graphql", "FilteredActivity",
                json!({ "range": range, "granularity": "DAY", "filter": filter, "breakdownBy": breakdown }))
            .await;
        assert_eq!(codes(&r), ["BAD_USER_INPUT"], "{field}: {r}");
        assert!(
            r["errors"][0]["message"]
                .as_str()
                .unwrap()
                .starts_with(field),
            "{field}: {r}"
        );
    }
    for (slug, email, field) in [
        (nul, "owner@acme.example.com", "$input.tenantSlug"),
        ("acme", "o\u{0}@acme.example.com", "$input.email"),
    ] {
        let r = t.log_in(slug, email, crate::harness::PASSWORD).await;
        assert_eq!(codes(&r), ["BAD_USER_INPUT"], "{r}");
        assert!(
            r["errors"][0]["message"]
                .as_str()
                .unwrap()
                .starts_with(field),
            "{r}"
        );
    }
    let pg = t.pg().await;
    let stored: i64 = pg
        .query_one("SELECT count(*) FROM events", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(stored, 0, "nothing of a refused batch is stored");
}
