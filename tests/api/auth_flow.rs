//! Sign-up, log-in, refresh rotation with reuse detection, log-out, and rejected tokens.

use std::time::Instant;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::json;

use crate::harness::{PASSWORD, TestApp, codes, session_from};

#[tokio::test]
async fn sign_up_then_me_shows_the_owner_and_tenant() {
    let t = TestApp::spawn().await;
    let s = t.sign_up("acme").await;
    let me = t.op(Some(&s.access), "auth.graphql", "Me", json!({})).await;
    assert!(me["errors"].is_null(), "{me}");
    let me = &me["data"]["me"];
    assert_eq!(me["role"], "OWNER");
    assert_eq!(me["email"], "owner@acme.example.com");
    assert_eq!(me["tenant"]["slug"], "acme");
    assert_eq!(me["tenant"]["timezone"], "UTC");
    assert_eq!(me["tenant"]["currency"], "USD");
    assert!(
        me["permissions"]
            .as_array()
            .unwrap()
            .contains(&json!("tenant:delete"))
    );
}

#[tokio::test]
async fn sign_up_rejects_bad_input_and_stores_nothing() {
    let t = TestApp::spawn().await;
    let cases = [
        ("not-an-email", PASSWORD, "input.email"),
        ("a@b.example.com", "short", "input.password"),
    ];
    for (email, password, field) in cases {
        let resp = t
            .op(None, "auth.graphql", "SignUp", json!({ "input": {
                "tenantName": "Bad", "tenantSlug": "bad-co", "name": "X", "email": email, "password": password,
            }}))
            .await;
        assert_eq!(codes(&resp), ["BAD_USER_INPUT"], "{resp}");
        assert!(
            resp["errors"][0]["message"]
                .as_str()
                .unwrap()
                .contains(field),
            "{resp}"
        );
    }
    let n: i64 = t
        .pg()
        .await
        .query_one("SELECT count(*) FROM tenants", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 0);

    t.sign_up("taken").await;
    let again = t
        .op(None, "auth.graphql", "SignUp", json!({ "input": {
            "tenantName": "Other", "tenantSlug": "taken", "name": "Y", "email": "y@other.example.com", "password": PASSWORD,
        }}))
        .await;
    assert_eq!(codes(&again), ["BAD_USER_INPUT"]);
    assert!(
        again["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("already taken")
    );
}

#[tokio::test]
async fn a_derived_slug_gets_a_suffix_when_taken() {
    let t = TestApp::spawn().await;
    let mut slugs = Vec::new();
    for i in 0..2 {
        let resp = t
            .gql(None, "mutation($i: SignUpInput!) { signUp(input: $i) { tenant { slug } } }", json!({ "i": {
                "tenantName": "Globex Corp", "name": "G", "email": format!("g{i}@globex.example.com"), "password": PASSWORD,
            }}))
            .await;
        slugs.push(
            resp["data"]["signUp"]["tenant"]["slug"]
                .as_str()
                .unwrap()
                .to_string(),
        );
    }
    assert_eq!(slugs[0], "globex-corp");
    assert!(
        slugs[1].starts_with("globex-corp-") && slugs[1] != slugs[0],
        "{slugs:?}"
    );
}

#[tokio::test]
async fn failed_log_ins_look_the_same_whatever_was_wrong() {
    let t = TestApp::spawn().await;
    t.sign_up("acme").await;
    let wrong_password = t
        .log_in("acme", "owner@acme.example.com", "not the password")
        .await;
    let unknown_email = t.log_in("acme", "nobody@acme.example.com", PASSWORD).await;
    let unknown_tenant = t.log_in("nope", "owner@acme.example.com", PASSWORD).await;
    for resp in [&wrong_password, &unknown_email, &unknown_tenant] {
        assert_eq!(codes(resp), ["UNAUTHENTICATED"], "{resp}");
        assert_eq!(
            resp["errors"][0]["message"],
            wrong_password["errors"][0]["message"]
        );
        assert!(resp["data"].is_null());
    }
    // Both kinds of failure run one argon2 verification; compare their median costs.
    let timed = |email: &'static str| {
        let t = &t;
        async move {
            let mut runs = Vec::new();
            for _ in 0..3 {
                let start = Instant::now();
                t.log_in("acme", email, "definitely wrong").await;
                runs.push(start.elapsed());
            }
            runs.sort();
            runs[1]
        }
    };
    let known = timed("owner@acme.example.com").await;
    let unknown = timed("ghost@acme.example.com").await;
    let ratio = known.as_secs_f64() / unknown.as_secs_f64();
    assert!(
        (0.33..3.0).contains(&ratio),
        "known {known:?} vs unknown {unknown:?}"
    );
}

#[tokio::test]
async fn repeated_failures_are_slowed_down() {
    let t = TestApp::spawn().await;
    t.sign_up("acme").await;
    let mut last = serde_json::Value::Null;
    for _ in 0..6 {
        last = t
            .log_in("acme", "owner@acme.example.com", "wrong password!")
            .await;
    }
    assert_eq!(codes(&last), ["RATE_LIMITED"], "{last}");
    assert!(
        last["errors"][0]["extensions"]["retryAfterSeconds"]
            .as_u64()
            .unwrap()
            >= 1
    );
    // Even the right password waits now.
    let right = t.log_in("acme", "owner@acme.example.com", PASSWORD).await;
    assert_eq!(codes(&right), ["RATE_LIMITED"]);
}

