//! `analytics.revenue` against a brute-force computation over the raw changes: out-of-order
//! arrival, several changes of a customer in one bucket, reactivation after churn, a foreign
//! currency, a yearly plan's monthly share, and a time zone crossing a DST change. Then who may
//! see it.

use chrono::{DateTime, Duration, TimeZone, Utc};
use chrono_tz::America::Los_Angeles;
use serde_json::{Value, json};

use crate::harness::{TestApp, codes};
use crate::ingest::key;

/// A change as the brute force sees it: `mrr` already in USD.
#[derive(Debug, Clone)]
struct Change {
    customer: usize,
    at: DateTime<Utc>,
    mrr: f64,
}

/// A small deterministic generator (no dependency, same data every run).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % n
    }
}

fn eur_rate(day: chrono::NaiveDate) -> f64 {
    1.05 + (day.ordinal() % 7) as f64 * 0.01
}

use chrono::Datelike;

/// Per customer a life of trials, conversions, upgrades, downgrades, churn and reactivation,
/// some changes hours apart; customers 0..3 pay in EUR, customer 4 on a yearly plan.
fn generate() -> (Vec<Change>, Vec<Value>) {
    let mut rng = Lcg(7);
    let start = Utc.with_ymd_and_hms(2026, 2, 20, 6, 0, 0).unwrap();
    let mut changes = Vec::new();
    let mut inputs = Vec::new();
    for customer in 0..14 {
        let mut at = start + Duration::hours(rng.next(24 * 10) as i64);
        let plans = ["0", "29", "49", "99", "0", "199"];
        for step in 0..(4 + rng.next(6)) {
            let text = if customer == 4 {
                ["99.99", "0", "99.99"][step as usize % 3].to_string()
            } else if step == 0 {
                "0".to_string()
            } else {
                plans[rng.next(plans.len() as u64) as usize].to_string()
            };
            let eur = customer < 4;
            let amount: f64 = text.parse().unwrap();
            let mrr = if eur {
                amount * eur_rate(at.date_naive())
            } else {
                amount
            };
            changes.push(Change { customer, at, mrr });
            inputs.push(json!({
                "id": format!("{customer}-{step}"),
                "customerId": format!("cus_{customer}"),
                "occurredAt": at.to_rfc3339(),
                "mrr": text,
                "currency": if eur { "EUR" } else { "USD" },
                "plan": if customer == 4 { "yearly" } else { "monthly" },
            }));
            // Sometimes twice in a day, sometimes weeks apart.
            at += Duration::minutes(30 + rng.next(60 * 24 * 12) as i64);
        }
    }
    (changes, inputs)
}

fn state(changes: &[Change], customer: usize, t: DateTime<Utc>) -> f64 {
    changes
        .iter()
        .filter(|c| c.customer == customer && c.at < t)
        .max_by_key(|c| c.at)
        .map_or(0.0, |c| c.mrr)
}

fn paid_before(changes: &[Change], customer: usize, t: DateTime<Utc>) -> bool {
    changes
        .iter()
        .any(|c| c.customer == customer && c.at < t && c.mrr > 0.0)
}

fn customers(changes: &[Change]) -> Vec<usize> {
    let mut ids: Vec<usize> = changes.iter().map(|c| c.customer).collect();
    ids.sort();
    ids.dedup();
    ids
}

/// MRR and paying customers at `t`.
fn stocks(changes: &[Change], t: DateTime<Utc>) -> (f64, f64) {
    let states: Vec<f64> = customers(changes)
        .into_iter()
        .map(|c| state(changes, c, t))
        .collect();
    (
        states.iter().sum(),
        states.iter().filter(|m| **m > 0.0).count() as f64,
    )
}

#[derive(Debug, Default)]
struct Moves {
    new: f64,
    expansion: f64,
    contraction: f64,
    churned: f64,
    reactivation: f64,
    churned_customers: f64,
}

