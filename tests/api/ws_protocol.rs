//! The WebSocket protocols as graphql-ws's PROTOCOL.md specifies them and their clients behave:
//! each rule with `graphql-transport-ws` and with the legacy `graphql-ws`.

use std::time::Duration;

use serde_json::{Value, json};

use crate::harness::TestApp;
use crate::live::{Ws, ws_codes};

const WAIT: Duration = Duration::from_secs(5);
const PROTOCOLS: [bool; 2] = [false, true];

fn subscribe(legacy: bool, id: &str, query: &str) -> Value {
    let kind = if legacy { "start" } else { "subscribe" };
    json!({ "id": id, "type": kind, "payload": { "query": query } })
}

const EVENTS: &str = "subscription { liveEvents { dropped } }";

/// A socket whose `connection_init` was acknowledged.
async fn acked(t: &TestApp, legacy: bool, token: &str) -> Ws {
    let mut ws = Ws::raw(t, legacy).await;
    ws.send(json!({ "type": "connection_init", "payload": { "authorization": format!("Bearer {token}") } }))
        .await;
    let ack = ws.message(WAIT).await.expect("an answer");
    assert_eq!(ack["type"], "connection_ack", "{ack}");
    ws
}

#[tokio::test]
async fn nothing_runs_before_connection_init_and_init_comes_once() {
    let t = TestApp::spawn().await;
    let s = t.sign_up("acme").await;
    for legacy in PROTOCOLS {
        let mut ws = Ws::raw(&t, legacy).await;
        ws.send(subscribe(legacy, "1", EVENTS)).await;
        assert_eq!(ws.closed(WAIT).await, Some(4401), "legacy: {legacy}");

        let mut ws = acked(&t, legacy, &s.access).await;
        ws.send(json!({ "type": "connection_init", "payload": {} }))
            .await;
        assert_eq!(ws.closed(WAIT).await, Some(4429), "legacy: {legacy}");
    }
}

#[tokio::test]
async fn a_refused_connection_init_is_4403_and_an_ended_session_is_refused() {
    let t = TestApp::spawn().await;
    let s = t.sign_up("acme").await;
    let analyst = t.member(&s, "acme", "ANALYST").await;
    let r = t
        .op(
            None,
            "auth.graphql",
            "LogOut",
            json!({ "refreshToken": analyst.refresh }),
        )
        .await;
    assert!(r["errors"].is_null(), "{r}");
    for legacy in PROTOCOLS {
        for token in ["not-a-token", analyst.access.as_str()] {
            let mut ws = Ws::raw(&t, legacy).await;
            ws.send(json!({ "type": "connection_init", "payload": { "authorization": format!("Bearer {token}") } }))
                .await;
            if legacy {
                let refusal = ws.message(WAIT).await.expect("connection_error");
                assert_eq!(refusal["type"], "connection_error", "{refusal}");
                assert!(refusal["payload"]["message"].is_string(), "{refusal}");
            }
            assert_eq!(ws.closed(WAIT).await, Some(4403), "legacy: {legacy}");
        }
    }
}

#[tokio::test]
async fn an_id_in_use_closes_with_4409() {
    let t = TestApp::spawn().await;
    let s = t.sign_up("acme").await;
    for legacy in PROTOCOLS {
        let mut ws = acked(&t, legacy, &s.access).await;
        ws.send(subscribe(legacy, "same", EVENTS)).await;
        ws.send(subscribe(legacy, "same", EVENTS)).await;
        assert_eq!(ws.closed(WAIT).await, Some(4409), "legacy: {legacy}");
    }
}

#[tokio::test]
async fn a_socket_that_never_initialises_is_closed_with_4408() {
    let t = TestApp::spawn_configured(|c| c.ws_init_timeout_secs = 0.5).await;
    for legacy in PROTOCOLS {
        let mut ws = Ws::raw(&t, legacy).await;
        assert_eq!(ws.closed(WAIT).await, Some(4408), "legacy: {legacy}");
    }
}

