//! `POST /api/v1/events`: bulk ingestion for SDKs, `{"events": [EventInput...]}`.

use std::net::SocketAddr;

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use super::graphql::caller_of;
use super::{HttpState, error_response};
use crate::accounts::Caller;
use crate::auth::Principal;
use crate::error::AppError;
use crate::events::{self, NewEvent};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Body {
    events: Vec<NewEvent>,
}

/// An `AppError` as a REST answer: its HTTP status, the contract's code, and for
/// `RATE_LIMITED` the wait both as `extensions.retryAfterSeconds` and as `Retry-After`.
fn app_error_response(err: &AppError) -> Response {
    let status = match err {
        AppError::Unauthenticated(_) => StatusCode::UNAUTHORIZED,
        AppError::Forbidden(_) => StatusCode::FORBIDDEN,
        AppError::BadInput(_) | AppError::TooComplex(_) => StatusCode::BAD_REQUEST,
        AppError::NotFound(_) => StatusCode::NOT_FOUND,
        AppError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
        AppError::Busy { .. } => StatusCode::SERVICE_UNAVAILABLE,
        AppError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
    };
    let mut extensions = json!({ "code": err.code() });
    let retry = err.retry_after_secs();
    if let Some(secs) = retry {
        extensions["retryAfterSeconds"] = json!(secs);
    }
    let body = json!({ "errors": [{ "message": err.to_string(), "extensions": extensions }] });
    let mut response = (status, Json(body)).into_response();
    if let Some(secs) = retry
        && let Ok(value) = secs.to_string().parse()
    {
        response.headers_mut().insert(header::RETRY_AFTER, value);
    }
    response
}

pub async fn ingest(
    State(state): State<HttpState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let body = match body {
        Ok(b) => b,
        Err(rejection) => {
            return error_response(rejection.status(), "BAD_USER_INPUT", &rejection.body_text());
        }
    };
    let (principal, meta) = caller_of(&state, &headers, peer).await;
    if matches!(principal, Principal::Anonymous | Principal::Rejected(_)) {
        let err = principal
            .member()
            .err()
            .unwrap_or_else(|| AppError::unauthenticated("send an API key"));
        return app_error_response(&err);
    }
    let parsed: Body = match serde_json::from_slice(&body) {
        Ok(b) => b,
        Err(e) => {
            return error_response(
                StatusCode::BAD_REQUEST,
                "BAD_USER_INPUT",
                &format!("the body must be {{\"events\": [...]}}: {e}"),
            );
        }
    };
    let caller = Caller {
        app: &state.app,
        principal: &principal,
        meta: &meta,
    };
    match events::ingest_events(&caller, parsed.events).await {
        Ok(outcome) => (
            StatusCode::OK,
            Json(json!({ "accepted": outcome.accepted, "duplicates": outcome.duplicates })),
        )
            .into_response(),
        Err(err) => {
            if let AppError::Internal(cause) = &err {
                tracing::error!(error = format!("{cause:#}"), "ingestion failed");
            }
            app_error_response(&err)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn busy_answers_carry_the_wait_in_body_and_header() {
        let response = app_error_response(&AppError::Busy {
            retry_after_secs: 3,
        });
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(response.headers()[header::RETRY_AFTER], "3");
        let bytes = axum::body::to_bytes(response.into_body(), 10_000)
            .await
            .unwrap();
        let body: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(body["errors"][0]["extensions"]["code"], "RATE_LIMITED");
        assert_eq!(body["errors"][0]["extensions"]["retryAfterSeconds"], 3);

        let forbidden = app_error_response(&AppError::forbidden("no"));
        assert_eq!(forbidden.status(), StatusCode::FORBIDDEN);
        assert!(forbidden.headers().get(header::RETRY_AFTER).is_none());
    }
}
