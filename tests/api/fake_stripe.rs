//! A Stripe API on loopback, for the Stripe connector's tests. It speaks what Stripe's public
//! OpenAPI spec (github.com/stripe/openapi, v1, API version 2026-06-24.dahlia) documents for:
//! `GET /v1/subscriptions` (`limit` 1..=100, default 10; `starting_after` / `ending_before`
//! cursors, one at a time; `status`, where no status means "not canceled", `all` means every
//! status and `ended` means canceled or incomplete_expired; `customer`; `expand[]` accepted and
//! ignored, as every object here is already whole) and `GET /v1/subscriptions/{id}`, with
//! Bearer auth and Stripe's list and error envelopes. Any other request gets Stripe's 404;
//! documented list filters it does not implement get a 400 that says so, unknown parameters
//! Stripe's `parameter_unknown`. A list is in the order subscriptions were first put: Stripe
//! lists newest first, so put the newest first. Also builders for realistic objects and
//! `Stripe-Signature` values for webhook deliveries.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use tokio::net::TcpListener;

/// The API version whose shapes the builders follow (and which events carry).
const API_VERSION: &str = "2026-06-24.dahlia";
/// When builders say objects were created: 2026-01-01T00:00:00Z.
const CREATED: i64 = 1_767_225_600;
const STATUSES: [&str; 10] = [
    "active",
    "all",
    "canceled",
    "ended",
    "incomplete",
    "incomplete_expired",
    "past_due",
    "paused",
    "trialing",
    "unpaid",
];
/// Documented for `GET /v1/subscriptions` but not implemented here (so refused, not ignored).
const UNIMPLEMENTED_FILTERS: [&str; 9] = [
    "automatic_tax",
    "collection_method",
    "created",
    "current_period_end",
    "current_period_start",
    "customer_account",
    "plan",
    "price",
    "test_clock",
];

/// One request as it arrived (answered or not).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    pub method: String,
    pub path: String,
    /// The query string as sent, without `?` ("" for none).
    pub query: String,
    /// The query's pairs, percent- and `+`-decoded, in order (`expand[]` may repeat).
    pub params: Vec<(String, String)>,
}

/// What the next requests are answered with instead, whatever they ask.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// 429, Stripe's `rate_limit` error, with `Retry-After: <retry_after_secs>`.
    RateLimited { retry_after_secs: u64 },
    /// 500, an `api_error`.
    ServerError,
    /// 401, as for a key Stripe does not know.
    Unauthorized,
}

#[derive(Default)]
struct Shared {
    api_key: String,
    subscriptions: Vec<Value>,
    failures: VecDeque<Failure>,
    seen: Vec<Seen>,
}