fn moves(changes: &[Change], s: DateTime<Utc>, e: DateTime<Utc>) -> Moves {
    let mut m = Moves::default();
    for c in customers(changes) {
        if !changes
            .iter()
            .any(|x| x.customer == c && x.at >= s && x.at < e)
        {
            continue;
        }
        let (a, b) = (state(changes, c, s), state(changes, c, e));
        if a == 0.0 && b > 0.0 {
            if paid_before(changes, c, s) {
                m.reactivation += b;
            } else {
                m.new += b;
            }
        } else if a > 0.0 && b == 0.0 {
            m.churned += a;
            m.churned_customers += 1.0;
        } else if b > a {
            m.expansion += b - a;
        } else if b < a {
            m.contraction += a - b;
        }
    }
    m
}

fn ratio(a: f64, b: f64) -> f64 {
    if b == 0.0 { 0.0 } else { a / b }
}

fn close(got: &Value, want: f64, what: &str) {
    let got = got.as_f64().unwrap_or_else(|| panic!("{what}: {got}"));
    assert!(
        (got - want).abs() <= 1e-6 * want.abs().max(1.0),
        "{what}: got {got}, want {want}"
    );
}

/// Checks one Overview answer against the brute force, bucket by bucket.
fn check(changes: &[Change], revenue: &Value, from: DateTime<Utc>, to: DateTime<Utc>, what: &str) {
    let labels: Vec<DateTime<Utc>> = revenue["mrr"]["points"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["bucket"].as_str().unwrap().parse().unwrap())
        .collect();
    assert!(!labels.is_empty(), "{what}: no buckets");
    for (i, label) in labels.iter().enumerate() {
        let s = (*label).max(from);
        let e = labels.get(i + 1).copied().unwrap_or(to).min(to);
        let at = format!("{what} bucket {label}");
        let (mrr_end, paying_end) = stocks(changes, e);
        let (mrr_start, paying_start) = stocks(changes, s);
        let m = moves(changes, s, e);
        close(
            &revenue["mrr"]["points"][i]["value"],
            mrr_end,
            &format!("{at} mrr"),
        );
        close(
            &revenue["arr"]["points"][i]["value"],
            mrr_end * 12.0,
            &format!("{at} arr"),
        );
        close(
            &revenue["payingCustomers"]["points"][i]["value"],
            paying_end,
            &format!("{at} paying"),
        );
        close(
            &revenue["arpu"]["points"][i]["value"],
            ratio(mrr_end, paying_end),
            &format!("{at} arpu"),
        );
        close(
            &revenue["customerChurnRate"]["points"][i]["value"],
            ratio(m.churned_customers, paying_start),
            &format!("{at} customer churn"),
        );
        close(
            &revenue["revenueChurnRate"]["points"][i]["value"],
            ratio(m.churned + m.contraction, mrr_start),
            &format!("{at} revenue churn"),
        );
        let mv = &revenue["mrrMovements"][i];
        assert_eq!(mv["bucket"], revenue["mrr"]["points"][i]["bucket"]);
        close(&mv["newMrr"], m.new, &format!("{at} new"));
        close(&mv["expansionMrr"], m.expansion, &format!("{at} expansion"));
        close(
            &mv["contractionMrr"],
            m.contraction,
            &format!("{at} contraction"),
        );
        close(&mv["churnedMrr"], m.churned, &format!("{at} churned"));
        close(
            &mv["reactivationMrr"],
            m.reactivation,
            &format!("{at} reactivation"),
        );
        close(
            &mv["netNewMrr"],
            m.new + m.reactivation + m.expansion - m.contraction - m.churned,
            &format!("{at} net new"),
        );
    }
    let (mrr_to, paying_to) = stocks(changes, to);
    let (mrr_from, paying_from) = stocks(changes, from);
    let whole = moves(changes, from, to);
    close(
        &revenue["mrr"]["total"],
        mrr_to,
        &format!("{what} total mrr"),
    );
    close(
        &revenue["payingCustomers"]["total"],
        paying_to,
        &format!("{what} total paying"),
    );
    let churn = ratio(whole.churned_customers, paying_from);
    close(
        &revenue["customerChurnRate"]["total"],
        churn,
        &format!("{what} total churn"),
    );
    close(
        &revenue["revenueChurnRate"]["total"],
        ratio(whole.churned + whole.contraction, mrr_from),
        &format!("{what} total revenue churn"),
    );
    let monthly = churn * (365.25 / 12.0) / ((to - from).num_seconds() as f64 / 86_400.0);
    if monthly > 0.0 {
        close(
            &revenue["ltv"],
            ratio(mrr_to, paying_to) / monthly,
            &format!("{what} ltv"),
        );
    } else {
        assert!(revenue["ltv"].is_null(), "{what}: ltv without churn");
    }
}

