//! Every engagement metric against a brute-force computation over the stored events: a tenant in
//! America/Los_Angeles across the end of daylight-saving time, late events, duplicates, cut
//! buckets, empty buckets, week and month edges, filters, breakdowns, retention and funnels.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveDateTime, TimeZone, Timelike, Utc};
use chrono_tz::Tz;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};

use crate::harness::{Session, TestApp};

const TZ: Tz = chrono_tz::America::Los_Angeles;
const NAMES: [&str; 5] = ["signup", "login", "page_view", "feature_used", "upgrade"];

#[derive(Debug, Clone)]
struct Ev {
    name: String,
    user: String,
    at: DateTime<Utc>,
    plan: Option<String>,
}

fn la(y: i32, m: u32, d: u32) -> DateTime<Utc> {
    TZ.with_ymd_and_hms(y, m, d, 0, 0, 0)
        .unwrap()
        .with_timezone(&Utc)
}

fn utc(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

#[derive(Clone, Copy, PartialEq, Debug)]
enum G {
    Hour,
    Day,
    Week,
    Month,
}

impl G {
    fn name(self) -> &'static str {
        match self {
            G::Hour => "HOUR",
            G::Day => "DAY",
            G::Week => "WEEK",
            G::Month => "MONTH",
        }
    }
}

/// A bucket's label: local wall time of its start; for hours, the UTC hour (wall time repeats
/// when clocks fall back, and Los Angeles is a whole number of hours from UTC).
fn label(g: G, at: DateTime<Utc>) -> NaiveDateTime {
    let local = at.with_timezone(&TZ).naive_local();
    let d = local.date();
    let day = match g {
        G::Hour => {
            let u = at.naive_utc();
            return u.date().and_hms_opt(u.hour(), 0, 0).unwrap();
        }
        G::Day => d,
        G::Week => d - Duration::days(d.weekday().num_days_from_monday() as i64),
        G::Month => NaiveDate::from_ymd_opt(d.year(), d.month(), 1).unwrap(),
    };
    day.and_hms_opt(0, 0, 0).unwrap()
}

/// Every label from the bucket holding `from` to the one holding the last instant before `to`.
fn labels(g: G, from: DateTime<Utc>, to: DateTime<Utc>) -> Vec<NaiveDateTime> {
    let mut out = BTreeSet::new();
    let mut t = from;
    while t < to {
        out.insert(label(g, t));
        t += Duration::minutes(30);
    }
    out.insert(label(g, to - Duration::seconds(1)));
    out.into_iter().collect()
}

fn server_points(series: &Value, g: G) -> Vec<(NaiveDateTime, f64, Option<String>)> {
    series["points"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            let at: DateTime<Utc> = p["bucket"].as_str().unwrap().parse().unwrap();
            (
                label(g, at),
                p["value"].as_f64().unwrap(),
                p["group"].as_str().map(str::to_string),
            )
        })
        .collect()
}

struct Brute<'a> {
    events: &'a [Ev],
    first_seen: BTreeMap<&'a str, DateTime<Utc>>,
}

impl<'a> Brute<'a> {
    fn new(events: &'a [Ev]) -> Self {
        let mut first_seen: BTreeMap<&str, DateTime<Utc>> = BTreeMap::new();
        for e in events {
            let f = first_seen.entry(&e.user).or_insert(e.at);
            *f = (*f).min(e.at);
        }
        Self { events, first_seen }
    }

    fn in_range(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> impl Iterator<Item = &'a Ev> {
        self.events
            .iter()
            .filter(move |e| e.at >= from && e.at < to)
    }

    /// (points by label, total) for a measure over matching events.
    fn series(
        &self,
        g: G,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        measure: &str,
        keep: Keep,
    ) -> (BTreeMap<NaiveDateTime, f64>, f64) {
        let mut points: BTreeMap<NaiveDateTime, f64> =
            labels(g, from, to).into_iter().map(|l| (l, 0.0)).collect();
        let total = match measure {
            "activeUsers" => {
                let mut sets: BTreeMap<NaiveDateTime, BTreeSet<&str>> = BTreeMap::new();
                let mut all = BTreeSet::new();
                for e in self.in_range(from, to).filter(|e| keep(e)) {
                    sets.entry(label(g, e.at)).or_default().insert(&e.user);
                    all.insert(&e.user);
                }
                for (l, s) in sets {
                    points.insert(l, s.len() as f64);
                }
                all.len() as f64
            }
            "newUsers" => {
                let mut n = 0.0;
                for (_, at) in self
                    .first_seen
                    .iter()
                    .filter(|(_, at)| **at >= from && **at < to)
                {
                    *points.get_mut(&label(g, *at)).unwrap() += 1.0;
                    n += 1.0;
                }
                n
            }
            _ => {
                let mut n = 0.0;
                for e in self.in_range(from, to).filter(|e| keep(e)) {
                    *points.get_mut(&label(g, e.at)).unwrap() += 1.0;
                    n += 1.0;
                }
                n
            }
        };
        (points, total)
    }

