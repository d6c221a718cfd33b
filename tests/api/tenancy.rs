//! Isolation: other tenants' IDs are not found, and row-level security holds even for a query
//! that forgets its tenant.

use serde_json::json;

use crate::harness::{TestApp, codes};

#[tokio::test]
async fn other_tenants_ids_are_not_found() {
    let t = TestApp::spawn().await;
    let acme = t.sign_up("acme").await;
    let globex = t.sign_up("globex").await;
    let globex_viewer = t.member(&globex, "globex", "VIEWER").await;
    let key = t
        .op(
            Some(&globex.access),
            "tenant.graphql",
            "CreateApiKey",
            json!({ "input": { "name": "k", "scopes": ["READ"] } }),
        )
        .await;
    let key_id = key["data"]["createApiKey"]["apiKey"]["id"]
        .as_str()
        .unwrap();

    let attempts = [
        t.op(
            Some(&acme.access),
            "tenant.graphql",
            "UpdateMemberRole",
            json!({ "userId": globex_viewer.user_id, "role": "ANALYST" }),
        )
        .await,
        t.op(
            Some(&acme.access),
            "tenant.graphql",
            "RemoveMember",
            json!({ "userId": globex_viewer.user_id }),
        )
        .await,
        t.op(
            Some(&acme.access),
            "tenant.graphql",
            "RevokeApiKey",
            json!({ "id": key_id }),
        )
        .await,
    ];
    for resp in &attempts {
        assert_eq!(codes(resp), ["NOT_FOUND"], "{resp}");
    }
    // What is not an ID at all is the caller's mistake, whoever's it could have been.
    let malformed = t
        .op(
            Some(&acme.access),
            "tenant.graphql",
            "RemoveMember",
            json!({ "userId": "not-a-uuid" }),
        )
        .await;
    assert_eq!(codes(&malformed), ["BAD_USER_INPUT"], "{malformed}");
    assert!(
        malformed["errors"][0]["message"]
            .as_str()
            .unwrap()
            .starts_with("userId:")
    );
    // Nothing changed on the other side.
    let team = t
        .op(Some(&globex.access), "tenant.graphql", "Members", json!({}))
        .await;
    let roles: Vec<&str> = team["data"]["tenant"]["members"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["node"]["role"].as_str().unwrap())
        .collect();
    assert_eq!(roles, ["OWNER", "VIEWER"]);
    let keys = t
        .op(Some(&globex.access), "tenant.graphql", "ApiKeys", json!({}))
        .await;
    assert!(keys["data"]["tenant"]["apiKeys"][0]["revokedAt"].is_null());

    // Each tenant's lists hold only its own rows.
    let acme_team = t
        .op(Some(&acme.access), "tenant.graphql", "Members", json!({}))
        .await;
    assert_eq!(acme_team["data"]["tenant"]["members"]["totalCount"], 1);
    let acme_audit = t
        .op(
            Some(&acme.access),
            "tenant.graphql",
            "AuditLog",
            json!({ "first": 100 }),
        )
        .await;
    assert!(!acme_audit.to_string().contains("globex"), "{acme_audit}");
}

#[tokio::test]
async fn row_level_security_hides_rows_without_the_tenant_setting() {
    let t = TestApp::spawn().await;
    let acme = t.sign_up("acme").await;
    t.sign_up("globex").await;
    let pg = t.pg().await;
    let total: i64 = pg
        .query_one("SELECT count(*) FROM members", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(total, 2, "the superuser sees every row");

    pg.batch_execute("SET ROLE fahwa_app").await.unwrap();
    for table in [
        "tenants",
        "members",
        "refresh_tokens",
        "api_keys",
        "audit_log",
        "tenant_usage",
    ] {
        let n: i64 = pg
            .query_one(&format!("SELECT count(*) FROM {table}"), &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(n, 0, "{table} leaks rows without a tenant setting");
    }
    pg.batch_execute(&format!(
        "BEGIN; SELECT set_config('fahwa.tenant_id', '{}', true)",
        acme.tenant_id
    ))
    .await
    .unwrap();
    let n: i64 = pg
        .query_one("SELECT count(*) FROM members", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 1, "only acme's member");
    let slugs: Vec<String> = pg
        .query("SELECT slug FROM tenants", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(slugs, ["acme"]);
    // Writing into another tenant is refused by the policy.
    let err = pg
        .batch_execute("INSERT INTO tenant_usage (tenant_id) SELECT gen_random_uuid()")
        .await
        .unwrap_err();
    let message = err
        .as_db_error()
        .map(|e| e.message().to_string())
        .unwrap_or_default();
    assert!(message.contains("row-level security"), "{message}");
    pg.batch_execute("ROLLBACK").await.unwrap();
}
