//! Report schedules: checked when set, made once per occurrence whatever the number of
//! instances, caught up once after downtime, and mailed to members only.

use std::time::Duration;

use chrono::{DateTime, Datelike, Timelike, Utc};
use serde_json::{Value, json};

use crate::harness::{Session, TestApp, codes};
use crate::reports::{mixed, widget};
use crate::smtp_sink::SmtpSink;

const F: &str = "reports.graphql";

const SCHEDULED: &str = "query($id: ID!) { report(id: $id) { schedule { cron format nextRunAt recipients { id name } } runs(first: 10) { edges { node { id status scheduledFor } } } } }";

async fn create_scheduled(
    t: &TestApp,
    token: &str,
    widgets: Vec<Value>,
    cron: &str,
    recipients: &[&str],
) -> Value {
    t.gql(
        Some(token),
        "mutation($input: CreateReportInput!) { createReport(input: $input) { id schedule { cron nextRunAt } } }",
        json!({ "input": { "name": "Scheduled", "widgets": widgets,
            "schedule": { "cron": cron, "format": "CSV", "recipientIds": recipients } } }),
    )
    .await
}

async fn scheduled(t: &TestApp, token: &str, cron: &str, recipients: &[&str]) -> String {
    let r = create_scheduled(t, token, mixed(), cron, recipients).await;
    assert!(r["errors"].is_null(), "{r}");
    r["data"]["createReport"]["id"]
        .as_str()
        .unwrap()
        .to_string()
}

async fn runs_of(t: &TestApp, token: &str, id: &str) -> Vec<Value> {
    let r = t.gql(Some(token), SCHEDULED, json!({ "id": id })).await;
    r["data"]["report"]["runs"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["node"].clone())
        .collect()
}

/// Makes the schedule due, as if its time had come `ago` earlier.
async fn due(t: &TestApp, id: &str, ago: chrono::Duration) -> DateTime<Utc> {
    let at = Utc::now() - ago;
    t.pg()
        .await
        .execute(
            "UPDATE report_schedules SET next_run_at = $2 WHERE report_id = $1::text::uuid",
            &[&id, &at],
        )
        .await
        .unwrap();
    at
}

