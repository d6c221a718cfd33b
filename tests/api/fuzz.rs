//! Property tests over everything a client can put in a request body: ingestion batches on the
//! REST paths, raw bytes, webhook deliveries with their signatures, and the variables of the
//! contract's operations. Whatever arrives, the answer is JSON with one of the contract's codes,
//! never a 500 (OWASP API Security Top 10 2023, API8 Security Misconfiguration: no panic or
//! driver error reaches the client, and no input reaches a code path nobody checked), and the
//! server keeps serving afterwards (API4 Unrestricted Resource Consumption: no input takes it
//! down). Also the parsers that need no server: the Stripe-Signature header, a query's calendar
//! window, and the trusted-documents splitter.
//!
//! CI gates on the same cases every run (a fixed seed), so that a landing is not decided by
//! chance; `PROPTEST_RNG_SEED=N` picks other cases and `FAHWA_FUZZ_RANDOM=1` draws new ones each
//! run, for exploring. A failure prints the smallest input proptest found. `PROPTEST_CASES`
//! changes how many cases each property runs.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::select;
use proptest::test_runner::{Config as Cases, RngSeed, TestCaseError, TestRunner};
use serde_json::{Value, json};

use crate::harness::TestApp;

/// The contract's codes: INTERNAL is what a failure looks like, so it is not among them.
const CODES: [&str; 6] = [
    "UNAUTHENTICATED",
    "FORBIDDEN",
    "BAD_USER_INPUT",
    "NOT_FOUND",
    "RATE_LIMITED",
    "QUERY_TOO_COMPLEX",
];

/// Cases per property over HTTP: enough to reach every branch of the strategies below many
/// times, few enough that the file runs in well under 30 s.
const CASES: u32 = 256;

/// The seed of CI's cases.
const SEED: u64 = 20_261_204;

/// A runner that writes no regression file into the repository (a failure prints its input
/// instead) and gives up shrinking before a failing case costs minutes of requests.
fn runner(cases: u32) -> TestRunner {
    let defaults = Cases::default();
    // `PROPTEST_CASES` in the environment overrides ours.
    let cases = if std::env::var_os("PROPTEST_CASES").is_some() {
        defaults.cases
    } else {
        cases
    };
    let rng_seed = if std::env::var_os("FAHWA_FUZZ_RANDOM").is_some() {
        RngSeed::Random
    } else if std::env::var_os("PROPTEST_RNG_SEED").is_some() {
        defaults.rng_seed
    } else {
        RngSeed::Fixed(SEED)
    };
    TestRunner::new(Cases {
        cases,
        rng_seed,
        failure_persistence: None,
        max_shrink_iters: 200,
        ..defaults
    })
}

/// Runs `test` over `strategy`, and fails with proptest's report (the minimal input) if any
/// case fails.
fn check<S: Strategy>(
    what: &str,
    cases: u32,
    strategy: S,
    test: impl Fn(S::Value) -> Result<(), TestCaseError>,
) {
    if let Err(e) = runner(cases).run(&strategy, test) {
        panic!("{what}: {e}");
    }
}

fn clip(text: &str) -> String {
    const MAX: usize = 1_500;
    if text.len() <= MAX {
        return text.to_string();
    }
    let mut end = MAX;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… ({} bytes)", &text[..end], text.len())
}

// ---------------------------------------------------------------------------------------------
// Values.

/// Strings that have broken parsers and queries elsewhere: quotes and comment markers for SQL,
/// escapes, NUL (which PostgreSQL cannot store), bidi and byte-order marks, numbers and dates
/// spelled as text.
const FRAGMENTS: &[&str] = &[
    "'",
    "\"",
    ";",
    "--",
    "\\",
    "\\\\",
    "/*",
    "*/",
    "' OR '1'='1",
    "'); DROP TABLE events; --",
    "\u{0}",
    "%",
    "_",
    "$1",
    "::",
    "{",
    "}",
    "[",
    "]",
    "é",
    "𝒳",
    "🦀",
    "\u{202e}",
    "\u{feff}",
    "\u{fffd}",
    "\u{7f}",
    "\u{85}",
    "\n",
    "\r\n",
    "\t",
    " ",
    "null",
    "NaN",
    "Infinity",
    "-0",
    "1e999",
    "<script>",
    "../",
    "${jndi:ldap://x}",
    "%s%n",
    "\\u0000",
    "a",
    "plan",
];

fn text() -> BoxedStrategy<String> {
    prop_oneof![
        4 => "[a-zA-Z0-9_ .-]{0,16}",
        4 => vec(select(FRAGMENTS), 0..8).prop_map(|parts| parts.concat()),
        2 => any::<String>(),
        // Past the 200-byte names, the 32 KB of properties, and (rarely) the body limits.
        1 => (select(&["a", "é", "'", "\u{0}", "🦀"][..]), 1usize..48_000)
            .prop_map(|(unit, bytes)| unit.repeat(bytes / unit.len())),
    ]
    .boxed()
}

fn number() -> BoxedStrategy<Value> {
    prop_oneof![
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        // Non-finite floats become null.
        any::<f64>().prop_map(Value::from),
        select(vec![0i64, -1, 1, i64::from(i32::MAX), i64::MIN, i64::MAX]).prop_map(Value::from),
    ]
    .boxed()
}

/// Any JSON value, a few levels deep and a few dozen nodes large.
fn any_json() -> BoxedStrategy<Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        number(),
        text().prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..6).prop_map(Value::Array),
            vec((text(), inner), 0..6).prop_map(|pairs| Value::Object(pairs.into_iter().collect())),
        ]
    })
    .boxed()
}