pub struct FakeStripe {
    /// `http://127.0.0.1:<port>`, without a trailing slash.
    pub base: String,
    shared: Arc<Mutex<Shared>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeStripe {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakeStripe {
    /// Serves until dropped; requests must carry `Authorization: Bearer <api_key>`.
    pub async fn start(api_key: &str) -> FakeStripe {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let shared = Arc::new(Mutex::new(Shared {
            api_key: api_key.to_string(),
            ..Shared::default()
        }));
        let app = Router::new().fallback(handle).with_state(shared.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        FakeStripe {
            base: format!("http://127.0.0.1:{port}"),
            shared,
            task,
        }
    }

    /// Inserts `sub` (with a string `"id"`) at the end of the list, or replaces the one with
    /// its id where that one stands.
    pub fn put_subscription(&self, sub: Value) {
        let id = sub["id"]
            .as_str()
            .expect("a subscription has an id")
            .to_string();
        let mut shared = self.shared.lock().unwrap();
        match shared.subscriptions.iter_mut().find(|s| s["id"] == *id) {
            Some(kept) => *kept = sub,
            None => shared.subscriptions.push(sub),
        }
    }

    pub fn remove_subscription(&self, id: &str) {
        self.shared
            .lock()
            .unwrap()
            .subscriptions
            .retain(|s| s["id"] != *id);
    }

    /// From now on only `key` is accepted (the old one gets 401, as a revoked key does).
    pub fn set_api_key(&self, key: &str) {
        self.shared.lock().unwrap().api_key = key.to_string();
    }

    /// Queues `failures`: each of the next requests is answered with the next of them.
    pub fn fail_next(&self, failures: Vec<Failure>) {
        self.shared.lock().unwrap().failures.extend(failures);
    }

    /// Every request so far, in arrival order, failed ones included.
    pub fn requests(&self) -> Vec<Seen> {
        self.shared.lock().unwrap().seen.clone()
    }

    pub fn request_count(&self) -> usize {
        self.shared.lock().unwrap().seen.len()
    }
}

/// A Subscription as the API returns it, created (and started) 2026-01-01T00:00:00Z, in the
/// first item's currency (else usd). Each item's `subscription` is set to `id`. The current
/// spec keeps `current_period_start`/`current_period_end` on the items (not here), and
/// `discounts` but no `discount`. A `canceled` one has `canceled_at` and `ended_at` (at the
/// first period's end), a `trialing` one `trial_start` and `trial_end` (the same span); the
/// others have them null. Change fields by indexing the `Value`.
pub fn subscription(id: &str, customer: &str, status: &str, items: Vec<Value>) -> Value {
    let items: Vec<Value> = items
        .into_iter()
        .map(|mut item| {
            item["subscription"] = json!(id);
            item
        })
        .collect();
    let currency = items
        .first()
        .and_then(|item| item["price"]["currency"].as_str())
        .unwrap_or("usd")
        .to_string();
    let period_end = items
        .first()
        .and_then(|item| item["current_period_end"].as_i64())
        .unwrap_or(CREATED);
    let ended = (status == "canceled").then_some(period_end);
    let trial = (status == "trialing").then_some((CREATED, period_end));
    // In two parts: as one, `json!` would pass the macro recursion limit.
    let mut sub = json!({
        "id": id,
        "object": "subscription",
        "application": null,
        "application_fee_percent": null,
        "automatic_tax": { "disabled_reason": null, "enabled": false, "liability": null },
        "billing_cycle_anchor": CREATED,
        "billing_cycle_anchor_config": null,
        "billing_mode": { "flexible": null, "type": "classic" },
        "billing_schedules": [],
        "billing_thresholds": null,
        "cancel_at": null,
        "cancel_at_period_end": false,
        "canceled_at": ended,
        "cancellation_details": {
            "comment": null,
            "feedback": null,
            "reason": ended.map(|_| "cancellation_requested"),
        },
        "collection_method": "charge_automatically",
        "created": CREATED,
        "currency": currency,
        "customer": customer,
        "customer_account": null,
        "days_until_due": null,
        "default_payment_method": null,
        "default_source": null,
        "default_tax_rates": [],
        "description": null,
        "discounts": [],
        "ended_at": ended,
        "invoice_settings": { "account_tax_ids": null, "issuer": { "type": "self" } },
        "items": {
            "object": "list",
            "data": items,
            "has_more": false,
            "url": format!("/v1/subscription_items?subscription={id}"),
        },
    });
    let rest = json!({
        "latest_invoice": null,
        "livemode": false,
        "metadata": {},
        "next_pending_invoice_item_invoice": null,
        "on_behalf_of": null,
        "pause_collection": null,
        "payment_settings": {
            "payment_method_options": null,
            "payment_method_types": null,
            "save_default_payment_method": "off",
        },
        "pending_invoice_item_interval": null,
        "pending_setup_intent": null,
        "pending_update": null,
        "schedule": null,
        "start_date": CREATED,
        "status": status,
        "test_clock": null,
        "transfer_data": null,
        "trial_end": trial.map(|(_, end)| end),
        "trial_settings": { "end_behavior": { "missing_payment_method": "create_invoice" } },
        "trial_start": trial.map(|(start, _)| start),
    });
    if let Value::Object(rest) = rest {
        for (key, value) in rest {
            sub[key] = value;
        }
    }
    sub
}

/// A SubscriptionItem for `price` (see [`price`]), its current period the price's first
/// interval from 2026-01-01T00:00:00Z, with the legacy `plan` Stripe still sends beside it.
pub fn item(id: &str, price: Value, quantity: u64) -> Value {
    let interval = price["recurring"]["interval"].as_str().unwrap_or("month");
    let count = price["recurring"]["interval_count"].as_i64().unwrap_or(1);
    let plan = json!({
        "id": price["id"],
        "object": "plan",
        "active": price["active"],
        "amount": price["unit_amount"],
        "amount_decimal": price["unit_amount_decimal"],
        "billing_scheme": price["billing_scheme"],
        "created": price["created"],
        "currency": price["currency"],
        "interval": interval,
        "interval_count": count,
        "livemode": false,
        "metadata": {},
        "meter": null,
        "nickname": null,
        "product": price["product"],
        "tiers_mode": null,
        "transform_usage": null,
        "trial_period_days": null,
        "usage_type": "licensed",
    });
    json!({
        "id": id,
        "object": "subscription_item",
        "billing_thresholds": null,
        "created": CREATED,
        "current_period_end": period_end(CREATED, interval, count),
        "current_period_start": CREATED,
        "discounts": [],
        "metadata": {},
        "plan": plan,
        "price": price,
        "quantity": quantity,
        "subscription": "",
        "tax_rates": [],
    })
}

/// A recurring, licensed, per-unit Price (`interval`: day, week, month or year) of product
/// `prod_<id without "price_">`.
pub fn price(
    id: &str,
    currency: &str,
    unit_amount: i64,
    interval: &str,
    interval_count: u32,
) -> Value {
    json!({
        "id": id,
        "object": "price",
        "active": true,
        "billing_scheme": "per_unit",
        "created": CREATED,
        "currency": currency,
        "custom_unit_amount": null,
        "livemode": false,
        "lookup_key": null,
        "metadata": {},
        "nickname": null,
        "product": format!("prod_{}", id.strip_prefix("price_").unwrap_or(id)),
        "recurring": {
            "interval": interval,
            "interval_count": interval_count,
            "meter": null,
            "trial_period_days": null,
            "usage_type": "licensed",
        },
        "tax_behavior": "unspecified",
        "tiers_mode": null,
        "transform_quantity": null,
        "type": "recurring",
        "unit_amount": unit_amount,
        "unit_amount_decimal": unit_amount.to_string(),
    })
}

/// An Event of type `type_` about `object` (no `previous_attributes`), as a webhook delivers it.
pub fn event(id: &str, type_: &str, created: i64, object: Value) -> Value {
    json!({
        "id": id,
        "object": "event",
        "api_version": API_VERSION,
        "created": created,
        "data": { "object": object },
        "livemode": false,
        "pending_webhooks": 1,
        "request": { "id": null, "idempotency_key": null },
        "type": type_,
    })
}

/// The `Stripe-Signature` header for `body` delivered at `timestamp` under the endpoint's
/// signing `secret`: `t=<timestamp>,v1=<hex HMAC-SHA256 of "<timestamp>.<body>">`.
pub fn sign(secret: &str, timestamp: i64, body: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(format!("{timestamp}.{body}").as_bytes());
    format!(
        "t={timestamp},v1={}",
        hex::encode(mac.finalize().into_bytes())
    )
}

/// `start` plus `count` intervals; months and years on the calendar (UTC, clamped to the
/// month's last day).
fn period_end(start: i64, interval: &str, count: i64) -> i64 {
    let start = chrono::DateTime::from_timestamp(start, 0).expect("a time in range");
    let end = match interval {
        "day" => start + chrono::Duration::days(count),
        "week" => start + chrono::Duration::weeks(count),
        "year" => start + chrono::Months::new(12 * count as u32),
        _ => start + chrono::Months::new(count as u32),
    };
    end.timestamp()
}

async fn handle(State(shared): State<Arc<Mutex<Shared>>>, request: Request) -> Response {
    let method = request.method().clone();
    let path = request.uri().path().to_string();
    let query = request.uri().query().unwrap_or("").to_string();
    let params = parse_query(&query);
    let authorization = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .map(str::to_string);
    let mut shared = shared.lock().unwrap();
    shared.seen.push(Seen {
        method: method.to_string(),
        path: path.clone(),
        query,
        params: params.clone(),
    });
    let request_id = format!("req_fake{:010}", shared.seen.len());
    let mut response = match shared.failures.pop_front() {
        Some(failure) => failed(&failure, authorization.as_deref()),
        None if authorization.as_deref() != Some(&format!("Bearer {}", shared.api_key)) => {
            unauthorized(authorization.as_deref())
        }
        None => route(&shared.subscriptions, &method, &path, &params),
    };
    response
        .headers_mut()
        .insert("request-id", HeaderValue::from_str(&request_id).unwrap());
    response
}

fn route(
    subscriptions: &[Value],
    method: &Method,
    path: &str,
    params: &[(String, String)],
) -> Response {
    let id = path
        .strip_prefix("/v1/subscriptions/")
        .filter(|id| !id.is_empty() && !id.contains('/'));
    match (method, id) {
        (&Method::GET, _) if path == "/v1/subscriptions" => list(subscriptions, params),
        (&Method::GET, Some(id)) => retrieve(subscriptions, id, params),
        _ => error(
            StatusCode::NOT_FOUND,
            ApiError::invalid(format!(
                "Unrecognized request URL ({method}: {path}). Please see https://stripe.com/docs or we can help at https://support.stripe.com/."
            )),
        ),
    }
}

fn list(subscriptions: &[Value], params: &[(String, String)]) -> Response {
    let mut limit = 10;
    let (mut starting_after, mut ending_before, mut status, mut customer) =
        (None, None, None, None);
    for (key, value) in params {
        match key.as_str() {
            "limit" => match value.parse::<i64>() {
                Ok(n) if n < 1 => {
                    return bad_param("limit", "This value must be greater than or equal to 1.");
                }
                Ok(n) if n > 100 => {
                    return bad_param("limit", "This value must be less than or equal to 100.");
                }
                Ok(n) => limit = n as usize,
                Err(_) => {
                    return error(
                        StatusCode::BAD_REQUEST,
                        ApiError::invalid(format!("Invalid integer: {value}"))
                            .code("parameter_invalid_integer")
                            .param("limit"),
                    );
                }
            },
            "starting_after" => starting_after = Some(value.as_str()),
            "ending_before" => ending_before = Some(value.as_str()),
            "status" if STATUSES.contains(&value.as_str()) => status = Some(value.as_str()),
            "status" => {
                return bad_param(
                    "status",
                    &format!("Invalid status: must be one of {}", STATUSES.join(", ")),
                );
            }
            "customer" => customer = Some(value.as_str()),
            _ if is_expand(key) => {}
            _ => return unexpected(key, &UNIMPLEMENTED_FILTERS),
        }
    }
    if starting_after.is_some() && ending_before.is_some() {
        return error(
            StatusCode::BAD_REQUEST,
            ApiError::invalid(
                "Received both starting_after and ending_before parameters. Please pass in only one.".into(),
            )
            .code("parameters_exclusive")
            .param("ending_before"),
        );
    }
    let selected = |sub: &&Value| {
        let status_matches = match (status, sub["status"].as_str().unwrap_or("")) {
            (None, actual) => actual != "canceled",
            (Some("all"), _) => true,
            (Some("ended"), actual) => actual == "canceled" || actual == "incomplete_expired",
            (Some(wanted), actual) => wanted == actual,
        };
        let owner = &sub["customer"];
        let owner = owner.as_str().or_else(|| owner["id"].as_str());
        status_matches && customer.is_none_or(|wanted| owner == Some(wanted))
    };
    let position = |id: &str| subscriptions.iter().position(|sub| sub["id"] == *id);
    let (page, has_more): (Vec<&Value>, bool) = if let Some(id) = ending_before {
        let Some(end) = position(id) else {
            return no_such(id, "ending_before", StatusCode::BAD_REQUEST);
        };
        let before: Vec<&Value> = subscriptions[..end].iter().filter(selected).collect();
        let from = before.len().saturating_sub(limit);
        (before[from..].to_vec(), from > 0)
    } else {
        let start = match starting_after {
            Some(id) => match position(id) {
                Some(at) => at + 1,
                None => return no_such(id, "starting_after", StatusCode::BAD_REQUEST),
            },
            None => 0,
        };
        let mut after = subscriptions[start..].iter().filter(selected);
        let page: Vec<&Value> = after.by_ref().take(limit).collect();
        (page, after.next().is_some())
    };
    Json(json!({
        "object": "list",
        "url": "/v1/subscriptions",
        "has_more": has_more,
        "data": page,
    }))
    .into_response()
}

fn retrieve(subscriptions: &[Value], id: &str, params: &[(String, String)]) -> Response {
    if let Some((key, _)) = params.iter().find(|(key, _)| !is_expand(key)) {
        return unexpected(key, &[]);
    }
    match subscriptions.iter().find(|sub| sub["id"] == *id) {
        Some(sub) => Json(sub.clone()).into_response(),
        None => no_such(id, "id", StatusCode::NOT_FOUND),
    }
}

/// `expand[]=a` or `expand[0]=a`, the two ways clients send Stripe's `expand` array.
fn is_expand(key: &str) -> bool {
    key.strip_prefix("expand[")
        .and_then(|rest| rest.strip_suffix(']'))
        .is_some_and(|index| index.bytes().all(|b| b.is_ascii_digit()))
}

fn unexpected(key: &str, unimplemented: &[&str]) -> Response {
    let name = key.split('[').next().unwrap_or(key);
    if unimplemented.contains(&name) {
        bad_param(
            key,
            &format!("fake_stripe does not implement the documented `{name}` parameter"),
        )
    } else {
        error(
            StatusCode::BAD_REQUEST,
            ApiError::invalid(format!("Received unknown parameter: {key}"))
                .code("parameter_unknown")
                .param(key),
        )
    }
}

fn bad_param(param: &str, message: &str) -> Response {
    error(
        StatusCode::BAD_REQUEST,
        ApiError::invalid(message.to_string()).param(param),
    )
}

fn no_such(id: &str, param: &str, status: StatusCode) -> Response {
    error(
        status,
        ApiError::invalid(format!("No such subscription: '{id}'"))
            .code("resource_missing")
            .param(param),
    )
}

fn unauthorized(authorization: Option<&str>) -> Response {
    let message = match authorization.and_then(|value| value.strip_prefix("Bearer ")) {
        Some(key) => format!("Invalid API Key provided: {}", redact(key)),
        None => "You did not provide an API key. You need to provide your API key in the Authorization header, using Bearer auth (e.g. 'Authorization: Bearer YOUR_SECRET_KEY'). See https://stripe.com/docs/api#authentication for details, or we can help at https://support.stripe.com/.".to_string(),
    };
    error(StatusCode::UNAUTHORIZED, ApiError::invalid(message))
}

/// Stripe's way of echoing a key: its prefix, stars, its last four characters.
fn redact(key: &str) -> String {
    let (head, rest) = key.split_at(key.rfind('_').map_or(0, |at| at + 1));
    let hidden = rest.chars().count().saturating_sub(4);
    let tail: String = rest.chars().skip(hidden).collect();
    format!("{head}{}{tail}", "*".repeat(hidden))
}

fn failed(failure: &Failure, authorization: Option<&str>) -> Response {
    match failure {
        Failure::RateLimited { retry_after_secs } => {
            let mut response = error(
                StatusCode::TOO_MANY_REQUESTS,
                ApiError::invalid(
                    "Request rate limit exceeded. Learn more about rate limits here https://stripe.com/docs/rate-limits.".into(),
                )
                .code("rate_limit"),
            );
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(*retry_after_secs));
            response
        }
        Failure::ServerError => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            ApiError {
                kind: "api_error",
                message: "An unknown error occurred".into(),
                code: None,
                param: None,
            },
        ),
        Failure::Unauthorized => unauthorized(authorization),
    }
}

/// The `error` of Stripe's error envelope; absent fields are left out, as Stripe does.
struct ApiError {
    kind: &'static str,
    message: String,
    code: Option<&'static str>,
    param: Option<String>,
}

impl ApiError {
    fn invalid(message: String) -> ApiError {
        ApiError {
            kind: "invalid_request_error",
            message,
            code: None,
            param: None,
        }
    }

    fn code(self, code: &'static str) -> ApiError {
        ApiError {
            code: Some(code),
            ..self
        }
    }

    fn param(self, param: &str) -> ApiError {
        ApiError {
            param: Some(param.to_string()),
            ..self
        }
    }
}

fn error(status: StatusCode, error: ApiError) -> Response {
    let mut body = json!({ "type": error.kind, "message": error.message });
    if let Some(code) = error.code {
        body["code"] = json!(code);
        body["doc_url"] = json!(format!(
            "https://stripe.com/docs/error-codes/{}",
            code.replace('_', "-")
        ));
    }
    if let Some(param) = error.param {
        body["param"] = json!(param);
    }
    (status, Json(json!({ "error": body }))).into_response()
}

/// `application/x-www-form-urlencoded` pairs.
fn parse_query(query: &str) -> Vec<(String, String)> {
    form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect()
}
