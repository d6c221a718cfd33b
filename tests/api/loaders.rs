//! The statements one request sends do not grow with the rows it returns.

use serde_json::json;

use crate::harness::{PASSWORD, TestApp};

/// Statements sent while serving `query` (the test's own pool is separate), the session
/// check's included.
async fn statements_for(t: &TestApp, token: &str, query: &str) -> (u64, serde_json::Value) {
    let (n, resp) = t
        .statements_during(t.gql(Some(token), query, json!({})))
        .await;
    assert!(resp["errors"].is_null(), "{resp}");
    (n, resp)
}

const AUDIT_WITH_ACTORS: &str =
    "{ auditLog(first: 100) { edges { node { action actor { id name tenant { slug } } } } } }";

#[tokio::test]
async fn audit_actors_are_batched() {
    let t = TestApp::spawn().await;
    let owner = t.sign_up("acme").await;
    let admin = t.member(&owner, "acme", "ADMIN").await;
    let (few, resp) = statements_for(&t, &owner.access, AUDIT_WITH_ACTORS).await;
    let rows_few = resp["data"]["auditLog"]["edges"].as_array().unwrap().len();

    // Many more records, by several actors.
    for i in 0..12 {
        let by = if i % 2 == 0 { &owner } else { &admin };
        t.gql(
            Some(&by.access),
            "mutation($n: String!) { updateTenant(input: { name: $n }) { id } }",
            json!({ "n": format!("Acme {i}") }),
        )
        .await;
    }
    let (many, resp) = statements_for(&t, &owner.access, AUDIT_WITH_ACTORS).await;
    let rows_many = resp["data"]["auditLog"]["edges"].as_array().unwrap().len();
    assert!(rows_many >= rows_few + 12);
    assert_eq!(
        few, many,
        "{rows_few} rows took {few} statements, {rows_many} took {many}"
    );
}

const TENANTS_WITH_COUNTS: &str =
    "{ tenants(first: 100) { edges { node { slug memberCount eventCount } } } }";

#[tokio::test]
async fn operator_tenant_list_counts_are_batched() {
    let t = TestApp::spawn().await;
    let ops = t.sign_up("ops").await;
    let op = t.make_operator("ops", &ops).await;
    t.sign_up("t0").await;
    let (few, _) = statements_for(&t, &op.access, TENANTS_WITH_COUNTS).await;
    for i in 1..10 {
        let s = t.sign_up(&format!("t{i}")).await;
        if i % 3 == 0 {
            t.gql(Some(&s.access), "mutation($i: AddMemberInput!) { addMember(input: $i) { id } }", json!({ "i": {
                "name": "M", "email": format!("m@t{i}.example.com"), "role": "VIEWER", "password": PASSWORD } })).await;
        }
    }
    let (many, resp) = statements_for(&t, &op.access, TENANTS_WITH_COUNTS).await;
    let nodes = resp["data"]["tenants"]["edges"].as_array().unwrap();
    assert_eq!(nodes.len(), 11);
    let t3 = nodes.iter().find(|e| e["node"]["slug"] == "t3").unwrap();
    assert_eq!(t3["node"]["memberCount"], 2);
    assert!(few > 0, "the statement counter counts");
    assert_eq!(few, many, "2 tenants took {few} statements, 11 took {many}");
}
