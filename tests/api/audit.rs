//! Every mutation leaves one audit record, with who, what, where from, and no secrets.

use serde_json::{Value, json};

use crate::harness::{PASSWORD, TestApp};

async fn actions(t: &TestApp, token: &str) -> Vec<Value> {
    let resp = t
        .op(
            Some(token),
            "tenant.graphql",
            "AuditLog",
            json!({ "first": 100 }),
        )
        .await;
    assert!(resp["errors"].is_null(), "{resp}");
    resp["data"]["auditLog"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["node"].clone())
        .collect()
}

#[tokio::test]
async fn each_mutation_writes_one_record() {
    let t = TestApp::spawn().await;
    let owner = t.sign_up("acme").await;
    let mut expected = vec!["tenant.sign_up"];
    let check = |expected: Vec<&'static str>| {
        let t = &t;
        let token = owner.access.clone();
        async move {
            let got: Vec<String> = actions(t, &token)
                .await
                .iter()
                .map(|n| n["action"].as_str().unwrap().to_string())
                .collect();
            let mut want: Vec<String> = expected.iter().rev().map(|s| s.to_string()).collect();
            // The sign-up of a member via `t.member` logs them in; compare as multisets in order.
            want.sort();
            let mut sorted = got.clone();
            sorted.sort();
            assert_eq!(sorted, want, "audit log newest first: {got:?}");
        }
    };
    check(expected.clone()).await;

    let added = t
        .op(Some(&owner.access), "tenant.graphql", "AddMember", json!({ "input": { "name": "Vi", "email": "vi@acme.example.com", "role": "VIEWER", "password": PASSWORD } }))
        .await;
    let vi = added["data"]["addMember"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    expected.push("member.add");
    check(expected.clone()).await;

    t.op(
        Some(&owner.access),
        "tenant.graphql",
        "UpdateMemberRole",
        json!({ "userId": vi, "role": "ANALYST" }),
    )
    .await;
    expected.push("member.role_change");
    t.op(
        Some(&owner.access),
        "tenant.graphql",
        "UpdateTenant",
        json!({ "input": { "timezone": "Europe/Berlin", "currency": "EUR" } }),
    )
    .await;
    expected.push("tenant.update");
    let key = t
        .op(
            Some(&owner.access),
            "tenant.graphql",
            "CreateApiKey",
            json!({ "input": { "name": "k", "scopes": ["INGEST", "READ"] } }),
        )
        .await;
    let key_id = key["data"]["createApiKey"]["apiKey"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let secret = key["data"]["createApiKey"]["secret"]
        .as_str()
        .unwrap()
        .to_string();
    expected.push("api_key.create");
    t.op(
        Some(&owner.access),
        "tenant.graphql",
        "RevokeApiKey",
        json!({ "id": key_id }),
    )
    .await;
    expected.push("api_key.revoke");
    t.op(
        Some(&owner.access),
        "tenant.graphql",
        "RemoveMember",
        json!({ "userId": vi }),
    )
    .await;
    expected.push("member.remove");
    t.log_in("acme", "owner@acme.example.com", "a wrong password")
        .await;
    expected.push("session.login_failed");
    let login = t.log_in("acme", "owner@acme.example.com", PASSWORD).await;
    expected.push("session.login");
    let refresh = login["data"]["logIn"]["refreshToken"]
        .as_str()
        .unwrap()
        .to_string();
    let rotated = t.refresh(&refresh).await;
    expected.push("session.refresh");
    let new_refresh = rotated["data"]["refreshSession"]["refreshToken"]
        .as_str()
        .unwrap()
        .to_string();
    t.op(
        None,
        "auth.graphql",
        "LogOut",
        json!({ "refreshToken": new_refresh }),
    )
    .await;
    expected.push("session.logout");
    check(expected.clone()).await;

    let all = actions(&t, &owner.access).await;
    let text = serde_json::to_string(&all).unwrap();
    for secret_text in [
        PASSWORD,
        secret.as_str(),
        refresh.as_str(),
        new_refresh.as_str(),
        "a wrong password",
    ] {
        assert!(
            !text.contains(secret_text),
            "a secret reached the audit log"
        );
    }
    let change = all
        .iter()
        .find(|n| n["action"] == "member.role_change")
        .unwrap();
    assert_eq!(change["details"]["from"], "VIEWER");
    assert_eq!(change["details"]["to"], "ANALYST");
    assert_eq!(change["targetId"], vi.as_str());
    assert_eq!(change["actor"]["id"], owner.user_id.as_str());
    assert_eq!(change["ip"], "127.0.0.1");
    let failed = all
        .iter()
        .find(|n| n["action"] == "session.login_failed")
        .unwrap();
    assert!(failed["actor"].is_null());
    assert_eq!(failed["details"]["email"], "owner@acme.example.com");
}

#[tokio::test]
async fn records_carry_the_request_id_and_page_newest_first() {
    let t = TestApp::spawn().await;
    let owner = t.sign_up("acme").await;
    for i in 0..5 {
        let resp = t
            .client
            .post(format!("{}/api/v1/graphql", t.base))
            .bearer_auth(&owner.access)
            .header("x-request-id", format!("req-{i}"))
            .json(&json!({ "query": "mutation($n: String!) { updateTenant(input: { name: $n }) { name } }", "variables": { "n": format!("Acme {i}") } }))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.headers()["x-request-id"], format!("req-{i}").as_str());
    }
    let page1 = t
        .op(
            Some(&owner.access),
            "tenant.graphql",
            "AuditLog",
            json!({ "first": 2 }),
        )
        .await;
    let nodes: Vec<&Value> = page1["data"]["auditLog"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["node"])
        .collect();
    assert_eq!(nodes[0]["details"]["after"]["name"], "Acme 4");
    assert_eq!(nodes[1]["details"]["after"]["name"], "Acme 3");
    let full = t
        .gql(
            Some(&owner.access),
            "{ auditLog(first: 1) { edges { node { requestId userAgent } } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        full["data"]["auditLog"]["edges"][0]["node"]["requestId"],
        "req-4"
    );
    let page2 = t
        .op(
            Some(&owner.access),
            "tenant.graphql",
            "AuditLog",
            json!({ "first": 2, "after": page1["data"]["auditLog"]["pageInfo"]["endCursor"] }),
        )
        .await;
    assert_eq!(
        page2["data"]["auditLog"]["edges"][0]["node"]["details"]["after"]["name"],
        "Acme 2"
    );
    assert_eq!(page2["data"]["auditLog"]["pageInfo"]["hasNextPage"], true);
}
