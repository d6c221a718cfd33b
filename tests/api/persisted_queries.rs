//! Automatic persisted queries as Apollo Client's persisted-query link speaks them: the hash
//! first, `PersistedQueryNotFound` (which makes the link send the query), then the hash alone
//! on any instance, over POST and GET.

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::harness::{TestApp, codes};

const ME: &str = "query Me { me { id } }";

fn hash(query: &str) -> String {
    hex::encode(Sha256::digest(query.as_bytes()))
}

fn extensions(query: &str) -> Value {
    json!({ "persistedQuery": { "version": 1, "sha256Hash": hash(query) } })
}

async fn post(t: &TestApp, token: &str, body: Value) -> (u16, Option<String>, Value) {
    let resp = t.post("/api/v1/graphql", token, &body).await;
    let status = resp.status().as_u16();
    let cache = resp
        .headers()
        .get("cache-control")
        .map(|v| v.to_str().unwrap().to_string());
    (status, cache, resp.json().await.unwrap())
}

async fn get(t: &TestApp, token: &str, params: &[(&str, String)]) -> (u16, Value) {
    let resp = t
        .client
        .get(format!("{}/api/v1/graphql", t.base))
        .bearer_auth(token)
        .query(params)
        .send()
        .await
        .unwrap();
    (resp.status().as_u16(), resp.json().await.unwrap())
}

#[tokio::test]
async fn a_hash_is_asked_for_once_then_served_on_every_instance() {
    let a = TestApp::spawn().await;
    let b = a.peer().await;
    let s = a.sign_up("acme").await;
    let hashed = json!({ "operationName": "Me", "extensions": extensions(ME) });

    let (status, cache, r) = post(&a, &s.access, hashed.clone()).await;
    assert_eq!(status, 200);
    assert_eq!(r["errors"][0]["message"], "PersistedQueryNotFound", "{r}");
    assert_eq!(codes(&r), ["PERSISTED_QUERY_NOT_FOUND"]);
    assert_eq!(cache.as_deref(), Some("private, no-cache, must-revalidate"));

    let mut full = hashed.clone();
    full["query"] = json!(ME);
    let (status, _, r) = post(&a, &s.access, full).await;
    assert_eq!(
        (status, &r["data"]["me"]["id"]),
        (200, &json!(s.user_id)),
        "{r}"
    );

    // The other instance knows it too, over POST and GET.
    let (_, _, r) = post(&b, &s.access, hashed).await;
    assert_eq!(r["data"]["me"]["id"], json!(s.user_id), "{r}");
    let (status, r) = get(
        &b,
        &s.access,
        &[
            ("operationName", "Me".into()),
            ("variables", "{}".into()),
            ("extensions", extensions(ME).to_string()),
        ],
    )
    .await;
    assert_eq!(
        (status, &r["data"]["me"]["id"]),
        (200, &json!(s.user_id)),
        "{r}"
    );
}

#[tokio::test]
async fn hashes_that_lie_or_mutate_over_get_are_refused() {
    let t = TestApp::spawn().await;
    let s = t.sign_up("acme").await;
    let lie = json!({ "query": ME, "extensions": extensions("{ __typename }") });
    let (status, _, r) = post(&t, &s.access, lie).await;
    assert_eq!(status, 400);
    assert_eq!(codes(&r), ["BAD_USER_INPUT"], "{r}");
    let version = json!({ "query": ME, "extensions": { "persistedQuery": { "version": 2, "sha256Hash": hash(ME) } } });
    let (status, _, r) = post(&t, &s.access, version).await;
    assert_eq!(
        (status, codes(&r)),
        (400, vec!["BAD_USER_INPUT".to_string()]),
        "{r}"
    );

    // A mutation registered over POST still may not run from a GET.
    let rename = "mutation Rename { updateTenant(input: { name: \"Renamed\" }) { name } }";
    let (_, _, r) = post(
        &t,
        &s.access,
        json!({ "query": rename, "extensions": extensions(rename) }),
    )
    .await;
    assert_eq!(r["data"]["updateTenant"]["name"], "Renamed", "{r}");
    let (status, r) = get(
        &t,
        &s.access,
        &[("extensions", extensions(rename).to_string())],
    )
    .await;
    assert_eq!(status, 405, "{r}");
}

#[tokio::test]
async fn without_redis_hashes_are_kept_in_process() {
    let t = TestApp::spawn_with(false).await;
    let s = t.sign_up("acme").await;
    let (_, _, r) = post(
        &t,
        &s.access,
        json!({ "query": ME, "extensions": extensions(ME) }),
    )
    .await;
    assert!(r["errors"].is_null(), "{r}");
    let (_, _, r) = post(&t, &s.access, json!({ "extensions": extensions(ME) })).await;
    assert_eq!(r["data"]["me"]["id"], json!(s.user_id), "{r}");
}
