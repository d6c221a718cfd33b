use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::json;

use super::HttpState;

fn live_state(state: &HttpState) -> String {
    match (state.app.config.live_capture, state.app.live.capture_off()) {
        (false, _) => "not captured by this instance (FAHWA_LIVE_CAPTURE=false)".into(),
        (true, Some(why)) => format!("off: {why}"),
        (true, None) => match state.app.live.capture_backlog() {
            Some(bytes) if bytes > state.app.config.capture_max_backlog_mb * 1024 * 1024 => {
                format!(
                    "behind: the capture slot holds {} MiB of WAL back (bound {} MiB); event rows are passed over until it catches up",
                    bytes / (1024 * 1024),
                    state.app.config.capture_max_backlog_mb
                )
            }
            _ => "ok".into(),
        },
    }
}

/// The process is up.
pub async fn healthz() -> Json<serde_json::Value> {
    Json(json!({ "status": "ok" }))
}

/// The process can serve: PostgreSQL answers, and Redis too when configured. Live updates are
/// reported beside them: a server that cannot decode logically still serves everything else.
pub async fn readyz(State(state): State<HttpState>) -> (StatusCode, Json<serde_json::Value>) {
    let postgres = state.app.db.ping().await.is_ok();
    let redis = if state.app.kv.is_redis() {
        Some(state.app.kv.ping().await.is_ok())
    } else {
        None
    };
    let ready = postgres && redis.unwrap_or(true);
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let check = |ok: bool| if ok { "ok" } else { "unavailable" };
    (
        status,
        Json(json!({
            "status": check(ready),
            "postgres": check(postgres),
            "redis": redis.map_or("not configured", check),
            "live": live_state(&state),
            "captureBacklogBytes": state.app.live.capture_backlog(),
        })),
    )
}