async fn overview(
    t: &TestApp,
    token: &str,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    g: &str,
) -> Value {
    t.op(
        Some(token),
        "analytics.graphql",
        "Overview",
        json!({ "range": { "from": from.to_rfc3339(), "to": to.to_rfc3339() }, "granularity": g }),
    )
    .await
}

#[tokio::test]
async fn revenue_metrics_match_a_brute_force_over_the_changes() {
    let t = TestApp::spawn().await;
    let s = t.sign_up("acme").await;
    let r = t
        .op(
            Some(&s.access),
            "tenant.graphql",
            "UpdateTenant",
            json!({ "input": { "timezone": "America/Los_Angeles", "currency": "USD" } }),
        )
        .await;
    assert!(r["errors"].is_null(), "{r}");
    let (changes, mut inputs) = generate();
    let days: Vec<Value> = (0..120)
        .map(|d| {
            let day = chrono::NaiveDate::from_ymd_opt(2026, 2, 15).unwrap() + Duration::days(d);
            json!({ "currency": "EUR", "date": day.to_string(), "rate": format!("{:.2}", eur_rate(day)) })
        })
        .collect();
    let r = t
        .gql(
            Some(&s.access),
            "mutation($r: [ExchangeRateInput!]!) { setExchangeRates(rates: $r) { set } }",
            json!({ "r": days }),
        )
        .await;
    assert_eq!(r["data"]["setExchangeRates"]["set"], 120, "{r}");
    // Out of order: newest first, in three batches.
    inputs.reverse();
    let ingest_key = key(&t, &s.access, "INGEST").await;
    for batch in inputs.chunks(inputs.len() / 3 + 1) {
        let r = t
            .op(
                Some(&ingest_key),
                "ingest.graphql",
                "IngestRevenueChanges",
                json!({ "changes": batch }),
            )
            .await;
        assert!(r["errors"].is_null(), "{r}");
    }
    // The data holds every kind of movement, by day.
    let mut kinds = Moves::default();
    let first = changes.iter().map(|c| c.at).min().unwrap();
    for d in 0..90 {
        let m = moves(
            &changes,
            first + Duration::days(d),
            first + Duration::days(d + 1),
        );
        kinds.new += m.new;
        kinds.reactivation += m.reactivation;
        kinds.expansion += m.expansion;
        kinds.contraction += m.contraction;
        kinds.churned += m.churned;
    }
    assert!(
        [
            kinds.new,
            kinds.reactivation,
            kinds.expansion,
            kinds.contraction,
            kinds.churned
        ]
        .iter()
        .all(|v| *v > 0.0),
        "{kinds:?}"
    );

    // Los Angeles moves to daylight time on 2026-03-08; ranges start mid-day and mid-week.
    let from = Los_Angeles
        .with_ymd_and_hms(2026, 2, 25, 13, 0, 0)
        .unwrap()
        .with_timezone(&Utc);
    let to = Los_Angeles
        .with_ymd_and_hms(2026, 4, 20, 0, 0, 0)
        .unwrap()
        .with_timezone(&Utc);
    for g in ["DAY", "WEEK", "MONTH"] {
        let r = overview(&t, &s.access, from, to, g).await;
        assert!(r["errors"].is_null(), "{r}");
        check(&changes, &r["data"]["analytics"]["revenue"], from, to, g);
    }
    let (hour_from, hour_to) = (from + Duration::days(5), from + Duration::days(7));
    let r = overview(&t, &s.access, hour_from, hour_to, "HOUR").await;
    check(
        &changes,
        &r["data"]["analytics"]["revenue"],
        hour_from,
        hour_to,
        "HOUR",
    );
    let days = r["data"]["analytics"]["revenue"]["mrr"]["points"]
        .as_array()
        .unwrap()
        .len();
    assert_eq!(days, 48);

    // Another zone (half an hour off whole hours): whole buckets are its days, weeks and months.
    let r = t
        .op(
            Some(&s.access),
            "tenant.graphql",
            "UpdateTenant",
            json!({ "input": { "timezone": "Asia/Kolkata" } }),
        )
        .await;
    assert!(r["errors"].is_null(), "{r}");
    let (from, to) = (from + Duration::days(3), to - Duration::days(2));
    for g in ["DAY", "WEEK", "MONTH"] {
        let r = overview(&t, &s.access, from, to, g).await;
        assert!(r["errors"].is_null(), "{r}");
        let revenue = &r["data"]["analytics"]["revenue"];
        let second = revenue["mrr"]["points"][1]["bucket"].as_str().unwrap();
        assert!(second.contains("T18:30:00"), "{g}: {second}");
        check(&changes, revenue, from, to, &format!("Kolkata {g}"));
    }

    // Over many ranges, from PostgreSQL (no copy in memory: the periods and the changes) and
    // from this instance's in-memory copy of the changes. Ranges differ by an hour between the
    // two, so that neither answer comes from the metric cache.
    let tenant: uuid::Uuid = s.tenant_id.parse().unwrap();
    let index = t.app.revenue_index.as_ref().unwrap();
    let mut rng = Lcg(11);
    let span_start = Utc.with_ymd_and_hms(2026, 2, 18, 0, 0, 0).unwrap();
    for i in 0..12 {
        let from = span_start + Duration::hours(rng.next(24 * 40) as i64);
        let to = from + Duration::hours(25 + rng.next(24 * 50) as i64);
        let g = ["DAY", "WEEK", "MONTH"][i % 3];
        for (hour, path) in [(0, "SQL"), (1, "copy")] {
            if path == "SQL" {
                index.forget(tenant).await;
            } else {
                index.refresh(tenant).await.unwrap();
            }
            let (from, to) = (from + Duration::hours(hour), to + Duration::hours(hour));
            let r = overview(&t, &s.access, from, to, g).await;
            let revenue = &r["data"]["analytics"]["revenue"];
            check(&changes, revenue, from, to, &format!("{path} {g} {i}"));
        }
    }
    // A new change makes the copy stale: the next answer must include it all the same.
    let mut changes = changes;
    let at = Utc.with_ymd_and_hms(2026, 4, 2, 12, 0, 0).unwrap();
    changes.push(Change {
        customer: 7,
        at,
        mrr: 0.0,
    });
    let r = t
        .op(
            Some(&ingest_key),
            "ingest.graphql",
            "IngestRevenueChanges",
            json!({ "changes": [{ "id": "late", "customerId": "cus_7", "occurredAt": at.to_rfc3339(), "mrr": "0", "currency": "USD" }] }),
        )
        .await;
    assert!(r["errors"].is_null(), "{r}");
    let (from, to) = (at - Duration::days(20), at + Duration::days(10));
    let r = overview(&t, &s.access, from, to, "WEEK").await;
    check(
        &changes,
        &r["data"]["analytics"]["revenue"],
        from,
        to,
        "after a change",
    );
    index.refresh(tenant).await.unwrap();
    let r = overview(&t, &s.access, from, to, "WEEK").await;
    check(
        &changes,
        &r["data"]["analytics"]["revenue"],
        from,
        to,
        "copy after a change",
    );
}

