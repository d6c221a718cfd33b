//! The HTTP surface: health, readiness, metrics, playground, WebSocket, and bad requests.

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::harness::{TestApp, codes};

#[tokio::test]
async fn health_readiness_and_metrics() {
    let t = TestApp::spawn().await;
    let health = t.get("/healthz").await;
    assert_eq!(health.status(), 200);
    let ready: Value = t.get("/readyz").await.json().await.unwrap();
    assert_eq!(
        ready,
        json!({ "status": "ok", "postgres": "ok", "redis": "ok",
                "live": "not captured by this instance (FAHWA_LIVE_CAPTURE=false)",
                "captureBacklogBytes": null })
    );
    t.sign_up("acme").await;
    let metrics = t.get("/metrics").await.text().await.unwrap();
    assert!(
        metrics.contains(
            "fahwa_http_requests_total{method=\"POST\",route=\"/api/v1/graphql\",status=\"200\"}"
        ),
        "{metrics}"
    );
    assert!(metrics.contains("fahwa_http_request_duration_seconds_bucket"));
    assert!(metrics.contains("fahwa_db_pool_connections"));
}

#[tokio::test]
async fn readiness_reports_a_missing_redis() {
    let config_app = TestApp::spawn_with(false).await;
    let ready: Value = config_app.get("/readyz").await.json().await.unwrap();
    assert_eq!(ready["redis"], "not configured");
}

#[tokio::test]
async fn the_playground_loads_every_asset_from_the_server() {
    let t = TestApp::spawn().await;
    let page = t.get("/playground").await;
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(
        !html.contains("http://") && !html.contains("https://"),
        "no external URLs"
    );
    let assets: Vec<&str> = html
        .split(['"', '\''])
        .filter(|s| s.starts_with("/playground/assets/"))
        .collect();
    assert!(assets.len() >= 6, "{assets:?}");
    for asset in assets {
        let resp = t.get(asset).await;
        assert_eq!(resp.status(), 200, "{asset}");
        let ty = resp.headers()["content-type"].to_str().unwrap().to_string();
        assert!(
            ty.starts_with("text/javascript") || ty.starts_with("text/css"),
            "{asset}: {ty}"
        );
        let body = resp.bytes().await.unwrap();
        assert!(body.len() > 1000, "{asset} is too small");
        let text = String::from_utf8_lossy(&body);
        assert!(
            !text.contains("unpkg.com") && !text.contains("cdn.jsdelivr"),
            "{asset} loads from a CDN"
        );
    }
    let missing = t.get("/playground/assets/nope.js").await;
    assert_eq!(missing.status(), 404);
}

#[tokio::test]
async fn bad_requests_get_clear_codes() {
    let t = TestApp::spawn().await;
    let url = format!("{}/api/v1/graphql", t.base);
    let malformed = t
        .client
        .post(&url)
        .header("content-type", "application/json")
        .body("{nope")
        .send()
        .await
        .unwrap();
    assert_eq!(malformed.status(), 400);
    let body: Value = malformed.json().await.unwrap();
    assert_eq!(codes(&body), ["BAD_USER_INPUT"]);

    let huge = format!(
        r#"{{"query":"{{ me {{ id }} }}","variables":{{"x":"{}"}}}}"#,
        "x".repeat(400 * 1024)
    );
    let too_big = t
        .client
        .post(&url)
        .header("content-type", "application/json")
        .body(huge)
        .send()
        .await
        .unwrap();
    assert_eq!(too_big.status(), 413);
    let body: Value = too_big.json().await.unwrap();
    assert_eq!(codes(&body), ["BAD_USER_INPUT"]);

    let syntax = t.gql(None, "{ me { id ", json!({})).await;
    assert_eq!(codes(&syntax), ["BAD_USER_INPUT"], "{syntax}");
    let unknown = t.gql(None, "{ me { id shoeSize } }", json!({})).await;
    assert_eq!(codes(&unknown), ["BAD_USER_INPUT"], "{unknown}");
    let bad_enum = t.gql(None, "mutation { addMember(input: { name: \"a\", email: \"a@b.example.com\", role: KING, password: \"0123456789\" }) { id } }", json!({})).await;
    assert_eq!(codes(&bad_enum), ["BAD_USER_INPUT"], "{bad_enum}");

    let get_mutation = t
        .client
        .get(&url)
        .query(&[("query", "mutation { logOut(refreshToken: \"x\") }")])
        .send()
        .await
        .unwrap();
    assert_eq!(get_mutation.status(), 405);
    let get_query: Value = t
        .client
        .get(&url)
        .query(&[("query", "{ __typename }")])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(get_query["data"]["__typename"], "Query");

    let wrong_scheme = t
        .client
        .post(&url)
        .header("authorization", "Basic abc")
        .json(&json!({ "query": "{ me { id } }" }))
        .send()
        .await
        .unwrap();
    let body: Value = wrong_scheme.json().await.unwrap();
    assert_eq!(codes(&body), ["UNAUTHENTICATED"]);
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("Bearer")
    );

    let nowhere = t.get("/nope").await;
    assert_eq!(nowhere.status(), 404);
}

