//! GraphQL over HTTP (POST, and GET for queries) and over WebSocket (both protocols).

use std::net::SocketAddr;
use std::sync::Arc;

use async_graphql::BatchRequest;
use async_graphql::parser::types::{ExecutableDocument, OperationType};
use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::rejection::QueryRejection;
use axum::extract::{ConnectInfo, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::{
    HttpState, REQUEST_ID, authenticate, error_response, limits, persisted, response_cache,
};
use crate::analytics::versions::VersionsRead;
use crate::auth::Principal;
use crate::db::audit::RequestMeta;
use crate::graphql::cost::Charged;
use crate::graphql::{admission, request_data};
use crate::limits::cost::CACHED;

const MAX_BATCH: usize = 10;

pub(super) fn request_meta(
    state: &HttpState,
    headers: &HeaderMap,
    peer: SocketAddr,
) -> RequestMeta {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(|s| s.chars().take(512).collect::<String>())
    };
    let forwarded = state
        .app
        .config
        .trust_proxy
        .then(|| header("x-forwarded-for"))
        .flatten()
        .and_then(|v| v.split(',').next().map(|s| s.trim().to_string()));
    RequestMeta {
        ip: Some(forwarded.unwrap_or_else(|| peer.ip().to_string())),
        user_agent: header(header::USER_AGENT.as_str()),
        request_id: header(REQUEST_ID.as_str()),
    }
}

/// Who sent the request, worked out once (a batch shares it) and where from.
pub(super) async fn caller_of(
    state: &HttpState,
    headers: &HeaderMap,
    peer: SocketAddr,
) -> (Principal, RequestMeta) {
    let authorization = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let principal = authenticate(&state.app, authorization).await;
    (principal, request_meta(state, headers, peer))
}

pub async fn graphql_post(
    State(state): State<HttpState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let body = match body {
        Ok(b) => b,
        Err(rejection) => {
            let status = rejection.status();
            let message = if status == StatusCode::PAYLOAD_TOO_LARGE {
                format!(
                    "request body is larger than {} bytes",
                    state.app.config.max_body_bytes
                )
            } else {
                "could not read the request body".to_string()
            };
            return error_response(status, "BAD_USER_INPUT", &message);
        }
    };
    let batch: BatchRequest = match serde_json::from_slice(&body) {
        Ok(b) => b,
        Err(e) => {
            return error_response(
                StatusCode::BAD_REQUEST,
                "BAD_USER_INPUT",
                &format!("the body is not a GraphQL request in JSON: {e}"),
            );
        }
    };
    match batch {
        BatchRequest::Single(request) => {
            let (principal, meta) = caller_of(&state, &headers, peer).await;
            execute(&state, principal, meta, request, Method::Post).await
        }
        BatchRequest::Batch(requests) => {
            if requests.len() > MAX_BATCH {
                return error_response(
                    StatusCode::BAD_REQUEST,
                    "QUERY_TOO_COMPLEX",
                    &format!("a batch may hold at most {MAX_BATCH} operations"),
                );
            }
            let (principal, meta) = caller_of(&state, &headers, peer).await;
            let mut responses = Vec::with_capacity(requests.len());
            let mut last_charge = None;
            for mut request in requests {
                if let Some(trusted) = &state.trusted
                    && let Err(e) = trusted.admit(&mut request).await
                {
                    responses.push(async_graphql::Response::from_errors(vec![e]));
                    continue;
                }
                if let Err(refusal) = persisted::resolve(&state.app.kv, &mut request).await {
                    responses.push(async_graphql::Response::from_errors(vec![refusal.error()]));
                    continue;
                }
                // Fresh loaders per operation; one authentication for the batch.
                request.data = request_data(&state.app, principal.clone(), meta.clone());
                let charged = Arc::new(Charged::default());
                request.data.insert(charged.clone());
                responses.push(state.schema.execute(request).await);
                last_charge = charged.take().or(last_charge);
            }
            let mut response = Json(responses).into_response();
            if let Some(charge) = &last_charge {
                limits::apply(response.headers_mut(), charge);
            }
            response
        }
    }
}

/// A GraphQL request in a query string, as GraphQL over HTTP and Apollo's clients send it
/// (`operationName` in camel case; `variables` and `extensions` as JSON).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GetParams {
    #[serde(default)]
    query: String,
    operation_name: Option<String>,
    variables: Option<String>,
    extensions: Option<String>,
}

impl GetParams {
    fn into_request(self) -> Result<async_graphql::Request, String> {
        let json = |what: &str, text: Option<String>| {
            text.map(|t| serde_json::from_str::<serde_json::Value>(&t))
                .transpose()
                .map_err(|e| format!("{what}: not JSON: {e}"))
        };
        let mut request = async_graphql::Request::new(self.query);
        if let Some(v) = json("variables", self.variables)? {
            request = request.variables(async_graphql::Variables::from_json(v));
        }
        if let Some(serde_json::Value::Object(map)) = json("extensions", self.extensions)? {
            for (key, value) in map {
                let value = async_graphql::Value::from_json(value)
                    .map_err(|e| format!("extensions: {e}"))?;
                request.extensions.insert(key, value);
            }
        }
        if let Some(name) = self.operation_name {
            request = request.operation_name(name);
        }
        Ok(request)
    }
}