/// One JSON value nested `levels` deep, around serde_json's bound of 128.
fn nested(levels: usize, object: bool) -> Value {
    (0..levels).fold(json!(1), |inner, _| {
        if object {
            json!({ "a": inner })
        } else {
            json!([inner])
        }
    })
}

fn deep_json() -> BoxedStrategy<Value> {
    (1usize..300, any::<bool>())
        .prop_map(|(levels, object)| nested(levels, object))
        .boxed()
}

/// Text a careful client may still send: printable, quotes, comment markers and all, but no
/// control character (names and ids refuse those) and never blank.
fn clean_text() -> BoxedStrategy<String> {
    let printable: Vec<&'static str> = FRAGMENTS
        .iter()
        .copied()
        .filter(|f| !f.chars().any(char::is_control))
        .collect();
    prop_oneof![
        "[a-zA-Z0-9_][a-zA-Z0-9_ .-]{0,15}",
        vec(select(printable), 0..6).prop_map(|parts| format!("x{}", parts.concat())),
    ]
    .boxed()
}

/// JSON a careful client may send as properties: anything but NUL characters.
fn clean_json() -> BoxedStrategy<Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        number(),
        clean_text().prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 5, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..5).prop_map(Value::Array),
            vec((clean_text(), inner), 0..5)
                .prop_map(|pairs| Value::Object(pairs.into_iter().collect())),
        ]
    })
    .boxed()
}

fn recent() -> BoxedStrategy<Value> {
    (0i64..90 * 86_400)
        .prop_map(|ago| rfc3339(Utc::now() - chrono::Duration::seconds(ago)))
        .boxed()
}

/// An instant anywhere chrono can hold (years −262143 to +262142), as RFC 3339.
fn any_instant() -> BoxedStrategy<DateTime<Utc>> {
    (
        DateTime::<Utc>::MIN_UTC.timestamp()..=DateTime::<Utc>::MAX_UTC.timestamp(),
        0u32..1_000_000_000,
    )
        .prop_map(|(secs, nanos)| DateTime::from_timestamp(secs, nanos).expect("in range"))
        .boxed()
}

/// Instants near the edges the server draws (1970, 2200, now, daylight-saving changes), where
/// arithmetic on them is most likely to go wrong.
fn edgy_instant() -> BoxedStrategy<DateTime<Utc>> {
    let anchors: Vec<DateTime<Utc>> = [
        "1970-01-01T00:00:00Z",
        "2199-12-01T00:00:00Z",
        "2200-01-01T00:00:00Z",
        "2026-03-29T01:00:00Z",
        "2026-10-25T01:00:00Z",
        "2026-03-08T10:00:00Z",
        "2026-11-01T09:00:00Z",
        "2026-01-01T00:00:00Z",
    ]
    .iter()
    .map(|s| s.parse().unwrap())
    .chain([Utc::now()])
    .collect();
    (select(anchors), -40 * 86_400i64..40 * 86_400)
        .prop_map(|(anchor, secs)| anchor + chrono::Duration::seconds(secs))
        .boxed()
}

fn rfc3339(at: DateTime<Utc>) -> Value {
    json!(at.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true))
}

/// A timestamp as a client would send one: mostly recent and valid, else at the edges, out of
/// range, in other spellings, or not a timestamp at all.
fn timestamp() -> BoxedStrategy<Value> {
    prop_oneof![
        6 => recent(),
        2 => edgy_instant().prop_map(rfc3339),
        1 => any_instant().prop_map(rfc3339),
        1 => select(&[
            "1969-12-31T23:59:59Z",
            "+262142-12-31T23:59:59Z",
            "-262143-01-01T00:00:00Z",
            "2026-02-30T00:00:00Z",
            "2026-03-29T02:30:00+01:00",
            "2026-01-01T00:00:00+24:00",
            "2026-01-01T00:00:00.9999999999Z",
            "2026-01-01",
            "2026-01-01T00:00:00",
            "now",
            "",
            "1767225600",
        ][..])
        .prop_map(|s| json!(s)),
        1 => any_json(),
    ]
    .boxed()
}

/// A field of an event-shaped object: usually of the right type (so that validation past type
/// coercion runs), sometimes any JSON, sometimes absent.
fn field(valid: BoxedStrategy<Value>) -> BoxedStrategy<Option<Value>> {
    prop_oneof![
        8 => valid.prop_map(Some),
        1 => any_json().prop_map(Some),
        1 => Just(None),
    ]
    .boxed()
}