#[tokio::test]
async fn a_customer_who_comes_and_goes_inside_a_bucket_shows_no_movement() {
    let t = TestApp::spawn().await;
    let s = t.sign_up("acme").await;
    let change = |id: &str, at: &str, mrr: &str| json!({ "id": id, "customerId": "cus_1", "occurredAt": at, "mrr": mrr, "currency": "USD" });
    let r = t
        .op(
            Some(&s.access),
            "ingest.graphql",
            "IngestRevenueChanges",
            json!({ "changes": [
                change("a", "2026-06-02T10:00:00Z", "50"),
                change("b", "2026-06-03T10:00:00Z", "0"),
                change("c", "2026-06-20T10:00:00Z", "70"),
            ]}),
        )
        .await;
    assert!(r["errors"].is_null(), "{r}");
    let from = Utc.with_ymd_and_hms(2026, 6, 1, 0, 0, 0).unwrap();
    let to = Utc.with_ymd_and_hms(2026, 7, 1, 0, 0, 0).unwrap();
    let r = overview(&t, &s.access, from, to, "MONTH").await;
    let m = &r["data"]["analytics"]["revenue"]["mrrMovements"][0];
    // 0 → 50 → 0 → 70 inside June: one new customer at 70, nothing churned.
    assert_eq!(
        (m["newMrr"].as_f64(), m["churnedMrr"].as_f64()),
        (Some(70.0), Some(0.0)),
        "{r}"
    );
    let r = overview(&t, &s.access, from, to, "WEEK").await;
    let weeks = r["data"]["analytics"]["revenue"]["mrrMovements"]
        .as_array()
        .unwrap()
        .clone();
    // By week: nothing in the first, a reactivation at 70 in the third (from June 15).
    assert_eq!(
        weeks[0]["newMrr"].as_f64(),
        Some(0.0),
        "0 → 50 → 0 in one week nets out: {weeks:?}"
    );
    assert_eq!(weeks[0]["churnedMrr"].as_f64(), Some(0.0));
    assert_eq!(
        weeks[2]["reactivationMrr"].as_f64(),
        Some(70.0),
        "{weeks:?}"
    );

    // Movements are answered in one step: aliases, fragments and `__typename` still hold.
    let r = t
        .gql(
            Some(&s.access),
            "query($r: TimeRangeInput!) { analytics(range: $r, granularity: WEEK) { revenue { mrrMovements { at: bucket ...M __typename } } } } fragment M on MrrMovement { back: reactivationMrr netNewMrr }",
            json!({ "r": { "from": from.to_rfc3339(), "to": to.to_rfc3339() } }),
        )
        .await;
    let got = &r["data"]["analytics"]["revenue"]["mrrMovements"];
    let want: Vec<Value> = weeks
        .iter()
        .map(|w| json!({ "at": w["bucket"], "back": w["reactivationMrr"], "netNewMrr": w["netNewMrr"], "__typename": "MrrMovement" }))
        .collect();
    assert_eq!(got, &json!(want), "{r}");
}

