//! Allow-list mode: only the operations `fahwa trust-documents` registered run, by hash or by
//! their registered text, over HTTP and WebSocket; introspection and the playground can be off.

use serde_json::{Value, json};

use crate::harness::{TestApp, codes};

async fn post(t: &TestApp, token: Option<&str>, body: Value) -> Value {
    let mut request = t
        .client
        .post(format!("{}/api/v1/graphql", t.base))
        .json(&body);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    request.send().await.unwrap().json().await.unwrap()
}

fn by_hash(hash: &str, name: &str) -> Value {
    json!({
        "operationName": name,
        "variables": {},
        "extensions": { "persistedQuery": { "version": 1, "sha256Hash": hash } },
    })
}

#[tokio::test]
async fn in_allow_list_mode_only_registered_operations_run() {
    let t = TestApp::spawn_configured(|c| {
        c.trusted_documents = true;
        c.introspection = false;
        c.playground = false;
    })
    .await;
    let file = std::env::temp_dir().join(format!("manifest-{}.json", uuid::Uuid::new_v4()));
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_fahwa"))
        .args(["trust-documents", "--dir"])
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/contract"))
        .arg("--manifest")
        .arg(&file)
        .env("FAHWA_DATABASE_URL", &t.db_url)
        .env("FAHWA_JWT_SECRET", t.jwt_secret())
        .env_remove("FAHWA_REDIS_URL")
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let manifest: Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    let _ = std::fs::remove_file(&file);
    let me = manifest["Me"]
        .as_str()
        .expect("the contract's Me operation")
        .to_string();
    assert!(manifest.as_object().unwrap().len() >= 30, "{manifest}");
    // Registering again adds nothing.
    let again = tokio::process::Command::new(env!("CARGO_BIN_EXE_fahwa"))
        .args(["trust-documents", "--dir"])
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/contract"))
        .env("FAHWA_DATABASE_URL", &t.db_url)
        .env("FAHWA_JWT_SECRET", t.jwt_secret())
        .output()
        .await
        .unwrap();
    assert!(
        String::from_utf8_lossy(&again.stdout).contains("0 of them new"),
        "{}",
        String::from_utf8_lossy(&again.stdout)
    );

    // Signing up is a registered mutation, sent by hash.
    let sign_up = manifest["SignUp"].as_str().expect("SignUp").to_string();
    let mut body = by_hash(&sign_up, "SignUp");
    body["variables"] = json!({ "input": {
        "tenantName": "Acme", "tenantSlug": "acme", "name": "Owner",
        "email": "owner@acme.example.com", "password": crate::harness::PASSWORD,
    }});
    let r = post(&t, None, body).await;
    let token = r["data"]["signUp"]["accessToken"]
        .as_str()
        .unwrap_or_else(|| panic!("{r}"))
        .to_string();
    let r = post(&t, Some(&token), by_hash(&me, "Me")).await;
    assert!(r["data"]["me"]["id"].is_string(), "{r}");

    // Anything else is refused before it runs: ad-hoc text, unknown hashes, introspection.
    let refused = [
        json!({ "query": "{ me { id email } }" }),
        by_hash(&"0".repeat(64), "Me"),
        json!({ "query": "{ __schema { types { name } } }" }),
    ];
    for body in refused {
        let r = post(&t, Some(&token), body.clone()).await;
        assert_eq!(codes(&r), ["FORBIDDEN"], "{body}: {r}");
        assert!(r["data"].is_null(), "{r}");
    }
    let playground = t.get("/playground").await;
    assert_eq!(playground.status().as_u16(), 404);
}

#[tokio::test]
async fn introspection_can_be_turned_off_alone() {
    let t = TestApp::spawn_configured(|c| c.introspection = false).await;
    let owner = t.sign_up("acme").await;
    let introspect = "{ __schema { queryType { name } } }";
    let r = t.gql(Some(&owner.access), introspect, json!({})).await;
    assert!(r["data"]["__schema"].is_null(), "{r}");
    let open = TestApp::spawn().await;
    let someone = open.sign_up("acme").await;
    let r = open.gql(Some(&someone.access), introspect, json!({})).await;
    assert_eq!(r["data"]["__schema"]["queryType"]["name"], "Query", "{r}");
    let r = t.gql(Some(&owner.access), "{ me { id } }", json!({})).await;
    assert!(r["data"]["me"]["id"].is_string(), "{r}");
}