#[tokio::test]
async fn an_operation_that_cannot_start_answers_error_and_no_complete() {
    let t = TestApp::spawn().await;
    let s = t.sign_up("acme").await;
    for legacy in PROTOCOLS {
        let mut ws = acked(&t, legacy, &s.access).await;
        ws.send(subscribe(legacy, "bad", "subscription { noSuchField }"))
            .await;
        let msg = ws.message(WAIT).await.expect("an answer");
        assert_eq!(
            (&msg["type"], &msg["id"]),
            (&json!("error"), &json!("bad")),
            "{msg}"
        );
        assert_eq!(ws_codes(&msg), ["BAD_USER_INPUT"], "{msg}");
        // A query over the socket: its result, then complete.
        ws.send(subscribe(legacy, "q", "{ me { id } }")).await;
        let result = ws.message(WAIT).await.expect("a result");
        let next = if legacy { "data" } else { "next" };
        assert_eq!(
            (&result["type"], &result["id"]),
            (&json!(next), &json!("q")),
            "{result}"
        );
        assert_eq!(result["payload"]["data"]["me"]["id"], json!(s.user_id));
        let done = ws.message(WAIT).await.expect("complete");
        assert_eq!(
            (&done["type"], &done["id"]),
            (&json!("complete"), &json!("q")),
            "{done}"
        );
        assert!(
            ws.message(Duration::from_millis(300)).await.is_none(),
            "nothing follows, and no complete for the failed one"
        );
    }
}

#[tokio::test]
async fn a_socket_runs_a_bounded_number_of_operations() {
    let t = TestApp::spawn_configured(|c| c.max_subscriptions_per_socket = 2).await;
    let s = t.sign_up("acme").await;
    for legacy in PROTOCOLS {
        let mut ws = acked(&t, legacy, &s.access).await;
        for id in ["a", "b", "c"] {
            ws.send(subscribe(legacy, id, EVENTS)).await;
        }
        let msg = ws.message(WAIT).await.expect("an answer");
        assert_eq!(
            (&msg["type"], &msg["id"]),
            (&json!("error"), &json!("c")),
            "{msg}"
        );
        assert_eq!(ws_codes(&msg), ["QUERY_TOO_COMPLEX"], "{msg}");
        // Completing one makes room.
        let stop = if legacy { "stop" } else { "complete" };
        ws.send(json!({ "id": "a", "type": stop })).await;
        if legacy {
            let done = ws.message(WAIT).await.expect("complete");
            assert_eq!(done["type"], "complete", "{done}");
        }
        ws.send(subscribe(legacy, "c", EVENTS)).await;
        assert!(
            ws.message(Duration::from_millis(500)).await.is_none(),
            "the new one runs quietly"
        );
    }
}

/// The socket closes once its token no longer verifies, and the same token is not acked
/// again afterwards: the socket check and the token check share one clock leeway.
#[tokio::test]
async fn an_expired_token_closes_with_4403_and_is_not_acked_again() {
    let t = TestApp::spawn().await;
    let s = t.sign_up("acme").await;
    let parts: Vec<&str> = s.access.split('.').collect();
    let decode = |p: &str| -> Value {
        use base64::Engine;
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(p)
            .unwrap();
        serde_json::from_slice(&bytes).unwrap()
    };
    let kid = decode(parts[0])["kid"].as_str().unwrap().to_string();
    let mut claims = decode(parts[1]);
    for legacy in PROTOCOLS {
        claims["exp"] = json!(chrono::Utc::now().timestamp() + 1);
        let short = crate::auth_flow::forge(&kid, &claims, &t.jwt_secret());
        let mut ws = acked(&t, legacy, &short).await;
        ws.send(subscribe(legacy, "1", EVENTS)).await;
        assert_eq!(
            ws.closed(Duration::from_secs(10)).await,
            Some(4403),
            "legacy: {legacy}"
        );
        let mut again = Ws::raw(&t, legacy).await;
        again
            .send(json!({ "type": "connection_init", "payload": { "authorization": format!("Bearer {short}") } }))
            .await;
        if legacy {
            let refusal = again.message(WAIT).await.expect("connection_error");
            assert_eq!(refusal["type"], "connection_error", "{refusal}");
        }
        assert_eq!(again.closed(WAIT).await, Some(4403), "legacy: {legacy}");
    }
}