async fn wait_for_runs(t: &TestApp, token: &str, id: &str, status: &str) -> Vec<Value> {
    for _ in 0..200 {
        let runs = runs_of(t, token, id).await;
        if !runs.is_empty() && runs.iter().all(|r| r["status"] == status) {
            return runs;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no {status} run of {id}");
}

#[tokio::test]
async fn schedules_are_checked_whole_and_shown_in_the_tenants_zone() {
    let t = TestApp::spawn().await;
    let owner = t.sign_up("acme").await;
    let analyst = t.member(&owner, "acme", "ANALYST").await;
    let viewer = t.member(&owner, "acme", "VIEWER").await;
    let other = t.sign_up("globex").await;
    t.track(&owner.access, &[], Some("Europe/Berlin")).await;

    let r = create_scheduled(
        &t,
        &owner.access,
        mixed(),
        "0 8 * * MON",
        &[&analyst.user_id],
    )
    .await;
    assert!(r["errors"].is_null(), "{r}");
    let id = r["data"]["createReport"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let r = t
        .gql(Some(&viewer.access), SCHEDULED, json!({ "id": id }))
        .await;
    let schedule = &r["data"]["report"]["schedule"];
    assert_eq!(schedule["cron"], "0 8 * * MON");
    assert_eq!(schedule["format"], "CSV");
    assert_eq!(schedule["recipients"][0]["id"], analyst.user_id.as_str());
    let next: DateTime<Utc> = schedule["nextRunAt"].as_str().unwrap().parse().unwrap();
    let local = next.with_timezone(&chrono_tz::Europe::Berlin);
    assert_eq!(
        (local.weekday(), local.hour(), local.minute()),
        (chrono::Weekday::Mon, 8, 0)
    );
    assert!(next > Utc::now() && next - Utc::now() <= chrono::Duration::days(7));

    let before =
        t.op(Some(&owner.access), F, "Reports", json!({})).await["data"]["reports"]["totalCount"]
            .clone();
    let cases: Vec<(Vec<Value>, &str, Vec<&str>, &str)> = vec![
        (
            mixed(),
            "every day",
            vec![&analyst.user_id],
            "input.schedule.cron",
        ),
        (mixed(), "* * * * *", vec![&analyst.user_id], "more often"),
        (mixed(), "0 8 * * MON", vec![], "recipientIds"),
        (mixed(), "0 8 * * MON", vec![&other.user_id], "not a member"),
        (mixed(), "0 8 * * MON", vec![&viewer.user_id], "VIEWER"),
        (mixed(), "0 8 * * MON", vec!["nope"], "recipientIds[0]"),
    ];
    for (widgets, cron, recipients, says) in cases {
        let r = create_scheduled(&t, &owner.access, widgets, cron, &recipients).await;
        assert_eq!(codes(&r), ["BAD_USER_INPUT"], "{r}");
        assert!(
            r["errors"][0]["message"].as_str().unwrap().contains(says),
            "{says}: {r}"
        );
    }
    let after =
        t.op(Some(&owner.access), F, "Reports", json!({})).await["data"]["reports"]["totalCount"]
            .clone();
    assert_eq!(before, after, "nothing half-written");

    // A VIEWER may receive a report without revenue.
    let engagement = vec![widget("E", "EVENTS", "DAY", "LAST_7_DAYS")];
    let r = create_scheduled(
        &t,
        &owner.access,
        engagement,
        "30 6 1 * *",
        &[&viewer.user_id],
    )
    .await;
    assert!(r["errors"].is_null(), "{r}");

    // Replaced, then removed.
    let set = |schedule: Value| {
        let (t, token, id) = (&t, owner.access.clone(), id.clone());
        async move {
            t.gql(
                Some(&token),
                "mutation($id: ID!, $s: ReportScheduleInput) { updateReport(id: $id, input: { schedule: $s }) { schedule { cron } } }",
                json!({ "id": id, "s": schedule }),
            )
            .await
        }
    };
    let r = set(json!({ "cron": "0 9 * * *", "format": "JSON", "recipientIds": [owner.user_id] }))
        .await;
    assert_eq!(
        r["data"]["updateReport"]["schedule"]["cron"], "0 9 * * *",
        "{r}"
    );
    let r = set(Value::Null).await;
    assert!(
        r["errors"].is_null() && r["data"]["updateReport"]["schedule"].is_null(),
        "{r}"
    );
}

fn with_mail(sink: &SmtpSink) -> impl FnOnce(&mut fahwa::Config) + '_ {
    move |c| {
        c.worker = true;
        c.smtp_host = Some("127.0.0.1".into());
        c.smtp_port = sink.port;
        c.smtp_security = fahwa::config::SmtpSecurity::None;
        c.smtp_from = "Fahwa <reports@fahwa.test>".into();
        c.schedule_tick_ms = 50;
    }
}

async fn remove(t: &TestApp, by: &Session, who: &Session) {
    let r = t
        .op(
            Some(&by.access),
            "tenant.graphql",
            "RemoveMember",
            json!({ "userId": who.user_id }),
        )
        .await;
    assert!(r["errors"].is_null(), "{r}");
}

#[tokio::test]
async fn a_due_schedule_runs_once_across_instances_and_mails_its_members() {
    let sink = SmtpSink::start().await;
    let t = TestApp::spawn_configured(with_mail(&sink)).await;
    let peer = t.peer().await;
    let owner = t.sign_up("acme").await;
    let analyst = t.member(&owner, "acme", "ANALYST").await;
    let leaving = t.member(&owner, "acme", "ANALYST").await;
    let id = scheduled(
        &t,
        &owner.access,
        "0 6 * * *",
        &[&owner.user_id, &analyst.user_id, &leaving.user_id],
    )
    .await;
    remove(&t, &owner, &leaving).await;
    let occurrence = due(&t, &id, chrono::Duration::minutes(1)).await;

    let runs = wait_for_runs(&t, &owner.access, &id, "SUCCEEDED").await;
    let mail = sink.wait_for(2, Duration::from_secs(10)).await;
    // Both instances kept ticking meanwhile.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let runs_after = runs_of(&t, &owner.access, &id).await;
    assert_eq!(runs.len(), 1);
    assert_eq!(
        runs_after.len(),
        1,
        "one run for one occurrence: {runs_after:?}"
    );
    let at: DateTime<Utc> = runs[0]["scheduledFor"].as_str().unwrap().parse().unwrap();
    assert_eq!(at.timestamp_micros(), occurrence.timestamp_micros());
    let r = t
        .gql(Some(&owner.access), SCHEDULED, json!({ "id": id }))
        .await;
    let next: DateTime<Utc> = r["data"]["report"]["schedule"]["nextRunAt"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(next > Utc::now(), "the schedule moved on");

    assert_eq!(sink.received().len(), 2, "{:?}", sink.received());
    let mut to: Vec<String> = mail.iter().flat_map(|m| m.to.clone()).collect();
    to.sort();
    let mut expected = vec![owner.email.clone(), analyst.email.clone()];
    expected.sort();
    assert_eq!(to, expected, "the member who left gets nothing");
    let message = &mail[0].data;
    assert_eq!(mail[0].from, "reports@fahwa.test");
    assert!(message.contains("Subject: Report: Scheduled"), "{message}");
    assert!(
        message.contains("Content-Disposition: attachment; filename=\"Scheduled.csv\""),
        "{message}"
    );
    // The link in the text (quoted-printable) downloads the same file.
    let text = quoted_printable(message);
    let at = text
        .find("/api/v1/reports/runs/")
        .expect("the mail carries the link");
    let link: String = text[at..]
        .chars()
        .take_while(|c| !c.is_whitespace())
        .collect();
    let resp = t
        .client
        .get(format!("{}{link}", t.base))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.text().await.unwrap().contains("bucket_utc"));
    drop(peer);
}

#[tokio::test]
async fn a_run_missed_while_every_instance_was_down_is_made_once() {
    let t = TestApp::spawn().await;
    let owner = t.sign_up("acme").await;
    let id = scheduled(&t, &owner.access, "0 6 * * *", &[&owner.user_id]).await;
    // Three daily occurrences passed with no worker running anywhere.
    let missed = due(&t, &id, chrono::Duration::days(3)).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        runs_of(&t, &owner.access, &id).await.is_empty(),
        "no worker, no run"
    );

    let back = t.peer_configured(|c| c.worker = true).await;
    let runs = wait_for_runs(&t, &owner.access, &id, "SUCCEEDED").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let runs_after = runs_of(&t, &owner.access, &id).await;
    assert_eq!((runs.len(), runs_after.len()), (1, 1), "{runs_after:?}");
    let at: DateTime<Utc> = runs[0]["scheduledFor"].as_str().unwrap().parse().unwrap();
    assert_eq!(at.timestamp_micros(), missed.timestamp_micros());
    // No mail server: the run is stored and nothing is queued for mail.
    let mail_jobs: i64 = t
        .pg()
        .await
        .query_one("SELECT count(*) FROM jobs WHERE kind = 'report.mail'", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(mail_jobs, 0);
    drop(back);
}

/// Soft line breaks and `=XX` escapes undone.
fn quoted_printable(text: &str) -> String {
    let joined = text.replace("=\r\n", "");
    let bytes = joined.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = bytes[i] == b'='
            && i + 2 < bytes.len()
            && bytes[i + 1].is_ascii_hexdigit()
            && bytes[i + 2].is_ascii_hexdigit();
        if escaped {
            out.push(u8::from_str_radix(&joined[i + 1..i + 3], 16).unwrap());
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}