fn object(fields: Vec<(&'static str, Option<Value>)>, extra: Option<(String, Value)>) -> Value {
    let mut map: serde_json::Map<String, Value> = fields
        .into_iter()
        .filter_map(|(k, v)| v.map(|v| (k.to_string(), v)))
        .collect();
    if let Some((k, v)) = extra {
        map.insert(k, v);
    }
    Value::Object(map)
}

fn name_like() -> BoxedStrategy<Value> {
    prop_oneof![
        3 => "[a-z][a-z_]{0,15}".prop_map(Value::String),
        1 => text().prop_map(Value::String),
    ]
    .boxed()
}

/// Client ids from a small set, so that batches repeat them and later batches replay them.
fn client_id() -> BoxedStrategy<Value> {
    prop_oneof![
        3 => select(&["e1", "e2", "e3", "e4"][..]).prop_map(|s| json!(s)),
        1 => text().prop_map(Value::String),
    ]
    .boxed()
}

fn properties() -> BoxedStrategy<Value> {
    prop_oneof![
        2 => Just(json!({})),
        3 => vec((text(), any_json()), 0..6).prop_map(|pairs| Value::Object(pairs.into_iter().collect())),
        1 => select(&["free", "pro", "team"][..]).prop_map(|plan| json!({ "plan": plan })),
        1 => deep_json().prop_map(|v| json!({ "deep": v })),
        1 => Just(Value::Null),
    ]
    .boxed()
}

/// Rarely, a field the input type does not have.
fn stray() -> BoxedStrategy<Option<(String, Value)>> {
    prop_oneof![
        9 => Just(None),
        1 => (text(), any_json()).prop_map(Some),
    ]
    .boxed()
}

fn event_like() -> BoxedStrategy<Value> {
    (
        field(client_id()),
        field(name_like()),
        field(name_like()),
        field(timestamp()),
        field(properties()),
        stray(),
    )
        .prop_map(|(id, name, user, at, props, extra)| {
            object(
                vec![
                    ("id", id),
                    ("name", name),
                    ("userId", user),
                    ("occurredAt", at),
                    ("properties", props),
                ],
                extra,
            )
        })
        .boxed()
}

/// An event a careful client sends: every field of its type and within its rules.
fn valid_event() -> BoxedStrategy<Value> {
    let maybe = |s: BoxedStrategy<Value>| prop::option::of(s).boxed();
    (
        maybe(client_id()),
        clean_text(),
        clean_text(),
        maybe(recent()),
        maybe(
            vec((clean_text(), clean_json()), 0..5)
                .prop_map(|pairs| Value::Object(pairs.into_iter().collect()))
                .boxed(),
        ),
    )
        .prop_map(|(id, name, user, at, props)| {
            object(
                vec![
                    ("id", id),
                    ("name", Some(json!(name))),
                    ("userId", Some(json!(user))),
                    ("occurredAt", at),
                    ("properties", props),
                ],
                None,
            )
        })
        .boxed()
}

/// Mostly careful, sometimes hostile: a batch of them is refused by the one bad item, deep in
/// validation, after the good ones passed.
fn mixed(valid: BoxedStrategy<Value>, hostile: BoxedStrategy<Value>) -> BoxedStrategy<Value> {
    prop_oneof![3 => valid, 1 => hostile].boxed()
}

/// A revenue change a careful client sends, in the tenant's currency or one with rates.
fn valid_change() -> BoxedStrategy<Value> {
    (
        prop::option::of(client_id()),
        "cus_[a-z0-9]{1,8}",
        recent(),
        prop_oneof![
            "(0|[1-9][0-9]{0,6})(\\.[0-9]{1,2})?".prop_map(Value::String),
            (0u32..10_000_000).prop_map(Value::from),
        ],
        select(&["USD", "usd", "EUR", "JPY", "KWD"][..]),
        prop::option::of(clean_text()),
    )
        .prop_map(|(id, customer, at, mrr, currency, plan)| {
            object(
                vec![
                    ("id", id),
                    ("customerId", Some(json!(customer))),
                    ("occurredAt", Some(at)),
                    ("mrr", Some(mrr)),
                    ("currency", Some(json!(currency))),
                    ("plan", plan.map(Value::String)),
                ],
                None,
            )
        })
        .boxed()
}

fn mrr_like() -> BoxedStrategy<Value> {
    prop_oneof![
        4 => "(0|[1-9][0-9]{0,6})\\.[0-9]{2}".prop_map(Value::String),
        1 => number(),
        1 => select(&[
            "-1",
            "1e30",
            "1e-30",
            "79228162514264337593543950335",
            "79228162514264337593543950336",
            "0.0000000000000000000000000001",
            "99999999999999999999.99",
            "NaN",
            "inf",
            "",
            " 1",
            "1_000",
            "0x10",
            "-0",
        ][..])
        .prop_map(|s| json!(s)),
    ]
    .boxed()
}

fn currency_like() -> BoxedStrategy<Value> {
    prop_oneof![
        3 => select(&["USD", "EUR", "JPY", "KWD", "usd", "XXX", "BTC", "", "€", "USDD", "CLF"][..])
            .prop_map(|s| json!(s)),
        1 => text().prop_map(Value::String),
    ]
    .boxed()
}

fn revenue_like() -> BoxedStrategy<Value> {
    (
        field(client_id()),
        field(
            prop_oneof![
                3 => "cus_[a-z0-9]{1,8}".prop_map(Value::String),
                1 => text().prop_map(Value::String),
            ]
            .boxed(),
        ),
        field(timestamp()),
        field(mrr_like()),
        field(currency_like()),
        field(name_like()),
        stray(),
    )
        .prop_map(|(id, customer, at, mrr, currency, plan, extra)| {
            object(
                vec![
                    ("id", id),
                    ("customerId", customer),
                    ("occurredAt", at),
                    ("mrr", mrr),
                    ("currency", currency),
                    ("plan", plan),
                ],
                extra,
            )
        })
        .boxed()
}

/// The list of a batch: careful items, a careful batch with a bad item or a few, hostile
/// items, one item where a list belongs (GraphQL coerces it), or anything.
fn batch(valid: BoxedStrategy<Value>, hostile: BoxedStrategy<Value>) -> BoxedStrategy<Value> {
    let either = mixed(valid.clone(), hostile.clone());
    prop_oneof![
        4 => vec(valid, 1..6).prop_map(Value::Array),
        3 => vec(either.clone(), 1..6).prop_map(Value::Array),
        1 => vec(hostile, 0..6).prop_map(Value::Array),
        1 => either,
        1 => any_json(),
    ]
    .boxed()
}

fn events() -> BoxedStrategy<Value> {
    batch(valid_event(), event_like())
}

fn changes() -> BoxedStrategy<Value> {
    batch(valid_change(), revenue_like())
}

/// A REST ingestion body: `{"<key>": batch}` mostly, else a stray field or any JSON at all.
fn rest_body(key: &'static str, batch: BoxedStrategy<Value>) -> BoxedStrategy<Value> {
    prop_oneof![
        8 => batch.clone().prop_map(move |b| json!({ key: b })),
        1 => (batch, text(), any_json()).prop_map(move |(b, k, v)| {
            let mut body = json!({ key: b });
            body[k.as_str()] = v;
            body
        }),
        1 => any_json(),
    ]
    .boxed()
}

/// A request body, shown as text (lossily) when proptest reports it, not as a list of numbers.
#[derive(Clone)]
struct Bytes(Vec<u8>);

impl std::fmt::Debug for Bytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", String::from_utf8_lossy(&self.0))
    }
}

