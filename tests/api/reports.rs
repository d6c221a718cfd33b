//! Saved reports (contract `reports.graphql`): rights by role, data through the analytics
//! engine, bad input, pagination, audit, and statements that do not grow with the list.

use chrono::{Duration, Utc};
use serde_json::{Value, json};

use crate::harness::{Session, TestApp, codes, codes_at};

const F: &str = "reports.graphql";

pub fn widget(title: &str, metric: &str, granularity: &str, range: &str) -> Value {
    json!({ "title": title, "metric": metric, "granularity": granularity, "range": range })
}

/// An engagement and a revenue widget.
pub fn mixed() -> Vec<Value> {
    vec![
        widget("Events", "EVENTS", "DAY", "LAST_7_DAYS"),
        widget("MRR", "MRR", "MONTH", "LAST_12_MONTHS"),
    ]
}

/// Creates a report through the contract's CreateReport; returns its id.
pub async fn create(t: &TestApp, token: &str, name: &str, widgets: Vec<Value>) -> String {
    let r = t
        .op(
            Some(token),
            F,
            "CreateReport",
            json!({ "input": { "name": name, "widgets": widgets } }),
        )
        .await;
    assert!(r["errors"].is_null(), "{r}");
    r["data"]["createReport"]["id"]
        .as_str()
        .unwrap()
        .to_string()
}

/// One customer paying 49 USD a month from `at` on.
pub async fn paying_customer(t: &TestApp, s: &Session, at: &str) {
    let changes =
        json!([{ "customerId": "c1", "occurredAt": at, "mrr": "49.00", "currency": "USD" }]);
    let vars = json!({ "changes": changes });
    let r = t
        .op(
            Some(&s.access),
            "ingest.graphql",
            "IngestRevenueChanges",
            vars,
        )
        .await;
    assert!(r["errors"].is_null(), "{r}");
}

async fn total(t: &TestApp, token: &str) -> i64 {
    let r = t.op(Some(token), F, "Reports", json!({ "first": 1 })).await;
    r["data"]["reports"]["totalCount"].as_i64().unwrap()
}

