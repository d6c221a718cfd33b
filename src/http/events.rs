//! Bulk ingestion for SDKs: `POST /api/v1/events` (`{"events": [EventInput...]}`) and
//! `POST /api/v1/revenue` (`{"changes": [RevenueChangeInput...]}`).

use std::net::SocketAddr;

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::json;

use super::graphql::caller_of;
use super::{HttpState, error_response, limits};
use crate::accounts::Caller;
use crate::auth::Principal;
use crate::db::audit::RequestMeta;
use crate::error::{AppError, AppResult};
use crate::events::{self, NewEvent};
use crate::limits::cost::rest_ingestion;
use crate::revenue::{self, NewRevenueChange};

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

/// The caller and the parsed body of an ingestion request, or the answer that refuses it.
async fn accept<B: DeserializeOwned>(
    state: &HttpState,
    peer: SocketAddr,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
    shape: &str,
) -> Result<(Principal, RequestMeta, B), Response> {
    let body = body.map_err(|rejection| {
        error_response(rejection.status(), "BAD_USER_INPUT", &rejection.body_text())
    })?;
    let (principal, meta) = caller_of(state, headers, peer).await;
    if matches!(principal, Principal::Anonymous | Principal::Rejected(_)) {
        let err = principal
            .member()
            .err()
            .unwrap_or_else(|| AppError::unauthenticated("send an API key"));
        return Err(app_error_response(&err));
    }
    let parsed = serde_json::from_slice(&body).map_err(|e| {
        error_response(
            StatusCode::BAD_REQUEST,
            "BAD_USER_INPUT",
            &format!("the body must be {shape}: {e}"),
        )
    })?;
    Ok((principal, meta, parsed))
}

/// `{accepted, duplicates}`, or the error as the contract's code.
fn answer(outcome: AppResult<(i64, i64)>, what: &str) -> Response {
    match outcome {
        Ok((accepted, duplicates)) => (
            StatusCode::OK,
            Json(json!({ "accepted": accepted, "duplicates": duplicates })),
        )
            .into_response(),
        Err(err) => {
            err.report(&format!("{what} ingestion"));
            app_error_response(&err)
        }
    }
}

pub async fn ingest(
    State(state): State<HttpState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let shape = "{\"events\": [...]}";
    let (principal, meta, parsed) = match accept::<Body>(&state, peer, &headers, body, shape).await
    {
        Ok(accepted) => accepted,
        Err(refused) => return refused,
    };
    let points = rest_ingestion(parsed.events.len());
    let caller = Caller {
        app: &state.app,
        principal: &principal,
        meta: &meta,
    };
    charged(&state, &caller, points, async {
        let outcome = events::ingest_events(caller.writer(), parsed.events).await;
        answer(outcome.map(|o| (o.accepted, o.duplicates)), "event")
    })
    .await
}

/// `work`'s answer once its points are paid, with the budget in its headers; the refusal
/// (429, `Retry-After`) when they cannot be.
async fn charged(
    state: &HttpState,
    caller: &Caller<'_>,
    points: u64,
    work: impl std::future::Future<Output = Response>,
) -> Response {
    let charge = limits::charge(state, caller.principal, caller.meta, points).await;
    let mut response = match charge.as_ref().and_then(|c| c.refusal()) {
        Some(refused) => app_error_response(&refused),
        None => work.await,
    };
    if let Some(charge) = &charge {
        limits::apply(response.headers_mut(), charge);
    }
    response
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RevenueBody {
    changes: Vec<NewRevenueChange>,
}

/// `POST /api/v1/revenue`: `{"changes": [RevenueChangeInput...]}`, as `ingestRevenueChanges`.
pub async fn ingest_revenue(
    State(state): State<HttpState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let shape = "{\"changes\": [...]}";
    let (principal, meta, parsed) =
        match accept::<RevenueBody>(&state, peer, &headers, body, shape).await {
            Ok(accepted) => accepted,
            Err(refused) => return refused,
        };
    let points = rest_ingestion(parsed.changes.len());
    let caller = Caller {
        app: &state.app,
        principal: &principal,
        meta: &meta,
    };
    charged(&state, &caller, points, async {
        let outcome = revenue::ingest_revenue(caller.writer(), parsed.changes).await;
        answer(outcome.map(|o| (o.accepted, o.duplicates)), "revenue")
    })
    .await
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