/// Bytes that are not a JSON document: random, cut short, or one byte changed.
fn raw_body() -> BoxedStrategy<Bytes> {
    let document = || {
        prop_oneof![
            rest_body("events", events()),
            rest_body("changes", changes()),
        ]
        .prop_map(|v| serde_json::to_vec(&v).unwrap())
    };
    prop_oneof![
        vec(any::<u8>(), 0..2_048),
        (document(), any::<prop::sample::Index>()).prop_map(|(mut bytes, at)| {
            bytes.truncate(at.index(bytes.len().max(1)));
            bytes
        }),
        (document(), any::<prop::sample::Index>(), any::<u8>()).prop_map(|(mut bytes, at, b)| {
            if !bytes.is_empty() {
                let i = at.index(bytes.len());
                bytes[i] = b;
            }
            bytes
        }),
        select(vec![
            &b"\xff\xfe{\"events\": []}"[..],
            b"{\"events\": [{\"name\": \"a\xc3\", \"userId\": \"u\"}]}",
            b"{\"events\": [{\"name\": \"a\", \"userId\": \"u\", \"occurredAt\": 1e999}]}",
            b"{\"events\": [], \"events\": []}",
            b"{\"changes\": [{\"mrr\": 1e400}]}",
            b"{\"events\": [{\"name\": \"\\ud800\", \"userId\": \"u\"}]}",
            b"",
            b"null",
            b"{",
        ])
        .prop_map(<[u8]>::to_vec),
    ]
    .prop_map(Bytes)
    .boxed()
}

fn granularity() -> BoxedStrategy<Value> {
    prop_oneof![
        8 => select(&["HOUR", "DAY", "WEEK", "MONTH"][..]).prop_map(|g| json!(g)),
        1 => select(&["hour", "YEAR", "", "DAY "][..]).prop_map(|g| json!(g)),
        1 => any_json(),
    ]
    .boxed()
}

/// A range: usually ordered and within bounds (so that windows are cut and queried), else
/// reversed, empty, past 2200, too long for its buckets, or not a range.
fn range() -> BoxedStrategy<Value> {
    let span = prop_oneof![
        select(
            &[
                1i64,
                3_600,
                86_400,
                7 * 86_400,
                31 * 86_400,
                83 * 86_400,
                90 * 86_400,
                366 * 86_400,
                3_660 * 86_400,
                20 * 366 * 86_400,
                0,
                -86_400,
            ][..]
        ),
        -86_400i64..400 * 86_400,
    ];
    prop_oneof![
        6 => (edgy_instant(), span).prop_map(|(from, secs)| json!({
            "from": rfc3339(from),
            "to": rfc3339(from + chrono::Duration::seconds(secs)),
        })),
        1 => (timestamp(), timestamp()).prop_map(|(from, to)| json!({ "from": from, "to": to })),
        1 => any_json(),
    ]
    .boxed()
}

fn event_filter() -> BoxedStrategy<Value> {
    let property = (
        field(name_like()),
        field(
            prop_oneof![
                select(&["free", "pro", "team"][..]).prop_map(|s| json!(s)),
                text().prop_map(Value::String),
            ]
            .boxed(),
        ),
        stray(),
    )
        .prop_map(|(key, equals, extra)| object(vec![("key", key), ("equals", equals)], extra));
    prop_oneof![
        2 => Just(Value::Null),
        5 => (field(name_like()), field(vec(property, 0..4).prop_map(Value::Array).boxed()), stray())
            .prop_map(|(name, properties, extra)| {
                object(vec![("name", name), ("properties", properties)], extra)
            }),
        1 => any_json(),
    ]
    .boxed()
}

fn update_tenant_input() -> BoxedStrategy<Value> {
    let timezone = prop_oneof![
        3 => select(&[
            "UTC",
            "Europe/Paris",
            "America/Los_Angeles",
            "Asia/Kathmandu",
            "Pacific/Kiritimati",
            "Pacific/Chatham",
            "America/Santiago",
            "Australia/Lord_Howe",
            "Etc/GMT+12",
        ][..])
        .prop_map(|s| json!(s)),
        1 => select(&["Mars/Olympus", "utc", "", "Europe/../etc/passwd", "+05:30"][..])
            .prop_map(|s| json!(s)),
        1 => text().prop_map(Value::String),
    ];
    prop_oneof![
        6 => (field(name_like()), field(timezone.boxed()), field(currency_like()), stray())
            .prop_map(|(name, timezone, currency, extra)| object(
                vec![("name", name), ("timezone", timezone), ("currency", currency)],
                extra,
            )),
        1 => any_json(),
    ]
    .boxed()
}

// ---------------------------------------------------------------------------------------------
// Requests and what every answer must be.