#[tokio::test]
async fn every_role_reads_and_only_its_own_rights_write() {
    let t = TestApp::spawn().await;
    let owner = t.sign_up("acme").await;
    let admin = t.member(&owner, "acme", "ADMIN").await;
    let analyst = t.member(&owner, "acme", "ANALYST").await;
    let other_analyst = t.member(&owner, "acme", "ANALYST").await;
    let viewer = t.member(&owner, "acme", "VIEWER").await;

    let created = t
        .op(
            Some(&analyst.access),
            F,
            "CreateReport",
            json!({ "input": { "name": "Weekly", "widgets": mixed() } }),
        )
        .await;
    assert!(created["errors"].is_null(), "{created}");
    let report = &created["data"]["createReport"];
    assert_eq!(report["name"], "Weekly");
    assert_eq!(report["widgets"].as_array().unwrap().len(), 2);
    assert_eq!(report["widgets"][1]["metric"], "MRR");
    assert_eq!(report["widgets"][1]["range"], "LAST_12_MONTHS");
    let id = report["id"].as_str().unwrap().to_string();

    let denied = t
        .op(
            Some(&viewer.access),
            F,
            "CreateReport",
            json!({ "input": { "name": "V", "widgets": mixed() } }),
        )
        .await;
    assert_eq!(codes(&denied), ["FORBIDDEN"], "{denied}");

    // Everyone reads, each with the owner's name.
    for s in [&owner, &admin, &analyst, &other_analyst, &viewer] {
        let r = t
            .op(Some(&s.access), F, "Reports", json!({ "first": 10 }))
            .await;
        assert!(r["errors"].is_null(), "{r}");
        let node = &r["data"]["reports"]["edges"][0]["node"];
        assert_eq!(node["id"], id.as_str());
        assert_eq!(node["owner"]["id"], analyst.user_id.as_str());
        assert_eq!(node["owner"]["name"], "ANALYST person");
        assert!(node["lastRun"].is_null());
    }

    let rename = |s: &Session, name: &str| {
        let vars = json!({ "id": id, "input": { "name": name } });
        let token = s.access.clone();
        let t = &t;
        async move { t.op(Some(&token), F, "UpdateReport", vars).await }
    };
    assert_eq!(
        codes(&rename(&other_analyst, "Mine now").await),
        ["FORBIDDEN"]
    );
    assert_eq!(codes(&rename(&viewer, "Mine now").await), ["FORBIDDEN"]);
    let own = rename(&analyst, "Weekly KPIs").await;
    assert_eq!(own["data"]["updateReport"]["name"], "Weekly KPIs", "{own}");
    let by_admin = rename(&admin, "Weekly KPIs (admin)").await;
    assert_eq!(
        by_admin["data"]["updateReport"]["name"],
        "Weekly KPIs (admin)"
    );
    assert!(
        by_admin["data"]["updateReport"]["updatedAt"].as_str()
            >= own["data"]["updateReport"]["updatedAt"].as_str()
    );

    let delete = |s: &Session| {
        let token = s.access.clone();
        let t = &t;
        let id = id.clone();
        async move {
            t.op(Some(&token), F, "DeleteReport", json!({ "id": id }))
                .await
        }
    };
    assert_eq!(codes(&delete(&viewer).await), ["FORBIDDEN"]);
    assert_eq!(codes(&delete(&other_analyst).await), ["FORBIDDEN"]);
    assert_eq!(delete(&analyst).await["data"]["deleteReport"], true);
    let gone = t
        .op(Some(&owner.access), F, "ReportData", json!({ "id": id }))
        .await;
    assert_eq!(codes(&gone), ["NOT_FOUND"]);
    assert_eq!(codes(&delete(&owner).await), ["NOT_FOUND"]);

    // Every change is in the audit log, by whom it was made.
    let log = t
        .gql(
            Some(&owner.access),
            "{ auditLog(first: 50) { edges { node { action targetId actor { id } } } } }",
            json!({}),
        )
        .await;
    let actions: Vec<(String, String)> = log["data"]["auditLog"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["node"]["targetId"] == id.as_str())
        .map(|e| {
            (
                e["node"]["action"].as_str().unwrap().to_string(),
                e["node"]["actor"]["id"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        actions,
        [
            ("report.delete".to_string(), analyst.user_id.clone()),
            ("report.update".to_string(), admin.user_id.clone()),
            ("report.update".to_string(), analyst.user_id.clone()),
            ("report.create".to_string(), analyst.user_id.clone()),
        ]
    );
}

#[tokio::test]
async fn widget_data_is_the_dashboards_answer_and_revenue_is_hidden_from_viewers() {
    let t = TestApp::spawn().await;
    let owner = t.sign_up("acme").await;
    let viewer = t.member(&owner, "acme", "VIEWER").await;
    let now = Utc::now();
    let at = |minutes: i64| (now - Duration::minutes(minutes)).to_rfc3339();
    t.ingest_ok(
        &owner.access,
        vec![
            json!({ "name": "signup", "userId": "u1", "occurredAt": at(5) }),
            json!({ "name": "login", "userId": "u1", "occurredAt": at(4) }),
            json!({ "name": "login", "userId": "u2", "occurredAt": at(3) }),
        ],
    )
    .await;
    paying_customer(&t, &owner, &at(10)).await;
    let mut named = widget("Logins", "EVENTS", "DAY", "LAST_7_DAYS");
    named["eventName"] = json!("login");
    let id = create(
        &t,
        &owner.access,
        "KPIs",
        vec![
            widget("Events", "EVENTS", "DAY", "LAST_7_DAYS"),
            named,
            widget("Active", "ACTIVE_USERS", "WEEK", "LAST_30_DAYS"),
            widget("MRR", "MRR", "MONTH", "LAST_12_MONTHS"),
        ],
    )
    .await;

    let r = t
        .op(Some(&owner.access), F, "ReportData", json!({ "id": id }))
        .await;
    assert!(r["errors"].is_null(), "{r}");
    let widgets = r["data"]["report"]["widgets"].as_array().unwrap().clone();
    assert_eq!(widgets[0]["data"]["total"], 3.0);
    assert_eq!(widgets[0]["data"]["points"].as_array().unwrap().len(), 7);
    assert_eq!(widgets[1]["data"]["total"], 2.0, "eventName narrows EVENTS");
    assert_eq!(widgets[2]["data"]["total"], 2.0);
    assert_eq!(widgets[3]["data"]["total"], 49.0);
    assert_eq!(widgets[3]["data"]["points"].as_array().unwrap().len(), 12);

    // The same window asked of the dashboard gives the same series.
    let points = widgets[0]["data"]["points"].as_array().unwrap();
    let from = points[0]["bucket"].as_str().unwrap();
    let to = (chrono::DateTime::parse_from_rfc3339(points[6]["bucket"].as_str().unwrap()).unwrap()
        + Duration::days(1))
    .to_rfc3339();
    let dash = t
        .gql(
            Some(&owner.access),
            "query($r: TimeRangeInput!) { analytics(range: $r, granularity: DAY) { events { total points { bucket value } } } }",
            json!({ "r": { "from": from, "to": to } }),
        )
        .await;
    assert_eq!(
        dash["data"]["analytics"]["events"], widgets[0]["data"],
        "{dash}"
    );

    // A VIEWER gets the engagement widgets, and null with FORBIDDEN for revenue.
    let r = t
        .op(Some(&viewer.access), F, "ReportData", json!({ "id": id }))
        .await;
    let widgets = r["data"]["report"]["widgets"].as_array().unwrap();
    assert_eq!(widgets[0]["data"]["total"], 3.0);
    assert!(widgets[3]["data"].is_null());
    assert_eq!(
        codes_at(&r, &["report", "widgets", "3", "data"]),
        ["FORBIDDEN"],
        "{r}"
    );
    assert_eq!(codes(&r).len(), 1);

    // A READ API key reads reports; an INGEST-only key does not.
    let read = t.api_key(&owner.access, &["READ"]).await;
    let r = t
        .op(Some(&read), F, "ReportData", json!({ "id": id }))
        .await;
    assert_eq!(
        r["data"]["report"]["widgets"][3]["data"]["total"], 49.0,
        "{r}"
    );
    let ingest = t.api_key(&owner.access, &["INGEST"]).await;
    assert_eq!(
        codes(&t.op(Some(&ingest), F, "Reports", json!({})).await),
        ["FORBIDDEN"]
    );

    // New data shows at the next read.
    t.ingest_ok(
        &owner.access,
        vec![json!({ "name": "login", "userId": "u3", "occurredAt": at(1) })],
    )
    .await;
    let r = t
        .op(Some(&owner.access), F, "ReportData", json!({ "id": id }))
        .await;
    assert_eq!(
        r["data"]["report"]["widgets"][1]["data"]["total"], 3.0,
        "{r}"
    );
}

#[tokio::test]
async fn bad_input_is_refused_whole() {
    let t = TestApp::spawn().await;
    let owner = t.sign_up("acme").await;
    let other = t.sign_up("globex").await;
    let id = create(&t, &owner.access, "Kept", mixed()).await;
    let attempt = |input: Value| {
        let t = &t;
        let token = owner.access.clone();
        async move {
            t.op(Some(&token), F, "CreateReport", json!({ "input": input }))
                .await
        }
    };
    let w = widget("Events", "EVENTS", "DAY", "LAST_7_DAYS");
    let cases = vec![
        (
            json!({ "name": "x", "widgets": [] }),
            "BAD_USER_INPUT",
            "at least one",
        ),
        (
            json!({ "name": "x", "widgets": vec![w.clone(); 51] }),
            "BAD_USER_INPUT",
            "at most 50",
        ),
        (
            json!({ "name": "x".repeat(201), "widgets": [w.clone()] }),
            "BAD_USER_INPUT",
            "input.name",
        ),
        (
            json!({ "name": "x", "widgets": [widget("x".repeat(201).as_str(), "EVENTS", "DAY", "LAST_7_DAYS")] }),
            "BAD_USER_INPUT",
            "widgets[0].title",
        ),
        (
            json!({ "name": "x", "widgets": [w.clone(), widget("H", "EVENTS", "HOUR", "LAST_12_MONTHS")] }),
            "BAD_USER_INPUT",
            "widgets[1].granularity",
        ),
        (
            json!({ "name": "x", "widgets": [{ "title": "M", "metric": "MRR", "granularity": "DAY", "range": "LAST_7_DAYS", "eventName": "login" }] }),
            "BAD_USER_INPUT",
            "eventName",
        ),
        (
            json!({ "name": "x", "widgets": [widget("U", "UNIQUE_VISITORS", "DAY", "LAST_7_DAYS")] }),
            "BAD_USER_INPUT",
            "UNIQUE_VISITORS",
        ),
        (
            json!({ "name": "x", "widgets": [widget("U", "EVENTS", "DAY", "LAST_2_DAYS")] }),
            "BAD_USER_INPUT",
            "LAST_2_DAYS",
        ),
        (
            json!({ "name": "x", "description": "d".repeat(2_001), "widgets": [w.clone()] }),
            "BAD_USER_INPUT",
            "description",
        ),
    ];
    for (input, code, says) in cases {
        let r = attempt(input).await;
        assert_eq!(codes(&r), [code], "{r}");
        assert!(
            r["errors"][0]["message"].as_str().unwrap().contains(says),
            "{r}"
        );
    }
    assert_eq!(total(&t, &owner.access).await, 1, "nothing half-written");

    // An edit that fails changes nothing.
    let r = t
        .op(
            Some(&owner.access),
            F,
            "UpdateReport",
            json!({ "id": id, "input": { "name": "New", "widgets": [] } }),
        )
        .await;
    assert_eq!(codes(&r), ["BAD_USER_INPUT"]);
    let r = t.op(Some(&owner.access), F, "Reports", json!({})).await;
    assert_eq!(r["data"]["reports"]["edges"][0]["node"]["name"], "Kept");
    assert_eq!(
        r["data"]["reports"]["edges"][0]["node"]["widgets"]
            .as_array()
            .unwrap()
            .len(),
        2
    );

    // Another tenant's report does not exist for this one, whatever is asked of it.
    for (op, vars) in [
        ("ReportData", json!({ "id": id })),
        (
            "UpdateReport",
            json!({ "id": id, "input": { "name": "Stolen" } }),
        ),
        ("DeleteReport", json!({ "id": id })),
    ] {
        let r = t.op(Some(&other.access), F, op, vars).await;
        assert_eq!(codes(&r), ["NOT_FOUND"], "{op}: {r}");
    }
    let r = t
        .op(
            Some(&other.access),
            F,
            "ReportData",
            json!({ "id": "not-an-id" }),
        )
        .await;
    assert_eq!(codes(&r), ["BAD_USER_INPUT"]);
    assert_eq!(total(&t, &other.access).await, 0);
    assert_eq!(total(&t, &owner.access).await, 1);
}

#[tokio::test]
async fn reports_page_with_opaque_cursors() {
    let t = TestApp::spawn().await;
    let owner = t.sign_up("acme").await;
    for i in 0..25 {
        create(
            &t,
            &owner.access,
            &format!("R{i:02}"),
            vec![widget("E", "EVENTS", "DAY", "LAST_7_DAYS")],
        )
        .await;
    }
    let mut names = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let r = t
            .op(
                Some(&owner.access),
                F,
                "Reports",
                json!({ "first": 10, "after": after }),
            )
            .await;
        let conn = &r["data"]["reports"];
        assert_eq!(conn["totalCount"], 25, "{r}");
        for e in conn["edges"].as_array().unwrap() {
            names.push(e["node"]["name"].as_str().unwrap().to_string());
        }
        if conn["pageInfo"]["hasNextPage"] != true {
            break;
        }
        after = conn["pageInfo"]["endCursor"].as_str().map(str::to_string);
    }
    let expected: Vec<String> = (0..25).rev().map(|i| format!("R{i:02}")).collect();
    assert_eq!(names, expected, "newest first, each once");
    let r = t
        .op(Some(&owner.access), F, "Reports", json!({ "first": 500 }))
        .await;
    assert_eq!(r["data"]["reports"]["edges"].as_array().unwrap().len(), 25);
    let r = t
        .op(
            Some(&owner.access),
            F,
            "Reports",
            json!({ "after": "bogus" }),
        )
        .await;
    assert_eq!(codes(&r), ["BAD_USER_INPUT"]);
}

/// Statements sent while serving the contract's `Reports` (the session check included).
async fn statements_for_list(t: &TestApp, token: &str) -> (u64, usize) {
    let list = t.op(Some(token), F, "Reports", json!({ "first": 100 }));
    let (statements, r) = t.statements_during(list).await;
    assert!(r["errors"].is_null(), "{r}");
    (
        statements,
        r["data"]["reports"]["edges"].as_array().unwrap().len(),
    )
}

#[tokio::test]
async fn a_list_of_reports_costs_the_same_statements_at_10_and_100() {
    let t = TestApp::spawn().await;
    let owner = t.sign_up("acme").await;
    let analyst = t.member(&owner, "acme", "ANALYST").await;
    let make = |n: usize, from: usize| {
        let (t, owner, analyst) = (&t, owner.clone(), analyst.clone());
        async move {
            for i in from..from + n {
                let by = if i % 2 == 0 { &owner } else { &analyst };
                create(t, &by.access, &format!("R{i}"), mixed()).await;
            }
        }
    };
    make(10, 0).await;
    let client = t.pg().await;
    // Runs, so that `lastRun` has something to load.
    client
        .batch_execute(
            "INSERT INTO report_runs (id, tenant_id, report_id, format, status)
             SELECT gen_random_uuid(), tenant_id, id, 'CSV', 'SUCCEEDED' FROM reports",
        )
        .await
        .unwrap();
    let (few, rows_few) = statements_for_list(&t, &owner.access).await;
    make(90, 10).await;
    let (many, rows_many) = statements_for_list(&t, &owner.access).await;
    assert_eq!((rows_few, rows_many), (10, 100));
    assert!(few > 0, "the statement counter counts");
    assert_eq!(
        few, many,
        "10 reports took {few} statements, 100 took {many}"
    );
    assert!(many <= 5, "{many} statements for a page of reports");
}

#[tokio::test]
async fn report_data_is_served_from_the_response_cache_until_the_report_or_its_data_change() {
    let t = TestApp::spawn().await;
    let owner = t.sign_up("acme").await;
    let at = (Utc::now() - Duration::minutes(1)).to_rfc3339();
    t.ingest_ok(
        &owner.access,
        vec![json!({ "name": "login", "userId": "u1", "occurredAt": at })],
    )
    .await;
    let id = create(&t, &owner.access, "Cached", mixed()).await;
    let claims = t.app.tokens.verify(&owner.access).unwrap();
    // Nothing but the repeat may send statements while it is counted: the MRR widget's first
    // read would otherwise copy the revenue changes into memory in the background, and a
    // report's key changes with the quarter hour, which the two loads must not straddle.
    let index = t.app.revenue_index.as_ref().unwrap();
    index.refresh(claims.tenant_id).await.unwrap();
    let period = fahwa::http::REPORT_KEY_SECS;
    let into = Utc::now().timestamp().rem_euclid(period);
    if period - into < 10 {
        tokio::time::sleep(std::time::Duration::from_secs((period - into + 1) as u64)).await;
    }
    let first = t
        .op(Some(&owner.access), F, "ReportData", json!({ "id": id }))
        .await;
    assert!(first["errors"].is_null(), "{first}");
    // The repeat pays the session check (remembered for a second only, which a slow first
    // load outlasts), so it is compared with what the check alone costs.
    let repeat = t.op(Some(&owner.access), F, "ReportData", json!({ "id": id }));
    let (repeat, again) = t.statements_during(repeat).await;
    assert_eq!(again, first);
    let check = t.app.session_check.stands(&t.app.db, &claims);
    let (check, stands) = t.statements_during(check).await;
    assert!(stands.unwrap());
    assert!(check > 0, "the session check is counted");
    assert_eq!(repeat, check, "a repeated load is answered from the cache");

    // An edit shows at once.
    let widgets = vec![widget("Only events", "EVENTS", "DAY", "LAST_30_DAYS")];
    let r = t
        .op(
            Some(&owner.access),
            F,
            "UpdateReport",
            json!({ "id": id, "input": { "widgets": widgets } }),
        )
        .await;
    assert!(r["errors"].is_null(), "{r}");
    let edited = t
        .op(Some(&owner.access), F, "ReportData", json!({ "id": id }))
        .await;
    let shown = edited["data"]["report"]["widgets"].as_array().unwrap();
    assert_eq!(shown.len(), 1, "{edited}");
    assert_eq!(shown[0]["title"], "Only events");
    assert_eq!(shown[0]["data"]["points"].as_array().unwrap().len(), 30);

    // So does new data, and a deletion.
    t.ingest_ok(
        &owner.access,
        vec![json!({ "name": "login", "userId": "u2", "occurredAt": at })],
    )
    .await;
    let fresh = t
        .op(Some(&owner.access), F, "ReportData", json!({ "id": id }))
        .await;
    assert_eq!(
        fresh["data"]["report"]["widgets"][0]["data"]["total"], 2.0,
        "{fresh}"
    );
    t.op(Some(&owner.access), F, "DeleteReport", json!({ "id": id }))
        .await;
    let gone = t
        .op(Some(&owner.access), F, "ReportData", json!({ "id": id }))
        .await;
    assert_eq!(codes(&gone), ["NOT_FOUND"]);
}
