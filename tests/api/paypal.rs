//! The PayPal connector against a local PayPal (`fake_paypal`): a backfill through Transaction
//! Search with each subscription's plan, an OAuth token cached and fetched again once when it
//! stops working, and webhooks verified by PayPal's own call.

use std::time::Duration;

use chrono::{SecondsFormat, Utc};
use serde_json::{Value, json};

use crate::fake_paypal::{self, FakePaypal};
use crate::harness::{TestApp, codes};
use crate::integrations::{mrr, run};

const CLIENT: &str = "AcmeClientId";
const SECRET: &str = "AcmeClientSecret";
const WEBHOOK: &str = "8PT597110X687430LKGECATA";

fn ago(days: i64, secs: i64) -> String {
    (Utc::now() - chrono::Duration::days(days) - chrono::Duration::seconds(secs))
        .to_rfc3339_opts(SecondsFormat::Secs, true)
}

async fn connect(t: &TestApp, token: &str, secret: &str) -> Value {
    run(
        t,
        token,
        "ConnectIntegration",
        json!({ "input": {
            "provider": "PAYPAL",
            "credentials": { "clientId": CLIENT, "clientSecret": secret },
            "webhookSecret": WEBHOOK,
        }}),
    )
    .await
}

async fn status(t: &TestApp, token: &str) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let r = run(t, token, "Integrations", json!({})).await;
        let i = r["data"]["integrations"][0].clone();
        if i["status"] != "SYNCING" || tokio::time::Instant::now() > deadline {
            return i;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_paypal_backfill_finds_every_paid_subscription_with_one_token_refresh() {
    let paypal = FakePaypal::start(CLIENT, SECRET).await;
    paypal.put_plan(fake_paypal::plan(
        "P-MONTH", "USD", "29.00", "MONTH", 1, None,
    ));
    paypal.put_plan(fake_paypal::plan(
        "P-YEAR", "USD", "120.00", "YEAR", 1, None,
    ));
    for i in 0..1_200 {
        let (plan, quantity) = if i % 2 == 0 {
            ("P-MONTH", 2)
        } else {
            ("P-YEAR", 1)
        };
        paypal.put_subscription(fake_paypal::subscription(
            &format!("I-{i:05}"),
            plan,
            &format!("PAYER{i}"),
            "ACTIVE",
            &ago(10, i),
            quantity,
        ));
    }
    paypal.put_subscription(fake_paypal::subscription(
        "I-SUSPENDED",
        "P-MONTH",
        "PAYERS",
        "SUSPENDED",
        &ago(5, 0),
        1,
    ));
    let base = paypal.base.clone();
    let t = TestApp::spawn_configured(move |c| {
        c.paypal_api_base = base;
        c.worker = true;
        c.connector_requests_per_sec = 1000.0;
    })
    .await;
    let owner = t.sign_up("acme").await;
    let r = connect(&t, &owner.access, "wrong").await;
    assert_eq!(codes(&r), ["BAD_USER_INPUT"], "{r}");
    let r = connect(&t, &owner.access, SECRET).await;
    assert_eq!(r["data"]["connectIntegration"]["provider"], "PAYPAL", "{r}");
    // The connection's token stops working: the sync fetches one more, once.
    let tokens_at_connect = paypal.token_requests();
    paypal.expire_tokens();
    let done = status(&t, &owner.access).await;
    assert_eq!(done["status"], "CONNECTED", "{done}");
    assert_eq!(paypal.token_requests(), tokens_at_connect + 1);

    assert_eq!(mrr(&t, "PAYER0").await, Some((5_800, "USD".into())));
    assert_eq!(mrr(&t, "PAYER1").await, Some((1_000, "USD".into())));
    assert_eq!(
        mrr(&t, "PAYERS").await,
        None,
        "a suspended subscription is not counted"
    );
    let pg = t.pg().await;
    let objects: i64 = pg
        .query_one("SELECT count(*) FROM integration_objects", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(objects, 1_201, "every subscription read once");
    let searches = paypal
        .requests()
        .into_iter()
        .filter(|(_, path, _)| path == "/v1/reporting/transactions")
        .collect::<Vec<_>>();
    assert!(
        searches.iter().any(|(_, _, q)| q.contains("page=3")),
        "the newest window's three pages of 500: {:?}",
        &searches[..3.min(searches.len())]
    );
    let fetched = paypal
        .requests()
        .into_iter()
        .filter(|(m, path, q)| {
            m == "GET"
                && path.starts_with("/v1/billing/subscriptions/")
                && q.contains("fields=plan")
        })
        .count();
    assert_eq!(fetched, 1_201);
}

#[tokio::test]
async fn paypal_deliveries_are_verified_by_paypal_and_applied() {
    let paypal = FakePaypal::start(CLIENT, SECRET).await;
    paypal.put_plan(fake_paypal::plan(
        "P-MONTH", "USD", "50.00", "MONTH", 1, None,
    ));
    paypal.put_subscription(fake_paypal::subscription(
        "I-1",
        "P-MONTH",
        "PAYER1",
        "ACTIVE",
        &ago(20, 0),
        1,
    ));
    paypal.set_valid_signature(WEBHOOK, "sig-good");
    let base = paypal.base.clone();
    let t = TestApp::spawn_configured(move |c| {
        c.paypal_api_base = base;
        c.worker = true;
    })
    .await;
    let owner = t.sign_up("acme").await;
    let r = connect(&t, &owner.access, SECRET).await;
    let id = r["data"]["connectIntegration"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(status(&t, &owner.access).await["status"], "CONNECTED");
    assert_eq!(mrr(&t, "PAYER1").await, Some((5_000, "USD".into())));

    // PayPal cancels it; the delivery is verified by PayPal's own call.
    let mut cancelled =
        fake_paypal::subscription("I-1", "P-MONTH", "PAYER1", "CANCELLED", &ago(20, 0), 1);
    cancelled["status_update_time"] = json!(ago(0, 0));
    paypal.put_subscription(cancelled.clone());
    let event = fake_paypal::event(
        "WH-1",
        "BILLING.SUBSCRIPTION.CANCELLED",
        &ago(0, 0),
        cancelled,
    );
    let send = |sig: Option<&'static str>| {
        let mut request = t
            .client
            .post(format!("{}/api/v1/webhooks/paypal/{id}", t.base))
            .header("content-type", "application/json")
            .body(event.to_string());
        if let Some(sig) = sig {
            request = request
                .header("PAYPAL-AUTH-ALGO", "SHA256withRSA")
                .header(
                    "PAYPAL-CERT-URL",
                    "https://api.paypal.com/v1/notifications/certs/CERT-1",
                )
                .header(
                    "PAYPAL-TRANSMISSION-ID",
                    "69cd13f0-d67a-11e5-baa3-778b53f4ae55",
                )
                .header("PAYPAL-TRANSMISSION-SIG", sig)
                .header("PAYPAL-TRANSMISSION-TIME", ago(0, 30));
        }
        request.send()
    };
    for refused in [None, Some("sig-bad")] {
        let r = send(refused).await.unwrap();
        assert_eq!(r.status().as_u16(), 400, "{refused:?}");
    }
    let r = send(Some("sig-good")).await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let pg = t.pg().await;
    for _ in 0..200 {
        let open: i64 = pg
            .query_one(
                "SELECT count(*) FROM webhook_deliveries WHERE processed_at IS NULL",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        if open == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let outcome: Vec<(String, Option<String>)> = pg
        .query("SELECT event_type, outcome FROM webhook_deliveries", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(
        mrr(&t, "PAYER1").await,
        Some((0, "USD".into())),
        "churned: {outcome:?}"
    );
    let verifications = paypal
        .requests()
        .into_iter()
        .filter(|(_, path, _)| path == "/v1/notifications/verify-webhook-signature")
        .count();
    assert_eq!(
        verifications, 2,
        "the delivery without headers is refused before asking"
    );
}
