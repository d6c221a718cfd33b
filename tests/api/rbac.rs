//! Every role against every guarded field and mutation of the contract's role table.

use serde_json::{Value, json};

use crate::harness::{PASSWORD, Session, TestApp, codes, codes_at};

struct Team {
    t: TestApp,
    owner: Session,
    admin: Session,
    analyst: Session,
    viewer: Session,
}

async fn team() -> Team {
    let t = TestApp::spawn().await;
    let owner = t.sign_up("acme").await;
    let admin = t.member(&owner, "acme", "ADMIN").await;
    let analyst = t.member(&owner, "acme", "ANALYST").await;
    let viewer = t.member(&owner, "acme", "VIEWER").await;
    Team {
        t,
        owner,
        admin,
        analyst,
        viewer,
    }
}

impl Team {
    fn all(&self) -> [(&'static str, &Session); 4] {
        [
            ("OWNER", &self.owner),
            ("ADMIN", &self.admin),
            ("ANALYST", &self.analyst),
            ("VIEWER", &self.viewer),
        ]
    }
}

fn is_admin_plus(role: &str) -> bool {
    matches!(role, "OWNER" | "ADMIN")
}

#[tokio::test]
async fn emails_are_for_admins_and_oneself() {
    let team = team().await;
    for (role, s) in team.all() {
        let resp = team
            .t
            .op(
                Some(&s.access),
                "tenant.graphql",
                "Members",
                json!({ "first": 10 }),
            )
            .await;
        let edges = resp["data"]["tenant"]["members"]["edges"]
            .as_array()
            .unwrap()
            .clone();
        assert_eq!(edges.len(), 4, "{role}: {resp}");
        assert_eq!(resp["data"]["tenant"]["members"]["totalCount"], 4);
        for (i, edge) in edges.iter().enumerate() {
            let node = &edge["node"];
            assert!(node["name"].is_string() && node["role"].is_string());
            let own = node["id"] == s.user_id.as_str();
            let path = [
                "tenant",
                "members",
                "edges",
                &i.to_string(),
                "node",
                "email",
            ];
            if is_admin_plus(role) || own {
                assert!(node["email"].is_string(), "{role} should see {node}");
                assert!(codes_at(&resp, &path).is_empty());
            } else {
                assert!(node["email"].is_null(), "{role} must not see {node}");
                assert_eq!(codes_at(&resp, &path), ["FORBIDDEN"], "{resp}");
            }
        }
        // Team is what every member may send: names and roles, no error.
        let team_resp = team
            .t
            .op(Some(&s.access), "tenant.graphql", "Team", json!({}))
            .await;
        assert!(team_resp["errors"].is_null(), "{role}: {team_resp}");
        assert_eq!(
            team_resp["data"]["tenant"]["members"]["edges"]
                .as_array()
                .unwrap()
                .len(),
            4
        );
    }
}

#[tokio::test]
async fn api_keys_and_audit_log_are_for_admins() {
    let team = team().await;
    for (role, s) in team.all() {
        let keys = team
            .t
            .op(Some(&s.access), "tenant.graphql", "ApiKeys", json!({}))
            .await;
        let audit = team
            .t
            .op(
                Some(&s.access),
                "tenant.graphql",
                "AuditLog",
                json!({ "first": 5 }),
            )
            .await;
        // The rest of the response survives a refused field.
        assert_eq!(
            keys["data"]["tenant"]["id"],
            s.tenant_id.as_str(),
            "{role}: {keys}"
        );
        if is_admin_plus(role) {
            assert!(
                keys["errors"].is_null() && keys["data"]["tenant"]["apiKeys"].is_array(),
                "{role}: {keys}"
            );
            assert!(audit["errors"].is_null(), "{role}: {audit}");
            assert!(
                !audit["data"]["auditLog"]["edges"]
                    .as_array()
                    .unwrap()
                    .is_empty()
            );
        } else {
            assert!(keys["data"]["tenant"]["apiKeys"].is_null());
            assert_eq!(
                codes_at(&keys, &["tenant", "apiKeys"]),
                ["FORBIDDEN"],
                "{keys}"
            );
            assert!(audit["data"]["auditLog"].is_null());
            assert_eq!(codes_at(&audit, &["auditLog"]), ["FORBIDDEN"], "{audit}");
        }
        let tenants = team
            .t
            .op(Some(&s.access), "tenant.graphql", "Tenants", json!({}))
            .await;
        assert!(tenants["data"]["tenants"].is_null());
        assert_eq!(
            codes_at(&tenants, &["tenants"]),
            ["FORBIDDEN"],
            "{role}: {tenants}"
        );
    }
}

#[tokio::test]
async fn settings_and_keys_are_changed_by_admins_only() {
    let team = team().await;
    for (role, s) in team.all() {
        let update = team
            .t
            .op(
                Some(&s.access),
                "tenant.graphql",
                "UpdateTenant",
                json!({ "input": { "name": format!("Acme by {role}") } }),
            )
            .await;
        let create = team
            .t
            .op(
                Some(&s.access),
                "tenant.graphql",
                "CreateApiKey",
                json!({ "input": { "name": role, "scopes": ["READ"] } }),
            )
            .await;
        if is_admin_plus(role) {
            assert_eq!(
                update["data"]["updateTenant"]["name"],
                format!("Acme by {role}"),
                "{update}"
            );
            assert!(
                create["data"]["createApiKey"]["secret"]
                    .as_str()
                    .unwrap()
                    .starts_with("fwk_")
            );
        } else {
            assert_eq!(codes(&update), ["FORBIDDEN"], "{role}: {update}");
            assert_eq!(codes(&create), ["FORBIDDEN"], "{role}: {create}");
        }
    }
}

async fn add(t: &TestApp, by: &Session, role: &str) -> Value {
    let email = format!("new-{}@acme.example.com", uuid::Uuid::new_v4().simple());
    t.op(
        Some(&by.access),
        "tenant.graphql",
        "AddMember",
        json!({ "input": {
        "name": "New", "email": email, "role": role, "password": PASSWORD } }),
    )
    .await
}

#[tokio::test]
async fn only_owners_grant_or_revoke_owner_and_admin() {
    let team = team().await;
    let t = &team.t;
    for role in ["OWNER", "ADMIN", "ANALYST", "VIEWER"] {
        let by_owner = add(t, &team.owner, role).await;
        assert_eq!(by_owner["data"]["addMember"]["role"], role, "{by_owner}");
        let by_admin = add(t, &team.admin, role).await;
        if role == "OWNER" || role == "ADMIN" {
            assert_eq!(codes(&by_admin), ["FORBIDDEN"], "{by_admin}");
        } else {
            assert_eq!(by_admin["data"]["addMember"]["role"], role);
        }
        for s in [&team.analyst, &team.viewer] {
            assert_eq!(codes(&add(t, s, "VIEWER").await), ["FORBIDDEN"]);
        }
    }

    let role_change = |by: &Session, user: &str, role: &str| {
        let (by, user, role) = (by.access.clone(), user.to_string(), role.to_string());
        async move {
            t.op(
                Some(&by),
                "tenant.graphql",
                "UpdateMemberRole",
                json!({ "userId": user, "role": role }),
            )
            .await
        }
    };
    // An admin may move people between ANALYST and VIEWER, not into or out of ADMIN/OWNER.
    let ok = role_change(&team.admin, &team.viewer.user_id, "ANALYST").await;
    assert_eq!(ok["data"]["updateMemberRole"]["role"], "ANALYST", "{ok}");
    assert_eq!(
        codes(&role_change(&team.admin, &team.viewer.user_id, "ADMIN").await),
        ["FORBIDDEN"]
    );
    assert_eq!(
        codes(&role_change(&team.admin, &team.owner.user_id, "VIEWER").await),
        ["FORBIDDEN"]
    );
    assert_eq!(
        codes(&role_change(&team.analyst, &team.viewer.user_id, "VIEWER").await),
        ["FORBIDDEN"]
    );
    let promoted = role_change(&team.owner, &team.analyst.user_id, "ADMIN").await;
    assert_eq!(promoted["data"]["updateMemberRole"]["role"], "ADMIN");
}

#[tokio::test]
async fn the_last_owner_stays() {
    let t = TestApp::spawn().await;
    let owner = t.sign_up("solo").await;
    let admin = t.member(&owner, "solo", "ADMIN").await;
    let remove_self = t
        .op(
            Some(&owner.access),
            "tenant.graphql",
            "RemoveMember",
            json!({ "userId": owner.user_id }),
        )
        .await;
    assert_eq!(codes(&remove_self), ["BAD_USER_INPUT"], "{remove_self}");
    assert!(
        remove_self["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("last OWNER")
    );
    let demote = t
        .op(
            Some(&owner.access),
            "tenant.graphql",
            "UpdateMemberRole",
            json!({ "userId": owner.user_id, "role": "ADMIN" }),
        )
        .await;
    assert_eq!(codes(&demote), ["BAD_USER_INPUT"], "{demote}");
    let by_admin = t
        .op(
            Some(&admin.access),
            "tenant.graphql",
            "RemoveMember",
            json!({ "userId": owner.user_id }),
        )
        .await;
    assert_eq!(codes(&by_admin), ["FORBIDDEN"]);

    // With a second owner, the first may step down.
    let promote = t
        .op(
            Some(&owner.access),
            "tenant.graphql",
            "UpdateMemberRole",
            json!({ "userId": admin.user_id, "role": "OWNER" }),
        )
        .await;
    assert!(promote["errors"].is_null(), "{promote}");
    let step_down = t
        .op(
            Some(&owner.access),
            "tenant.graphql",
            "UpdateMemberRole",
            json!({ "userId": owner.user_id, "role": "ADMIN" }),
        )
        .await;
    assert_eq!(
        step_down["data"]["updateMemberRole"]["role"], "ADMIN",
        "{step_down}"
    );
}

#[tokio::test]
async fn removal_and_role_changes_end_sessions_at_once() {
    let team = team().await;
    let t = &team.t;
    let removed = t
        .op(
            Some(&team.owner.access),
            "tenant.graphql",
            "RemoveMember",
            json!({ "userId": team.viewer.user_id }),
        )
        .await;
    assert_eq!(removed["data"]["removeMember"], true, "{removed}");
    let refresh = t.refresh(&team.viewer.refresh).await;
    assert_eq!(codes(&refresh), ["UNAUTHENTICATED"]);
    let login = t.log_in("acme", &team.viewer.email, PASSWORD).await;
    assert_eq!(codes(&login), ["UNAUTHENTICATED"]);

    let changed = t
        .op(
            Some(&team.owner.access),
            "tenant.graphql",
            "UpdateMemberRole",
            json!({ "userId": team.analyst.user_id, "role": "VIEWER" }),
        )
        .await;
    assert!(changed["errors"].is_null(), "{changed}");
    let refresh = t.refresh(&team.analyst.refresh).await;
    assert_eq!(codes(&refresh), ["UNAUTHENTICATED"]);
    // Logging in again gives a token with the new role.
    let again = t.log_in("acme", &team.analyst.email, PASSWORD).await;
    assert_eq!(again["data"]["logIn"]["user"]["role"], "VIEWER");
}

#[tokio::test]
async fn operators_list_every_tenant() {
    let t = TestApp::spawn().await;
    let ops = t.sign_up("ops").await;
    t.sign_up("acme").await;
    t.sign_up("globex").await;
    let op = t.make_operator("ops", &ops).await;
    let resp = t
        .op(
            Some(&op.access),
            "tenant.graphql",
            "Tenants",
            json!({ "first": 2 }),
        )
        .await;
    assert!(resp["errors"].is_null(), "{resp}");
    let page = &resp["data"]["tenants"];
    assert_eq!(page["totalCount"], 3);
    assert_eq!(page["pageInfo"]["hasNextPage"], true);
    let slugs: Vec<&str> = page["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["node"]["slug"].as_str().unwrap())
        .collect();
    assert_eq!(slugs, ["ops", "acme"]);
    assert_eq!(page["edges"][0]["node"]["memberCount"], 1);
    assert_eq!(page["edges"][0]["node"]["eventCount"], 0);
    let next = t
        .op(
            Some(&op.access),
            "tenant.graphql",
            "Tenants",
            json!({ "first": 2, "after": page["pageInfo"]["endCursor"] }),
        )
        .await;
    let rest: Vec<&str> = next["data"]["tenants"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["node"]["slug"].as_str().unwrap())
        .collect();
    assert_eq!(rest, ["globex"]);
    assert_eq!(next["data"]["tenants"]["pageInfo"]["hasNextPage"], false);
}

#[tokio::test]
async fn api_keys_read_but_do_not_administer() {
    let t = TestApp::spawn().await;
    let owner = t.sign_up("acme").await;
    let created = t
        .op(
            Some(&owner.access),
            "tenant.graphql",
            "CreateApiKey",
            json!({ "input": { "name": "dashboards", "scopes": ["READ"] } }),
        )
        .await;
    let secret = created["data"]["createApiKey"]["secret"]
        .as_str()
        .unwrap()
        .to_string();
    let key_id = created["data"]["createApiKey"]["apiKey"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let tenant = t
        .gql(Some(&secret), "{ tenant { id name } }", json!({}))
        .await;
    assert_eq!(
        tenant["data"]["tenant"]["id"],
        owner.tenant_id.as_str(),
        "{tenant}"
    );
    let me = t.op(Some(&secret), "auth.graphql", "Me", json!({})).await;
    assert_eq!(codes(&me), ["FORBIDDEN"]);
    let add = add(
        &t,
        &Session {
            access: secret.clone(),
            ..owner.clone()
        },
        "VIEWER",
    )
    .await;
    assert_eq!(codes(&add), ["FORBIDDEN"]);

    let listed = t
        .op(Some(&owner.access), "tenant.graphql", "ApiKeys", json!({}))
        .await;
    let key = &listed["data"]["tenant"]["apiKeys"][0];
    assert!(key["lastUsedAt"].is_string(), "use is recorded: {listed}");
    assert!(
        !listed.to_string().contains(&secret),
        "the secret is never shown again"
    );

    let ingest_only = t
        .op(
            Some(&owner.access),
            "tenant.graphql",
            "CreateApiKey",
            json!({ "input": { "name": "sdk", "scopes": ["INGEST"] } }),
        )
        .await;
    let ingest_secret = ingest_only["data"]["createApiKey"]["secret"]
        .as_str()
        .unwrap();
    let refused = t
        .gql(Some(ingest_secret), "{ tenant { id } }", json!({}))
        .await;
    assert_eq!(codes(&refused), ["FORBIDDEN"]);

    let revoked = t
        .op(
            Some(&owner.access),
            "tenant.graphql",
            "RevokeApiKey",
            json!({ "id": key_id }),
        )
        .await;
    assert_eq!(revoked["data"]["revokeApiKey"], true);
    let after = t.gql(Some(&secret), "{ tenant { id } }", json!({})).await;
    assert_eq!(codes(&after), ["UNAUTHENTICATED"]);
    assert!(
        after["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("revoked")
    );
}

#[tokio::test]
async fn only_an_owner_deletes_the_tenant() {
    let t = TestApp::spawn().await;
    let owner = t.sign_up("doomed").await;
    let admin = t.member(&owner, "doomed", "ADMIN").await;
    let other = t.sign_up("survivor").await;
    let sent = t
        .op(
            Some(&owner.access),
            "ingest.graphql",
            "IngestEvents",
            json!({ "events": [
            { "name": "login", "userId": "u1" }, { "name": "login", "userId": "u2" }
        ] }),
        )
        .await;
    assert_eq!(sent["data"]["ingestEvents"]["accepted"], 2, "{sent}");
    let delete = "mutation($s: String!) { deleteTenant(confirmSlug: $s) }";
    let by_admin = t
        .gql(Some(&admin.access), delete, json!({ "s": "doomed" }))
        .await;
    assert_eq!(codes(&by_admin), ["FORBIDDEN"]);
    let wrong_slug = t
        .gql(Some(&owner.access), delete, json!({ "s": "survivor" }))
        .await;
    assert_eq!(codes(&wrong_slug), ["BAD_USER_INPUT"]);
    let done = t
        .gql(Some(&owner.access), delete, json!({ "s": "doomed" }))
        .await;
    assert_eq!(done["data"]["deleteTenant"], true, "{done}");

    let login = t.log_in("doomed", &owner.email, PASSWORD).await;
    assert_eq!(codes(&login), ["UNAUTHENTICATED"]);
    let pg = t.pg().await;
    let left: i64 = pg
        .query_one(
            "SELECT count(*) FROM members WHERE tenant_id = $1::text::uuid",
            &[&owner.tenant_id],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(left, 0);
    for table in [
        "events",
        "end_users",
        "user_days",
        "active_transitions",
        "event_counts_daily",
        "daily_activity",
        "segment_days",
        "segment_counts_daily",
        "segment_counts_all",
        "segment_user_days",
        "segment_transitions",
        "pending_segments",
        "pending_users",
    ] {
        let rows: i64 = pg
            .query_one(
                &format!("SELECT count(*) FROM {table} WHERE tenant_id = $1::text::uuid"),
                &[&owner.tenant_id],
            )
            .await
            .unwrap()
            .get(0);
        assert_eq!(rows, 0, "{table} keeps rows of a deleted tenant");
    }
    let audit: String = pg
        .query_one(
            "SELECT action FROM audit_log WHERE target_id = $1 AND tenant_id IS NULL",
            &[&owner.tenant_id],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(audit, "tenant.delete");
    let me = t
        .op(Some(&other.access), "auth.graphql", "Me", json!({}))
        .await;
    assert!(me["errors"].is_null(), "other tenants are untouched: {me}");
}

/// A key checked moments ago costs no database statement; revoking it is felt at once.
#[tokio::test]
async fn a_checked_api_key_is_remembered_until_revoked() {
    let t = TestApp::spawn().await;
    let owner = t.sign_up("keyed").await;
    let created = t
        .op(
            Some(&owner.access),
            "tenant.graphql",
            "CreateApiKey",
            json!({ "input": { "name": "widgets", "scopes": ["READ"] } }),
        )
        .await;
    let secret = created["data"]["createApiKey"]["secret"].as_str().unwrap();
    let key_id = created["data"]["createApiKey"]["apiKey"]["id"]
        .as_str()
        .unwrap();
    // `__typename` reads nothing: what a request costs is its authentication.
    let cost = async || {
        let before = t.statements();
        let resp = t.gql(Some(secret), "{ __typename }", json!({})).await;
        (t.statements() - before, resp)
    };
    let (first, resp) = cost().await;
    assert!(resp["errors"].is_null(), "{resp}");
    assert!(first > 0, "the first use looks the key up");
    let (second, resp) = cost().await;
    assert!(resp["errors"].is_null(), "{resp}");
    assert_eq!(second, 0, "the second use is answered from memory");
    // Past the memory's life the key is looked up again (its last use is recent, so it is not
    // written), and remembered again.
    tokio::time::sleep(fahwa::auth::key_grants::GRANT_TTL + std::time::Duration::from_millis(200))
        .await;
    let (third, _) = cost().await;
    assert!(third > 0, "an expired memory looks the key up");
    let (fourth, _) = cost().await;
    assert_eq!(fourth, 0, "a key looked up again is remembered again");

    let revoked = t
        .op(
            Some(&owner.access),
            "tenant.graphql",
            "RevokeApiKey",
            json!({ "id": key_id }),
        )
        .await;
    assert_eq!(revoked["data"]["revokeApiKey"], true);
    let after = t.gql(Some(secret), "{ tenant { id } }", json!({})).await;
    assert_eq!(codes(&after), ["UNAUTHENTICATED"], "{after}");
}
