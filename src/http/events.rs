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

use super::graphql::request_meta;
use super::{HttpState, authenticate, error_response};
use crate::accounts::Caller;
use crate::auth::Principal;
use crate::error::AppError;
use crate::events::{self, NewEvent};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Body {
    events: Vec<NewEvent>,
}

fn status_of(err: &AppError) -> StatusCode {
    match err {
        AppError::Unauthenticated(_) => StatusCode::UNAUTHORIZED,
        AppError::Forbidden(_) => StatusCode::FORBIDDEN,
        AppError::BadInput(_) | AppError::TooComplex(_) => StatusCode::BAD_REQUEST,
        AppError::NotFound(_) => StatusCode::NOT_FOUND,
        AppError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
        AppError::Busy { .. } => StatusCode::SERVICE_UNAVAILABLE,
        AppError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
    }
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
    let authorization = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let principal = authenticate(&state.app, authorization).await;
    if matches!(principal, Principal::Anonymous | Principal::Rejected(_)) {
        let err = principal
            .member()
            .err()
            .unwrap_or_else(|| AppError::unauthenticated("send an API key"));
        return error_response(StatusCode::UNAUTHORIZED, err.code(), &err.to_string());
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
    let meta = request_meta(&state, &headers, peer);
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
            error_response(status_of(&err), err.code(), &err.to_string())
        }
    }
}