    fn retention(
        &self,
        g: G,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        periods: usize,
    ) -> Vec<(NaiveDateTime, i64, Vec<i64>)> {
        let cohort_labels = labels(g, from, to);
        let far = to + Duration::days(40 * periods as i64);
        let all_labels = labels(g, from, far);
        let index = |l: NaiveDateTime| all_labels.iter().position(|x| *x == l);
        cohort_labels
            .iter()
            .map(|cl| {
                let members: BTreeSet<&str> = self
                    .first_seen
                    .iter()
                    .filter(|(_, at)| **at >= from && **at < to && label(g, **at) == *cl)
                    .map(|(u, _)| *u)
                    .collect();
                let ci = index(*cl).unwrap();
                let retained = (0..periods)
                    .map(|k| {
                        let target = all_labels[ci + k];
                        self.events
                            .iter()
                            .filter(|e| {
                                members.contains(e.user.as_str()) && label(g, e.at) == target
                            })
                            .map(|e| e.user.as_str())
                            .collect::<BTreeSet<_>>()
                            .len() as i64
                    })
                    .collect();
                (*cl, members.len() as i64, retained)
            })
            .collect()
    }

    fn funnel(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        steps: &[&str],
        hours: i64,
    ) -> Vec<i64> {
        let window = Duration::hours(hours);
        let mut counts = vec![0; steps.len()];
        let users: BTreeSet<&str> = self.events.iter().map(|e| e.user.as_str()).collect();
        for u in users {
            let mine: Vec<&Ev> = self.events.iter().filter(|e| e.user == u).collect();
            let Some(t0) = mine
                .iter()
                .filter(|e| e.name == steps[0] && e.at >= from && e.at < to)
                .map(|e| e.at)
                .min()
            else {
                continue;
            };
            counts[0] += 1;
            let mut t = t0;
            for (i, step) in steps.iter().enumerate().skip(1) {
                let next = mine
                    .iter()
                    .filter(|e| {
                        e.name == *step
                            && e.at > t
                            && e.at <= t0 + window
                            && e.at >= from
                            && e.at < to + window
                    })
                    .map(|e| e.at)
                    .min();
                match next {
                    Some(n) => {
                        counts[i] += 1;
                        t = n;
                    }
                    None => break,
                }
            }
        }
        counts
    }
}

