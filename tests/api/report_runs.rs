//! Runs of reports: queued by `runReport`, rendered by the job queue to CSV or JSON, followed
//! by `reportRun` and `reportRunUpdated`, downloaded by signed links.

use std::time::Duration;

use chrono::Utc;
use serde_json::{Value, json};

use crate::harness::{Session, TestApp, codes, codes_at};
use crate::live::Ws;
use crate::reports::{create, mixed, widget};

/// The contract's DeleteReport as it answered.
async fn delete(t: &TestApp, s: &Session, report: &str) -> Value {
    t.op(Some(&s.access), F, "DeleteReport", json!({ "id": report }))
        .await
}

/// The contract's ReportRun as it answered.
async fn run_state(t: &TestApp, s: &Session, run: &str) -> Value {
    t.op(Some(&s.access), F, "ReportRun", json!({ "id": run }))
        .await
}

/// The contract's RunReport as it answered.
async fn attempt(t: &TestApp, s: &Session, report: &str, format: &str) -> Value {
    let vars = json!({ "id": report, "format": format });
    t.op(Some(&s.access), F, "RunReport", vars).await
}

const F: &str = "reports.graphql";

pub async fn with_worker() -> TestApp {
    TestApp::spawn_configured(|c| c.worker = true).await
}

pub async fn run(t: &TestApp, token: &str, report: &str, format: &str) -> String {
    let r = t
        .op(
            Some(token),
            F,
            "RunReport",
            json!({ "id": report, "format": format }),
        )
        .await;
    assert!(r["errors"].is_null(), "{r}");
    assert_eq!(r["data"]["runReport"]["status"], "QUEUED");
    r["data"]["runReport"]["id"].as_str().unwrap().to_string()
}

