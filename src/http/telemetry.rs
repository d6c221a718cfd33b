//! Prometheus telemetry: requests, latencies and errors per route, and pool usage.

use std::sync::OnceLock;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

use super::HttpState;

fn handle() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let recorder = PrometheusBuilder::new()
            .set_buckets(&[
                0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
            ])
            .expect("static buckets are valid")
            .build_recorder();
        let handle = recorder.handle();
        // Several apps in one process (tests) share the first recorder.
        let _ = metrics::set_global_recorder(recorder);
        handle
    })
}

pub async fn track(req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |p| p.as_str().to_string());
    let method = req.method().to_string();
    let started = Instant::now();
    let response = next.run(req).await;
    let status = response.status();
    let labels = [
        ("method", method),
        ("route", route),
        ("status", status.as_u16().to_string()),
    ];
    metrics::counter!("fahwa_http_requests_total", &labels).increment(1);
    metrics::histogram!("fahwa_http_request_duration_seconds", &labels)
        .record(started.elapsed().as_secs_f64());
    if status.is_server_error() {
        metrics::counter!("fahwa_http_errors_total", &labels).increment(1);
    }
    response
}

pub async fn render(State(state): State<HttpState>) -> Response {
    let pool = state.app.db.pool_state();
    metrics::gauge!("fahwa_db_pool_connections").set(f64::from(pool.connections));
    metrics::gauge!("fahwa_db_pool_idle_connections").set(f64::from(pool.idle_connections));
    metrics::gauge!("fahwa_db_pool_max_connections").set(f64::from(state.app.config.db_pool_size));
    metrics::counter!("fahwa_db_statements_total").absolute(state.app.db.statement_count());
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        render_text(),
    )
        .into_response()
}

/// Everything recorded so far, in Prometheus' text format.
pub fn render_text() -> String {
    handle().render()
}

/// Installs the recorder early, so that counts from the first request on are kept, and counts
/// every panic of the process (a request's, a socket's or a background task's) in
/// `fahwa_panics_total`; the message and where it happened still go to the log.
pub fn install() {
    handle();
    static HOOK: OnceLock<()> = OnceLock::new();
    HOOK.get_or_init(|| {
        let logged = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            metrics::counter!("fahwa_panics_total").increment(1);
            logged(info);
        }));
    });
}