#[tokio::test]
async fn throttling_works_without_redis_too() {
    let t = TestApp::spawn_with(false).await;
    t.sign_up("solo").await;
    let mut last = serde_json::Value::Null;
    for _ in 0..6 {
        last = t
            .log_in("solo", "owner@solo.example.com", "wrong password!")
            .await;
    }
    assert_eq!(codes(&last), ["RATE_LIMITED"], "{last}");
}

/// Redis configured but down (nothing listens on its port): signing up, logging in and the
/// dashboard work, log-in throttling falls back to in-process counters, and `/readyz` says
/// Redis is unavailable.
#[tokio::test]
async fn with_redis_down_members_still_sign_in_and_are_still_throttled() {
    let t = TestApp::spawn_configured(|c| c.redis_url = Some("redis://127.0.0.1:1".into())).await;
    let owner = t.sign_up("solo").await;
    let ok = t
        .log_in("solo", &owner.email, crate::harness::PASSWORD)
        .await;
    assert!(ok["data"]["logIn"]["accessToken"].is_string(), "{ok}");
    let range = json!({ "from": "2026-01-01T00:00:00Z", "to": "2026-02-01T00:00:00Z" });
    let overview = t
        .op(
            Some(&owner.access),
            "analytics.graphql",
            "Overview",
            json!({ "range": range, "granularity": "DAY" }),
        )
        .await;
    assert!(overview["errors"].is_null(), "{overview}");
    let mut last = serde_json::Value::Null;
    for _ in 0..6 {
        last = t.log_in("solo", &owner.email, "wrong password!").await;
    }
    assert_eq!(codes(&last), ["RATE_LIMITED"], "{last}");
    let ready = t.get("/readyz").await;
    assert_eq!(ready.status().as_u16(), 503);
    let body: serde_json::Value = ready.json().await.unwrap();
    assert_eq!(body["redis"], "unavailable", "{body}");
}

#[tokio::test]
async fn refresh_rotates_and_reuse_ends_the_session() {
    let t = TestApp::spawn().await;
    let s = t.sign_up("acme").await;
    let first = t.refresh(&s.refresh).await;
    let rotated = session_from(&first, "refreshSession", &s.email);
    assert_ne!(rotated.refresh, s.refresh);
    let me = t
        .op(Some(&rotated.access), "auth.graphql", "Me", json!({}))
        .await;
    assert_eq!(me["data"]["me"]["id"], s.user_id.as_str());

    // The old token again: theft suspected, the whole family ends.
    let reuse = t.refresh(&s.refresh).await;
    assert_eq!(codes(&reuse), ["UNAUTHENTICATED"]);
    let after = t.refresh(&rotated.refresh).await;
    assert_eq!(
        codes(&after),
        ["UNAUTHENTICATED"],
        "the rotated token must be revoked too: {after}"
    );

    // Another session of the same member is unaffected.
    let other = t.log_in("acme", &s.email, PASSWORD).await;
    let other = session_from(&other, "logIn", &s.email);
    let ok = t.refresh(&other.refresh).await;
    assert!(ok["errors"].is_null(), "{ok}");
}

#[tokio::test]
async fn log_out_ends_the_session() {
    let t = TestApp::spawn().await;
    let s = t.sign_up("acme").await;
    let out = t
        .op(
            None,
            "auth.graphql",
            "LogOut",
            json!({ "refreshToken": s.refresh }),
        )
        .await;
    assert_eq!(out["data"]["logOut"], true);
    let refresh = t.refresh(&s.refresh).await;
    assert_eq!(codes(&refresh), ["UNAUTHENTICATED"]);
    let unknown = t
        .op(
            None,
            "auth.graphql",
            "LogOut",
            json!({ "refreshToken": "fwr_nonsense" }),
        )
        .await;
    assert_eq!(codes(&unknown), ["UNAUTHENTICATED"]);
}

pub fn forge(kid: &str, claims: &serde_json::Value, secret: &str) -> String {
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    header.kid = Some(kid.to_string());
    let key = jsonwebtoken::EncodingKey::from_secret(secret.as_bytes());
    jsonwebtoken::encode(&header, claims, &key).unwrap()
}

