//! Integrations against a local Stripe (`fake_stripe`): the contract's operations and who may
//! run them, sealed credentials, backfills that page through everything, webhook deliveries
//! (signatures, replays, ignored types, late arrivals), retries, a sync killed and resumed, and
//! revenue that waits for an exchange rate.

use std::time::Duration;

use serde_json::{Value, json};

use crate::fake_stripe::{self, Failure, FakeStripe};
use crate::harness::{TestApp, codes};

const KEY: &str = "sk_test_4eC39HqLyjWDarjtT1zdp7dc";
const SECRET: &str = "whsec_test_secret";

async fn with_stripe(stripe: &FakeStripe, worker: bool) -> TestApp {
    let base = stripe.base.clone();
    TestApp::spawn_configured(move |c| {
        c.stripe_api_base = base;
        c.worker = worker;
        c.connector_requests_per_sec = 1000.0;
    })
    .await
}

/// An operation of the contract's `integrations.graphql`.
pub async fn run(t: &TestApp, token: &str, name: &str, variables: Value) -> Value {
    t.op(Some(token), "integrations.graphql", name, variables)
        .await
}

async fn connect(t: &TestApp, token: &str) -> Value {
    run(
        t,
        token,
        "ConnectIntegration",
        json!({ "input": {
            "provider": "STRIPE",
            "credentials": { "apiKey": KEY },
            "webhookSecret": SECRET,
        }}),
    )
    .await
}

async fn connected(t: &TestApp, token: &str) -> String {
    let r = connect(t, token).await;
    r["data"]["connectIntegration"]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("{r}"))
        .to_string()
}

async fn integration(t: &TestApp, token: &str, id: &str) -> Value {
    let r = run(t, token, "Integrations", json!({})).await;
    r["data"]["integrations"]
        .as_array()
        .unwrap_or_else(|| panic!("{r}"))
        .iter()
        .find(|i| i["id"] == id)
        .cloned()
        .unwrap_or_else(|| panic!("{id} not listed: {r}"))
}

