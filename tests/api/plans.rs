//! Dashboards read rollups, not the raw events table: checked on the plans PostgreSQL makes.

use chrono::{DateTime, Utc};
use fahwa::analytics::Measure;
use fahwa::analytics::engagement::explain_rollup;
use fahwa::analytics::{EventFilter, segments};
use fahwa::calendar::{Granularity, Window};
use scoped_futures::ScopedFutureExt;
use serde_json::{Value, json};

use crate::harness::TestApp;

fn relations(plan: &Value, out: &mut Vec<String>) {
    match plan {
        Value::Object(map) => {
            if let Some(Value::String(r)) = map.get("Relation Name") {
                out.push(r.clone());
            }
            map.values().for_each(|v| relations(v, out));
        }
        Value::Array(items) => items.iter().for_each(|v| relations(v, out)),
        _ => {}
    }
}

async fn plans(
    t: &TestApp,
    tenant: uuid::Uuid,
    from: &str,
    to: &str,
    g: Granularity,
) -> Vec<Vec<String>> {
    let from: DateTime<Utc> = from.parse().unwrap();
    let to: DateTime<Utc> = to.parse().unwrap();
    let window = Window::new(from, to, g, chrono_tz::Tz::UTC).unwrap();
    let mut all = Vec::new();
    for measure in [Measure::ActiveUsers, Measure::NewUsers, Measure::Events] {
        let window = &window;
        let found = t
            .app
            .db
            .tenant(tenant, |conn| {
                async move { explain_rollup(conn, tenant, window, measure, None).await }
                    .scope_boxed()
            })
            .await
            .unwrap();
        for plan in found {
            let mut rels = Vec::new();
            relations(&plan, &mut rels);
            all.push(rels);
        }
    }
    all
}

fn touches_events(rels: &[String]) -> bool {
    rels.iter()
        .any(|r| r == "events" || r.starts_with("events_"))
}

#[tokio::test]
async fn dashboard_queries_do_not_scan_raw_events() {
    let t = TestApp::spawn().await;
    let s = t.sign_up("acme").await;
    let events: Vec<Value> = (0..300)
        .map(|i| json!({ "name": "login", "userId": format!("u{}", i % 40), "occurredAt": format!("2026-10-{:02}T12:00:00Z", 1 + i % 28) }))
        .collect();
    t.ingest_ok(&s.access, events).await;
    t.pg().await.batch_execute("ANALYZE").await.unwrap();
    let tenant: uuid::Uuid = s.tenant_id.parse().unwrap();

    for g in [Granularity::Day, Granularity::Week, Granularity::Month] {
        let aligned = plans(
            &t,
            tenant,
            "2026-09-01T00:00:00Z",
            "2026-11-01T00:00:00Z",
            g,
        )
        .await;
        assert_eq!(aligned.len(), 3, "one statement per measure, no edges");
        for rels in &aligned {
            assert!(
                !touches_events(rels),
                "{g:?}: a dashboard query reads raw events: {rels:?}"
            );
            assert!(
                rels.iter()
                    .any(|r| r == "active_transitions" || r == "event_counts_daily"),
                "{rels:?}"
            );
        }
    }
    // A range that cuts days reads only its edges from the events.
    let cut = plans(
        &t,
        tenant,
        "2026-10-03T06:00:00Z",
        "2026-10-20T18:00:00Z",
        Granularity::Day,
    )
    .await;
    assert!(cut.iter().skip(1).any(|rels| touches_events(rels)));
    assert!(!touches_events(&cut[0]));
}

const ALIGNED: (&str, &str) = ("2026-09-01T00:00:00Z", "2026-11-01T00:00:00Z");

