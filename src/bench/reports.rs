//! Saved reports in the benchmark: 100 reports of 8 widgets (engagement and revenue, by day and
//! by month) owned by the bench ANALYST, the contract's `Reports` and `ReportData` on them, and
//! one run of such a report to CSV, end to end.

use std::time::{Duration, Instant};

use anyhow::Context;
use scoped_futures::ScopedFutureExt;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::app::App;
use crate::db::members::MemberRow;
use crate::db::reports::ReportEntry;
use crate::reports::{manage, spec};

pub const REPORTS: usize = 100;

pub const LIST: &str = "query Reports($first: Int, $after: String) { reports(first: $first, after: $after) { totalCount pageInfo { hasNextPage endCursor } edges { node { id name description updatedAt owner { id name } widgets { id title metric } lastRun { id status finishedAt } } } } }";
pub const DATA: &str = "query ReportData($id: ID!) { report(id: $id) { id name widgets { id title metric data { total points { bucket value } } } } }";
const RUN: &str = "mutation RunReport($id: ID!, $format: ReportFormat!) { runReport(id: $id, format: $format) { id status } }";
const RUN_STATE: &str = "query ReportRun($id: ID!) { reportRun(id: $id) { id status format startedAt finishedAt downloadUrl error } }";

/// Makes the bench tenant's reports (once); returns the newest one's id.
pub async fn prepare(app: &App, tenant: Uuid, owner_email: &str) -> anyhow::Result<Uuid> {
    let email = owner_email.to_string();
    let newest = app
        .db
        .tenant(tenant, |conn| {
            async move {
                let owner = MemberRow::find_active_by_email(conn, &email)
                    .await?
                    .ok_or(crate::error::AppError::NotFound("bench analyst"))?;
                let (_, have) = ReportEntry::page(conn, None, 1).await?;
                for i in have as usize..REPORTS {
                    let name = format!("Bench report {i}");
                    manage::insert_seeded(conn, tenant, owner.id, &name, spec::kpi_widgets())
                        .await?;
                }
                let (page, _) = ReportEntry::page(conn, None, 1).await?;
                Ok(page.into_iter().next().map(|e| e.report.id))
            }
            .scope_boxed()
        })
        .await?;
    newest.context("the bench tenant has no report")
}

/// One run of `report` to CSV through the API: queued, rendered by the server's worker, and
/// downloaded; the time from the request to the last byte.
pub async fn run_to_csv(graphql: &str, token: &str, report: Uuid) -> anyhow::Result<Value> {
    let client = reqwest::Client::new();
    let ask = async |query: &str, variables: Value| -> anyhow::Result<Value> {
        let answer: Value = client
            .post(graphql)
            .bearer_auth(token)
            .json(&json!({ "query": query, "variables": variables }))
            .send()
            .await?
            .json()
            .await?;
        anyhow::ensure!(answer["errors"].is_null(), "{answer}");
        Ok(answer)
    };
    let started = Instant::now();
    let queued = ask(RUN, json!({ "id": report, "format": "CSV" })).await?;
    let run = queued["data"]["runReport"]["id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let mut state = Value::Null;
    for _ in 0..6_000 {
        state = ask(RUN_STATE, json!({ "id": run })).await?["data"]["reportRun"].clone();
        if state["status"] == "SUCCEEDED" || state["status"] == "FAILED" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    anyhow::ensure!(
        state["status"] == "SUCCEEDED",
        "the run did not succeed: {state}"
    );
    let rendered = started.elapsed().as_secs_f64();
    let link = state["downloadUrl"].as_str().context("no link")?;
    let file = client
        .get(link)
        .send()
        .await?
        .error_for_status()?
        .bytes()
        .await?;
    let rows = file
        .iter()
        .filter(|b| **b == b'\n')
        .count()
        .saturating_sub(1);
    Ok(json!({
        "seconds_to_succeeded": rendered,
        "seconds_end_to_end": started.elapsed().as_secs_f64(),
        "bytes": file.len(),
        "rows": rows,
    }))
}
