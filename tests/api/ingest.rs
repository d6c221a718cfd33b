//! Ingestion through GraphQL and REST: who may send, what is refused, and that a batch is stored
//! whole or not at all.

use serde_json::{Value, json};

use crate::harness::{TestApp, codes};

async fn rest(t: &TestApp, token: &str, body: Value) -> (u16, Value) {
    post(t, "/api/v1/events", token, body).await
}

/// A POST of JSON to `path` with a bearer token: the status and the JSON answer.
pub async fn post(t: &TestApp, path: &str, token: &str, body: Value) -> (u16, Value) {
    let resp = t
        .client
        .post(format!("{}{path}", t.base))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap();
    (resp.status().as_u16(), resp.json().await.unwrap())
}

async fn stored(t: &TestApp) -> i64 {
    t.pg()
        .await
        .query_one("SELECT count(*) FROM events", &[])
        .await
        .unwrap()
        .get(0)
}

pub async fn key(t: &TestApp, token: &str, scope: &str) -> String {
    t.op(
        Some(token),
        "tenant.graphql",
        "CreateApiKey",
        json!({ "input": { "name": scope, "scopes": [scope] } }),
    )
    .await["data"]["createApiKey"]["secret"]
        .as_str()
        .unwrap()
        .to_string()
}

#[tokio::test]
async fn ingest_keys_and_admins_send_events_others_may_not() {
    let t = TestApp::spawn().await;
    let owner = t.sign_up("acme").await;
    let viewer = t.member(&owner, "acme", "VIEWER").await;
    let ingest = key(&t, &owner.access, "INGEST").await;
    let read = key(&t, &owner.access, "READ").await;
    let one = json!({ "events": [{ "name": "login", "userId": "u1" }] });

    assert_eq!(
        rest(&t, &ingest, one.clone()).await,
        (200, json!({ "accepted": 1, "duplicates": 0 }))
    );
    let (status, body) = rest(&t, &read, one.clone()).await;
    assert_eq!((status, codes(&body)), (403, vec!["FORBIDDEN".to_string()]));
    let (status, body) = rest(&t, &viewer.access, one.clone()).await;
    assert_eq!((status, codes(&body)), (403, vec!["FORBIDDEN".to_string()]));
    let (status, body) = rest(&t, "fwk_not_a_key", one.clone()).await;
    assert_eq!(
        (status, codes(&body)),
        (401, vec!["UNAUTHENTICATED".to_string()])
    );

    let gql = t
        .op(
            Some(&owner.access),
            "ingest.graphql",
            "IngestEvents",
            json!({ "events": [
            { "id": "x1", "name": "signup", "userId": "u2", "properties": { "plan": "pro" } },
            { "id": "x1", "name": "signup", "userId": "u2" },
        ] }),
        )
        .await;
    assert_eq!(
        gql["data"]["ingestEvents"],
        json!({ "accepted": 1, "duplicates": 1 }),
        "{gql}"
    );
    let by_key = t
        .op(
            Some(&ingest),
            "ingest.graphql",
            "IngestEvents",
            json!({ "events": [{ "id": "x1", "name": "signup", "userId": "u2" }] }),
        )
        .await;
    assert_eq!(
        by_key["data"]["ingestEvents"],
        json!({ "accepted": 0, "duplicates": 1 })
    );
    assert_eq!(stored(&t).await, 2);

    let usage: (i64, i64) = {
        let row = t
            .pg()
            .await
            .query_one("SELECT events_total, data_version FROM tenant_usage", &[])
            .await
            .unwrap();
        (row.get(0), row.get(1))
    };
    assert_eq!(usage.0, 2);
    assert!(usage.1 >= 3, "every ingest call bumps the data version");
}

