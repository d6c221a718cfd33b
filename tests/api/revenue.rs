//! Revenue ingestion: exact amounts, conversion with the day's rate, idempotency, out-of-order
//! arrival, and what is refused (whole batches, named by index and field).

use serde_json::{Value, json};

use crate::harness::{TestApp, codes};
use crate::ingest::{key, post};

const RATES: &str = "mutation($r: [ExchangeRateInput!]!) { setExchangeRates(rates: $r) { set } }";

async fn rest(t: &TestApp, token: &str, body: Value) -> (u16, Value) {
    post(t, "/api/v1/revenue", token, body).await
}

/// The contract's IngestRevenueChanges, verbatim.
async fn ingest(t: &TestApp, token: &str, changes: Vec<Value>) -> Value {
    t.op(
        Some(token),
        "ingest.graphql",
        "IngestRevenueChanges",
        json!({ "changes": changes }),
    )
    .await
}

fn change(id: &str, customer: &str, at: &str, mrr: &str, currency: &str) -> Value {
    json!({ "id": id, "customerId": customer, "occurredAt": at, "mrr": mrr, "currency": currency, "plan": "pro" })
}

/// (customer, stored mrr as text, currency) in time order.
async fn stored(t: &TestApp) -> Vec<(String, String, String)> {
    t.pg()
        .await
        .query(
            "SELECT customer_id, mrr::text, currency FROM revenue_changes ORDER BY occurred_at, id",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect()
}

async fn customer(t: &TestApp, id: &str) -> (String, Option<String>) {
    let row = t
        .pg()
        .await
        .query_one(
            "SELECT mrr::text, first_paid_at::text FROM customers WHERE customer_id = $1",
            &[&id],
        )
        .await
        .unwrap();
    (row.get(0), row.get(1))
}

#[tokio::test]
async fn changes_are_stored_exactly_converted_and_once() {
    let t = TestApp::spawn().await;
    let s = t.sign_up("acme").await;
    let ingest_key = key(&t, &s.access, "INGEST").await;

    // EUR needs a rate for the change's UTC day first.
    let (status, body) = rest(
        &t,
        &ingest_key,
        json!({ "changes": [
            change("a", "cus_1", "2026-03-01T10:00:00Z", "49.00", "USD"),
            change("b", "cus_2", "2026-03-02T23:30:00Z", "100.50", "EUR"),
        ]}),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["errors"][0]["extensions"]["code"], "BAD_USER_INPUT");
    let message = body["errors"][0]["message"].as_str().unwrap();
    assert!(
        message.contains("changes[1].currency")
            && message.contains("EUR")
            && message.contains("2026-03-02"),
        "{message}"
    );
    assert!(
        stored(&t).await.is_empty(),
        "nothing of a refused batch is stored"
    );

    let r = t
        .gql(
            Some(&s.access),
            RATES,
            json!({ "r": [
                { "currency": "EUR", "date": "2026-03-02", "rate": "1.0850" },
                { "currency": "JPY", "date": "2026-03-03", "rate": "0.0067" },
            ]}),
        )
        .await;
    assert_eq!(r["data"]["setExchangeRates"]["set"], 2, "{r}");

    let (status, body) = rest(
        &t,
        &ingest_key,
        json!({ "changes": [
            change("a", "cus_1", "2026-03-01T10:00:00Z", "49.00", "USD"),
            change("b", "cus_2", "2026-03-02T23:30:00Z", "100.50", "EUR"),
            change("c", "cus_3", "2026-03-03T08:00:00Z", "1500", "JPY"),
            change("a", "cus_1", "2026-03-01T10:00:00Z", "49.00", "USD"),
        ]}),
    )
    .await;
    assert_eq!(
        (status, &body),
        (200, &json!({ "accepted": 3, "duplicates": 1 }))
    );
    // Exact: 100.50 × 1.0850 = 109.04250, 1500 × 0.0067 = 10.0500; no float anywhere.
    let rows = stored(&t).await;
    let amounts: Vec<f64> = rows.iter().map(|(_, m, _)| m.parse().unwrap()).collect();
    assert_eq!(amounts, vec![49.0, 109.0425, 10.05]);
    assert!(rows[1].1.starts_with("109.0425"), "{rows:?}");

    // The same ids again through GraphQL: duplicates, nothing stored twice.
    let r = ingest(
        &t,
        &ingest_key,
        vec![change(
            "b",
            "cus_2",
            "2026-03-02T23:30:00Z",
            "100.50",
            "EUR",
        )],
    )
    .await;
    assert_eq!(
        r["data"]["ingestRevenueChanges"],
        json!({ "accepted": 0, "duplicates": 1 }),
        "{r}"
    );
    assert_eq!(stored(&t).await.len(), 3);

    // A corrected rate converts that day's changes again, and the customer's state with them.
    t.gql(
        Some(&s.access),
        RATES,
        json!({ "r": [{ "currency": "EUR", "date": "2026-03-02", "rate": "1.1" }] }),
    )
    .await;
    let (mrr, _) = customer(&t, "cus_2").await;
    assert_eq!(mrr.parse::<f64>().unwrap(), 110.55);
}

#[tokio::test]
async fn a_customer_is_derived_from_all_its_changes_in_time_order() {
    let t = TestApp::spawn().await;
    let s = t.sign_up("acme").await;
    let batch = |changes: Vec<Value>| ingest(&t, &s.access, changes);
    let r = batch(vec![
        change("2", "cus_1", "2026-05-10T00:00:00Z", "0", "USD"),
        change("3", "cus_1", "2026-05-20T00:00:00Z", "80", "USD"),
    ])
    .await;
    assert!(r["errors"].is_null(), "{r}");
    assert_eq!(customer(&t, "cus_1").await.0.parse::<f64>().unwrap(), 80.0);
    // An older change arriving late moves the first paid day, not the current MRR.
    batch(vec![change(
        "1",
        "cus_1",
        "2026-05-01T00:00:00Z",
        "50",
        "USD",
    )])
    .await;
    let (mrr, first_paid) = customer(&t, "cus_1").await;
    assert_eq!(mrr.parse::<f64>().unwrap(), 80.0);
    assert!(first_paid.unwrap().starts_with("2026-05-01"));
    // A newer one changes it.
    batch(vec![change(
        "4",
        "cus_1",
        "2026-05-25T00:00:00Z",
        "0",
        "USD",
    )])
    .await;
    assert_eq!(customer(&t, "cus_1").await.0.parse::<f64>().unwrap(), 0.0);
}

#[tokio::test]
async fn bad_changes_and_rates_are_refused_by_index_and_field() {
    let t = TestApp::spawn().await;
    let s = t.sign_up("acme").await;
    let ok = change("1", "cus_1", "2026-05-01T00:00:00Z", "10", "USD");
    let cases = [
        (
            change("2", "cus_1", "2026-05-01T00:00:00Z", "-1", "USD"),
            "changes[1].mrr",
        ),
        (
            change("2", "cus_1", "2026-05-01T00:00:00Z", "1.001", "USD"),
            "changes[1].mrr",
        ),
        (
            change("2", "cus_1", "2026-05-01T00:00:00Z", "5", "USX"),
            "changes[1].currency",
        ),
        (
            change("2", "cus_1", "2999-01-01T00:00:00Z", "5", "USD"),
            "changes[1].occurredAt",
        ),
        (
            change("2", "", "2026-05-01T00:00:00Z", "5", "USD"),
            "changes[1].customerId",
        ),
    ];
    for (bad, field) in cases {
        let r = ingest(&t, &s.access, vec![ok.clone(), bad]).await;
        assert_eq!(codes(&r), ["BAD_USER_INPUT"], "{r}");
        let message = r["errors"][0]["message"].as_str().unwrap();
        assert!(message.contains(field), "{field}: {message}");
    }
    // Non-numeric text through REST, where amounts arrive as JSON.
    let ingest_key = key(&t, &s.access, "INGEST").await;
    let (status, body) = rest(
        &t,
        &ingest_key,
        json!({ "changes": [change("2", "cus_1", "2026-05-01T00:00:00Z", "ten", "USD")] }),
    )
    .await;
    assert_eq!(status, 400);
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("changes[0].mrr")
    );
    assert_eq!(stored(&t).await.len(), 0);

    let r = t
        .gql(
            Some(&s.access),
            RATES,
            json!({ "r": [{ "currency": "USD", "date": "2026-05-01", "rate": "2" }] }),
        )
        .await;
    assert_eq!(
        codes(&r),
        ["BAD_USER_INPUT"],
        "the tenant's own currency: {r}"
    );
}