/// The relations the plan of one segment series reads: (tracked keys, measure, filter, breakdown).
async fn segment_plan(
    t: &TestApp,
    tenant: uuid::Uuid,
    (from, to): (&str, &str),
    g: Granularity,
    (tracked, measure, filter, breakdown): (&[String], Measure, &EventFilter, Option<&str>),
) -> Vec<String> {
    let window = Window::new(
        from.parse().unwrap(),
        to.parse().unwrap(),
        g,
        chrono_tz::Tz::UTC,
    )
    .unwrap();
    let window = &window;
    let plan = t
        .app
        .db
        .tenant(tenant, |conn| {
            async move {
                segments::explain(conn, tenant, window, tracked, measure, filter, breakdown).await
            }
            .scope_boxed()
        })
        .await
        .unwrap();
    let mut rels = Vec::new();
    relations(&plan, &mut rels);
    rels
}

#[tokio::test]
async fn filters_on_tracked_keys_do_not_scan_raw_events() {
    let t = TestApp::spawn().await;
    let s = t.sign_up("acme").await;
    let tenant: uuid::Uuid = s.tenant_id.parse().unwrap();
    let events: Vec<Value> = (0..300)
        .map(|i| json!({ "name": if i % 2 == 0 { "login" } else { "page_view" }, "userId": format!("u{}", i % 40),
                         "occurredAt": format!("2026-10-{:02}T12:00:00Z", 1 + i % 28),
                         "properties": { "plan": if i % 3 == 0 { "pro" } else { "free" }, "country": "PT" } }))
        .collect();
    t.ingest_ok(&s.access, events).await;
    t.pg().await.batch_execute("ANALYZE").await.unwrap();
    let tracked = vec!["plan".to_string(), "country".to_string()];
    let filter = EventFilter {
        name: Some("login".into()),
        properties: vec![("plan".into(), "pro".into())],
    };
    for g in [Granularity::Day, Granularity::Week, Granularity::Month] {
        for measure in [Measure::ActiveUsers, Measure::Events] {
            let rels = segment_plan(
                &t,
                tenant,
                ALIGNED,
                g,
                (&tracked, measure, &filter, Some("country")),
            )
            .await;
            assert!(
                !touches_events(&rels),
                "{g:?} {measure:?} reads raw events: {rels:?}"
            );
            let source = if measure == Measure::Events {
                "segment_counts_daily"
            } else {
                "segment_days"
            };
            assert!(rels.iter().any(|r| r == source), "{rels:?}");
        }
    }
    // Active users of one tracked value come from that segment's transitions.
    let one = EventFilter {
        name: None,
        properties: vec![("plan".into(), "pro".into())],
    };
    for g in [Granularity::Day, Granularity::Week, Granularity::Month] {
        let rels = segment_plan(
            &t,
            tenant,
            ALIGNED,
            g,
            (&tracked, Measure::ActiveUsers, &one, None),
        )
        .await;
        assert!(
            !rels.is_empty() && rels.iter().all(|r| r == "segment_transitions"),
            "{rels:?}"
        );
        assert!(
            !touches_events(&rels) && !rels.iter().any(|r| r == "segment_days"),
            "{rels:?}"
        );
        // Their event counts, without an event name: by another key, from the counts per pair
        // of keys; alone or by the same key, from the counts over all names.
        let rels = segment_plan(
            &t,
            tenant,
            ALIGNED,
            g,
            (&tracked, Measure::Events, &one, Some("country")),
        )
        .await;
        assert_eq!(rels, ["segment_pair_counts"], "{g:?}");
        for by in [None, Some("plan")] {
            let rels = segment_plan(
                &t,
                tenant,
                ALIGNED,
                g,
                (&tracked, Measure::Events, &one, by),
            )
            .await;
            assert_eq!(rels, ["segment_counts_all"], "{g:?} {by:?}");
        }
    }
    // A range that cuts days reads its edges, and only those, from the events.
    let cut = ("2026-10-03T06:00:00Z", "2026-10-20T18:00:00Z");
    let series = (&tracked[..], Measure::ActiveUsers, &filter, None);
    let rels = segment_plan(&t, tenant, cut, Granularity::Day, series).await;
    assert!(
        touches_events(&rels) && rels.iter().any(|r| r == "segment_days"),
        "{rels:?}"
    );
}