#[tokio::test]
async fn forged_expired_and_confused_tokens_are_unauthenticated() {
    let t = TestApp::spawn().await;
    let s = t.sign_up("acme").await;
    let parts: Vec<&str> = s.access.split('.').collect();
    let header: serde_json::Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[0]).unwrap()).unwrap();
    let kid = header["kid"].as_str().unwrap();
    let mut claims: serde_json::Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
    let now = chrono::Utc::now().timestamp();

    // A correctly signed token whose time is up.
    let mut expired = claims.clone();
    expired["exp"] = json!(now - 60);
    expired["nbf"] = json!(now - 1000);
    let expired = forge(kid, &expired, &t.jwt_secret());

    // Right signature scheme, wrong key.
    let wrong_key = forge(kid, &claims, "some other secret of enough length!!");

    // alg none, no signature.
    let none = format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT"}"#),
        parts[1]
    );

    // Payload changed after signing.
    claims["role"] = json!("VIEWER");
    let tampered = format!(
        "{}.{}.{}",
        parts[0],
        URL_SAFE_NO_PAD.encode(claims.to_string()),
        parts[2]
    );

    // Correctly signed, current, but made to live a day: longer than the server issues.
    let mut long_lived = claims.clone();
    long_lived["iat"] = json!(now);
    long_lived["exp"] = json!(now + 86_400);
    let long_lived = forge(kid, &long_lived, &t.jwt_secret());

    let original: serde_json::Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
    let signed_with = |changes: serde_json::Value| {
        let mut c = original.clone();
        for (k, v) in changes.as_object().unwrap() {
            c[k] = v.clone();
        }
        forge(kid, &c, &t.jwt_secret())
    };
    // Correctly signed and current, but not valid yet.
    let not_yet = signed_with(json!({ "iat": now, "nbf": now + 600, "exp": now + 900 }));
    // Correctly signed for another audience, or by another issuer.
    let audience = signed_with(json!({ "aud": "someone-else" }));
    let issuer = signed_with(json!({ "iss": "https://evil.example.com" }));
    // Key confusion: the same secret under another algorithm the header names.
    let confused = |alg: jsonwebtoken::Algorithm| {
        let mut header = jsonwebtoken::Header::new(alg);
        header.kid = Some(kid.to_string());
        let key = jsonwebtoken::EncodingKey::from_secret(t.jwt_secret().as_bytes());
        jsonwebtoken::encode(&header, &original, &key).unwrap()
    };
    let hs512 = confused(jsonwebtoken::Algorithm::HS512);
    let rs256_header = format!(
        "{}.{}.{}",
        URL_SAFE_NO_PAD.encode(format!(r#"{{"alg":"RS256","typ":"JWT","kid":"{kid}"}}"#)),
        parts[1],
        parts[2]
    );

    for (what, token) in [
        ("not yet valid", not_yet),
        ("another audience", audience),
        ("another issuer", issuer),
        ("HS512 with the same secret", hs512),
        ("RS256 header over an HS256 signature", rs256_header),
        ("lives a day", long_lived),
        ("expired", expired),
        ("wrong key", wrong_key),
        ("alg none", none),
        ("tampered", tampered),
        ("garbage", "abc".into()),
    ] {
        let resp = t.op(Some(&token), "auth.graphql", "Me", json!({})).await;
        assert_eq!(codes(&resp), ["UNAUTHENTICATED"], "{what}: {resp}");
        let msg = resp["errors"][0]["message"].as_str().unwrap();
        if what == "expired" {
            assert!(msg.contains("expired"), "{msg}");
        }
    }
    let anonymous = t.op(None, "auth.graphql", "Me", json!({})).await;
    assert_eq!(codes(&anonymous), ["UNAUTHENTICATED"]);
}

#[tokio::test]
async fn oversized_log_in_fields_are_refused_cheaply() {
    let t = TestApp::spawn().await;
    t.sign_up("acme").await;
    let huge = "x".repeat(100_000);
    let resp = t.log_in("acme", "owner@acme.example.com", &huge).await;
    assert_eq!(codes(&resp), ["UNAUTHENTICATED"]);
    let resp = t.log_in(&huge, &huge, PASSWORD).await;
    assert_eq!(codes(&resp), ["UNAUTHENTICATED"]);
    let row = t
        .pg()
        .await
        .query_one("SELECT count(*), max(length(details->>'email'))::int8 FROM audit_log WHERE action = 'session.login_failed'", &[])
        .await
        .unwrap();
    let (failures, longest): (i64, i64) = (row.get(0), row.get(1));
    assert_eq!(failures, 2, "both attempts are audited");
    assert!(longest <= 254, "audit rows keep a bounded email: {longest}");
}

#[tokio::test]
async fn sign_ups_from_one_address_are_bounded() {
    let t = TestApp::spawn_configured(|c| c.sign_ups_per_address_hour = 3).await;
    for i in 0..3 {
        t.sign_up(&format!("acme{i}")).await;
    }
    let refused = t
        .op(
            None,
            "auth.graphql",
            "SignUp",
            json!({ "input": { "tenantName": "One more", "name": "O", "email": "o@more.example.com", "password": PASSWORD } }),
        )
        .await;
    assert_eq!(codes(&refused), ["RATE_LIMITED"], "{refused}");
    let wait = refused["errors"][0]["extensions"]["retryAfterSeconds"]
        .as_i64()
        .unwrap();
    assert!((1..=3600).contains(&wait), "{wait}");
    let tenants: i64 = t
        .pg()
        .await
        .query_one("SELECT count(*) FROM tenants", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(tenants, 3, "the refused sign-up made nothing");
}