/// Waits until the integration is no longer SYNCING (or 60 s passed) and returns it.
async fn synced(t: &TestApp, token: &str, id: &str) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let i = integration(t, token, id).await;
        if i["status"] != "SYNCING" || tokio::time::Instant::now() > deadline {
            return i;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A server with a worker, a tenant, and its Stripe integration once the first sync is done.
async fn synced_to(stripe: &FakeStripe) -> (TestApp, crate::harness::Session, String) {
    let t = with_stripe(stripe, true).await;
    let owner = t.sign_up("acme").await;
    let id = connected(&t, &owner.access).await;
    assert_eq!(synced(&t, &owner.access, &id).await["status"], "CONNECTED");
    (t, owner, id)
}

/// A customer's MRR now as Fahwa stores it: (minor units, currency) of the newest change.
pub async fn mrr(t: &TestApp, customer: &str) -> Option<(i64, String)> {
    t.pg()
        .await
        .query_opt(
            "SELECT amount_minor, currency FROM revenue_changes WHERE customer_id = $1 \
             ORDER BY occurred_at DESC LIMIT 1",
            &[&customer],
        )
        .await
        .unwrap()
        .map(|r| (r.get(0), r.get(1)))
}

/// The one value of a query over the test's database (as its superuser).
async fn value<T: for<'a> tokio_postgres::types::FromSql<'a>>(t: &TestApp, sql: &str) -> T {
    t.pg().await.query_one(sql, &[]).await.unwrap().get(0)
}

/// A customer's MRR after each of its changes, in time order.
async fn history(t: &TestApp, customer: &str) -> Vec<i64> {
    t.pg()
        .await
        .query(
            "SELECT amount_minor FROM revenue_changes WHERE customer_id = $1 ORDER BY occurred_at",
            &[&customer],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

fn monthly(id: &str, customer: &str, unit_amount: i64, quantity: u64) -> Value {
    let price = fake_stripe::price(&format!("price_{id}"), "usd", unit_amount, "month", 1);
    fake_stripe::subscription(
        id,
        customer,
        "active",
        vec![fake_stripe::item(&format!("si_{id}"), price, quantity)],
    )
}

async fn post_delivery(
    t: &TestApp,
    id: &str,
    body: &str,
    signature: Option<String>,
) -> (u16, Value) {
    let mut request = t
        .client
        .post(format!("{}/api/v1/webhooks/stripe/{id}", t.base))
        .header("content-type", "application/json")
        .body(body.to_string());
    if let Some(s) = signature {
        request = request.header("Stripe-Signature", s);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn deliver(t: &TestApp, id: &str, event: &Value) -> (u16, Value) {
    let body = event.to_string();
    let now = chrono::Utc::now().timestamp();
    post_delivery(t, id, &body, Some(fake_stripe::sign(SECRET, now, &body))).await
}

/// Waits until every delivery recorded for processing was processed.
async fn processed(t: &TestApp) {
    for _ in 0..300 {
        let open: i64 = value(
            t,
            "SELECT count(*) FROM webhook_deliveries WHERE processed_at IS NULL",
        )
        .await;
        if open == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("deliveries still unprocessed");
}

#[tokio::test]
async fn the_contract_operations_run_for_admins_only_and_credentials_never_come_back() {
    let stripe = FakeStripe::start(KEY).await;
    stripe.put_subscription(monthly("sub_1", "cus_1", 4900, 1));
    let t = with_stripe(&stripe, false).await;
    let owner = t.sign_up("acme").await;
    let admin = t.member(&owner, "acme", "ADMIN").await;
    let analyst = t.member(&owner, "acme", "ANALYST").await;
    let viewer = t.member(&owner, "acme", "VIEWER").await;

    let r = connect(&t, &admin.access).await;
    let made = &r["data"]["connectIntegration"];
    let id = made["id"]
        .as_str()
        .unwrap_or_else(|| panic!("{r}"))
        .to_string();
    assert_eq!(made["provider"], "STRIPE");
    assert_eq!(made["status"], "SYNCING", "the backfill starts at once");
    assert_eq!(
        made["webhookUrl"],
        format!("{}/api/v1/webhooks/stripe/{id}", t.app.config.public_url())
    );
    assert!(!r.to_string().contains(KEY) && !r.to_string().contains(SECRET));

    for member in [&analyst, &viewer] {
        let tries = [
            connect(&t, &member.access).await,
            run(&t, &member.access, "Integrations", json!({})).await,
            run(&t, &member.access, "SyncIntegration", json!({ "id": id })).await,
            run(
                &t,
                &member.access,
                "DisconnectIntegration",
                json!({ "id": id }),
            )
            .await,
        ];
        for r in tries {
            assert_eq!(codes(&r), ["FORBIDDEN"], "{r}");
        }
    }

    let listed = integration(&t, &owner.access, &id).await;
    assert_eq!(listed["status"], "SYNCING");
    assert!(listed["lastSyncAt"].is_null() && listed["lastError"].is_null());
    let r = run(&t, &owner.access, "SyncIntegration", json!({ "id": id })).await;
    assert_eq!(r["data"]["syncIntegration"]["status"], "SYNCING", "{r}");

    // Refused credentials: nothing stored, a message to act on.
    let before: i64 = value(&t, "SELECT count(*) FROM integrations").await;
    let r = run(
        &t,
        &owner.access,
        "ConnectIntegration",
        json!({ "input": { "provider": "STRIPE", "credentials": { "apiKey": "sk_test_wrong" } } }),
    )
    .await;
    assert_eq!(codes(&r), ["BAD_USER_INPUT"], "{r}");
    let asked = stripe.request_count();
    stripe.fail_next(vec![Failure::Unauthorized]);
    let r = connect(&t, &owner.access).await;
    assert_eq!(
        codes(&r),
        ["BAD_USER_INPUT"],
        "a key the provider refuses: {r}"
    );
    let last = stripe.requests().pop().unwrap();
    assert_eq!(
        (stripe.request_count(), last.method.as_str()),
        (asked + 1, "GET")
    );
    assert!(last.query.contains("limit=1"), "{}", last.query);
    let r2 = run(
        &t,
        &owner.access,
        "ConnectIntegration",
        json!({ "input": { "provider": "STRIPE", "credentials": { "key": KEY } } }),
    )
    .await;
    assert_eq!(codes(&r2), ["BAD_USER_INPUT"], "{r2}");
    assert!(!r2.to_string().contains(KEY));
    let after: i64 = value(&t, "SELECT count(*) FROM integrations").await;
    assert_eq!(before, after);

    // At rest: sealed, and the audit log never holds them.
    let pg = t.pg().await;
    let row = pg
        .query_one(
            "SELECT credentials, webhook_secret FROM integrations WHERE id = $1::text::uuid",
            &[&id],
        )
        .await
        .unwrap();
    let (sealed, sealed_secret): (String, String) = (row.get(0), row.get(1));
    assert!(
        !sealed.contains(KEY) && !sealed.contains("sk_test"),
        "{sealed}"
    );
    assert!(!sealed_secret.contains(SECRET));
    assert!(
        sealed.starts_with("v1.test."),
        "sealed under the configured key id: {sealed}"
    );
    let audit: Vec<String> = pg
        .query("SELECT action || ' ' || details::text FROM audit_log", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(
        audit.iter().any(|a| a.starts_with("integration.connect")),
        "{audit:?}"
    );
    assert!(
        audit.iter().any(|a| a.starts_with("integration.sync")),
        "{audit:?}"
    );
    assert!(
        audit
            .iter()
            .all(|a| !a.contains(KEY) && !a.contains(SECRET)),
        "{audit:?}"
    );

    let r = run(
        &t,
        &admin.access,
        "DisconnectIntegration",
        json!({ "id": id }),
    )
    .await;
    assert_eq!(r["data"]["disconnectIntegration"], true, "{r}");
    assert_eq!(
        integration(&t, &owner.access, &id).await["status"],
        "DISCONNECTED"
    );
    let erased: String = pg
        .query_one(
            "SELECT credentials FROM integrations WHERE id = $1::text::uuid",
            &[&id],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        erased, "",
        "a disconnected integration keeps no credentials"
    );
    // Another tenant's id is not found.
    let other = t.sign_up("globex").await;
    let r = run(&t, &other.access, "SyncIntegration", json!({ "id": id })).await;
    assert_eq!(codes(&r), ["NOT_FOUND"], "{r}");
}

#[tokio::test]
async fn a_backfill_of_2500_subscriptions_pages_through_all_of_them_once() {
    let stripe = FakeStripe::start(KEY).await;
    for i in 0..2500 {
        // Two subscriptions for every tenth customer: a customer's MRR is their sum.
        let customer = format!("cus_{}", if i % 10 == 9 { i - 1 } else { i });
        stripe.put_subscription(monthly(
            &format!("sub_{i:04}"),
            &customer,
            1000 * (i % 3 + 1),
            1,
        ));
    }
    let t = with_stripe(&stripe, true).await;
    let owner = t.sign_up("acme").await;
    let id = connected(&t, &owner.access).await;
    let done = synced(&t, &owner.access, &id).await;
    assert_eq!(done["status"], "CONNECTED", "{done}");
    assert!(done["lastSyncAt"].is_string(), "{done}");

    let objects: i64 = value(&t, "SELECT count(*) FROM integration_objects").await;
    assert_eq!(objects, 2500);
    let total: i64 = value(
        &t,
        "SELECT sum(amount_minor)::bigint FROM (SELECT DISTINCT ON (customer_id) amount_minor \
             FROM revenue_changes ORDER BY customer_id, occurred_at DESC) latest",
    )
    .await;
    let expected: i64 = (0..2500i64).map(|i| 1000 * (i % 3 + 1)).sum();
    assert_eq!(total, expected);
    assert_eq!(
        mrr(&t, "cus_8").await,
        Some((3_000 + 1_000, "USD".into())), // sub_0008 and sub_0009
    );

    // 25 pages of 100, each after the last id of the one before.
    let lists: Vec<_> = stripe
        .requests()
        .into_iter()
        .filter(|r| {
            r.path == "/v1/subscriptions"
                && r.params.iter().any(|(k, v)| k == "status" && v == "all")
        })
        .collect();
    assert_eq!(lists.len(), 25, "{lists:?}");
    assert!(
        lists
            .iter()
            .all(|r| r.params.contains(&("limit".into(), "100".into())))
    );
    assert!(!lists[0].params.iter().any(|(k, _)| k == "starting_after"));
    assert!(
        lists[1]
            .params
            .contains(&("starting_after".into(), "sub_0099".into()))
    );
    let checkpoint: Option<Value> = value(&t, "SELECT checkpoint FROM integrations").await;
    assert!(checkpoint.is_none(), "a finished sync leaves no checkpoint");

    // A second sync finds nothing new and writes nothing.
    let changes_before: i64 = value(&t, "SELECT count(*) FROM revenue_changes").await;
    run(&t, &owner.access, "SyncIntegration", json!({ "id": id })).await;
    assert_eq!(synced(&t, &owner.access, &id).await["status"], "CONNECTED");
    let changes_after: i64 = value(&t, "SELECT count(*) FROM revenue_changes").await;
    assert_eq!(changes_before, changes_after);
}

/// Each of Stripe's pricing cases, as the MRR a customer ends with.
#[tokio::test]
async fn every_pricing_case_becomes_the_mrr_stripe_implies() {
    let stripe = FakeStripe::start(KEY).await;
    let price = |id: &str, amount: i64, interval: &str, count: u32| {
        fake_stripe::price(id, "usd", amount, interval, count)
    };
    let sub = |id: &str, status: &str, p: Value, quantity: u64| {
        fake_stripe::subscription(
            id,
            &format!("cus_{id}"),
            status,
            vec![fake_stripe::item(&format!("si_{id}"), p, quantity)],
        )
    };
    let now = chrono::Utc::now().timestamp();
    let coupon = |duration: &str, percent: Option<f64>, amount_off: Option<i64>| {
        json!({
            "id": "di_1", "object": "discount", "start": 1_767_225_600i64, "end": null,
            "source": { "type": "coupon", "coupon": {
                "id": "co_1", "object": "coupon", "duration": duration, "duration_in_months": null,
                "percent_off": percent, "amount_off": amount_off, "currency": amount_off.map(|_| "usd"),
            }},
        })
    };
    let mut cases: Vec<(Value, i64)> = vec![
        (
            sub("quantity", "active", price("p1", 1500, "month", 1), 3),
            4500,
        ),
        (
            sub("yearly", "active", price("p2", 120_000, "year", 1), 1),
            10_000,
        ),
        (
            sub("biyearly", "active", price("p3", 120_000, "year", 2), 1),
            5_000,
        ),
        (
            sub("quarterly", "active", price("p4", 3000, "month", 3), 1),
            1_000,
        ),
        (
            sub("weekly", "active", price("p5", 1200, "week", 1), 1),
            5_200,
        ),
        (sub("daily", "active", price("p6", 100, "day", 1), 1), 3_042),
        (
            sub("pastdue", "past_due", price("p7", 2000, "month", 1), 1),
            2_000,
        ),
        (
            sub("trial", "trialing", price("p8", 2000, "month", 1), 1),
            0,
        ),
        (sub("paused", "paused", price("p9", 2000, "month", 1), 1), 0),
        (
            sub("canceled", "canceled", price("p10", 2000, "month", 1), 1),
            0,
        ),
    ];
    // A trial that ends in a week: nothing yet.
    cases[7].0["trial_end"] = json!(now + 7 * 86_400);
    let mut percent = sub("percent", "active", price("p11", 10_000, "month", 1), 1);
    percent["discounts"] = json!([coupon("forever", Some(25.0), None)]);
    cases.push((percent, 7_500));
    let mut amount = sub("amountoff", "active", price("p12", 10_000, "year", 1), 1);
    amount["discounts"] = json!([coupon("forever", None, Some(1_200))]);
    cases.push((amount, 733)); // (100.00 - 12.00) / 12 = 7.3333 → 7.33
    let mut once = sub("once", "active", price("p13", 5_000, "month", 1), 1);
    once["discounts"] = json!([coupon("once", Some(50.0), None)]);
    cases.push((once, 5_000)); // the first month only, long past
    let mut ending = sub("ending", "active", price("p14", 2_500, "month", 1), 1);
    ending["cancel_at_period_end"] = json!(true);
    ending["items"]["data"][0]["current_period_end"] = json!(now + 86_400);
    cases.push((ending, 2_500)); // counted until its period ends
    let mut metered = sub("metered", "active", price("p15", 10, "month", 1), 1);
    metered["items"]["data"][0]["price"]["recurring"]["usage_type"] = json!("metered");
    cases.push((metered, 0));
    // Graduated tiers: 10 × 10.00, then 5 × 5.00 and the second tier's flat 20.00.
    let mut tiered = sub("tiered", "active", price("p16", 0, "month", 1), 15);
    let p = &mut tiered["items"]["data"][0]["price"];
    p["billing_scheme"] = json!("tiered");
    p["tiers_mode"] = json!("graduated");
    p["unit_amount"] = json!(null);
    p["unit_amount_decimal"] = json!(null);
    p["tiers"] = json!([
        { "up_to": 10, "unit_amount": 1_000, "unit_amount_decimal": "1000", "flat_amount": null, "flat_amount_decimal": null },
        { "up_to": null, "unit_amount": 500, "unit_amount_decimal": "500", "flat_amount": 2_000, "flat_amount_decimal": "2000" },
    ]);
    cases.push((tiered, 14_500));
    // Seats sold in packs of 5, rounded up: 12 seats are 3 packs of 30.00.
    let mut packs = sub("packs", "active", price("p17", 3_000, "month", 1), 12);
    packs["items"]["data"][0]["price"]["transform_quantity"] =
        json!({ "divide_by": 5, "round": "up" });
    cases.push((packs, 9_000));
    for (s, _) in &cases {
        stripe.put_subscription(s.clone());
    }
    let t = with_stripe(&stripe, true).await;
    let owner = t.sign_up("acme").await;
    let id = connected(&t, &owner.access).await;
    assert_eq!(synced(&t, &owner.access, &id).await["status"], "CONNECTED");
    for (s, expected) in &cases {
        let customer = s["customer"].as_str().unwrap();
        let got = mrr(&t, customer).await.map_or(0, |(m, _)| m);
        assert_eq!(got, *expected, "{customer}");
    }
    // The canceled one was new, then churned when it ended.
    let history = history(&t, "cus_canceled").await;
    assert_eq!(history, [2_000, 0]);
    let left_out: Vec<String> = value(
        &t,
        "SELECT left_out FROM integration_objects WHERE object_id = 'metered'",
    )
    .await;
    assert!(
        left_out.iter().any(|l| l.contains("metered")),
        "{left_out:?}"
    );
}

#[tokio::test]
async fn deliveries_are_verified_recorded_once_and_ignored_when_unknown() {
    let stripe = FakeStripe::start(KEY).await;
    let (t, _owner, id) = synced_to(&stripe).await;
    let now = chrono::Utc::now().timestamp();
    let created = monthly("sub_w", "cus_w", 3_000, 1);
    let event = fake_stripe::event(
        "evt_1",
        "customer.subscription.created",
        now - 60,
        created.clone(),
    );
    let body = event.to_string();

    // Missing, wrong, and stale signatures: 400, nothing stored, each audited.
    let refused = [
        None,
        Some(fake_stripe::sign("whsec_other", now, &body)),
        Some(fake_stripe::sign(SECRET, now - 3_600, &body)),
        Some(format!("t={now},v1=zz")),
    ];
    for signature in refused {
        let (status, answer) = post_delivery(&t, &id, &body, signature.clone()).await;
        assert_eq!(status, 400, "{signature:?}: {answer}");
        assert_eq!(answer["errors"][0]["extensions"]["code"], "BAD_USER_INPUT");
    }
    let stored: i64 = value(&t, "SELECT count(*) FROM webhook_deliveries").await;
    assert_eq!(stored, 0);
    let rejected: i64 = value(
        &t,
        "SELECT count(*) FROM audit_log WHERE action = 'webhook.rejected'",
    )
    .await;
    assert_eq!(rejected, 4);

    // Several v1 (a secret being rolled): one matching is enough.
    let good = fake_stripe::sign(SECRET, now, &body);
    let rolled = format!(
        "{},v1={}",
        fake_stripe::sign("whsec_old", now, &body),
        good.split("v1=").nth(1).unwrap()
    );
    let (status, answer) = post_delivery(&t, &id, &body, Some(rolled)).await;
    assert_eq!(
        (status, answer["status"].as_str()),
        (200, Some("accepted")),
        "{answer}"
    );
    // The same event again: acknowledged, stored once.
    let (status, answer) = deliver(&t, &id, &event).await;
    assert_eq!(
        (status, answer["status"].as_str()),
        (200, Some("duplicate")),
        "{answer}"
    );
    let (status, answer) = deliver(
        &t,
        &id,
        &fake_stripe::event("evt_2", "charge.refunded", now, json!({"id": "ch_1"})),
    )
    .await;
    assert_eq!(
        (status, answer["status"].as_str()),
        (200, Some("ignored")),
        "{answer}"
    );
    processed(&t).await;
    assert_eq!(mrr(&t, "cus_w").await, Some((3_000, "USD".into())));
    let stored: i64 = value(&t, "SELECT count(*) FROM webhook_deliveries").await;
    assert_eq!(stored, 2);

    // Unknown integrations and providers.
    let (status, _) = deliver(&t, &uuid::Uuid::new_v4().to_string(), &event).await;
    assert_eq!(status, 404);
    let r = t
        .client
        .post(format!("{}/api/v1/webhooks/nope/{id}", t.base))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 404);
}

#[tokio::test]
async fn a_late_delivery_never_overwrites_a_newer_state() {
    let stripe = FakeStripe::start(KEY).await;
    let (t, _owner, id) = synced_to(&stripe).await;
    let now = chrono::Utc::now().timestamp();
    let v1 = monthly("sub_o", "cus_o", 1_000, 1);
    let v2 = monthly("sub_o", "cus_o", 1_000, 2);
    let v3 = monthly("sub_o", "cus_o", 1_000, 3);
    // Stripe's event ids say nothing of order; their `created` does.
    let created = fake_stripe::event("evt_c", "customer.subscription.created", now - 300, v1);
    let second = fake_stripe::event("evt_a", "customer.subscription.updated", now - 200, v2);
    let third = fake_stripe::event(
        "evt_b",
        "customer.subscription.updated",
        now - 100,
        v3.clone(),
    );
    stripe.put_subscription(v3);
    for e in [&created, &third] {
        deliver(&t, &id, e).await;
        processed(&t).await;
    }
    assert_eq!(mrr(&t, "cus_o").await, Some((3_000, "USD".into())));
    // The middle state arrives last: stored, not applied.
    deliver(&t, &id, &second).await;
    processed(&t).await;
    assert_eq!(mrr(&t, "cus_o").await, Some((3_000, "USD".into())));
    let outcome: String = value(
        &t,
        "SELECT outcome FROM webhook_deliveries WHERE provider_event_id = 'evt_a'",
    )
    .await;
    assert!(outcome.starts_with("stale"), "{outcome}");
    // History: 10.00 from the start, 30.00 from the third event on.
    let history = history(&t, "cus_o").await;
    assert_eq!(history, [1_000, 3_000]);
}

#[tokio::test]
async fn a_paid_invoice_reads_its_subscription_from_stripe() {
    let stripe = FakeStripe::start(KEY).await;
    let (t, _owner, id) = synced_to(&stripe).await;
    let now = chrono::Utc::now().timestamp();
    // The newer API names the subscription under `parent`; the invoice carries no items.
    let invoice = |sub: &str| {
        json!({
            "id": format!("in_{sub}"), "object": "invoice", "customer": "cus_i", "subscription": null,
            "parent": { "type": "subscription_details",
                        "subscription_details": { "subscription": sub, "metadata": {} } },
            "amount_paid": 4_000, "currency": "usd", "status": "paid",
        })
    };
    stripe.put_subscription(monthly("sub_i", "cus_i", 2_000, 2));
    deliver(
        &t,
        &id,
        &fake_stripe::event("evt_i1", "invoice.paid", now - 30, invoice("sub_i")),
    )
    .await;
    processed(&t).await;
    assert_eq!(mrr(&t, "cus_i").await, Some((4_000, "USD".into())));
    let fetched = stripe.requests().into_iter().any(|r| {
        r.path == "/v1/subscriptions/sub_i" && r.params.iter().any(|(k, _)| k == "expand[]")
    });
    assert!(fetched, "the subscription is retrieved, expanded");
    // An invoice of a subscription Stripe no longer has changes nothing.
    stripe.remove_subscription("sub_i");
    deliver(
        &t,
        &id,
        &fake_stripe::event("evt_i2", "invoice.paid", now - 20, invoice("sub_i")),
    )
    .await;
    processed(&t).await;
    assert_eq!(mrr(&t, "cus_i").await, Some((4_000, "USD".into())));
    let outcome: String = value(
        &t,
        "SELECT outcome FROM webhook_deliveries WHERE provider_event_id = 'evt_i2'",
    )
    .await;
    assert!(outcome.starts_with("nothing to do"), "{outcome}");
}

#[tokio::test]
async fn rate_limits_and_server_errors_are_waited_out() {
    let stripe = FakeStripe::start(KEY).await;
    stripe.put_subscription(monthly("sub_r", "cus_r", 2_000, 1));
    let t = with_stripe(&stripe, true).await;
    let owner = t.sign_up("acme").await;
    // The connect's check of the key succeeds; then the sync meets a 429 and a 500.
    let id = connected(&t, &owner.access).await;
    stripe.fail_next(vec![
        Failure::RateLimited {
            retry_after_secs: 2,
        },
        Failure::ServerError,
    ]);
    let started = std::time::Instant::now();
    let done = synced(&t, &owner.access, &id).await;
    assert_eq!(done["status"], "CONNECTED", "{done}");
    // The retries' own backoff (0.25 to 0.5 s, then 0.5 to 1 s) stays under 2 s: only the
    // Retry-After makes it this long.
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "Retry-After is honoured"
    );
    assert_eq!(mrr(&t, "cus_r").await, Some((2_000, "USD".into())));

    // A key revoked mid-way: ERROR, and a message to act on.
    stripe.set_api_key("sk_test_new");
    run(&t, &owner.access, "SyncIntegration", json!({ "id": id })).await;
    let failed = synced(&t, &owner.access, &id).await;
    assert_eq!(failed["status"], "ERROR", "{failed}");
    assert!(
        failed["lastError"]
            .as_str()
            .unwrap()
            .contains("refused the credentials"),
        "{failed}"
    );
}

#[tokio::test]
async fn a_change_without_an_exchange_rate_waits_for_it() {
    let stripe = FakeStripe::start(KEY).await;
    let price = fake_stripe::price("price_eur", "eur", 9_900, "month", 1);
    stripe.put_subscription(fake_stripe::subscription(
        "sub_eur",
        "cus_eur",
        "active",
        vec![fake_stripe::item("si_eur", price, 1)],
    ));
    let t = with_stripe(&stripe, true).await;
    let owner = t.sign_up("acme").await;
    let id = connected(&t, &owner.access).await;
    let done = synced(&t, &owner.access, &id).await;
    let error = done["lastError"]
        .as_str()
        .unwrap_or_else(|| panic!("{done}"));
    assert!(error.contains("EUR on 2026-01-01"), "{error}");
    assert_eq!(
        mrr(&t, "cus_eur").await,
        None,
        "not converted at a guessed rate"
    );

    let rates = "mutation($r: [ExchangeRateInput!]!) { setExchangeRates(rates: $r) { set } }";
    let r = t
        .gql(
            Some(&owner.access),
            rates,
            json!({ "r": [{ "currency": "EUR", "date": "2026-01-01", "rate": "1.10" }] }),
        )
        .await;
    assert_eq!(r["data"]["setExchangeRates"]["set"], 1, "{r}");
    assert_eq!(mrr(&t, "cus_eur").await, Some((9_900, "EUR".into())));
    let converted: String = value(
        &t,
        "SELECT mrr::text FROM revenue_changes WHERE customer_id = 'cus_eur'",
    )
    .await;
    assert_eq!(converted.parse::<f64>().unwrap(), 108.9);
    assert!(integration(&t, &owner.access, &id).await["lastError"].is_null());
}

#[tokio::test]
async fn a_sync_killed_midway_resumes_from_its_checkpoint() {
    let stripe = FakeStripe::start(KEY).await;
    for i in 0..600 {
        stripe.put_subscription(monthly(
            &format!("sub_{i:04}"),
            &format!("cus_{i}"),
            1_000,
            1,
        ));
    }
    let base = stripe.base.clone();
    let t = TestApp::spawn_configured(move |c| {
        c.stripe_api_base = base;
        c.job_lease_secs = 1;
    })
    .await;
    let owner = t.sign_up("acme").await;
    let id = connected(&t, &owner.access).await;
    let keys = t.app.config.secret_keys.join(",");
    // A worker of its own, two pages a second, killed once it has saved a checkpoint.
    let mut worker = tokio::process::Command::new(env!("CARGO_BIN_EXE_fahwa"))
        .arg("worker")
        .env("FAHWA_DATABASE_URL", &t.db_url)
        .env("FAHWA_JWT_SECRET", t.jwt_secret())
        .env("FAHWA_SECRET_KEYS", format!("[{keys}]"))
        .env("FAHWA_STRIPE_API_BASE", &stripe.base)
        .env("FAHWA_CONNECTOR_REQUESTS_PER_SEC", "2")
        .env("FAHWA_JOB_LEASE_SECS", "1")
        .env_remove("FAHWA_REDIS_URL")
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut checkpoint = None;
    for _ in 0..400 {
        checkpoint = value::<Option<Value>>(&t, "SELECT checkpoint FROM integrations").await;
        if checkpoint.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let checkpoint = checkpoint.expect("the worker saved a checkpoint");
    worker.start_kill().unwrap();
    worker.wait().await.unwrap();
    let saved: Value = value(&t, "SELECT checkpoint FROM integrations").await;
    assert!(saved["starting_after"].as_str() >= checkpoint["starting_after"].as_str());
    let applied: i64 = value(&t, "SELECT count(*) FROM integration_objects").await;
    assert!(applied < 600, "killed before the end ({applied})");
    let pages_before = stripe.requests().len();

    // This instance's worker takes the job over once the lease runs out, from the checkpoint.
    let background = fahwa::background::spawn(&t.app);
    let done = synced(&t, &owner.access, &id).await;
    assert_eq!(done["status"], "CONNECTED", "{done}");
    let resumed = &stripe.requests()[pages_before..];
    let after = saved["starting_after"].as_str().unwrap().to_string();
    let lists: Vec<_> = resumed
        .iter()
        .filter(|r| r.path == "/v1/subscriptions")
        .collect();
    assert!(
        lists
            .iter()
            .all(|r| r.params.iter().any(|(k, _)| k == "starting_after")),
        "no page is asked for from the start again"
    );
    assert!(
        lists[0]
            .params
            .contains(&("starting_after".to_string(), after.clone())),
        "{after}: {:?}",
        lists[0]
    );
    let objects: i64 = value(&t, "SELECT count(*) FROM integration_objects").await;
    let changes: i64 = value(&t, "SELECT count(*) FROM revenue_changes").await;
    assert_eq!(
        (objects, changes),
        (600, 600),
        "every subscription once, nothing twice"
    );
    drop(background);
}

/// `fahwa <args>` against the test's database and fake Stripe, with `keys` as the sealing keys.
async fn fahwa(t: &TestApp, stripe: &FakeStripe, keys: &[String], args: &[&str]) -> (bool, String) {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_fahwa"))
        .args(args)
        .env("FAHWA_DATABASE_URL", &t.db_url)
        .env("FAHWA_JWT_SECRET", t.jwt_secret())
        .env("FAHWA_SECRET_KEYS", format!("[{}]", keys.join(",")))
        .env("FAHWA_STRIPE_API_BASE", &stripe.base)
        .env_remove("FAHWA_REDIS_URL")
        // Everything the process and its HTTP client say, to check that no secret is in it.
        .env("RUST_LOG", "trace")
        .output()
        .await
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !text.contains(KEY)
            && !text.contains(SECRET)
            && !keys.iter().any(|k| text.contains(k.as_str())),
        "a secret reached the log"
    );
    (out.status.success(), text)
}

#[tokio::test]
async fn reconcile_finds_no_difference_after_a_backfill_and_names_each_one_after() {
    let stripe = FakeStripe::start(KEY).await;
    for i in 0..150 {
        stripe.put_subscription(monthly(
            &format!("sub_{i:03}"),
            &format!("cus_{i}"),
            990,
            1 + i % 4,
        ));
    }
    let (t, owner, id) = synced_to(&stripe).await;
    assert!(integration(&t, &owner.access, &id).await["lastError"].is_null());
    let record: Value = value(
        &t,
        "SELECT details FROM audit_log WHERE action = 'integration.synced'",
    )
    .await;
    assert_eq!(
        (
            record["customersReconciled"].as_i64(),
            record["differences"].as_i64()
        ),
        (Some(150), Some(0)),
        "{record}"
    );
    let keys = t.app.config.secret_keys.clone();
    let (ok, out) = fahwa(&t, &stripe, &keys, &["reconcile", "--tenant", "acme"]).await;
    assert!(ok, "{out}");
    assert!(
        out.contains("150 customers") && out.contains("0 differ"),
        "{out}"
    );
    // A change Fahwa never heard of (no webhook): named, with both amounts.
    stripe.put_subscription(monthly("sub_007", "cus_7", 990, 10));
    let (ok, out) = fahwa(&t, &stripe, &keys, &["reconcile", "--tenant", "acme"]).await;
    assert!(!ok, "{out}");
    assert!(
        out.contains("1 differ") && out.contains("cus_7: Fahwa 3960 USD, provider 9900 USD"),
        "{out}"
    );
    // A sync brings it in line from now on; back in January Fahwa keeps what it knew, which
    // Stripe's objects (their present state) can no longer tell.
    run(&t, &owner.access, "SyncIntegration", json!({ "id": id })).await;
    synced(&t, &owner.access, &id).await;
    let (ok, out) = fahwa(&t, &stripe, &keys, &["reconcile", "--tenant", "acme"]).await;
    assert!(ok, "{out}");
    let (ok, out) = fahwa(
        &t,
        &stripe,
        &keys,
        &["reconcile", "--tenant", "acme", "--day", "2026-01-15"],
    )
    .await;
    assert!(
        !ok && out.contains("cus_7: Fahwa 3960 USD, provider 9900 USD"),
        "{out}"
    );
    assert_eq!(history(&t, "cus_7").await, [3_960, 9_900]);
}

#[tokio::test]
async fn rotate_key_seals_every_secret_under_the_new_key() {
    let stripe = FakeStripe::start(KEY).await;
    stripe.put_subscription(monthly("sub_k", "cus_k", 1_000, 1));
    let (t, _owner, _id) = synced_to(&stripe).await;
    let old = t.app.config.secret_keys[0].clone();
    let new = "k2:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=".to_string();
    // Without the old key nothing opens.
    let (ok, out) = fahwa(
        &t,
        &stripe,
        std::slice::from_ref(&new),
        &["reconcile", "--tenant", "acme"],
    )
    .await;
    assert!(!ok, "{out}");
    let (ok, out) = fahwa(&t, &stripe, &[new.clone(), old.clone()], &["rotate-key"]).await;
    assert!(
        ok && out.contains("1 of 1 integrations sealed again under key k2"),
        "{out}"
    );
    let (credentials, secret): (String, String) = {
        let row = t
            .pg()
            .await
            .query_one("SELECT credentials, webhook_secret FROM integrations", &[])
            .await
            .unwrap();
        (row.get(0), row.get(1))
    };
    assert!(
        credentials.starts_with("v1.k2.") && secret.starts_with("v1.k2."),
        "{credentials}"
    );
    // Once rotated, the old key may go.
    let (ok, out) = fahwa(&t, &stripe, &[new], &["reconcile", "--tenant", "acme"]).await;
    assert!(ok, "{out}");
    assert!(!out.contains(KEY) && !out.contains(SECRET));
}

/// The movements a dashboard shows for what Stripe's subscriptions imply: new, expansion when a
/// one-off discount runs out, churn when a subscription ends; and a webhook payload in another
/// API version (discounts as bare ids) read by retrieving the subscription.
#[tokio::test]
async fn movements_follow_the_subscriptions_and_thin_payloads_are_fetched() {
    let stripe = FakeStripe::start(KEY).await;
    let discount = |duration: &str, percent: f64| {
        json!({
            "id": format!("di_{duration}"), "object": "discount", "start": 1_767_225_600i64,
            "end": null, "source": { "type": "coupon", "coupon": {
                "id": format!("co_{duration}"), "object": "coupon", "duration": duration,
                "duration_in_months": null, "percent_off": percent, "amount_off": null,
                "currency": null } },
        })
    };
    stripe.put_subscription(monthly("sub_a", "cus_a", 5_000, 1));
    stripe.put_subscription({
        let price = fake_stripe::price("price_b", "usd", 2_000, "month", 1);
        fake_stripe::subscription(
            "sub_b",
            "cus_b",
            "canceled",
            vec![fake_stripe::item("si_b", price, 1)],
        )
    });
    let mut c = monthly("sub_c", "cus_c", 4_000, 1);
    c["discounts"] = json!([discount("once", 50.0)]);
    stripe.put_subscription(c);
    let (t, owner, id) = synced_to(&stripe).await;

    let r = t
        .op(
            Some(&owner.access),
            "analytics.graphql",
            "Overview",
            json!({
                "range": { "from": "2026-01-01T00:00:00Z", "to": "2026-03-01T00:00:00Z" },
                "granularity": "MONTH",
            }),
        )
        .await;
    let movements = &r["data"]["analytics"]["revenue"]["mrrMovements"];
    let month = |i: usize, field: &str| {
        movements[i][field]
            .as_f64()
            .unwrap_or_else(|| panic!("{r}"))
    };
    assert_eq!(
        month(0, "newMrr"),
        90.0,
        "50 + 20 + 20 (half off the first month)"
    );
    assert_eq!(
        month(1, "expansionMrr"),
        20.0,
        "the one-off discount ran out"
    );
    assert_eq!(month(1, "churnedMrr"), 20.0, "sub_b ended");
    assert_eq!(month(1, "netNewMrr"), 0.0);

    // A newer API version sends discounts as ids: the subscription is retrieved, expanded.
    let mut d = monthly("sub_d", "cus_d", 10_000, 1);
    d["discounts"] = json!([discount("forever", 10.0)]);
    stripe.put_subscription(d.clone());
    d["discounts"] = json!(["di_forever"]);
    let now = chrono::Utc::now().timestamp();
    deliver(
        &t,
        &id,
        &fake_stripe::event("evt_d", "customer.subscription.created", now - 5, d),
    )
    .await;
    processed(&t).await;
    assert_eq!(mrr(&t, "cus_d").await, Some((9_000, "USD".into())));
    assert!(
        stripe
            .requests()
            .iter()
            .any(|r| r.path == "/v1/subscriptions/sub_d"),
        "the thin payload was completed from the API"
    );
}
