//! `POST /api/v1/webhooks/{provider}/{integrationId}`: providers' deliveries, verified and
//! recorded before the answer, processed on the job queue after it. A bad or missing signature
//! gets 400 (and an audit record); an unknown integration 404; a replay or an ignored type 200.

use std::net::SocketAddr;

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::graphql::request_meta;
use super::{HttpState, error_response};
use crate::connectors::webhooks::{self, Received, Rejected};

pub async fn deliver(
    State(state): State<HttpState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path((provider, integration)): Path<(String, String)>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let body = match body {
        Ok(b) => b,
        Err(rejection) => {
            return error_response(rejection.status(), "BAD_USER_INPUT", &rejection.body_text());
        }
    };
    let meta = request_meta(&state, &headers, peer);
    let services = &state.app.connectors;
    match webhooks::receive(services, &provider, &integration, &headers, &body, &meta).await {
        Ok(received) => {
            let status = match received {
                Received::Accepted => "accepted",
                Received::Replayed => "duplicate",
                Received::Ignored => "ignored",
            };
            (
                StatusCode::OK,
                Json(json!({ "received": true, "status": status })),
            )
                .into_response()
        }
        Err(Rejected::NotFound) => {
            error_response(StatusCode::NOT_FOUND, "NOT_FOUND", "no such integration")
        }
        Err(Rejected::Refused) => error_response(
            StatusCode::BAD_REQUEST,
            "BAD_USER_INPUT",
            "the delivery's signature could not be verified",
        ),
        Err(Rejected::Failed(e)) => {
            e.report("a webhook delivery");
            let status = match e {
                crate::error::AppError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
                _ => StatusCode::SERVICE_UNAVAILABLE,
            };
            error_response(
                status,
                e.code(),
                "the delivery could not be recorded; send it again",
            )
        }
    }
}