/// Checks one answer: never a 5xx but a busy 503, JSON, every error with a contract code, and
/// a refusal that says why.
fn judge(request: &str, status: u16, text: &str) -> Result<(), TestCaseError> {
    let body: Value = serde_json::from_str(text).map_err(|e| {
        TestCaseError::fail(format!(
            "{request} -> {status}, not JSON ({e}): {}",
            clip(text)
        ))
    })?;
    let bodies: Vec<&Value> = match &body {
        Value::Array(items) => items.iter().collect(),
        one => vec![one],
    };
    let codes: Vec<&str> = bodies
        .iter()
        .flat_map(|b| b["errors"].as_array().into_iter().flatten())
        .map(|e| e["extensions"]["code"].as_str().unwrap_or("<none>"))
        .collect();
    let busy = status == 503 && !codes.is_empty() && codes.iter().all(|c| *c == "RATE_LIMITED");
    prop_assert!(
        status < 500 || busy,
        "{request} -> {status}: {}",
        clip(text)
    );
    prop_assert!(
        codes.iter().all(|c| CODES.contains(c)),
        "{request} -> {status} with codes {codes:?}: {}",
        clip(text)
    );
    prop_assert!(
        status < 400 || !codes.is_empty(),
        "{request} -> {status} without an error code: {}",
        clip(text)
    );
    Ok(())
}

/// What the server answered, as status, text and whether it refused.
struct Answer {
    status: u16,
    text: String,
}

impl Answer {
    fn refused(&self) -> bool {
        self.status >= 400 || self.text.contains("\"errors\"")
    }
}

async fn post(
    t: &TestApp,
    path: &str,
    token: &str,
    body: Vec<u8>,
) -> Result<Answer, TestCaseError> {
    let response = t
        .client
        .post(format!("{}{path}", t.base))
        .bearer_auth(token)
        .header("content-type", "application/json")
        .body(body)
        // A request that hangs is a failure too, not a stuck test.
        .timeout(Duration::from_secs(30))
        .send()
        .await
        .map_err(|e| TestCaseError::fail(format!("POST {path}: no answer: {e}")))?;
    let status = response.status().as_u16();
    let text = response
        .text()
        .await
        .map_err(|e| TestCaseError::fail(format!("POST {path} -> {status}: unreadable: {e}")))?;
    Ok(Answer { status, text })
}

/// A server whose budgets cannot run out during the run (rate limits are tested elsewhere;
/// here a 429 would hide what the input did), with a tenant.
async fn server() -> (TestApp, crate::harness::Session) {
    let t = TestApp::spawn_configured(|c| {
        c.limits.points_per_minute_admin = 100_000_000;
        c.limits.points_per_minute_ingest_key = 100_000_000;
    })
    .await;
    let owner = t.sign_up("fuzz").await;
    // Rates for the days careful changes are stamped with, so that changes in these
    // currencies are stored rather than all refused for a missing rate.
    let today = Utc::now().date_naive();
    let rates: Vec<Value> = (0..=91)
        .flat_map(|ago| {
            let day = (today - chrono::Duration::days(ago)).to_string();
            [("EUR", "1.08"), ("JPY", "0.0067"), ("KWD", "3.25")]
                .map(|(currency, rate)| json!({ "currency": currency, "date": day, "rate": rate }))
        })
        .collect();
    let r = t
        .gql(
            Some(&owner.access),
            "mutation($rates: [ExchangeRateInput!]!) { setExchangeRates(rates: $rates) { __typename } }",
            json!({ "rates": rates }),
        )
        .await;
    assert!(r["errors"].is_null(), "{r}");
    (t, owner)
}

async fn still_serves(t: &TestApp, owner: &crate::harness::Session) {
    let r = t.gql(Some(&owner.access), "{ me { id } }", json!({})).await;
    assert_eq!(r["data"]["me"]["id"], owner.user_id, "after the run: {r}");
}

/// Counts of answers, so that a strategy that only ever produced type errors (the contract
/// renamed a field, say) fails the test instead of passing on nothing.
#[derive(Default)]
struct Tally {
    accepted: AtomicUsize,
    refused: AtomicUsize,
}

impl Tally {
    fn count(&self, answer: &Answer) {
        let which = if answer.refused() {
            &self.refused
        } else {
            &self.accepted
        };
        which.fetch_add(1, Ordering::Relaxed);
    }