/// Queries only: a GET must not change anything (links and prefetches send GETs).
pub async fn graphql_get(
    State(state): State<HttpState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    params: Result<Query<GetParams>, QueryRejection>,
) -> Response {
    let request = match params
        .map_err(|e| e.body_text())
        .and_then(|Query(p)| p.into_request())
    {
        Ok(r) => r,
        Err(e) => {
            return error_response(
                StatusCode::BAD_REQUEST,
                "BAD_USER_INPUT",
                &format!("the query string is not a GraphQL request: {e}"),
            );
        }
    };
    let (principal, meta) = caller_of(&state, &headers, peer).await;
    execute(&state, principal, meta, request, Method::Get).await
}

/// Runs one operation, answering from the response cache when it holds this request's answer
/// at the tenant's current data version, and storing an analytics-only answer when it does not.
async fn execute(
    state: &HttpState,
    principal: Principal,
    meta: RequestMeta,
    mut request: async_graphql::Request,
    method: Method,
) -> Response {
    if let Some(trusted) = &state.trusted
        && let Err(e) = trusted.admit(&mut request).await
    {
        return errors_body(vec![e]);
    }
    if let Err(refusal) = persisted::resolve(&state.app.kv, &mut request).await {
        let mut response = (
            refusal.status(),
            Json(async_graphql::Response::from_errors(vec![refusal.error()])),
        )
            .into_response();
        if refusal == persisted::Refusal::NotFound {
            // What Apollo Server sends: the answer changes once the query is sent.
            response.headers_mut().insert(
                header::CACHE_CONTROL,
                header::HeaderValue::from_static("private, no-cache, must-revalidate"),
            );
        }
        return response;
    }
    let kv = state.app.config.metric_cache.then_some(&state.app.kv);
    let probe = response_cache::Probe::new(kv, &principal, &request);
    // A stored answer was computed for this very text, which passed admission then.
    if let Some(probe) = &probe
        && let Some(body) = probe.lookup(&state.recent).await
    {
        return cached_answer(state, &principal, &meta, body).await;
    }
    if let Err(e) = admission::admit(&mut request) {
        return errors_body(vec![e]);
    }
    let operation = request.operation_name.clone();
    let doc = match request.parsed_query() {
        Ok(doc) => doc,
        Err(e) => return errors_body(vec![e]),
    };
    if method == Method::Get && !only_queries(doc, operation.as_deref()) {
        return error_response(
            StatusCode::METHOD_NOT_ALLOWED,
            "BAD_USER_INPUT",
            "only queries may be sent with GET; use POST for mutations",
        );
    }
    let storable = probe
        .as_ref()
        .filter(|_| response_cache::cacheable(doc, operation.as_deref()));
    let read = Arc::new(VersionsRead::default());
    let charged = Arc::new(Charged::default());
    request.data = request_data(&state.app, principal, meta);
    request.data.insert(read.clone());
    request.data.insert(charged.clone());
    let mut response = state.schema.execute(request).await;
    // Stored answers are stored without what this request cost.
    let cost = response.extensions.remove("cost");
    let body = match serde_json::to_vec(&response) {
        Ok(body) => body,
        Err(_) => return Json(response).into_response(),
    };
    if let Some(probe) = storable
        && response.errors.is_empty()
        && let Some(version) = read.single()
    {
        probe.store(&state.recent, version, &body).await;
    }
    let body = match cost {
        Some(cost) if response.extensions.is_empty() => {
            limits::with_cost(body, &cost.into_json().unwrap_or_default())
        }
        Some(cost) => {
            response.extensions.insert("cost".into(), cost);
            serde_json::to_vec(&response).unwrap_or(body)
        }
        None => body,
    };
    let mut answer = json_body(body);
    if let Some(charge) = charged.take() {
        limits::apply(answer.headers_mut(), &charge);
    }
    answer
}

/// A stored answer costs [`CACHED`] points: nothing is computed for it.
async fn cached_answer(
    state: &HttpState,
    principal: &Principal,
    meta: &RequestMeta,
    body: Vec<u8>,
) -> Response {
    let Some(charge) = limits::charge(state, principal, meta, CACHED).await else {
        return json_body(body);
    };
    let mut answer = match charge.refusal() {
        Some(refused) => {
            let mut err = async_graphql::ServerError::new(refused.to_string(), None);
            err.source = Some(Arc::new(refused));
            errors_body(vec![err])
        }
        None => json_body(limits::with_cost(body, &charge.to_json())),
    };
    limits::apply(answer.headers_mut(), &charge);
    answer
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Method {
    Get,
    Post,
}

/// Whether every operation the request may run is a query (a GET must not change anything:
/// links and prefetches send GETs).
fn only_queries(doc: &ExecutableDocument, name: Option<&str>) -> bool {
    doc.operations.iter().all(|(op_name, op)| {
        let selected = name.is_none() || op_name.map(|n| n.as_str()) == name;
        !selected || op.node.ty == OperationType::Query
    })
}

/// Errors found before execution, shaped as an execution's answer.
fn errors_body(errors: Vec<async_graphql::ServerError>) -> Response {
    let mut response = async_graphql::Response::from_errors(errors);
    for err in &mut response.errors {
        crate::graphql::errors::assign_code(err);
    }
    Json(response).into_response()
}

fn json_body(body: Vec<u8>) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}