#[tokio::test]
async fn a_bad_event_rejects_the_whole_batch_and_names_itself() {
    let t = TestApp::spawn().await;
    let owner = t.sign_up("acme").await;
    let ingest = key(&t, &owner.access, "INGEST").await;
    let future = (chrono::Utc::now() + chrono::Duration::hours(3)).to_rfc3339();
    let cases = [
        (
            json!({ "events": [{ "name": "a", "userId": "u" }, { "name": "b", "userId": "u", "occurredAt": future }] }),
            "events[1].occurredAt",
        ),
        (
            json!({ "events": [{ "name": "a", "userId": "u" }, { "name": "", "userId": "u" }] }),
            "events[1].name",
        ),
        (
            json!({ "events": [{ "name": "a", "userId": "u", "properties": [1] }] }),
            "events[0].properties",
        ),
        (json!({ "events": [] }), "events"),
        (json!({ "events": [{ "name": "a" }] }), "userId"),
        (json!({ "evnts": [] }), "evnts"),
    ];
    for (body, needle) in cases {
        let (status, resp) = rest(&t, &ingest, body).await;
        assert_eq!(status, 400, "{resp}");
        assert_eq!(codes(&resp), ["BAD_USER_INPUT"]);
        let msg = resp["errors"][0]["message"].as_str().unwrap();
        assert!(msg.contains(needle), "{msg} should name {needle}");
    }
    let too_many: Vec<Value> = (0..10_001)
        .map(|i| json!({ "name": "a", "userId": format!("u{i}") }))
        .collect();
    let (status, resp) = rest(&t, &ingest, json!({ "events": too_many })).await;
    assert_eq!(
        (status, codes(&resp)),
        (400, vec!["BAD_USER_INPUT".to_string()])
    );
    assert_eq!(stored(&t).await, 0, "nothing of a refused batch is stored");

    let gql = t.op(Some(&ingest), "ingest.graphql", "IngestEvents", json!({ "events": [{ "name": "ok", "userId": "u" }, { "name": "late", "userId": "u", "occurredAt": future }] })).await;
    assert_eq!(codes(&gql), ["BAD_USER_INPUT"]);
    assert_eq!(stored(&t).await, 0);

    // Old backfills are fine: their partition is made on demand.
    let (status, resp) = rest(
        &t,
        &ingest,
        json!({ "events": [{ "name": "a", "userId": "u", "occurredAt": "2019-03-04T05:06:07Z" }] }),
    )
    .await;
    assert_eq!(status, 200, "{resp}");
    let parts: i64 = t
        .pg()
        .await
        .query_one(
            "SELECT count(*) FROM pg_class WHERE relname = 'events_2019_03'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(parts, 1);
}

#[tokio::test]
async fn a_full_batch_of_ten_thousand_is_accepted() {
    let t = TestApp::spawn().await;
    let owner = t.sign_up("acme").await;
    let ingest = key(&t, &owner.access, "INGEST").await;
    let events: Vec<Value> = (0..10_000)
        .map(|i| json!({ "id": format!("e{i}"), "name": "page_view", "userId": format!("u{}", i % 700), "properties": { "path": format!("/p/{}", i % 37) } }))
        .collect();
    let (status, resp) = rest(&t, &ingest, json!({ "events": events })).await;
    assert_eq!(
        (status, resp),
        (200, json!({ "accepted": 10_000, "duplicates": 0 }))
    );
    t.flush().await;
    let users: i64 = t
        .pg()
        .await
        .query_one("SELECT count(*) FROM end_users", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(users, 700);
}

/// The rollups of a tenant as text, in a fixed order (zero rows are equivalent to no row).
async fn rollups(t: &TestApp) -> Vec<String> {
    t.flush().await;
    let pg = t.pg().await;
    let mut out = Vec::new();
    for sql in [
        "SELECT day::text || ' ' || name || ' ' || events FROM event_counts_daily ORDER BY 1",
        "SELECT user_id || ' ' || day::text FROM user_days ORDER BY 1",
        "SELECT day::text || ' ' || prev_day::text || ' ' || users FROM active_transitions WHERE users <> 0 ORDER BY 1",
        "SELECT user_id || ' ' || first_seen::text || ' ' || last_seen::text FROM end_users ORDER BY 1",
        "SELECT day::text || ' ' || users || ' ' || new_users FROM daily_activity WHERE users <> 0 OR new_users <> 0 ORDER BY 1",
        "SELECT day::text || ' ' || name || ' ' || dims::text || ' ' || user_id || ' ' || events FROM segment_days ORDER BY 1",
        "SELECT day::text || ' ' || name || ' ' || dims::text || ' ' || events FROM segment_counts_daily ORDER BY 1",
        "SELECT day::text || ' ' || dims::text || ' ' || events FROM segment_counts_all ORDER BY 1",
        "SELECT day::text || ' ' || pa || ' ' || va || ' ' || pb || ' ' || coalesce(vb, '-') || ' ' || events FROM segment_pair_counts ORDER BY 1",
        "SELECT seg || ' ' || user_id || ' ' || day::text FROM segment_user_days ORDER BY 1",
        "SELECT seg || ' ' || day::text || ' ' || prev_day::text || ' ' || users FROM segment_transitions WHERE users <> 0 ORDER BY 1",
    ] {
        for row in pg.query(sql, &[]).await.unwrap() {
            out.push(row.get::<_, String>(0));
        }
        out.push("--".into());
    }
    out
}

/// The rollups as maintained incrementally equal a rebuild from the events; returns how many
/// rows they hold.
async fn assert_rollups_match_rebuild(t: &TestApp, tenant: &str) -> usize {
    let incremental = rollups(t).await;
    t.pg()
        .await
        .execute("SELECT fahwa_rebuild_rollups($1::text::uuid)", &[&tenant])
        .await
        .unwrap();
    assert_eq!(
        incremental,
        rollups(t).await,
        "incremental rollups differ from a rebuild"
    );
    incremental.len()
}

#[tokio::test]
async fn concurrent_late_batches_keep_rollups_exact() {
    use rand::{Rng, SeedableRng};
    let t = TestApp::spawn().await;
    let owner = t.sign_up("acme").await;
    let ingest = key(&t, &owner.access, "INGEST").await;
    t.track(&owner.access, &["plan"], None).await;
    let mut rng = rand::rngs::StdRng::seed_from_u64(11);
    // Every batch holds the same users on days of its own: each one adds new days to every user
    // while the others do too, and flushes merge the deltas meanwhile.
    let batches: Vec<Value> = (0..16)
        .map(|b| {
            let events: Vec<Value> = (0..300)
                .map(|i| {
                    let day = 1 + b * 3 + rng.random_range(0..3);
                    let hour = rng.random_range(0..24);
                    let name = ["login", "page_view"][rng.random_range(0..2)];
                    let plan = ["free", "pro"][rng.random_range(0..2)];
                    json!({
                        "id": format!("b{}-{}", b % 12, i),
                        "name": name,
                        "userId": format!("u{}", i % 10),
                        "properties": { "plan": plan },
                        "occurredAt": (chrono::DateTime::parse_from_rfc3339("2026-08-01T00:00:00Z").unwrap()
                            + chrono::Duration::days(day) + chrono::Duration::hours(hour)).to_rfc3339(),
                    })
                })
                .collect();
            json!({ "events": events })
        })
        .collect();
    let sends = batches.iter().map(|body| rest(&t, &ingest, body.clone()));
    let flushes = async {
        for _ in 0..8 {
            t.flush().await;
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    };
    let (results, ()) = tokio::join!(futures_util::future::join_all(sends), flushes);
    let mut accepted = 0;
    for (status, body) in &results {
        assert_eq!(*status, 200, "{body}");
        accepted += body["accepted"].as_i64().unwrap();
    }
    assert_eq!(accepted, stored(&t).await);

    let rows = assert_rollups_match_rebuild(&t, &owner.tenant_id).await;
    assert!(rows > 50, "{rows}");
}

#[tokio::test]
async fn retention_deletes_old_months_and_their_partitions() {
    let t = TestApp::spawn().await;
    let owner = t.sign_up("acme").await;
    let ingest = key(&t, &owner.access, "INGEST").await;
    let now: chrono::DateTime<chrono::Utc> = "2026-11-24T12:00:00Z".parse().unwrap();
    let months = [
        "2026-03-15",
        "2026-06-15",
        "2026-09-15",
        "2026-10-15",
        "2026-11-10",
    ];
    let events: Vec<Value> = months
        .iter()
        .enumerate()
        .flat_map(|(i, d)| (0..3).map(move |u| json!({ "name": "login", "userId": format!("u{u}-{i}"), "occurredAt": format!("{d}T12:00:00Z") })))
        .collect();
    let (status, body) = rest(&t, &ingest, json!({ "events": events })).await;
    assert_eq!(status, 200, "{body}");

    let bad = t
        .op(
            Some(&owner.access),
            "tenant.graphql",
            "UpdateTenant",
            json!({ "input": { "retentionMonths": 0 } }),
        )
        .await;
    assert_eq!(codes(&bad), ["BAD_USER_INPUT"]);
    let set = t
        .gql(
            Some(&owner.access),
            "mutation { updateTenant(input: { retentionMonths: 2 }) { retentionMonths } }",
            json!({}),
        )
        .await;
    assert_eq!(set["data"]["updateTenant"]["retentionMonths"], 2, "{set}");

    let report = fahwa::events::retention::apply(&t.app.db, now)
        .await
        .unwrap();
    // Two months before November: September onwards stays.
    assert_eq!(report.events_deleted, 6);
    assert_eq!(report.tenants_trimmed, 1);
    assert!(report.partitions_dropped >= 2, "{report:?}");
    assert_eq!(stored(&t).await, 9);
    let pg = t.pg().await;
    let old: i64 = pg
        .query_one(
            "SELECT count(*) FROM event_counts_daily WHERE day < '2026-09-01'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(old, 0, "rollups were rebuilt from what remains");
    let parts: Vec<String> = pg
        .query("SELECT relname::text FROM pg_class WHERE relname IN ('events_2026_03', 'events_2026_06', 'events_2026_09')", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(parts, ["events_2026_09"]);

    // A tenant that keeps everything keeps every partition.
    t.sign_up("forever").await;
    let again = fahwa::events::retention::apply(&t.app.db, now)
        .await
        .unwrap();
    assert_eq!(again, fahwa::events::retention::RetentionReport::default());
}

#[tokio::test]
async fn a_batch_waiting_on_a_rebuild_is_refused_as_busy_and_stores_nothing() {
    let t = TestApp::spawn().await;
    let owner = t.sign_up("acme").await;
    let ingest = key(&t, &owner.access, "INGEST").await;
    let body = json!({ "events": [{ "name": "login", "userId": "u1" }] });
    // Hold the tenant's write lock as a rebuild does, for longer than a batch waits.
    let mut pg = t.pg().await;
    let rebuild = pg.transaction().await.unwrap();
    rebuild
        .execute(
            "SELECT pg_advisory_xact_lock(fahwa_lock_key('tenant_writes', $1::text::uuid))",
            &[&owner.tenant_id],
        )
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let (status, resp) = rest(&t, &ingest, body.clone()).await;
    assert_eq!(status, 503, "{resp}");
    assert_eq!(
        resp["errors"][0]["extensions"]["code"], "RATE_LIMITED",
        "{resp}"
    );
    assert_eq!(
        resp["errors"][0]["extensions"]["retryAfterSeconds"], 10,
        "{resp}"
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
    assert_eq!(stored(&t).await, 0);
    rebuild.rollback().await.unwrap();
    // A rejected batch left no lock setting behind: the retry goes through.
    let (status, resp) = rest(&t, &ingest, body).await;
    assert_eq!(
        (status, resp["accepted"].clone()),
        (200, json!(1)),
        "{resp}"
    );
}

#[tokio::test]
async fn a_backlog_is_merged_in_bounded_pieces() {
    let t = TestApp::spawn().await;
    let owner = t.sign_up("acme").await;
    t.track(&owner.access, &["plan"], None).await;
    let ingest = key(&t, &owner.access, "INGEST").await;
    // The background flusher must not take the deltas first: hold its lock while sending.
    let mut pg = t.pg().await;
    let hold = pg.transaction().await.unwrap();
    hold.execute(
        "SELECT pg_advisory_xact_lock(fahwa_lock_key('flush', $1::text::uuid))",
        &[&owner.tenant_id],
    )
    .await
    .unwrap();
    let events: Vec<Value> = (0..40)
        .map(|i| {
            let (name, plan) = (["login", "page_view"][i % 2], ["free", "pro"][i % 3 % 2]);
            json!({ "name": name, "userId": format!("u{}", i % 9),
                    "occurredAt": format!("2026-10-{:02}T08:00:00Z", 1 + i % 13),
                    "properties": { "plan": plan } })
        })
        .collect();
    let (status, body) = rest(&t, &ingest, json!({ "events": events })).await;
    assert_eq!(status, 200, "{body}");
    // Flushed in the same transaction, which still holds the lock (it is re-entrant): released
    // before, the background flusher could merge the backlog first.
    let flush = "SELECT fahwa_flush_rollups($1::text::uuid, true)";
    hold.batch_execute("SET LOCAL fahwa.flush_piece = 7")
        .await
        .unwrap();
    let mut merged = Vec::new();
    loop {
        let n: i32 = hold
            .query_one(flush, &[&owner.tenant_id])
            .await
            .unwrap()
            .get(0);
        if n == 0 {
            break;
        }
        merged.push(n);
    }
    hold.commit().await.unwrap();
    // At most one delta row per event, and more than one piece's worth.
    assert!(
        merged.len() >= 2 && merged.iter().all(|&n| n <= 7),
        "{merged:?}"
    );
    assert!(merged.iter().map(|&n| i64::from(n)).sum::<i64>() <= 40);
    assert_rollups_match_rebuild(&t, &owner.tenant_id).await;
}

/// The delta queues are emptied by every flush; vacuuming them gives their pages back, whether
/// or not autovacuum runs on the server.
#[tokio::test]
async fn flushed_delta_queues_are_vacuumed_down_to_nothing() {
    let t = TestApp::spawn().await;
    let owner = t.sign_up("acme").await;
    let events: Vec<Value> = (0..2_000)
        .map(|i| json!({ "name": "page_view", "userId": format!("u{}", i % 300), "properties": { "plan": "pro" } }))
        .collect();
    t.ingest_ok(&owner.access, events).await;
    t.flush().await;
    let pg = t.pg().await;
    let size = || async {
        pg.query_one(
            "SELECT pg_relation_size('pending_segments') + pg_relation_size('pending_users')",
            &[],
        )
        .await
        .unwrap()
        .get::<_, i64>(0)
    };
    assert!(size().await > 0, "the batch's deltas took pages");
    // The server's own flusher may hold a queue for a moment: vacuum skips it then.
    let mut left = i64::MAX;
    for _ in 0..20 {
        fahwa::events::rollups::vacuum_queues(&t.db_url)
            .await
            .unwrap();
        left = size().await;
        if left == 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(left, 0, "empty queues keep no pages after a vacuum");
}