#[tokio::test]
async fn only_ingesters_send_revenue_and_only_admins_set_rates() {
    let t = TestApp::spawn().await;
    let owner = t.sign_up("acme").await;
    let analyst = t.member(&owner, "acme", "ANALYST").await;
    let read_key = key(&t, &owner.access, "READ").await;
    let one = vec![change("1", "cus_1", "2026-05-01T00:00:00Z", "10", "USD")];
    for token in [&analyst.access, &read_key] {
        let r = ingest(&t, token, one.clone()).await;
        assert_eq!(codes(&r), ["FORBIDDEN"], "{r}");
    }
    let (status, _) = rest(&t, &read_key, json!({ "changes": [] })).await;
    assert_eq!(status, 403);
    let r = t
        .gql(
            Some(&analyst.access),
            RATES,
            json!({ "r": [{ "currency": "EUR", "date": "2026-05-01", "rate": "1.1" }] }),
        )
        .await;
    assert_eq!(codes(&r), ["FORBIDDEN"], "{r}");
    let audit: i64 = t
        .pg()
        .await
        .query_one(
            "SELECT count(*) FROM audit_log WHERE action LIKE 'revenue.%'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(audit, 0, "refused calls write nothing");
    let r = ingest(&t, &owner.access, one).await;
    assert!(r["errors"].is_null(), "{r}");
}