#[tokio::test]
async fn revenue_is_for_analysts_and_read_keys_and_null_for_viewers() {
    let t = TestApp::spawn().await;
    let owner = t.sign_up("acme").await;
    let viewer = t.member(&owner, "acme", "VIEWER").await;
    let analyst = t.member(&owner, "acme", "ANALYST").await;
    let admin = t.member(&owner, "acme", "ADMIN").await;
    let read_key = key(&t, &owner.access, "READ").await;
    let (from, to) = (Utc::now() - Duration::days(7), Utc::now());
    let r = overview(&t, &viewer.access, from, to, "DAY").await;
    assert_eq!(codes(&r), ["FORBIDDEN"], "{r}");
    assert_eq!(r["errors"][0]["path"], json!(["analytics", "revenue"]));
    assert!(r["data"]["analytics"]["revenue"].is_null());
    assert_eq!(
        r["data"]["analytics"]["activeUsers"]["points"]
            .as_array()
            .map(Vec::len),
        Some(8),
        "the rest of Overview is intact: {r}"
    );
    for token in [&analyst.access, &admin.access, &owner.access, &read_key] {
        let r = overview(&t, token, from, to, "DAY").await;
        assert!(r["errors"].is_null(), "{r}");
        assert_eq!(r["data"]["analytics"]["revenue"]["mrr"]["total"], 0.0);
    }
}
