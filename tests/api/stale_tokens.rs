//! An access token's claims are a cache of who its bearer is: a demoted, removed or signed-out
//! member, or one whose tenant is gone, loses the old rights on every instance within two
//! seconds, and no mutation ever acts on a role the database no longer holds.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::harness::{PASSWORD, Session, TestApp, codes};

async fn role_change(t: &TestApp, token: &str, user: &str, role: &str) -> Value {
    t.op(
        Some(token),
        "tenant.graphql",
        "UpdateMemberRole",
        json!({ "userId": user, "role": role }),
    )
    .await
}

async fn roles(t: &TestApp, token: &str) -> Vec<(String, String)> {
    let r = t.op(Some(token), "tenant.graphql", "Team", json!({})).await;
    let mut out: Vec<(String, String)> = r["data"]["tenant"]["members"]["edges"]
        .as_array()
        .unwrap_or_else(|| panic!("{r}"))
        .iter()
        .map(|e| {
            (
                e["node"]["id"].as_str().unwrap().to_string(),
                e["node"]["role"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    out.sort();
    out
}

/// What the second owner of the issue tried: with the token from before the demotion, make
/// themselves OWNER again and demote the one who demoted them.
#[tokio::test]
async fn a_demoted_owner_cannot_take_the_tenant_with_an_old_token() {
    let t = TestApp::spawn().await;
    let first = t.sign_up("acme").await;
    let second = t.member(&first, "acme", "OWNER").await;
    let demoted = role_change(&t, &first.access, &second.user_id, "VIEWER").await;
    assert!(demoted["errors"].is_null(), "{demoted}");
    let before = roles(&t, &first.access).await;

    let back = role_change(&t, &second.access, &second.user_id, "OWNER").await;
    assert_eq!(codes(&back), ["UNAUTHENTICATED"], "{back}");
    let takeover = role_change(&t, &second.access, &first.user_id, "VIEWER").await;
    assert_eq!(codes(&takeover), ["UNAUTHENTICATED"], "{takeover}");
    assert_eq!(
        roles(&t, &first.access).await,
        before,
        "nothing changed hands"
    );
}

/// The mutation's own transaction decides, not the remembered answer of the session check: a
/// demotion written straight into PostgreSQL (no word to any instance) is seen at once.
#[tokio::test]
async fn a_mutation_acts_on_the_role_its_transaction_reads() {
    let t = TestApp::spawn().await;
    let owner = t.sign_up("acme").await;
    let admin = t.member(&owner, "acme", "ADMIN").await;
    // The session check now remembers the admin's session as standing.
    let me = t
        .gql(Some(&admin.access), "{ me { role } }", json!({}))
        .await;
    assert_eq!(me["data"]["me"]["role"], "ADMIN", "{me}");
    let pg = t.pg().await;
    pg.execute(
        "UPDATE members SET role = 'VIEWER' WHERE id = $1::text::uuid",
        &[&admin.user_id],
    )
    .await
    .unwrap();
    let key = t
        .op(
            Some(&admin.access),
            "tenant.graphql",
            "CreateApiKey",
            json!({ "input": { "name": "mine", "scopes": ["INGEST"] } }),
        )
        .await;
    // FORBIDDEN from the transaction; on a machine so slow that the remembered answer
    // expired first, the session check refuses the token itself (its role is not the row's).
    let refused = codes(&key);
    assert!(
        refused == ["FORBIDDEN"] || refused == ["UNAUTHENTICATED"],
        "{key}"
    );
    pg.execute(
        "UPDATE refresh_tokens SET revoked_at = now() WHERE member_id = $1::text::uuid",
        &[&admin.user_id],
    )
    .await
    .unwrap();
    let ingest = t
        .op(
            Some(&admin.access),
            "ingest.graphql",
            "IngestEvents",
            json!({ "events": [{ "name": "a", "userId": "u" }] }),
        )
        .await;
    assert_eq!(codes(&ingest), ["UNAUTHENTICATED"], "{ingest}");
}

/// Everything the issue saw a removed ADMIN's token still do, over GraphQL and REST.
#[tokio::test]
async fn a_removed_admin_keeps_no_rights() {
    let t = TestApp::spawn().await;
    let owner = t.sign_up("acme").await;
    let admin = t.member(&owner, "acme", "ADMIN").await;
    let removed = t
        .op(
            Some(&owner.access),
            "tenant.graphql",
            "RemoveMember",
            json!({ "userId": admin.user_id }),
        )
        .await;
    assert!(removed["errors"].is_null(), "{removed}");
    for answer in refused_everywhere(&t, &admin).await {
        assert_eq!(codes(&answer), ["UNAUTHENTICATED"], "{answer}");
    }
    let me = t.gql(Some(&admin.access), "{ me { id } }", json!({})).await;
    assert_eq!(codes(&me), ["UNAUTHENTICATED"], "{me}");
    let resp = t
        .post(
            "/api/v1/events",
            &admin.access,
            &json!({ "events": [{ "name": "a", "userId": "u" }] }),
        )
        .await;
    assert_eq!(resp.status(), 401);
    let stored: i64 = t
        .pg()
        .await
        .query_one("SELECT count(*) FROM api_keys", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(stored, 0);
}

/// The mutations and reads an ADMIN's token could do, each answered.
async fn refused_everywhere(t: &TestApp, s: &Session) -> Vec<Value> {
    let token = Some(s.access.as_str());
    vec![
        t.op(
            token,
            "tenant.graphql",
            "CreateApiKey",
            json!({ "input": { "name": "keep", "scopes": ["READ"] } }),
        )
        .await,
        t.op(
            token,
            "tenant.graphql",
            "AddMember",
            json!({ "input": { "name": "Mallory", "email": "m@acme.example.com", "role": "ADMIN", "password": PASSWORD } }),
        )
        .await,
        t.op(
            token,
            "ingest.graphql",
            "IngestEvents",
            json!({ "events": [{ "name": "a", "userId": "u" }] }),
        )
        .await,
        t.op(token, "tenant.graphql", "Members", json!({ "first": 10 }))
            .await,
        t.op(
            token,
            "tenant.graphql",
            "UpdateTenant",
            json!({ "input": { "name": "Mine now" } }),
        )
        .await,
        t.gql(
            token,
            "mutation { setExchangeRates(rates: [{ currency: \"EUR\", date: \"2026-11-01\", rate: \"1.1\" }]) { __typename } }",
            json!({}),
        )
        .await,
        t.gql(
            token,
            "{ analytics(range: { from: \"2026-11-01T00:00:00Z\", to: \"2026-11-02T00:00:00Z\" }, granularity: DAY) { revenue { ltv } } }",
            json!({}),
        )
        .await,
    ]
}

/// Polls `query` with `token` on `t` until it is refused; returns how long that took.
async fn refused_within(t: &TestApp, token: &str, limit: Duration) -> Duration {
    let started = Instant::now();
    loop {
        let r = t.gql(Some(token), "{ me { id } }", json!({})).await;
        if codes(&r) == ["UNAUTHENTICATED"] {
            return started.elapsed();
        }
        assert!(r["errors"].is_null(), "{r}");
        assert!(started.elapsed() < limit, "still served after {limit:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A log-out, a reused refresh token and a role change on one instance end the session on
/// the other within two seconds, even while the other remembers it as standing.
#[tokio::test]
async fn ended_sessions_end_on_every_instance_within_two_seconds() {
    let a = TestApp::spawn().await;
    let b = a.peer().await;
    let owner = a.sign_up("acme").await;
    let limit = Duration::from_secs(2);

    let out = a.member(&owner, "acme", "ANALYST").await;
    b.gql(Some(&out.access), "{ me { id } }", json!({})).await;
    let r = a
        .op(
            None,
            "auth.graphql",
            "LogOut",
            json!({ "refreshToken": out.refresh }),
        )
        .await;
    assert!(r["errors"].is_null(), "{r}");
    let took = refused_within(&b, &out.access, limit).await;
    println!("log-out reached the other instance in {took:?}");

    let reused = a.member(&owner, "acme", "ANALYST").await;
    b.gql(Some(&reused.access), "{ me { id } }", json!({}))
        .await;
    assert!(a.refresh(&reused.refresh).await["errors"].is_null());
    assert_eq!(
        codes(&a.refresh(&reused.refresh).await),
        ["UNAUTHENTICATED"]
    );
    refused_within(&b, &reused.access, limit).await;

    let demoted = a.member(&owner, "acme", "ADMIN").await;
    b.gql(Some(&demoted.access), "{ me { id } }", json!({}))
        .await;
    let r = role_change(&a, &owner.access, &demoted.user_id, "VIEWER").await;
    assert!(r["errors"].is_null(), "{r}");
    refused_within(&b, &demoted.access, limit).await;

    // The owner's own session stands throughout.
    let me = b.gql(Some(&owner.access), "{ me { id } }", json!({})).await;
    assert!(me["errors"].is_null(), "{me}");
}

/// A deleted tenant's still-valid token is UNAUTHENTICATED everywhere, never INTERNAL or 500.
#[tokio::test]
async fn a_deleted_tenants_token_is_unauthenticated() {
    let t = TestApp::spawn().await;
    let owner = t.sign_up("acme").await;
    let deleted = t
        .gql(
            Some(&owner.access),
            "mutation { deleteTenant(confirmSlug: \"acme\") }",
            json!({}),
        )
        .await;
    assert_eq!(deleted["data"]["deleteTenant"], true, "{deleted}");
    for answer in refused_everywhere(&t, &owner).await {
        assert_eq!(codes(&answer), ["UNAUTHENTICATED"], "{answer}");
    }
    let resp = t
        .post(
            "/api/v1/events",
            &owner.access,
            &json!({ "events": [{ "name": "a", "userId": "u" }] }),
        )
        .await;
    assert_eq!(resp.status(), 401);
}
