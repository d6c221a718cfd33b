//! Injection (OWASP API8:2023, and the GraphQL cheat sheet's injection section): names, ids,
//! filter keys and values carrying SQL metacharacters are data, matched exactly and stored as
//! sent; invalid UTF-8 and JSON nested 1,000 deep are refused with `BAD_USER_INPUT`.

use serde_json::{Value, json};

use crate::harness::{Session, TestApp, codes};

const NAME: &str = "x'); DROP TABLE events; --";
const USER: &str = "\"; DELETE FROM members; --";
const KEY: &str = "k'\"; --";
const VALUE: &str = "v' OR '1'='1";

async fn filtered(t: &TestApp, s: &Session, filter: Value, breakdown: Option<&str>) -> Value {
    let to = chrono::Utc::now() + chrono::Duration::hours(1);
    let from = to - chrono::Duration::days(2);
    t.op(
        Some(&s.access),
        "analytics.graphql",
        "FilteredActivity",
        json!({ "range": { "from": from, "to": to }, "granularity": "DAY",
                "filter": filter, "breakdownBy": breakdown }),
    )
    .await
}

fn total(r: &Value) -> f64 {
    assert!(r["errors"].is_null(), "{r}");
    r["data"]["analytics"]["events"]["total"].as_f64().unwrap()
}

#[tokio::test]
async fn sql_metacharacters_in_names_ids_and_filters_are_matched_as_data() {
    let t = TestApp::spawn().await;
    let s = t.sign_up("acme").await;
    t.ingest_ok(
        &s.access,
        vec![
            json!({ "id": "'; --", "name": NAME, "userId": USER, "properties": { KEY: VALUE } }),
            json!({ "name": "plain", "userId": "u2", "properties": { KEY: "other" } }),
        ],
    )
    .await;
    t.flush().await;

    let exact = json!({ "name": NAME, "properties": [{ "key": KEY, "equals": VALUE }] });
    assert_eq!(total(&filtered(&t, &s, exact, None).await), 1.0);
    // A value that would be true for every row if it reached SQL as text matches none.
    let always = json!({ "properties": [{ "key": KEY, "equals": "' OR '1'='1" }] });
    assert_eq!(total(&filtered(&t, &s, always, None).await), 0.0);
    let by_name = json!({ "name": "x') OR 1=1 --" });
    assert_eq!(total(&filtered(&t, &s, by_name, None).await), 0.0);

    // A breakdown by a key full of metacharacters groups by that key, or is refused as input.
    let broken_down = filtered(&t, &s, json!({}), Some(KEY)).await;
    let refused = codes(&broken_down);
    assert!(
        refused.is_empty() || refused == ["BAD_USER_INPUT"],
        "{broken_down}"
    );

    // Stored as sent, and nothing else was touched.
    let pg = t.pg().await;
    let row = pg
        .query_one(
            "SELECT name, user_id, client_id, properties->>$1 FROM events WHERE name = $2",
            &[&KEY, &NAME],
        )
        .await
        .unwrap();
    let stored: (String, String, String, String) = (row.get(0), row.get(1), row.get(2), row.get(3));
    assert_eq!(
        stored,
        (NAME.into(), USER.into(), "'; --".into(), VALUE.into())
    );
    assert_eq!(t.stored_events().await, 2);
    let members: i64 = pg
        .query_one("SELECT count(*) FROM members", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(members, 1);
}

#[tokio::test]
async fn invalid_utf8_and_json_nested_a_thousand_deep_are_bad_input() {
    let t = TestApp::spawn().await;
    let s = t.sign_up("acme").await;
    let key = t.api_key(&s.access, &["INGEST"]).await;
    let mut invalid = br#"{"events":[{"name":"a","userId":""#.to_vec();
    invalid.extend_from_slice(&[0xff, 0xfe, 0xc3, 0x28]);
    invalid.extend_from_slice(br#""}]}"#);
    let properties = format!("{}1{}", r#"{"a":"#.repeat(1_000), "}".repeat(1_000));
    let deep = format!(r#"{{"events":[{{"name":"a","userId":"u","properties":{properties}}}]}}"#);
    let deep_variables = format!(
        r#"{{"query":"mutation($e: [EventInput!]!) {{ ingestEvents(events: $e) {{ accepted }} }}","variables":{{"e":[{{"name":"a","userId":"u","properties":{properties}}}]}}}}"#
    );
    for (what, path, token, body) in [
        ("invalid UTF-8", "/api/v1/events", &key, invalid),
        ("invalid UTF-8", "/api/v1/graphql", &s.access, {
            let mut b = br#"{"query":"{ me { id } }","variables":{"x":""#.to_vec();
            b.extend_from_slice(&[0xff, 0xfe]);
            b.extend_from_slice(br#""}}"#);
            b
        }),
        (
            "nested 1,000 deep",
            "/api/v1/events",
            &key,
            deep.into_bytes(),
        ),
        (
            "nested 1,000 deep",
            "/api/v1/graphql",
            &s.access,
            deep_variables.into_bytes(),
        ),
    ] {
        let (status, body) = t.post_bytes(path, token, body).await;
        assert_eq!(status, 400, "{what} to {path}");
        assert_eq!(codes(&body), ["BAD_USER_INPUT"], "{what} to {path}: {body}");
    }
    assert_eq!(t.stored_events().await, 0, "nothing refused was stored");
}