fn generate(
    seed: u64,
    n: usize,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Vec<(Option<String>, Ev)> {
    let mut rng = StdRng::seed_from_u64(seed);
    let span = (to - from).num_seconds();
    (0..n)
        .map(|i| {
            let at = from + Duration::seconds(rng.random_range(0..span));
            let plan = match rng.random_range(0..3) {
                0 => None,
                1 => Some("free".to_string()),
                _ => Some("pro".to_string()),
            };
            let id = (i % 3 != 0).then(|| format!("ev-{seed}-{i}"));
            (
                id,
                Ev {
                    name: NAMES[rng.random_range(0..NAMES.len())].into(),
                    // A core of daily users, and occasional ones whose visits are days or weeks
                    // apart (repeat visits inside a week or a month, but not the day before).
                    user: match i % 10 {
                        0 => format!("user-{}", rng.random_range(25..65)),
                        _ => format!("user-{}", rng.random_range(0..25)),
                    },
                    at,
                    plan,
                },
            )
        })
        .collect()
}

async fn send(t: &TestApp, key: &str, batch: &[(Option<String>, Ev)]) -> Value {
    let events: Vec<Value> = batch
        .iter()
        .map(|(id, e)| {
            let mut props = json!({ "country": "PT" });
            if let Some(p) = &e.plan {
                props["plan"] = json!(p);
            }
            json!({ "id": id, "name": e.name, "userId": e.user, "occurredAt": e.at.to_rfc3339(), "properties": props })
        })
        .collect();
    t.client
        .post(format!("{}/api/v1/events", t.base))
        .bearer_auth(key)
        .json(&json!({ "events": events }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

type Keep<'a> = &'a dyn Fn(&Ev) -> bool;

const QUERY: &str = r#"query($range: TimeRangeInput!, $g: Granularity!, $name: EventFilter, $plan: EventFilter, $proLogin: EventFilter) {
  analytics(range: $range, granularity: $g) {
    activeUsers { total points { bucket value } }
    newUsers { total points { bucket value } }
    events { total points { bucket value } }
    loginUsers: activeUsers(filter: $name) { total points { bucket value } }
    loginEvents: events(filter: $name) { total points { bucket value } }
    proEvents: events(filter: $plan) { total points { bucket value } }
    proUsers: activeUsers(filter: $plan) { total points { bucket value } }
    proLoginUsers: activeUsers(filter: $proLogin) { total points { bucket value } }
    proLoginEvents: events(filter: $proLogin) { total points { bucket value } }
    byPlan: events(breakdownBy: "plan") { total points { bucket value group } }
    loginByPlan: events(filter: $name, breakdownBy: "plan") { total points { bucket value group } }
    proByCountry: events(filter: $plan, breakdownBy: "country") { total points { bucket value group } }
  }
}"#;

async fn compare(
    t: &TestApp,
    s: &Session,
    events: &[Ev],
    g: G,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) {
    let resp = t
        .gql(
            Some(&s.access),
            QUERY,
            json!({
                "range": { "from": from.to_rfc3339(), "to": to.to_rfc3339() },
                "g": g.name(),
                "name": { "name": "login" },
                "plan": { "properties": [{ "key": "plan", "equals": "pro" }] },
                "proLogin": { "name": "login", "properties": [
                    { "key": "country", "equals": "PT" }, { "key": "plan", "equals": "pro" },
                ] },
            }),
        )
        .await;
    assert!(resp["errors"].is_null(), "{resp}");
    let a = &resp["data"]["analytics"];
    let brute = Brute::new(events);
    let all = |_: &Ev| true;
    let login = |e: &Ev| e.name == "login";
    let pro = |e: &Ev| e.plan.as_deref() == Some("pro");
    let pro_login = |e: &Ev| pro(e) && login(e);
    let checks: [(&str, &str, Keep); 9] = [
        ("activeUsers", "activeUsers", &all),
        ("newUsers", "newUsers", &all),
        ("events", "events", &all),
        ("loginUsers", "activeUsers", &login),
        ("loginEvents", "events", &login),
        ("proEvents", "events", &pro),
        ("proUsers", "activeUsers", &pro),
        ("proLoginUsers", "activeUsers", &pro_login),
        ("proLoginEvents", "events", &pro_login),
    ];
    for (field, measure, keep) in checks {
        let (points, total) = brute.series(g, from, to, measure, keep);
        let got: Vec<(NaiveDateTime, f64)> = server_points(&a[field], g)
            .into_iter()
            .map(|(l, v, _)| (l, v))
            .collect();
        let want: Vec<(NaiveDateTime, f64)> = points.into_iter().collect();
        assert_eq!(got, want, "{field} {g:?} [{from}, {to}) points");
        assert_eq!(
            a[field]["total"].as_f64().unwrap(),
            total,
            "{field} {g:?} [{from}, {to}) total"
        );
    }
    // Every event is sent with country PT: a breakdown by one key under a filter on the other
    // must group by the right position of the tracked values.
    let plan_of = |e: &Ev| e.plan.clone();
    let country_of = |_: &Ev| Some("PT".to_string());
    type Group<'a> = &'a dyn Fn(&Ev) -> Option<String>;
    for (field, keep, group) in [
        ("byPlan", &all as Keep, &plan_of as Group),
        ("loginByPlan", &login, &plan_of),
        ("proByCountry", &pro, &country_of),
    ] {
        let mut want: BTreeMap<(NaiveDateTime, Option<String>), f64> = BTreeMap::new();
        for e in brute.in_range(from, to).filter(|e| keep(e)) {
            *want.entry((label(g, e.at), group(e))).or_default() += 1.0;
        }
        let total: f64 = want.values().sum();
        let got: BTreeMap<(NaiveDateTime, Option<String>), f64> = server_points(&a[field], g)
            .into_iter()
            .filter(|(_, v, _)| *v != 0.0)
            .map(|(l, v, grp)| ((l, grp), v))
            .collect();
        assert_eq!(got, want, "{field} {g:?}");
        assert_eq!(
            a[field]["total"].as_f64().unwrap(),
            total,
            "{field} {g:?} total"
        );
    }
}

async fn compare_cohorts_and_funnel(
    t: &TestApp,
    s: &Session,
    events: &[Ev],
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) {
    let brute = Brute::new(events);
    for (g, periods) in [(G::Day, 5), (G::Week, 3), (G::Month, 2)] {
        let resp = t
            .op(Some(&s.access), "analytics.graphql", "Retention", json!({
                "range": { "from": from.to_rfc3339(), "to": to.to_rfc3339() }, "granularity": g.name(), "periods": periods,
            }))
            .await;
        assert!(resp["errors"].is_null(), "{resp}");
        let got: Vec<(NaiveDateTime, i64, Vec<i64>)> =
            resp["data"]["analytics"]["retention"]["cohorts"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| {
                    let at: DateTime<Utc> = c["cohortStart"].as_str().unwrap().parse().unwrap();
                    let retained = c["retained"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|v| v.as_i64().unwrap())
                        .collect();
                    (label(g, at), c["size"].as_i64().unwrap(), retained)
                })
                .collect();
        assert_eq!(
            got,
            brute.retention(g, from, to, periods),
            "retention {g:?}"
        );
    }
    let steps = ["signup", "login", "feature_used"];
    let resp = t
        .op(Some(&s.access), "analytics.graphql", "Funnel", json!({
            "range": { "from": from.to_rfc3339(), "to": to.to_rfc3339() }, "steps": steps, "windowHours": 72,
        }))
        .await;
    assert!(resp["errors"].is_null(), "{resp}");
    let got: Vec<i64> = resp["data"]["analytics"]["funnel"]["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["users"].as_i64().unwrap())
        .collect();
    let want = brute.funnel(from, to, &steps, 72);
    assert_eq!(got, want, "funnel");
    assert!(
        want[0] > 0 && want[1] > 0,
        "the data set exercises the funnel: {want:?}"
    );
    let rate = resp["data"]["analytics"]["funnel"]["steps"][1]["conversionRate"]
        .as_f64()
        .unwrap();
    assert!((rate - want[1] as f64 / want[0] as f64).abs() < 1e-9);
}

async fn stored_events(t: &TestApp, tenant: &str) -> Vec<Ev> {
    t.pg()
        .await
        .query(
            "SELECT name, user_id, (extract(epoch FROM occurred_at) * 1000000)::int8, properties->>'plan' FROM events WHERE tenant_id = $1::text::uuid",
            &[&tenant],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| Ev { name: r.get(0), user: r.get(1), at: DateTime::from_timestamp_micros(r.get(2)).unwrap(), plan: r.get(3) })
        .collect()
}

#[tokio::test]
async fn engagement_metrics_match_brute_force() {
    metrics_match_brute_force(&[]).await;
}

/// The same numbers when filters and breakdowns come from the segment rollup.
#[tokio::test]
async fn tracked_dimensions_match_brute_force() {
    metrics_match_brute_force(&["country", "plan"]).await;
}

async fn metrics_match_brute_force(tracked: &[&str]) {
    let t = TestApp::spawn().await;
    let s = t.sign_up("acme").await;
    t.track(&s.access, tracked, Some("America/Los_Angeles"))
        .await;
    let key = t
        .op(
            Some(&s.access),
            "tenant.graphql",
            "CreateApiKey",
            json!({ "input": { "name": "sdk", "scopes": ["INGEST"] } }),
        )
        .await["data"]["createApiKey"]["secret"]
        .as_str()
        .unwrap()
        .to_string();

    // Sent newest batches first, so most batches are late relative to what is stored.
    let generated = generate(
        7,
        900,
        utc("2026-10-20T00:00:00Z"),
        utc("2026-11-13T00:00:00Z"),
    );
    let mut sorted = generated.clone();
    sorted.sort_by_key(|(_, e)| std::cmp::Reverse(e.at));
    let mut accepted = 0;
    for batch in sorted.chunks(100) {
        let r = send(&t, &key, batch).await;
        accepted += r["accepted"].as_i64().unwrap_or_else(|| panic!("{r}"));
    }
    // The same ids again are duplicates, not new rows.
    let again = send(&t, &key, &generated[..60]).await;
    let with_ids = generated[..60]
        .iter()
        .filter(|(id, _)| id.is_some())
        .count() as i64;
    assert_eq!(again["duplicates"], with_ids, "{again}");
    assert_eq!(accepted + again["accepted"].as_i64().unwrap(), 900 + 20);

    let events = stored_events(&t, &s.tenant_id).await;
    assert_eq!(events.len(), 920);
    let ranges = [
        (la(2026, 10, 25), la(2026, 11, 8)),
        (utc("2026-10-22T15:30:00Z"), utc("2026-11-10T03:00:00Z")),
        (la(2026, 10, 1), la(2026, 12, 1)),
    ];
    for (from, to) in ranges {
        for g in [G::Day, G::Week, G::Month] {
            compare(&t, &s, &events, g, from, to).await;
        }
    }
    // Hours across the fall-back night (01:00 happens twice in Los Angeles).
    compare(
        &t,
        &s,
        &events,
        G::Hour,
        utc("2026-11-01T05:00:00Z"),
        utc("2026-11-01T15:00:00Z"),
    )
    .await;
    compare_cohorts_and_funnel(&t, &s, &events, la(2026, 10, 20), la(2026, 11, 6)).await;

    // A backfill older than everything: first-seen days, new users and retention all move.
    let backfill: Vec<(Option<String>, Ev)> = (0..10)
        .map(|i| {
            (
                None,
                Ev {
                    name: "login".into(),
                    user: format!("user-{i}"),
                    at: utc("2026-10-02T12:00:00Z") + Duration::hours(i),
                    plan: None,
                },
            )
        })
        .collect();
    let r = send(&t, &key, &backfill).await;
    assert_eq!(r["accepted"], 10, "{r}");
    let events = stored_events(&t, &s.tenant_id).await;
    for g in [G::Day, G::Week] {
        compare(&t, &s, &events, g, la(2026, 9, 28), la(2026, 11, 10)).await;
    }
    compare_cohorts_and_funnel(&t, &s, &events, la(2026, 9, 28), la(2026, 11, 6)).await;
}

#[tokio::test]
async fn empty_tenants_get_zero_buckets_and_bad_ranges_are_refused() {
    let t = TestApp::spawn().await;
    let s = t.sign_up("empty").await;
    let resp = t
        .op(Some(&s.access), "analytics.graphql", "Engagement", json!({
            "range": { "from": "2026-11-01T00:00:00Z", "to": "2026-11-08T00:00:00Z" }, "granularity": "DAY",
        }))
        .await;
    assert!(resp["errors"].is_null(), "{resp}");
    let points = resp["data"]["analytics"]["activeUsers"]["points"]
        .as_array()
        .unwrap();
    assert_eq!(points.len(), 7);
    assert!(points.iter().all(|p| p["value"] == 0.0));
    let backwards = t
        .op(Some(&s.access), "analytics.graphql", "Engagement", json!({
            "range": { "from": "2026-11-08T00:00:00Z", "to": "2026-11-01T00:00:00Z" }, "granularity": "DAY",
        }))
        .await;
    assert_eq!(crate::harness::codes(&backwards), ["BAD_USER_INPUT"]);
    let hours = t
        .op(Some(&s.access), "analytics.graphql", "Engagement", json!({
            "range": { "from": "2020-01-01T00:00:00Z", "to": "2026-01-01T00:00:00Z" }, "granularity": "HOUR",
        }))
        .await;
    assert_eq!(crate::harness::codes(&hours), ["BAD_USER_INPUT"]);

    // A bad filter is named at its own field; the good field beside it still answers.
    let many: Vec<Value> = (0..11)
        .map(|i| json!({ "key": format!("k{i}"), "equals": "x" }))
        .collect();
    let bad = t
        .op(Some(&s.access), "analytics.graphql", "FilteredActivity", json!({
            "range": { "from": "2026-11-01T00:00:00Z", "to": "2026-11-08T00:00:00Z" }, "granularity": "DAY",
            "filter": { "properties": many }, "breakdownBy": "",
        }))
        .await;
    assert_eq!(
        crate::harness::codes(&bad),
        ["BAD_USER_INPUT", "BAD_USER_INPUT"],
        "{bad}"
    );
    let messages: Vec<&str> = bad["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["message"].as_str().unwrap())
        .collect();
    assert!(
        messages.iter().any(|m| m.contains("filter.properties")),
        "{bad}"
    );
    let mixed = t
        .gql(
            Some(&s.access),
            r#"{ analytics(range: { from: "2026-11-01T00:00:00Z", to: "2026-11-08T00:00:00Z" }, granularity: DAY) {
                 ok: events(filter: { name: "login" }) { total } bad: events(breakdownBy: "") { total } } }"#,
            json!({}),
        )
        .await;
    assert_eq!(crate::harness::codes(&mixed), ["BAD_USER_INPUT"], "{mixed}");
    assert_eq!(
        mixed["errors"][0]["path"],
        json!(["analytics", "bad"]),
        "{mixed}"
    );
}

async fn engagement(t: &TestApp, s: &Session, from: &str, to: &str) -> Value {
    let resp = t
        .op(
            Some(&s.access),
            "analytics.graphql",
            "Engagement",
            json!({
                "range": { "from": from, "to": to }, "granularity": "DAY",
            }),
        )
        .await;
    assert!(resp["errors"].is_null(), "{resp}");
    resp["data"]["analytics"].clone()
}

async fn redis_connection() -> redis::aio::MultiplexedConnection {
    redis::Client::open(crate::harness::redis_url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

/// The metric cache's keys of this test's server (cached series, retention, funnels).
async fn series_cache_keys(t: &TestApp) -> Vec<String> {
    let prefix = &t.app.config.redis_prefix;
    redis::cmd("KEYS")
        .arg(format!("{prefix}mc2:*"))
        .query_async(&mut redis_connection().await)
        .await
        .unwrap()
}

#[tokio::test]
async fn cached_results_never_outlive_new_data() {
    let t = TestApp::spawn().await;
    let s = t.sign_up("acme").await;
    let ingest = |user: &'static str| {
        let (t, token) = (&t, s.access.clone());
        async move {
            t.op(
                Some(&token),
                "ingest.graphql",
                "IngestEvents",
                json!({ "events": [
                { "name": "login", "userId": user, "occurredAt": "2026-11-02T10:00:00Z" }
            ] }),
            )
            .await
        }
    };
    ingest("a").await;
    let first = engagement(&t, &s, "2026-11-01T00:00:00Z", "2026-11-08T00:00:00Z").await;
    let again = engagement(&t, &s, "2026-11-01T00:00:00Z", "2026-11-08T00:00:00Z").await;
    assert_eq!(first, again);
    assert_eq!(first["activeUsers"]["total"], 1.0);

    let keys = series_cache_keys(&t).await;
    assert_eq!(
        keys.len(),
        3,
        "the three series are cached in Redis: {keys:?}"
    );
    let range = json!({ "from": "2026-11-01T00:00:00Z", "to": "2026-11-08T00:00:00Z" });
    for _ in 0..2 {
        t.op(
            Some(&s.access),
            "analytics.graphql",
            "Retention",
            json!({ "range": range, "granularity": "DAY", "periods": 3 }),
        )
        .await;
        t.op(
            Some(&s.access),
            "analytics.graphql",
            "Funnel",
            json!({ "range": range, "steps": ["login"], "windowHours": 24 }),
        )
        .await;
    }
    let keys = series_cache_keys(&t).await;
    assert_eq!(keys.len(), 5, "retention and funnel once each: {keys:?}");

    ingest("b").await;
    let after = engagement(&t, &s, "2026-11-01T00:00:00Z", "2026-11-08T00:00:00Z").await;
    assert_eq!(
        after["activeUsers"]["total"], 2.0,
        "a new event shows at once"
    );
    assert_eq!(after["events"]["total"], 2.0);
}

#[tokio::test]
async fn a_new_time_zone_moves_every_day_bucket() {
    let t = TestApp::spawn().await;
    let s = t.sign_up("acme").await;
    // 20:00 UTC is the same day in UTC and the next day in Tokyo.
    let events: Vec<Value> = (0..6)
        .map(|i| json!({ "name": "login", "userId": format!("u{i}"), "occurredAt": format!("2026-11-0{}T20:00:00Z", 1 + i % 3) }))
        .collect();
    t.ingest_ok(&s.access, events).await;
    let utc_days = engagement(&t, &s, "2026-11-01T00:00:00Z", "2026-11-05T00:00:00Z").await;
    let values = |v: &Value| -> Vec<f64> {
        v["activeUsers"]["points"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["value"].as_f64().unwrap())
            .collect()
    };
    assert_eq!(values(&utc_days), [2.0, 2.0, 2.0, 0.0]);

    let tz = t
        .op(
            Some(&s.access),
            "tenant.graphql",
            "UpdateTenant",
            json!({ "input": { "timezone": "Asia/Tokyo" } }),
        )
        .await;
    assert!(tz["errors"].is_null(), "{tz}");
    // Tokyo days: [Oct 31 15:00 UTC, Nov 1 15:00 UTC) and so on.
    let mut got = Vec::new();
    for _ in 0..100 {
        let tokyo = engagement(&t, &s, "2026-10-31T15:00:00Z", "2026-11-04T15:00:00Z").await;
        got = values(&tokyo);
        if got == [0.0, 2.0, 2.0, 2.0] {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("rollups were not rebuilt in Tokyo days: {got:?}");
}

async fn filtered_pro(t: &TestApp, access: &str) -> Value {
    let r = t
        .op(Some(access), "analytics.graphql", "FilteredActivity", json!({
            "range": { "from": "2026-11-01T00:00:00Z", "to": "2026-11-04T00:00:00Z" }, "granularity": "WEEK",
            "filter": { "properties": [{ "key": "plan", "equals": "pro" }] }, "breakdownBy": "plan",
        }))
        .await;
    assert!(r["errors"].is_null(), "{r}");
    r["data"]["analytics"].clone()
}

#[tokio::test]
async fn tracking_a_key_later_rebuilds_the_rollups_and_bad_keys_are_refused() {
    let t = TestApp::spawn().await;
    let s = t.sign_up("acme").await;
    let events: Vec<Value> = (0..12)
        .map(|i| json!({ "name": "login", "userId": format!("u{}", i % 6), "occurredAt": format!("2026-11-0{}T10:00:00Z", 1 + i % 3),
                         "properties": { "plan": if i % 6 < 4 { "pro" } else { "free" } } }))
        .collect();
    t.ingest_ok(&s.access, events).await;
    let from_events = filtered_pro(&t, &s.access).await;
    assert_eq!(from_events["activeUsers"]["total"], 4.0, "{from_events}");
    assert_eq!(from_events["events"]["total"], 8.0, "{from_events}");

    t.track(&s.access, &["plan"], None).await;
    let row = t
        .pg()
        .await
        .query_one(
            "SELECT count(*), sum(events)::int8 FROM segment_days WHERE dims = '{pro}'",
            &[],
        )
        .await
        .unwrap();
    let (rows, events): (i64, i64) = (row.get(0), row.get(1));
    assert_eq!(
        (rows, events),
        (4, 8),
        "each pro user's two logins on one day, kept by plan"
    );
    assert_eq!(
        filtered_pro(&t, &s.access).await,
        from_events,
        "the same numbers from the rollup"
    );

    for (keys, needle) in [
        (json!(["a", "b", "c", "d", "e", "f"]), "at most 5"),
        (json!(["plan", "plan"]), "twice"),
        (json!([""]), "trackedProperties[0]"),
    ] {
        let r = t
            .gql(
                Some(&s.access),
                "mutation($input: UpdateTenantInput!) { updateTenant(input: $input) { id } }",
                json!({ "input": { "trackedProperties": keys } }),
            )
            .await;
        assert_eq!(
            r["errors"][0]["extensions"]["code"], "BAD_USER_INPUT",
            "{r}"
        );
        assert!(
            r["errors"][0]["message"].as_str().unwrap().contains(needle),
            "{r}"
        );
    }
}

/// Points are resolved in one step; aliases, fragments, `__typename` and `@include` still answer
/// as GraphQL says.
#[tokio::test]
async fn points_answer_aliases_fragments_and_typename() {
    let t = TestApp::spawn().await;
    let s = t.sign_up("shapes").await;
    t.ingest_ok(
        &s.access,
        vec![
            json!({ "name": "login", "userId": "u1", "occurredAt": "2026-11-02T10:00:00Z", "properties": { "plan": "pro" } }),
            json!({ "name": "login", "userId": "u2", "occurredAt": "2026-11-03T10:00:00Z", "properties": { "plan": "free" } }),
            json!({ "name": "login", "userId": "u2", "occurredAt": "2026-11-03T11:00:00Z" }),
        ],
    )
    .await;
    let query = "query($r: TimeRangeInput!, $no: Boolean!) { analytics(range: $r, granularity: DAY) {
        plain: events(breakdownBy: \"plan\") { points { bucket value group } }
        shaped: events(breakdownBy: \"plan\") { points {
            when: bucket ...V ... on MetricPoint { __typename g: group } hidden: value @include(if: $no)
        } }
    } } fragment V on MetricPoint { value }";
    let resp = t
        .gql(
            Some(&s.access),
            query,
            json!({ "r": { "from": "2026-11-01T00:00:00Z", "to": "2026-11-05T00:00:00Z" }, "no": false }),
        )
        .await;
    assert!(resp["errors"].is_null(), "{resp}");
    let plain = resp["data"]["analytics"]["plain"]["points"]
        .as_array()
        .unwrap();
    let shaped = resp["data"]["analytics"]["shaped"]["points"]
        .as_array()
        .unwrap();
    assert!(
        plain
            .iter()
            .any(|p| p["group"] == "pro" && p["value"] == 1.0),
        "{resp}"
    );
    let expected: Vec<Value> = plain
        .iter()
        .map(|p| json!({ "when": p["bucket"], "value": p["value"], "__typename": "MetricPoint", "g": p["group"] }))
        .collect();
    assert_eq!(shaped, &expected, "no `hidden`: @include(if: false)");
}

/// The whole response of an analytics-only query is kept per data version: served again while
/// the version holds (even when the rollups under it were changed behind its back), replaced
/// once the version moves, within a second even when nothing told this server.
#[tokio::test]
async fn whole_responses_are_served_only_at_their_data_version() {
    let t = TestApp::spawn().await;
    let s = t.sign_up("acme").await;
    t.ingest_ok(
        &s.access,
        vec![json!({ "name": "login", "userId": "a", "occurredAt": "2026-11-02T10:00:00Z" })],
    )
    .await;
    let (from, to) = ("2026-11-01T00:00:00Z", "2026-11-08T00:00:00Z");
    let first = engagement(&t, &s, from, to).await;
    assert_eq!(first["events"]["total"], 1.0);
    // A stored response lives a minute; the series behind it longer.
    let prefix = &t.app.config.redis_prefix;
    let stored: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}rc:*"))
        .query_async(&mut redis_connection().await)
        .await
        .unwrap();
    assert_eq!(stored.len(), 1, "{stored:?}");
    let ttl_ms = |key: String| async move {
        let ms: i64 = redis::cmd("PTTL")
            .arg(key)
            .query_async(&mut redis_connection().await)
            .await
            .unwrap();
        ms
    };
    let response_ttl = ttl_ms(stored[0].clone()).await;
    assert!((1..=60_000).contains(&response_ttl), "{response_ttl}");
    let series_ttl = ttl_ms(series_cache_keys(&t).await[0].clone()).await;
    assert!(series_ttl > 60_000, "{series_ttl}");

    // Behind the server's back: the rollup changes and the cached series go, the version stays.
    let pg = t.pg().await;
    pg.execute(
        "UPDATE event_counts_daily SET events = events + 100 WHERE tenant_id = $1::text::uuid",
        &[&s.tenant_id],
    )
    .await
    .unwrap();
    let series = series_cache_keys(&t).await;
    let _: () = redis::cmd("DEL")
        .arg(&series)
        .query_async(&mut redis_connection().await)
        .await
        .unwrap();
    let again = engagement(&t, &s, from, to).await;
    assert_eq!(
        again, first,
        "the stored response answers at the same version"
    );
    // Gone from Redis too, it is still this instance's recent copy while the version holds.
    let _: () = redis::cmd("DEL")
        .arg(&stored)
        .query_async(&mut redis_connection().await)
        .await
        .unwrap();
    let recent = engagement(&t, &s, from, to).await;
    assert_eq!(
        recent, first,
        "this instance's copy answers at the same version"
    );

    // A query that reads more than analytics is never stored: the rename shows at once.
    let mixed = "query($r: TimeRangeInput!) { analytics(range: $r, granularity: DAY) { events { total } } me { tenant { name } } }";
    let vars = json!({ "r": { "from": from, "to": to } });
    let before = t.gql(Some(&s.access), mixed, vars.clone()).await;
    assert_eq!(
        before["data"]["analytics"]["events"]["total"], 101.0,
        "{before}"
    );
    let renamed = t
        .op(
            Some(&s.access),
            "tenant.graphql",
            "UpdateTenant",
            json!({ "input": { "name": "Renamed" } }),
        )
        .await;
    assert!(renamed["errors"].is_null(), "{renamed}");
    let after = t.gql(Some(&s.access), mixed, vars).await;
    assert_eq!(after["data"]["me"]["tenant"]["name"], "Renamed", "{after}");

    // A version moved straight in PostgreSQL reaches readers once the mirror expires.
    pg.execute(
        "UPDATE tenant_usage SET data_version = data_version + 1 WHERE tenant_id = $1::text::uuid",
        &[&s.tenant_id],
    )
    .await
    .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(3);
    loop {
        let now = engagement(&t, &s, from, to).await;
        if now["events"]["total"] == 101.0 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "still the old answer 3 s after the version moved: {now}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// Without Redis the same caches live in process: a repeated load is answered from them, and an
/// ingest call that returned is never answered with the numbers from before it.
#[tokio::test]
async fn in_process_caches_never_serve_numbers_older_than_an_ingest() {
    let t = TestApp::spawn_with(false).await;
    let s = t.sign_up("acme").await;
    let (from, to) = ("2026-11-01T00:00:00Z", "2026-11-08T00:00:00Z");
    for (user, expected) in [("a", 1.0), ("b", 2.0), ("c", 3.0)] {
        t.ingest_ok(
            &s.access,
            vec![json!({ "name": "login", "userId": user, "occurredAt": "2026-11-03T10:00:00Z" })],
        )
        .await;
        let first = engagement(&t, &s, from, to).await;
        assert_eq!(first["activeUsers"]["total"], expected, "{first}");
        let again = engagement(&t, &s, from, to).await;
        assert_eq!(again, first);
    }
    // The repeated load came from the cache: rollups changed behind the server's back (the
    // version untouched) do not show.
    t.pg()
        .await
        .execute(
            "UPDATE event_counts_daily SET events = events + 100 WHERE tenant_id = $1::text::uuid",
            &[&s.tenant_id],
        )
        .await
        .unwrap();
    let cached = engagement(&t, &s, from, to).await;
    assert_eq!(cached["events"]["total"], 3.0, "{cached}");
}

/// Reads racing ingests: whatever the interleaving of version raises by readers (with versions
/// they read earlier) and by ingest calls, a read never shows fewer events than were
/// acknowledged before it started.
#[tokio::test]
async fn racing_reads_never_show_less_than_was_acknowledged() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

    let t = Arc::new(TestApp::spawn().await);
    let s = Arc::new(t.sign_up("acme").await);
    let acked = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let mut readers = Vec::new();
    for _ in 0..2 {
        let (t, s, acked, done) = (t.clone(), s.clone(), acked.clone(), done.clone());
        readers.push(tokio::spawn(async move {
            let mut reads = 0;
            while !done.load(Ordering::SeqCst) {
                let before = acked.load(Ordering::SeqCst);
                let now = engagement(&t, &s, "2026-11-01T00:00:00Z", "2026-11-08T00:00:00Z").await;
                let total = now["events"]["total"].as_f64().unwrap() as u64;
                assert!(
                    total >= before,
                    "read {total} events after {before} were acknowledged"
                );
                reads += 1;
            }
            reads
        }));
    }
    let mut writers = Vec::new();
    for w in 0..2 {
        let (t, s, acked) = (t.clone(), s.clone(), acked.clone());
        writers.push(tokio::spawn(async move {
            for i in 0..10 {
                t.ingest_ok(
                    &s.access,
                    vec![json!({ "name": "login", "userId": format!("w{w}-{i}"), "occurredAt": "2026-11-03T10:00:00Z" })],
                )
                .await;
                acked.fetch_add(1, Ordering::SeqCst);
            }
        }));
    }
    for w in writers {
        w.await.unwrap();
    }
    done.store(true, Ordering::SeqCst);
    for r in readers {
        assert!(r.await.unwrap() > 0, "each reader read at least once");
    }
    let last = engagement(&t, &s, "2026-11-01T00:00:00Z", "2026-11-08T00:00:00Z").await;
    assert_eq!(last["events"]["total"], 20.0, "{last}");
}