/// The contract's ReportRun once it has finished.
pub async fn finished(t: &TestApp, token: &str, run: &str) -> Value {
    for _ in 0..200 {
        let r = t
            .op(Some(token), F, "ReportRun", json!({ "id": run }))
            .await;
        let status = r["data"]["reportRun"]["status"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        if status == "SUCCEEDED" || status == "FAILED" {
            return r;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("run {run} did not finish");
}

/// The path and query of a link, to send to this test's server.
fn local(t: &TestApp, link: &str) -> String {
    let at = link.find("/api/v1/").unwrap();
    format!("{}{}", t.base, &link[at..])
}

async fn download(t: &TestApp, link: &str) -> (u16, String, String) {
    let resp = t.client.get(local(t, link)).send().await.unwrap();
    let status = resp.status().as_u16();
    let kind = resp
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    (status, kind, resp.text().await.unwrap())
}

async fn seed(t: &TestApp, s: &Session) {
    let now = Utc::now();
    let at = |m: i64| (now - chrono::Duration::minutes(m)).to_rfc3339();
    t.ingest_ok(
        &s.access,
        vec![
            json!({ "name": "login", "userId": "u1", "occurredAt": at(3) }),
            json!({ "name": "login", "userId": "u2", "occurredAt": at(2) }),
        ],
    )
    .await;
    crate::reports::paying_customer(t, s, &at(10)).await;
}

#[tokio::test]
async fn a_run_renders_csv_and_json_behind_signed_links() {
    let t = with_worker().await;
    let owner = t.sign_up("acme").await;
    seed(&t, &owner).await;
    let id = create(&t, &owner.access, "Weekly, \"KPIs\"", mixed()).await;

    let csv_run = run(&t, &owner.access, &id, "CSV").await;
    let r = finished(&t, &owner.access, &csv_run).await;
    let state = &r["data"]["reportRun"];
    assert_eq!(state["status"], "SUCCEEDED", "{r}");
    assert_eq!(state["format"], "CSV");
    assert!(state["startedAt"].is_string() && state["finishedAt"].is_string());
    assert!(state["error"].is_null());
    let link = state["downloadUrl"].as_str().unwrap().to_string();
    let (status, kind, body) = download(&t, &link).await;
    assert_eq!((status, kind.as_str()), (200, "text/csv; charset=utf-8"));
    let body = body
        .strip_prefix('\u{feff}')
        .expect("a byte-order mark for spreadsheets");
    let mut reader = csv::Reader::from_reader(body.as_bytes());
    assert_eq!(
        reader.headers().unwrap().iter().collect::<Vec<_>>(),
        [
            "widget",
            "metric",
            "granularity",
            "range",
            "event_name",
            "bucket",
            "bucket_utc",
            "value"
        ]
    );
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    // 7 days of events and 12 months of MRR: one row per widget and bucket.
    assert_eq!(rows.len(), 7 + 12);
    let events: f64 = rows
        .iter()
        .filter(|r| &r[1] == "EVENTS")
        .map(|r| r[7].parse::<f64>().unwrap())
        .sum();
    assert_eq!(events, 2.0);
    assert_eq!(&rows[18][1], "MRR");
    assert_eq!(rows[18][7].parse::<f64>().unwrap(), 49.0);

    // The list shows it as the newest run.
    let list = t.op(Some(&owner.access), F, "Reports", json!({})).await;
    let last = &list["data"]["reports"]["edges"][0]["node"]["lastRun"];
    assert_eq!(last["id"], csv_run.as_str());
    assert_eq!(last["status"], "SUCCEEDED");

    let json_run = run(&t, &owner.access, &id, "JSON").await;
    let r = finished(&t, &owner.access, &json_run).await;
    let link = r["data"]["reportRun"]["downloadUrl"]
        .as_str()
        .unwrap()
        .to_string();
    let (status, kind, body) = download(&t, &link).await;
    assert_eq!((status, kind.as_str()), (200, "application/json"));
    let doc: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(doc["report"]["name"], "Weekly, \"KPIs\"");
    assert_eq!(doc["rows"].as_array().unwrap().len(), 19);

    // Tampered, stretched, moved to another tenant, or expired: 403 and nothing else.
    let other = t.sign_up("globex").await;
    let tampered = link.replace("sig=", "sig=A");
    let stretched = {
        let at = link.find("expires=").unwrap() + 8;
        let end = at + link[at..].find('&').unwrap();
        let later: i64 = link[at..end].parse::<i64>().unwrap() + 86_400;
        format!("{}{later}{}", &link[..at], &link[end..])
    };
    let moved = link.replace(&owner.tenant_id, &other.tenant_id);
    let key = t.app.reports.links.key;
    let run_id: uuid::Uuid = json_run.parse().unwrap();
    let tenant: uuid::Uuid = owner.tenant_id.parse().unwrap();
    let expired = fahwa::reports::links::sign(
        &key,
        &t.base,
        run_id,
        tenant,
        Utc::now() - chrono::Duration::seconds(1),
    );
    let foreign_signed = fahwa::reports::links::sign(
        &key,
        &t.base,
        run_id,
        other.tenant_id.parse().unwrap(),
        Utc::now() + chrono::Duration::hours(1),
    );
    for bad in [tampered, stretched, moved, expired, foreign_signed] {
        let (status, _, body) = download(&t, &bad).await;
        assert_eq!((status, body.as_str()), (403, "forbidden"), "{bad}");
    }
    let (status, _, _) = download(&t, &link).await;
    assert_eq!(status, 200, "the good link still works");

    // Past the retention, the file is gone and so is the link.
    let gone = fahwa::background::expire_report_files(
        &t.app.reports,
        Utc::now() + chrono::Duration::days(1),
    )
    .await
    .unwrap();
    assert_eq!(gone, 2);
    let (status, _, _) = download(&t, &link).await;
    assert_eq!(status, 410);
    let r = run_state(&t, &owner, &json_run).await;
    assert!(r["data"]["reportRun"]["downloadUrl"].is_null(), "{r}");
}

#[tokio::test]
async fn runs_follow_the_role_table() {
    let t = with_worker().await;
    let owner = t.sign_up("acme").await;
    let analyst = t.member(&owner, "acme", "ANALYST").await;
    let viewer = t.member(&owner, "acme", "VIEWER").await;
    let other = t.sign_up("globex").await;
    let revenue = create(&t, &owner.access, "Revenue", mixed()).await;
    let engagement = create(
        &t,
        &analyst.access,
        "Engagement",
        vec![widget("E", "EVENTS", "DAY", "LAST_7_DAYS")],
    )
    .await;

    let denied = attempt(&t, &viewer, &engagement, "CSV").await;
    assert_eq!(codes(&denied), ["FORBIDDEN"]);
    let denied = attempt(&t, &analyst, &revenue, "CSV").await;
    assert_eq!(
        codes(&denied),
        ["FORBIDDEN"],
        "an ANALYST runs only their own reports"
    );
    let foreign = attempt(&t, &other, &revenue, "CSV").await;
    assert_eq!(codes(&foreign), ["NOT_FOUND"]);

    let by_analyst = run(&t, &analyst.access, &engagement, "CSV").await;
    let by_owner = run(&t, &owner.access, &revenue, "CSV").await;
    finished(&t, &owner.access, &by_analyst).await;
    finished(&t, &owner.access, &by_owner).await;

    // A VIEWER reads runs; the file with revenue is not theirs to download.
    let r = run_state(&t, &viewer, &by_analyst).await;
    assert!(r["data"]["reportRun"]["downloadUrl"].is_string(), "{r}");
    let r = run_state(&t, &viewer, &by_owner).await;
    assert_eq!(r["data"]["reportRun"]["status"], "SUCCEEDED");
    assert!(r["data"]["reportRun"]["downloadUrl"].is_null());
    assert_eq!(codes_at(&r, &["reportRun", "downloadUrl"]), ["FORBIDDEN"]);
    let r = run_state(&t, &other, &by_owner).await;
    assert_eq!(codes(&r), ["NOT_FOUND"]);

    // Runs are audited, and listed on their report.
    let log = t
        .gql(
            Some(&owner.access),
            "{ auditLog(first: 20) { edges { node { action targetId } } } }",
            json!({}),
        )
        .await;
    assert!(
        log["data"]["auditLog"]["edges"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["node"]["action"] == "report.run"
                && e["node"]["targetId"] == by_owner.as_str())
    );
    let runs = t
        .gql(Some(&owner.access), "query($id: ID!) { report(id: $id) { runs(first: 5) { edges { node { id status rowCount sizeBytes } } } } }", json!({ "id": revenue }))
        .await;
    let node = &runs["data"]["report"]["runs"]["edges"][0]["node"];
    assert_eq!(node["id"], by_owner.as_str());
    assert_eq!(node["rowCount"], 19);
    assert!(node["sizeBytes"].as_i64().unwrap() > 100);

    // A deleted report cannot be run, and takes its runs and files with it.
    let r = delete(&t, &owner, &revenue).await;
    assert_eq!(r["data"]["deleteReport"], true);
    let r = attempt(&t, &owner, &revenue, "CSV").await;
    assert_eq!(codes(&r), ["NOT_FOUND"]);
    let r = run_state(&t, &owner, &by_owner).await;
    assert_eq!(codes(&r), ["NOT_FOUND"]);
    let files = std::fs::read_dir(t.app.config.report_dir.join(&owner.tenant_id))
        .unwrap()
        .count();
    assert_eq!(files, 1, "only the engagement report's file is left");
}

#[tokio::test]
async fn a_run_queued_for_a_report_deleted_before_it_ran_makes_nothing() {
    let t = TestApp::spawn().await;
    let owner = t.sign_up("acme").await;
    let id = create(&t, &owner.access, "Soon gone", mixed()).await;
    let run_id = run(&t, &owner.access, &id, "CSV").await;
    delete(&t, &owner, &id).await;
    // Now a worker comes: the job finds nothing to render and ends.
    let worker = fahwa::background::spawn(&t.app);
    let pg = t.pg().await;
    for _ in 0..100 {
        let state: String = pg
            .query_one(
                "SELECT state FROM jobs WHERE payload->>'run' = $1",
                &[&run_id],
            )
            .await
            .unwrap()
            .get(0);
        if state == "succeeded" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let state: String = pg
        .query_one(
            "SELECT state FROM jobs WHERE payload->>'run' = $1",
            &[&run_id],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(state, "succeeded");
    assert!(
        !t.app.config.report_dir.join(&owner.tenant_id).exists(),
        "no file written"
    );
    drop(worker);
}

#[tokio::test]
async fn a_run_whose_worker_died_is_taken_up_after_its_lease() {
    let t = TestApp::spawn_configured(|c| c.job_lease_secs = 1).await;
    let owner = t.sign_up("acme").await;
    let id = create(&t, &owner.access, "Survivor", mixed()).await;
    let run_id = run(&t, &owner.access, &id, "CSV").await;
    // A worker claims the job and dies before it finishes: its lease runs out.
    let pg = t.pg().await;
    let claimed = pg
        .query(
            "SELECT id FROM fahwa_jobs_claim(ARRAY['report.run'], 1, 1, 'doomed')",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    let worker = fahwa::background::spawn(&t.app);
    let r = finished(&t, &owner.access, &run_id).await;
    assert_eq!(r["data"]["reportRun"]["status"], "SUCCEEDED", "{r}");
    let attempts: i32 = pg
        .query_one(
            "SELECT attempts FROM jobs WHERE payload->>'run' = $1",
            &[&run_id],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        attempts, 2,
        "the dead worker's attempt and the one that made it"
    );
    drop(worker);
}

/// Brings each spaced-out retry of `run_id` forward until the run has FAILED, then checks that
/// it failed with the run's error, no link, after every attempt it had.
async fn fails_after_every_attempt(t: &TestApp, owner: &Session, run_id: &str) {
    let pg = t.pg().await;
    let mut r = Value::Null;
    for _ in 0..400 {
        pg.execute("UPDATE jobs SET run_at = now() WHERE state = 'queued'", &[])
            .await
            .unwrap();
        r = run_state(t, owner, run_id).await;
        if r["data"]["reportRun"]["status"] == "FAILED" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let state = &r["data"]["reportRun"];
    assert_eq!(state["status"], "FAILED", "{r}");
    assert_eq!(state["error"], fahwa::reports::worker::FAILED);
    assert!(state["downloadUrl"].is_null());
    let attempts: i32 = pg
        .query_one(
            "SELECT attempts FROM jobs WHERE payload->>'run' = $1",
            &[&run_id],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(attempts, fahwa::reports::runs::RUN_ATTEMPTS);
}

#[tokio::test]
async fn a_run_that_cannot_write_fails_with_a_clear_error() {
    let t = TestApp::spawn_configured(|c| {
        c.worker = true;
        // A path under a file: no directory can be made there, like a full or broken disk.
        c.report_dir = std::path::PathBuf::from("/dev/null/reports");
    })
    .await;
    let owner = t.sign_up("acme").await;
    let id = create(&t, &owner.access, "Unwritable", mixed()).await;
    let run_id = run(&t, &owner.access, &id, "CSV").await;
    fails_after_every_attempt(&t, &owner, &run_id).await;
}

#[tokio::test]
async fn report_run_updated_streams_to_subscribers_on_another_instance() {
    let t = TestApp::spawn().await;
    let owner = t.sign_up("acme").await;
    let viewer = t.member(&owner, "acme", "VIEWER").await;
    let other = t.sign_up("globex").await;
    seed(&t, &owner).await;
    let id = create(&t, &owner.access, "Live", mixed()).await;
    let run_id = run(&t, &owner.access, &id, "CSV").await;

    // Subscribers on this instance (no worker); the worker runs on another.
    let mut ws = Ws::connect(&t, &owner.access).await;
    ws.subscribe("1", "ReportRunUpdated", json!({ "id": run_id }))
        .await;
    let (_, first) = ws.frame(Duration::from_secs(5)).await.unwrap();
    assert_eq!(
        first["payload"]["data"]["reportRunUpdated"]["status"], "QUEUED",
        "{first}"
    );
    let mut viewer_ws = Ws::connect(&t, &viewer.access).await;
    viewer_ws
        .subscribe("v", "ReportRunUpdated", json!({ "id": run_id }))
        .await;
    let mut foreign = Ws::connect(&t, &other.access).await;
    foreign
        .subscribe("x", "ReportRunUpdated", json!({ "id": run_id }))
        .await;
    let refused = foreign.message(Duration::from_secs(5)).await.unwrap();
    assert_eq!(refused["type"], "error", "{refused}");
    assert_eq!(crate::live::ws_codes(&refused), ["NOT_FOUND"]);

    let mut worker = t.peer_configured(|c| c.worker = true).await;
    let mut seen = Vec::new();
    ws.until(Duration::from_secs(10), |_, msg| {
        let state = &msg["payload"]["data"]["reportRunUpdated"];
        seen.push(state["status"].as_str().unwrap_or_default().to_string());
        if state["status"] == "SUCCEEDED" {
            assert!(state["downloadUrl"].is_string(), "{msg}");
        }
        state["status"] == "SUCCEEDED"
    })
    .await;
    // Each state no earlier than the one before (an inbox may skip some, never go back).
    let rank = |s: &String| {
        ["QUEUED", "RUNNING", "SUCCEEDED"]
            .iter()
            .position(|r| r == s)
    };
    let ranks: Vec<Option<usize>> = seen.iter().map(rank).collect();
    assert!(ranks.iter().all(Option::is_some), "{seen:?}");
    assert!(ranks.windows(2).all(|w| w[0] <= w[1]), "{seen:?}");

    let done = ws.message(Duration::from_secs(5)).await.unwrap();
    assert_eq!(done["type"], "complete", "the stream ends when the run has");

    // The VIEWER sees the run finish, without a link to revenue.
    viewer_ws
        .until(Duration::from_secs(10), |_, msg| {
            let state = &msg["payload"]["data"]["reportRunUpdated"];
            if state["status"] == "SUCCEEDED" {
                assert!(state["downloadUrl"].is_null(), "{msg}");
                assert_eq!(crate::live::ws_codes(msg), ["FORBIDDEN"], "{msg}");
                return true;
            }
            false
        })
        .await;
    worker.kill();
}

#[tokio::test]
async fn fahwa_worker_runs_jobs_as_a_process_of_its_own() {
    let t = TestApp::spawn().await;
    let owner = t.sign_up("acme").await;
    let id = create(&t, &owner.access, "By the worker", mixed()).await;
    let run_id = run(&t, &owner.access, &id, "JSON").await;
    let mut worker = tokio::process::Command::new(env!("CARGO_BIN_EXE_fahwa"))
        .arg("worker")
        .env("FAHWA_DATABASE_URL", &t.db_url)
        .env("FAHWA_JWT_SECRET", t.jwt_secret())
        .env("FAHWA_REPORT_DIR", &t.app.config.report_dir)
        .env_remove("FAHWA_REDIS_URL")
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let r = finished(&t, &owner.access, &run_id).await;
    assert_eq!(r["data"]["reportRun"]["status"], "SUCCEEDED", "{r}");
    // The server signs the link with the same key, and serves the worker's file.
    let link = r["data"]["reportRun"]["downloadUrl"]
        .as_str()
        .unwrap()
        .to_string();
    let (status, kind, _) = download(&t, &link).await;
    assert_eq!((status, kind.as_str()), (200, "application/json"));
    let pid = worker.id().unwrap().to_string();
    std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    let exit = tokio::time::timeout(Duration::from_secs(30), worker.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(exit.success(), "a stopped worker exits cleanly: {exit:?}");
}

/// What each role may do with a report another member owns, operation by operation, as the
/// contract's role table says.
#[tokio::test]
async fn every_operation_for_every_role() {
    let t = with_worker().await;
    let owner = t.sign_up("acme").await;
    let admin = t.member(&owner, "acme", "ADMIN").await;
    let analyst = t.member(&owner, "acme", "ANALYST").await;
    let viewer = t.member(&owner, "acme", "VIEWER").await;
    let author = t.member(&owner, "acme", "ANALYST").await;
    // (who, may write, may write others' reports, may read revenue)
    let roles = [
        (&owner, true, true, true),
        (&admin, true, true, true),
        (&analyst, true, false, true),
        (&viewer, false, false, false),
    ];
    for (who, writes, writes_others, revenue) in roles {
        let theirs = create(&t, &author.access, "Another's", mixed()).await;
        let code = |r: &Value| codes(r).first().cloned().unwrap_or_else(|| "OK".into());
        let expect = |allowed: bool| if allowed { "OK" } else { "FORBIDDEN" };

        let r = t
            .op(
                Some(&who.access),
                F,
                "CreateReport",
                json!({ "input": { "name": "Own", "widgets": mixed() } }),
            )
            .await;
        assert_eq!(code(&r), expect(writes), "CreateReport: {r}");
        let r = t
            .op(Some(&who.access), F, "Reports", json!({ "first": 5 }))
            .await;
        assert_eq!(code(&r), "OK", "Reports: {r}");
        let r = t
            .op(Some(&who.access), F, "ReportData", json!({ "id": theirs }))
            .await;
        assert!(
            r["data"]["report"]["widgets"][0]["data"]["total"].is_number(),
            "{r}"
        );
        assert_eq!(
            r["data"]["report"]["widgets"][1]["data"].is_null(),
            !revenue,
            "{r}"
        );
        let r = t
            .op(
                Some(&who.access),
                F,
                "UpdateReport",
                json!({ "id": theirs, "input": { "name": "Renamed" } }),
            )
            .await;
        assert_eq!(code(&r), expect(writes_others), "UpdateReport: {r}");
        let r = attempt(&t, who, &theirs, "CSV").await;
        assert_eq!(code(&r), expect(writes_others), "RunReport: {r}");

        // Every role reads a run of the report and follows it.
        let run_id = run(&t, &author.access, &theirs, "CSV").await;
        let mut ws = Ws::connect(&t, &who.access).await;
        ws.subscribe("1", "ReportRunUpdated", json!({ "id": run_id }))
            .await;
        ws.until(Duration::from_secs(10), |_, msg| {
            msg["payload"]["data"]["reportRunUpdated"]["status"] == "SUCCEEDED"
        })
        .await;
        let r = t
            .op(Some(&who.access), F, "ReportRun", json!({ "id": run_id }))
            .await;
        assert_eq!(r["data"]["reportRun"]["status"], "SUCCEEDED");
        assert_eq!(
            r["data"]["reportRun"]["downloadUrl"].is_string(),
            revenue,
            "{r}"
        );

        let r = delete(&t, who, &theirs).await;
        assert_eq!(code(&r), expect(writes_others), "DeleteReport: {r}");
    }
}

#[tokio::test]
async fn a_deleted_tenant_takes_its_report_files_along() {
    let t = with_worker().await;
    let owner = t.sign_up("acme").await;
    let other = t.sign_up("globex").await;
    let mine = create(&t, &owner.access, "Mine", mixed()).await;
    let theirs = create(&t, &other.access, "Theirs", mixed()).await;
    let run_mine = run(&t, &owner.access, &mine, "CSV").await;
    let run_theirs = run(&t, &other.access, &theirs, "CSV").await;
    finished(&t, &owner.access, &run_mine).await;
    finished(&t, &other.access, &run_theirs).await;
    let folder = |s: &Session| t.app.config.report_dir.join(&s.tenant_id);
    assert!(folder(&owner).exists() && folder(&other).exists());
    let r = t
        .gql(
            Some(&owner.access),
            "mutation { deleteTenant(confirmSlug: \"acme\") }",
            json!({}),
        )
        .await;
    assert_eq!(r["data"]["deleteTenant"], true, "{r}");
    assert!(
        !folder(&owner).exists(),
        "the deleted tenant's files are gone"
    );
    assert!(folder(&other).exists(), "another tenant's stay");
}

/// A tmpfs of `kib` KiB mounted for the life of the value (root only).
struct SmallDisk(std::path::PathBuf);

impl SmallDisk {
    fn mount(kib: u32) -> SmallDisk {
        let dir =
            std::env::temp_dir().join(format!("fahwa-full-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        let status = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={kib}k"), "tmpfs"])
            .arg(&dir)
            .status()
            .unwrap();
        assert!(
            status.success(),
            "mounting a small tmpfs needs root (as CI has)"
        );
        SmallDisk(dir)
    }

    /// Every file left on it, partial ones included.
    fn files(&self) -> Vec<std::path::PathBuf> {
        let mut out = Vec::new();
        let mut dirs = vec![self.0.clone()];
        while let Some(dir) = dirs.pop() {
            for entry in std::fs::read_dir(dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    dirs.push(path);
                } else {
                    out.push(path);
                }
            }
        }
        out
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[tokio::test]
async fn a_run_on_a_full_disk_fails_cleanly_and_leaves_no_partial_file() {
    let disk = SmallDisk::mount(64);
    let report_dir = disk.0.clone();
    let t = TestApp::spawn_configured(|c| {
        c.worker = true;
        c.report_dir = report_dir;
    })
    .await;
    let owner = t.sign_up("acme").await;
    // Fifty widgets of ninety days: hundreds of KiB of CSV, far more than the disk holds.
    let widgets = (0..50)
        .map(|i| widget(&format!("Events {i}"), "EVENTS", "DAY", "LAST_90_DAYS"))
        .collect();
    let id = create(&t, &owner.access, "Too big", widgets).await;
    let run_id = run(&t, &owner.access, &id, "CSV").await;
    fails_after_every_attempt(&t, &owner, &run_id).await;
    assert_eq!(
        disk.files(),
        Vec::<std::path::PathBuf>::new(),
        "nothing half-written is left"
    );

    // Room again (a small report fits): the same deployment writes whole files.
    let small = create(&t, &owner.access, "Small", mixed()).await;
    let ok = run(&t, &owner.access, &small, "CSV").await;
    let done = finished(&t, &owner.access, &ok).await;
    assert_eq!(done["data"]["reportRun"]["status"], "SUCCEEDED", "{done}");
    assert_eq!(disk.files().len(), 1);
}
