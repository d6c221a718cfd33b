//! `fahwa bench --as-member`: the scenarios sent as a dashboard sends them, with a signed-in
//! ANALYST's access token (checked against the member's session on every request) rather than
//! a READ API key.

use anyhow::Context;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::app::App;
use crate::auth::Role;

pub const EMAIL: &str = "analyst@bench.example.com";
const PASSWORD: &str = "bench-analyst-password";

/// The bench tenant's ANALYST, made the first time.
pub async fn ensure(app: &App, tenant: Uuid) -> anyhow::Result<()> {
    crate::accounts::members::ensure_with_password(
        app,
        tenant,
        Role::Analyst,
        "Bench Analyst",
        EMAIL,
        PASSWORD,
    )
    .await?;
    Ok(())
}

/// Signs the bench tenant's ANALYST (made the first time) in to the server at `graphql`.
pub async fn access_token(app: &App, tenant: Uuid, graphql: &str) -> anyhow::Result<String> {
    ensure(app, tenant).await?;
    let query = "mutation($i: LogInInput!) { logIn(input: $i) { accessToken } }";
    let input = json!({ "tenantSlug": super::SLUG, "email": EMAIL, "password": PASSWORD });
    let answer: Value = reqwest::Client::new()
        .post(graphql)
        .json(&json!({ "query": query, "variables": { "i": input } }))
        .send()
        .await?
        .json()
        .await?;
    answer["data"]["logIn"]["accessToken"]
        .as_str()
        .map(str::to_string)
        .with_context(|| format!("the bench analyst could not sign in: {answer}"))
}
