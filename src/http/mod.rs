//! The HTTP surface: routes from the contract's transport table and the middleware around them.

mod authenticate;
mod downloads;
mod events;
mod graphql;
mod health;
mod hygiene;
mod limits;
mod persisted;
mod playground;
mod response_cache;
mod telemetry;
pub mod tls;
mod webhooks;
mod ws;

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, Request, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::json;
use tokio::net::TcpListener;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

use crate::app::App;
use crate::graphql::{FahwaSchema, build_schema};

pub use authenticate::authenticate;
pub use response_cache::REPORT_KEY_SECS;

use std::sync::Arc;

pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// What every handler receives.
#[derive(Clone)]
pub struct HttpState {
    pub app: App,
    pub schema: FahwaSchema,
    /// This instance's copies of recently served cached responses.
    pub recent: Arc<response_cache::Recent>,
    /// The allow-list of operations, in allow-list mode.
    pub trusted: Option<Arc<crate::graphql::trusted::Trusted>>,
}

pub fn router(app: App) -> Router {
    telemetry::install();
    let state = HttpState {
        schema: build_schema(&app),
        app: app.clone(),
        recent: Arc::default(),
        trusted: app
            .config
            .trusted_documents
            .then(|| Arc::new(crate::graphql::trusted::Trusted::new(app.db.clone()))),
    };
    let body_limit = app.config.max_body_bytes;
    // A full batch (5 MB of events) plus JSON framing.
    let events_body_limit = body_limit.max(crate::events::ingest::MAX_BATCH_BYTES * 2);
    // Providers' events are larger than our GraphQL bodies (a subscription with its items).
    let webhook_body_limit = body_limit.max(1024 * 1024);
    let routes = Router::new()
        .route(
            "/api/v1/graphql",
            get(graphql::graphql_get).post(graphql::graphql_post),
        )
        .route("/api/v1/graphql/ws", get(ws::graphql_ws))
        .route(
            "/api/v1/events",
            post(events::ingest).layer(DefaultBodyLimit::max(events_body_limit)),
        )
        .route(
            "/api/v1/revenue",
            post(events::ingest_revenue).layer(DefaultBodyLimit::max(events_body_limit)),
        )
        .route(
            "/api/v1/reports/runs/{id}/download",
            get(downloads::report_file),
        )
        .route(
            "/api/v1/webhooks/{provider}/{integration}",
            post(webhooks::deliver).layer(DefaultBodyLimit::max(webhook_body_limit)),
        )
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(telemetry::render))
        .fallback(not_found);
    let routes = if app.config.playground {
        routes
            .route("/playground", get(playground::page))
            .route("/playground/assets/{file}", get(playground::asset))
    } else {
        routes
    };
    let https = app.config.tls_cert.is_some();
    with_middleware(routes, body_limit, &app.config.cors_origins, https).with_state(state)
}

/// What wraps every route: body limit, panic guard, metrics, tracing span, request id and
/// security headers.
fn with_middleware<S: Clone + Send + Sync + 'static>(
    router: Router<S>,
    body_limit: usize,
    cors_origins: &[String],
    https: bool,
) -> Router<S> {
    let router = router.layer(DefaultBodyLimit::max(body_limit));
    let router = match hygiene::cors(cors_origins) {
        Some(cors) => router.layer(cors),
        None => router,
    };
    let router = router
        // Outside the panic guard, so that the 500 it answers is counted like any other.
        .layer(CatchPanicLayer::custom(|_| {
            error_response(StatusCode::INTERNAL_SERVER_ERROR, "INTERNAL", "internal error")
        }))
        .layer(axum::middleware::from_fn(telemetry::track))
        .layer(
            TraceLayer::new_for_http().make_span_with(|req: &Request<_>| {
                let id = req
                    .headers()
                    .get(REQUEST_ID)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("-");
                tracing::info_span!("request", method = %req.method(), path = req.uri().path(), request_id = id)
            }),
        )
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
        .layer(axum::middleware::map_request(hygiene::drop_unfit_request_id));
    hygiene::with_security_headers(router, https)
}

/// A GraphQL-shaped error body, for failures before GraphQL execution.
pub fn error_response(status: StatusCode, code: &str, message: &str) -> Response {
    let body = json!({ "errors": [{ "message": message, "extensions": { "code": code } }] });
    (status, axum::Json(body)).into_response()
}

async fn not_found() -> Response {
    error_response(StatusCode::NOT_FOUND, "NOT_FOUND", "no such endpoint")
}

/// Serves until `shutdown` resolves, then lets requests in flight finish.
pub async fn serve(
    app: App,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    // Part of serving: reads flush pending rollup deltas themselves, this keeps them few. Its
    // own connection, so that it neither waits for nor crowds out requests.
    crate::events::rollups::spawn_flusher(
        crate::db::Db::new(&app.config.database_url, 1),
        app.config.database_url.clone(),
    );
    let _live = crate::live::spawn(app.live_parts());
    let background = app.config.worker.then(|| crate::background::spawn(&app));
    let tls = match (&app.config.tls_cert, &app.config.tls_key) {
        (Some(cert), Some(key)) => {
            let certificates = tls::Certificates::load(cert, key)?;
            certificates.reload_on_sighup()?;
            Some(certificates)
        }
        _ => None,
    };
    let service = router(app).into_make_service_with_connect_info::<SocketAddr>();
    match tls {
        Some(certificates) => {
            let listener = tls::TlsListener::new(listener, certificates)?;
            // `tap_io` only for axum's `ConnectInfo<SocketAddr>`, which it provides for any
            // listener it wraps.
            let listener = axum::serve::ListenerExt::tap_io(listener, |_| {});
            axum::serve(listener, service)
                .with_graceful_shutdown(shutdown)
                .await?;
        }
        None => {
            // Live frames are small and must not wait for the previous one's acknowledgement
            // (Nagle).
            let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
                if let Err(e) = tcp.set_nodelay(true) {
                    tracing::debug!(error = %e, "could not set TCP_NODELAY");
                }
            });
            axum::serve(listener, service)
                .with_graceful_shutdown(shutdown)
                .await?;
        }
    }
    if let Some(background) = background {
        background.shutdown().await;
    }
    Ok(())
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutting down: finishing requests in flight");
    // WebSocket connections do not end by themselves; give HTTP requests a moment, then stop.
    tokio::spawn(async {
        tokio::time::sleep(Duration::from_secs(20)).await;
        tracing::warn!("requests still open after 20 s; exiting");
        std::process::exit(0);
    });
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use tower::ServiceExt;

    use super::*;

    #[tokio::test]
    async fn a_panic_is_a_generic_500_and_is_counted() {
        telemetry::install();
        async fn boom() -> &'static str {
            let secret = "a detail for the log only";
            panic!("{secret}")
        }
        let routes: Router = Router::new().route("/boom", get(boom));
        let response = with_middleware(routes, 1024, &[], false)
            .oneshot(Request::get("/boom").body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let body = axum::body::to_bytes(response.into_body(), 1 << 16)
            .await
            .unwrap();
        let body = String::from_utf8_lossy(&body);
        assert!(
            body.contains("\"INTERNAL\"") && !body.contains("detail"),
            "{body}"
        );
        let counted = telemetry::render_text();
        assert!(
            counted
                .contains(r#"fahwa_http_errors_total{method="GET",route="/boom",status="500"} 1"#),
            "{counted}"
        );
        assert!(counted.contains("fahwa_panics_total"), "{counted}");
    }
}