async fn ws_handshake(t: &TestApp, protocol: &str, token: &str) -> Option<Value> {
    let url = format!("{}/api/v1/graphql/ws", t.base.replace("http://", "ws://"));
    let mut request = url.into_client_request().unwrap();
    request
        .headers_mut()
        .insert("sec-websocket-protocol", protocol.parse().unwrap());
    let (mut ws, response) = tokio_tungstenite::connect_async(request).await.unwrap();
    assert_eq!(response.headers()["sec-websocket-protocol"], protocol);
    let init = json!({ "type": "connection_init", "payload": { "authorization": format!("Bearer {token}") } });
    ws.send(Message::Text(init.to_string().into()))
        .await
        .unwrap();
    loop {
        match tokio::time::timeout(std::time::Duration::from_secs(5), ws.next())
            .await
            .ok()??
        {
            Ok(Message::Text(text)) => {
                let msg: Value = serde_json::from_str(&text).unwrap();
                if msg["type"] == "ka" {
                    continue;
                }
                return Some(msg);
            }
            Ok(Message::Close(_)) | Err(_) => return None,
            Ok(_) => continue,
        }
    }
}

#[tokio::test]
async fn websocket_speaks_both_protocols_and_checks_the_token() {
    let t = TestApp::spawn().await;
    let s = t.sign_up("acme").await;
    for protocol in ["graphql-transport-ws", "graphql-ws"] {
        let ack = ws_handshake(&t, protocol, &s.access).await;
        assert_eq!(
            ack.as_ref().map(|m| m["type"].clone()),
            Some(json!("connection_ack")),
            "{protocol}: {ack:?}"
        );
        let refused = ws_handshake(&t, protocol, "not-a-token").await;
        assert_ne!(
            refused.map(|m| m["type"].clone()),
            Some(json!("connection_ack")),
            "{protocol}"
        );
    }
}

#[tokio::test]
async fn a_batch_runs_each_operation_as_its_caller() {
    let t = TestApp::spawn().await;
    let s = t.sign_up("acme").await;
    let batch = json!([
        { "query": "{ me { role } }" },
        { "query": "{ tenant { slug } }" },
        { "query": "{ auditLog(first: 1) { edges { node { action } } } }" },
    ]);
    let resp: Value = t
        .client
        .post(format!("{}/api/v1/graphql", t.base))
        .bearer_auth(&s.access)
        .json(&batch)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let answers = resp.as_array().unwrap();
    assert_eq!(answers.len(), 3, "{resp}");
    assert_eq!(answers[0]["data"]["me"]["role"], "OWNER");
    assert_eq!(answers[1]["data"]["tenant"]["slug"], "acme");
    assert_eq!(
        answers[2]["data"]["auditLog"]["edges"][0]["node"]["action"],
        "tenant.sign_up"
    );
    let anonymous: Value = t
        .client
        .post(format!("{}/api/v1/graphql", t.base))
        .json(&batch)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        anonymous
            .as_array()
            .unwrap()
            .iter()
            .all(|a| codes(a) == ["UNAUTHENTICATED"]),
        "{anonymous}"
    );
}