    fn assert_both(&self, what: &str) {
        let (accepted, refused) = (
            self.accepted.load(Ordering::Relaxed),
            self.refused.load(Ordering::Relaxed),
        );
        eprintln!("{what}: {accepted} accepted, {refused} refused");
        assert!(
            accepted > 0 && refused > 0,
            "{what}: the inputs should reach both outcomes ({accepted} accepted, {refused} refused)"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rest_ingestion_answers_any_body_with_a_contract_code_and_never_a_500() {
    let (t, owner) = server().await;
    let key = t.api_key(&owner.access, &["INGEST"]).await;
    let handle = tokio::runtime::Handle::current();
    let (event_answers, revenue_answers) = (Tally::default(), Tally::default());
    // The runner's closure is synchronous: each case blocks on its request while the server
    // runs on the runtime's other workers.
    tokio::task::block_in_place(|| {
        check(
            "POST /api/v1/events",
            CASES,
            rest_body("events", events()),
            |body| {
                handle.block_on(async {
                    let bytes = serde_json::to_vec(&body).unwrap();
                    let answer = post(&t, "/api/v1/events", &key, bytes).await?;
                    event_answers.count(&answer);
                    judge(
                        &format!("POST /api/v1/events {}", clip(&body.to_string())),
                        answer.status,
                        &answer.text,
                    )
                })
            },
        );
        check(
            "POST /api/v1/revenue",
            CASES,
            rest_body("changes", changes()),
            |body| {
                handle.block_on(async {
                    let bytes = serde_json::to_vec(&body).unwrap();
                    let answer = post(&t, "/api/v1/revenue", &key, bytes).await?;
                    revenue_answers.count(&answer);
                    judge(
                        &format!("POST /api/v1/revenue {}", clip(&body.to_string())),
                        answer.status,
                        &answer.text,
                    )
                })
            },
        );
        let paths = vec!["/api/v1/events", "/api/v1/revenue", "/api/v1/graphql"];
        check(
            "raw bodies",
            CASES,
            (select(paths), raw_body()),
            |(path, Bytes(bytes))| {
                handle.block_on(async {
                    let token = if path.ends_with("graphql") {
                        &owner.access
                    } else {
                        &key
                    };
                    let shown = clip(&String::from_utf8_lossy(&bytes));
                    let answer = post(&t, path, token, bytes).await?;
                    judge(&format!("POST {path} {shown}"), answer.status, &answer.text)
                })
            },
        );
    });
    event_answers.assert_both("POST /api/v1/events");
    revenue_answers.assert_both("POST /api/v1/revenue");
    still_serves(&t, &owner).await;
}

/// A `Stripe-Signature` header of any shape: well-formed parts with any numbers, stray parts,
/// or anything printable.
fn signature_header() -> BoxedStrategy<String> {
    let timestamp = prop_oneof![
        1 => any::<i64>(),
        2 => select(vec![i64::MIN, i64::MIN + 1, i64::MAX, 0, -1]),
        1 => 0i64..4_102_444_800,
    ];
    let part = prop_oneof![
        timestamp.prop_map(|t| format!("t={t}")),
        "[0-9a-f]{0,70}".prop_map(|h| format!("v1={h}")),
        "[ -~]{0,12}",
    ];
    prop_oneof![
        4 => vec(part, 0..5).prop_map(|parts| parts.join(",")),
        1 => "[ -~]{0,200}",
    ]
    .boxed()
}

/// How a delivery is signed: rightly (at some distance from now), with any header, or not.
#[derive(Debug, Clone)]
enum Signed {
    At(i64),
    Header(String),
    Missing,
}

/// A body a Stripe endpoint may receive: an event of a type the connector handles or not,
/// about any object, or bytes that are no event at all.
fn delivery_body() -> BoxedStrategy<Bytes> {
    let types = vec![
        "customer.subscription.created",
        "customer.subscription.updated",
        "customer.subscription.deleted",
        "customer.subscription.paused",
        "customer.subscription.resumed",
        "invoice.paid",
        "charge.refunded",
        "",
    ];
    let event = (
        field("evt_[a-zA-Z0-9]{1,12}".prop_map(Value::String).boxed()),
        field(select(types).prop_map(|t| json!(t)).boxed()),
        field(number()),
        field(
            prop_oneof![
                any_json().prop_map(|object| json!({ "object": object })),
                (
                    "sub_[a-z0-9]{1,6}",
                    "cus_[a-z0-9]{1,6}",
                    select(&["active", "canceled", "trialing", "bogus"][..]),
                    0i64..1_000_000
                )
                    .prop_map(|(id, customer, status, amount)| {
                        let price = crate::fake_stripe::price("price_f", "usd", amount, "month", 1);
                        json!({ "object": crate::fake_stripe::subscription(
                            &id,
                            &customer,
                            status,
                            vec![crate::fake_stripe::item("si_f", price, 1)],
                        ) })
                    }),
            ]
            .boxed(),
        ),
        stray(),
    )
        .prop_map(|(id, type_, created, data, extra)| {
            let event = object(
                vec![
                    ("id", id),
                    ("type", type_),
                    ("created", created),
                    ("data", data),
                ],
                extra,
            );
            Bytes(serde_json::to_vec(&event).unwrap())
        });
    prop_oneof![4 => event, 1 => raw_body()].boxed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_deliveries_of_any_shape_are_answered_with_a_contract_code() {
    const KEY: &str = "sk_test_fuzz";
    const SECRET: &str = "whsec_fuzz";
    let stripe = crate::fake_stripe::FakeStripe::start(KEY).await;
    let base = stripe.base.clone();
    let t = TestApp::spawn_configured(move |c| c.stripe_api_base = base).await;
    let owner = t.sign_up("fuzz").await;
    let connected = t
        .op(
            Some(&owner.access),
            "integrations.graphql",
            "ConnectIntegration",
            json!({ "input": {
                "provider": "STRIPE", "credentials": { "apiKey": KEY }, "webhookSecret": SECRET,
            }}),
        )
        .await;
    let id = connected["data"]["connectIntegration"]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("{connected}"))
        .to_string();
    let paths = vec![
        format!("/api/v1/webhooks/stripe/{id}"),
        format!("/api/v1/webhooks/stripe/{id}"),
        format!("/api/v1/webhooks/stripe/{id}"),
        format!("/api/v1/webhooks/paypal/{id}"),
        format!("/api/v1/webhooks/stripe/{}", uuid::Uuid::new_v4()),
        "/api/v1/webhooks/stripe/not-an-id".to_string(),
    ];
    let signed = prop_oneof![
        3 => prop_oneof![4 => -250i64..250, 1 => -600i64..600].prop_map(Signed::At),
        2 => signature_header().prop_map(Signed::Header),
        1 => Just(Signed::Missing),
    ];
    let handle = tokio::runtime::Handle::current();
    let tally = Tally::default();
    tokio::task::block_in_place(|| {
        check(
            "webhook deliveries",
            CASES,
            (select(paths), delivery_body(), signed),
            |(path, Bytes(body), signed)| {
                handle.block_on(async {
                    let mut request = t
                        .client
                        .post(format!("{}{path}", t.base))
                        .header("content-type", "application/json")
                        .timeout(Duration::from_secs(30));
                    let header = match &signed {
                        Signed::At(offset) => Some(fahwa::connectors::stripe::signature::sign(
                            &body,
                            SECRET.as_bytes(),
                            Utc::now().timestamp() + offset,
                        )),
                        Signed::Header(h) => Some(h.clone()),
                        Signed::Missing => None,
                    };
                    if let Some(h) = &header {
                        request = request.header("Stripe-Signature", h);
                    }
                    let shown = format!(
                        "POST {path} Stripe-Signature: {header:?} {}",
                        clip(&String::from_utf8_lossy(&body))
                    );
                    let response = request
                        .body(body)
                        .send()
                        .await
                        .map_err(|e| TestCaseError::fail(format!("{shown}: no answer: {e}")))?;
                    let status = response.status().as_u16();
                    let text = response.text().await.unwrap_or_default();
                    let answer = Answer { status, text };
                    tally.count(&answer);
                    judge(&shown, answer.status, &answer.text)
                })
            },
        );
    });
    tally.assert_both("webhook deliveries");
    still_serves(&t, &owner).await;
}

/// One operation of the contract with its variables.
#[derive(Debug, Clone)]
struct Operation {
    name: &'static str,
    variables: Value,
}

const OPERATIONS: [(&str, &str); 6] = [
    ("ingest.graphql", "IngestEvents"),
    ("ingest.graphql", "IngestRevenueChanges"),
    ("analytics.graphql", "Overview"),
    ("analytics.graphql", "FilteredActivity"),
    ("tenant.graphql", "UpdateTenant"),
    ("auth.graphql", "Me"),
];

fn operation() -> BoxedStrategy<Operation> {
    let op = |(_, name): (&'static str, &'static str), variables: BoxedStrategy<Value>| {
        variables.prop_map(move |variables| Operation { name, variables })
    };
    prop_oneof![
        3 => op(OPERATIONS[0], events().prop_map(|events| json!({ "events": events })).boxed()),
        2 => op(OPERATIONS[1], changes().prop_map(|changes| json!({ "changes": changes })).boxed()),
        3 => op(
            OPERATIONS[2],
            (range(), granularity()).prop_map(|(range, granularity)| json!({
                "range": range, "granularity": granularity,
            })).boxed(),
        ),
        3 => op(
            OPERATIONS[3],
            (range(), granularity(), event_filter(), field(name_like()))
                .prop_map(|(range, granularity, filter, breakdown)| json!({
                    "range": range, "granularity": granularity, "filter": filter,
                    "breakdownBy": breakdown,
                }))
                .boxed(),
        ),
        2 => op(OPERATIONS[4], update_tenant_input().prop_map(|input| json!({ "input": input })).boxed()),
        // Any variables at all, for any of them: missing, mistyped, extra, not an object.
        2 => (select(&OPERATIONS[..]), any_json()).prop_map(|((_, name), variables)| Operation {
            name,
            variables,
        }),
    ]
    .boxed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graphql_variables_of_the_contract_operations_never_fail_internally() {
    let (t, owner) = server().await;
    let documents: HashMap<&str, String> = OPERATIONS
        .iter()
        .map(|(file, name)| (*name, crate::contract::operation(file, name)))
        .collect();
    let handle = tokio::runtime::Handle::current();
    let tallies: HashMap<&str, Tally> = OPERATIONS
        .iter()
        .map(|(_, name)| (*name, Tally::default()))
        .collect();
    tokio::task::block_in_place(|| {
        // Interleaved rather than one operation after the other, so that analytics also runs
        // in the time zones and currencies UpdateTenant just set, on the data just ingested.
        check("GraphQL variables", 4 * CASES, operation(), |op| {
            handle.block_on(async {
                let body = json!({
                    "query": documents[op.name],
                    "operationName": op.name,
                    "variables": op.variables,
                });
                let answer = post(
                    &t,
                    "/api/v1/graphql",
                    &owner.access,
                    serde_json::to_vec(&body).unwrap(),
                )
                .await?;
                tallies[op.name].count(&answer);
                judge(
                    &format!("{} {}", op.name, clip(&op.variables.to_string())),
                    answer.status,
                    &answer.text,
                )
            })
        });
    });
    for name in [
        "IngestEvents",
        "IngestRevenueChanges",
        "Overview",
        "FilteredActivity",
    ] {
        tallies[name].assert_both(name);
    }
    still_serves(&t, &owner).await;
}

// ---------------------------------------------------------------------------------------------
// Parsers without a server.

/// `Stripe-Signature` comes from whoever posts to a webhook URL: whatever it holds, verifying
/// ends in a refusal or a match, never a panic (a 500 for the sender).
#[test]
fn stripe_signature_headers_of_any_shape_are_refused_without_panicking() {
    use fahwa::connectors::stripe::signature::{Refused, TOLERANCE_SECS, sign, verify};
    let timestamp = prop_oneof![
        any::<i64>(),
        select(&[i64::MIN, i64::MIN + 1, i64::MAX, 0, -1][..]),
        0i64..4_102_444_800,
    ];
    let part = prop_oneof![
        timestamp.clone().prop_map(|t| format!("t={t}")),
        "[0-9a-f]{0,70}".prop_map(|h| format!("v1={h}")),
        "[ -~]{0,12}",
        any::<String>(),
    ];
    let header = prop_oneof![
        vec(part, 0..5).prop_map(|parts| parts.join(",")),
        any::<String>(),
    ];
    let now = Utc::now().timestamp();
    check(
        "Stripe-Signature",
        1_024,
        (header, vec(any::<u8>(), 0..64), timestamp),
        |(header, body, at)| {
            let secret = b"whsec_fuzz";
            let _ = verify(&header, &body, secret, now, TOLERANCE_SECS);
            // And a header Stripe would send verifies only within the tolerance.
            let signed = sign(&body, secret, at);
            let verdict = verify(&signed, &body, secret, now, TOLERANCE_SECS);
            let fresh = at.abs_diff(now) <= TOLERANCE_SECS.unsigned_abs();
            prop_assert_eq!(
                verdict,
                if fresh { Ok(at) } else { Err(Refused::Stale) },
                "signed at {}",
                at
            );
            Ok(())
        },
    );
}

/// The buckets of any range in any zone at any granularity: either a BAD_USER_INPUT, or
/// buckets that tile the range exactly, each non-empty, without a panic on the way.
#[test]
fn analytics_windows_tile_any_range_or_refuse_it() {
    use fahwa::calendar::{Granularity, Window};
    use fahwa::error::AppError;
    let instant = prop_oneof![2 => edgy_instant(), 1 => any_instant()];
    let span = prop_oneof![
        0i64..3 * 86_400,
        0i64..400 * 86_400,
        0i64..3_700 * 86_400,
        any::<i64>(),
    ];
    let granularity = select(
        &[
            Granularity::Hour,
            Granularity::Day,
            Granularity::Week,
            Granularity::Month,
        ][..],
    );
    let zones: Vec<chrono_tz::Tz> = chrono_tz::TZ_VARIANTS.to_vec();
    check(
        "Window::new",
        1_024,
        (instant, span, granularity, select(zones)),
        |(from, secs, granularity, tz)| {
            let Some(to) = from.checked_add_signed(chrono::Duration::seconds(secs.clamp(
                -chrono::Duration::MAX.num_seconds(),
                chrono::Duration::MAX.num_seconds(),
            ))) else {
                return Ok(());
            };
            match Window::new(from, to, granularity, tz) {
                Err(AppError::BadInput(_)) => {}
                Err(other) => prop_assert!(false, "{from} to {to}: {other:?}"),
                Ok(w) => {
                    let b = &w.buckets;
                    prop_assert!(!b.is_empty(), "{from} to {to}: no buckets");
                    prop_assert_eq!(b[0].start, from);
                    prop_assert_eq!(b[b.len() - 1].end, to);
                    for (i, bucket) in b.iter().enumerate() {
                        prop_assert!(
                            bucket.start < bucket.end,
                            "{from} to {to} in {tz} by {granularity:?}: bucket {i} is {bucket:?}"
                        );
                        if let Some(next) = b.get(i + 1) {
                            prop_assert_eq!(bucket.end, next.start, "gap after bucket {}", i);
                            prop_assert!(bucket.label < next.label);
                        }
                        for (start, end) in bucket.edges(tz) {
                            prop_assert!(bucket.start <= start && start < end && end <= bucket.end);
                        }
                        let _ = bucket.whole_period(granularity, tz);
                    }
                    let _ = w.spans();
                }
            }
            Ok(())
        },
    );
}

/// `fahwa trust-documents` reads the operators' `.graphql` files, written on any system: each
/// named operation comes out whole (it parses, and is the operation of that name), whatever
/// the line endings, comments or layout around it.
#[test]
fn trusted_documents_are_cut_whole_from_any_layout() {
    use fahwa::graphql::trusted::documents_of;
    let comment = vec(select(FRAGMENTS), 0..4)
        .prop_map(|parts| format!("# {}", parts.concat().replace(['\n', '\r'], " ")));
    let definition = prop_oneof![
        Just("{ me { id } }".to_string()),
        Just("{ me { ...F } }".to_string()),
        Just("($a: Int = 1) { t(x: \"é🦀\") { id } }".to_string()),
    ];
    let source = (
        vec((any::<bool>(), definition, any::<bool>(), comment), 1..5),
        // Unix and Windows line endings, or every definition on one line.
        select(&["\n", "\r\n", " "][..]),
        any::<bool>(),
    )
        .prop_map(|(ops, newline, fragment)| {
            let mut lines = Vec::new();
            let mut names = Vec::new();
            for (i, (mutation, body, commented, comment)) in ops.into_iter().enumerate() {
                // A comment runs to the end of its line: on one line it would hide the rest.
                if commented && newline != " " {
                    lines.push(comment);
                }
                let name = format!("Op{i}");
                let kind = if mutation { "mutation" } else { "query" };
                lines.push(format!("{kind} {name} {body}"));
                lines.push(String::new());
                names.push(name);
            }
            if fragment {
                lines.push("fragment F on User { id }".to_string());
            }
            (lines.join(newline), names)
        });
    check("documents_of", 512, source, |(source, names)| {
        let docs =
            documents_of(&source).map_err(|e| TestCaseError::fail(format!("{e} in {source:?}")))?;
        let found: Vec<&str> = docs.iter().map(|d| d.name.as_str()).collect();
        prop_assert_eq!(&found, &names, "in {:?}", source);
        for doc in &docs {
            let parsed = async_graphql::parser::parse_query(&doc.body);
            prop_assert!(
                parsed.is_ok(),
                "{} does not parse: {:?} (cut from {:?})",
                doc.name,
                doc.body,
                source
            );
            prop_assert!(
                doc.body.starts_with(&format!("query {} ", doc.name))
                    || doc.body.starts_with(&format!("mutation {} ", doc.name)),
                "{}: {:?} (cut from {:?})",
                doc.name,
                doc.body,
                source
            );
        }
        Ok(())
    });
}