/// What a browser acts on comes with every answer, whoever gave it; the playground's own
/// policy lets its bundled assets run and nothing else.
#[tokio::test]
async fn every_response_carries_security_headers() {
    let t = TestApp::spawn().await;
    let answers = [
        t.get("/healthz").await,
        t.get("/nope").await,
        t.post("/api/v1/events", "not-a-key", &json!({ "events": [] }))
            .await,
        t.client
            .post(format!("{}/api/v1/graphql", t.base))
            .json(&json!({ "query": "{ __typename }" }))
            .send()
            .await
            .unwrap(),
        t.get("/playground").await,
    ];
    for resp in &answers {
        let h = resp.headers();
        let what = format!("{} {}", resp.url().path(), resp.status());
        assert_eq!(h["x-content-type-options"], "nosniff", "{what}");
        assert_eq!(h["referrer-policy"], "no-referrer", "{what}");
        assert_eq!(h["x-frame-options"], "DENY", "{what}");
        let csp = h["content-security-policy"].to_str().unwrap();
        assert!(csp.contains("frame-ancestors 'none'"), "{what}: {csp}");
        if resp.url().path() == "/playground" {
            assert!(csp.contains("script-src 'self'"), "{csp}");
        } else {
            assert!(csp.starts_with("default-src 'none'"), "{what}: {csp}");
        }
    }
}

#[tokio::test]
async fn request_ids_are_echoed_only_when_short_and_plain() {
    let t = TestApp::spawn().await;
    let echo = |id: String| {
        let t = &t;
        async move {
            let resp = t
                .client
                .get(format!("{}/healthz", t.base))
                .header("x-request-id", id)
                .send()
                .await
                .unwrap();
            resp.headers()["x-request-id"].to_str().unwrap().to_string()
        }
    };
    assert_eq!(echo("req-42.a:b_c".into()).await, "req-42.a:b_c");
    for unfit in [
        "x".repeat(200),
        "<script>alert(1)</script>".into(),
        "two words".into(),
    ] {
        let got = echo(unfit.clone()).await;
        assert_ne!(got, unfit);
        assert!(uuid::Uuid::parse_str(&got).is_ok(), "a new one: {got}");
    }
}

/// Browsers may call the API from the configured origins only: a preflight from one of them is
/// answered with that origin; another origin gets no CORS header (the browser then refuses).
#[tokio::test]
async fn cross_origin_calls_come_from_the_allow_list_only() {
    let t = TestApp::spawn_configured(|c| {
        c.cors_origins = vec!["https://app.example.com".into()];
    })
    .await;
    let preflight = |origin: &'static str| {
        t.client
            .request(
                reqwest::Method::OPTIONS,
                format!("{}/api/v1/graphql", t.base),
            )
            .header("Origin", origin)
            .header("Access-Control-Request-Method", "POST")
            .header(
                "Access-Control-Request-Headers",
                "authorization, content-type",
            )
            .send()
    };
    let allowed = preflight("https://app.example.com").await.unwrap();
    let h = allowed.headers();
    assert_eq!(h["access-control-allow-origin"], "https://app.example.com");
    let methods = h["access-control-allow-methods"].to_str().unwrap();
    assert!(methods.contains("POST"), "{methods}");
    assert!(h.get("access-control-allow-credentials").is_none());
    let other = preflight("https://evil.example.net").await.unwrap();
    assert!(other.headers().get("access-control-allow-origin").is_none());
    // A plain call from the allowed origin carries the header too.
    let r = t
        .client
        .get(format!("{}/healthz", t.base))
        .header("Origin", "https://app.example.com")
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.headers()["access-control-allow-origin"],
        "https://app.example.com"
    );
    // Without configured origins there are no CORS headers at all.
    let plain = TestApp::spawn().await;
    let r = plain
        .client
        .get(format!("{}/healthz", plain.base))
        .header("Origin", "https://app.example.com")
        .send()
        .await
        .unwrap();
    assert!(r.headers().get("access-control-allow-origin").is_none());
}
