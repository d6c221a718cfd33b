//! A PayPal REST API on loopback, for the PayPal connector's tests. It speaks what PayPal's
//! public OpenAPI specs (github.com/paypal/paypal-rest-api-specifications) document for the
//! calls a sync needs, so that the connector is tested against PayPal's shapes and limits
//! rather than against itself:
//!
//! - `POST /v1/oauth2/token`: HTTP Basic `client_id:secret`, form `grant_type=client_credentials`;
//!   tokens last `expires_in` 32400 seconds, or until `expire_tokens`.
//! - `GET /v1/billing/plans/{id}` and `GET /v1/billing/subscriptions/{id}` (`fields=plan`
//!   inlines the plan; `last_failed_payment` is accepted), from billing_subscriptions_v1.json.
//! - `GET /v1/reporting/transactions` (reporting_transactions_v1.json), the only documented way
//!   to enumerate subscriptions, as Subscriptions v1 has no list call: `start_date` and
//!   `end_date` required (RFC 3339 with seconds and a `+hh:mm` or `Z` offset), at most 31 days
//!   apart, not older than three years; `page` from 1, `page_size` 1..=500 (default 100);
//!   `fields` among the documented ones; the answer carries `page`, `total_items`,
//!   `total_pages` and `links` (`next` while pages remain). Each subscription put here with a
//!   `billing_info.last_payment` is one `T0002` (subscription payment) transaction at that
//!   payment's time, `paypal_reference_id` its id, `paypal_reference_id_type` `SUB`; dates are
//!   written as PayPal writes them, `+0000` without a colon.
//! - `POST /v1/notifications/verify-webhook-signature` (notifications_webhooks_v1.json): every
//!   documented field required; `SUCCESS` only for the pair set with `set_valid_signature`.
//!
//! Errors use PayPal's envelope `{name, message, debug_id, details: [{field, location, issue,
//! description}]}`; the token call uses OAuth's `{error, error_description}` as PayPal does.
//! The specs pin the envelope, each status's `name` and `message`, and the 404's
//! `INVALID_RESOURCE_ID`; the other `issue` values here are PayPal-style names of our own
//! (`MISSING_REQUIRED_PARAMETER`, `INVALID_PARAMETER_SYNTAX`, `INVALID_PARAMETER_VALUE`,
//! `UNSUPPORTED_PARAMETER`, `INVALID_TOKEN`), so a connector should not branch on them.
//! "Data for the given start date is not available." (too old a window) is the message PayPal
//! is reported to send (paypal/PayPal-node-SDK#452), with no details.
//! The search's documented filters that are not implemented, and parameters PayPal does not
//! document, get a 400 that says so, so that a typo fails a test instead of being ignored.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use axum::body::to_bytes;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};
use tokio::net::TcpListener;

const DAY: i64 = 86_400;
const EXPIRES_IN: u64 = 32_400;
const APP_ID: &str = "APP-80W284485P519543T";
const SCOPES: &str = "https://uri.paypal.com/services/subscriptions https://uri.paypal.com/services/reporting/search/read https://uri.paypal.com/services/applications/webhooks";
const SEARCH_MAX_SECS: i64 = 31 * DAY;
const SEARCH_HISTORY_SECS: i64 = 3 * 365 * DAY;
const SEARCH_FIELDS: [&str; 8] = [
    "transaction_info",
    "payer_info",
    "shipping_info",
    "auction_info",
    "cart_info",
    "incentive_info",
    "store_info",
    "all",
];
/// Documented for `GET /v1/reporting/transactions` but not implemented here.
const UNIMPLEMENTED_FILTERS: [&str; 8] = [
    "transaction_id",
    "transaction_type",
    "transaction_status",
    "transaction_amount",
    "transaction_currency",
    "payment_instrument_type",
    "store_id",
    "terminal_id",
];
const VERIFY_FIELDS: [&str; 6] = [
    "auth_algo",
    "cert_url",
    "transmission_id",
    "transmission_sig",
    "transmission_time",
    "webhook_id",
];

static DEBUG_IDS: AtomicU64 = AtomicU64::new(0x5a1c_0000_0000);

#[derive(Default)]
struct Shared {
    client_id: String,
    secret: String,
    /// Tokens issued and not expired.
    live_tokens: Vec<String>,
    issued: usize,
    token_requests: usize,
    plans: Vec<Value>,
    subscriptions: Vec<Value>,
    valid_signature: Option<(String, String)>,
    seen: Vec<(String, String, String)>,
}

pub struct FakePaypal {
    /// `http://127.0.0.1:<port>`, without a trailing slash.
    pub base: String,
    shared: Arc<Mutex<Shared>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakePaypal {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakePaypal {
    /// Serves until dropped; tokens are issued to `client_id:secret` only.
    pub async fn start(client_id: &str, secret: &str) -> FakePaypal {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let shared = Arc::new(Mutex::new(Shared {
            client_id: client_id.to_string(),
            secret: secret.to_string(),
            ..Shared::default()
        }));
        let app = Router::new().fallback(handle).with_state(shared.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        FakePaypal {
            base: format!("http://127.0.0.1:{port}"),
            shared,
            task,
        }
    }

    /// Inserts `plan` (with a string `"id"`), or replaces the one with its id.
    pub fn put_plan(&self, plan: Value) {
        let mut shared = self.shared.lock().unwrap();
        upsert(&mut shared.plans, plan);
    }

    /// Inserts `sub`, or replaces the one with its id. What only PayPal would know is filled
    /// in from its plan, which must be put first when `billing_info.last_payment` has no
    /// `amount`: that amount (the REGULAR price × quantity), the cycle executions and the
    /// outstanding balance.
    pub fn put_subscription(&self, mut sub: Value) {
        let mut shared = self.shared.lock().unwrap();
        let plan = find(&shared.plans, sub["plan_id"].as_str().unwrap_or("")).cloned();
        match plan {
            Some(plan) => complete_billing_info(&mut sub, &plan),
            None => assert!(
                sub["billing_info"]["last_payment"].get("time").is_none()
                    || sub["billing_info"]["last_payment"].get("amount").is_some(),
                "put_plan({}) before put_subscription({})",
                sub["plan_id"],
                sub["id"]
            ),
        }
        upsert(&mut shared.subscriptions, sub);
    }

    /// Every token issued so far answers 401 from now on (as one that expires mid-sync).
    pub fn expire_tokens(&self) {
        self.shared.lock().unwrap().live_tokens.clear();
    }

    /// How many `POST /v1/oauth2/token` arrived, refused ones included.
    pub fn token_requests(&self) -> usize {
        self.shared.lock().unwrap().token_requests
    }

    /// `verify-webhook-signature` answers `SUCCESS` for this pair only, `FAILURE` otherwise.
    pub fn set_valid_signature(&self, webhook_id: &str, transmission_sig: &str) {
        self.shared.lock().unwrap().valid_signature =
            Some((webhook_id.to_string(), transmission_sig.to_string()));
    }

    /// Every request so far, in arrival order: method, path, query as sent ("" for none).
    pub fn requests(&self) -> Vec<(String, String, String)> {
        self.shared.lock().unwrap().seen.clone()
    }
}

/// A plan as `GET /v1/billing/plans/{id}` returns it: an optional free trial
/// (`(interval_unit, interval_count, total_cycles)`, sequence 1), then one REGULAR cycle of
/// `value` in `currency` every `interval_count` `interval_unit` (DAY, WEEK, MONTH or YEAR),
/// for ever. Quantities are supported. Change fields by indexing the `Value`.
pub fn plan(
    id: &str,
    currency: &str,
    value: &str,
    interval_unit: &str,
    interval_count: u32,
    trial: Option<(&str, u32, u32)>,
) -> Value {
    let mut cycles = Vec::new();
    if let Some((unit, count, total)) = trial {
        cycles.push(json!({
            "frequency": { "interval_unit": unit, "interval_count": count },
            "tenure_type": "TRIAL",
            "sequence": 1,
            "total_cycles": total,
        }));
    }
    cycles.push(json!({
        "pricing_scheme": {
            "version": 1,
            "fixed_price": { "currency_code": currency, "value": value },
            "create_time": "2026-01-01T00:00:00Z",
            "update_time": "2026-01-01T00:00:00Z",
        },
        "frequency": { "interval_unit": interval_unit, "interval_count": interval_count },
        "tenure_type": "REGULAR",
        "sequence": cycles.len() + 1,
        "total_cycles": 0,
    }));
    json!({
        "id": id,
        "product_id": "PROD-XXCD1234QWER65782",
        "name": format!("Plan {id}"),
        "description": "Fahwa test plan",
        "status": "ACTIVE",
        "usage_type": "LICENSED",
        "billing_cycles": cycles,
        "payment_preferences": {
            "service_type": "PREPAID",
            "auto_bill_outstanding": true,
            "setup_fee": { "value": "0", "currency_code": currency },
            "setup_fee_failure_action": "CONTINUE",
            "payment_failure_threshold": 3,
        },
        "taxes": { "percentage": "0", "inclusive": false },
        "quantity_supported": true,
        "create_time": "2026-01-01T00:00:00Z",
        "update_time": "2026-01-01T00:00:00Z",
        "links": [link(&format!("/v1/billing/plans/{id}"), "self", "GET")],
    })
}

/// A subscription as `GET /v1/billing/subscriptions/{id}` returns it, created and started at
/// `start_time` (RFC 3339), paid by `payer_id` (email `<payer_id>@example.com`, lower-cased).
/// One that has billed (ACTIVE, SUSPENDED, CANCELLED, EXPIRED) has `last_payment` at its
/// start: the one transaction the search lists for it. Change fields by indexing the `Value`.
pub fn subscription(
    id: &str,
    plan_id: &str,
    payer_id: &str,
    status: &str,
    start_time: &str,
    quantity: u32,
) -> Value {
    let billed = matches!(status, "ACTIVE" | "SUSPENDED" | "CANCELLED" | "EXPIRED");
    let mut billing_info = json!({ "cycle_executions": [], "failed_payments_count": 0 });
    if billed {
        billing_info["last_payment"] = json!({ "time": start_time });
    }
    json!({
        "id": id,
        "plan_id": plan_id,
        "status": status,
        "status_update_time": start_time,
        "start_time": start_time,
        "quantity": quantity.to_string(),
        "subscriber": {
            "name": { "given_name": "John", "surname": "Doe" },
            "email_address": format!("{}@example.com", payer_id.to_lowercase()),
            "payer_id": payer_id,
        },
        "billing_info": billing_info,
        "create_time": start_time,
        "update_time": start_time,
        "plan_overridden": false,
        "links": [link(&format!("/v1/billing/subscriptions/{id}"), "self", "GET")],
    })
}

/// A webhook event about `resource`, as PayPal delivers it.
pub fn event(id: &str, event_type: &str, create_time: &str, resource: Value) -> Value {
    let (resource_type, resource_version) = if event_type.starts_with("BILLING.SUBSCRIPTION.") {
        ("subscription", "2.0")
    } else if event_type.starts_with("BILLING.PLAN.") {
        ("plan", "2.0")
    } else {
        ("sale", "1.0")
    };
    json!({
        "id": id,
        "event_version": "1.0",
        "create_time": create_time,
        "resource_type": resource_type,
        "resource_version": resource_version,
        "event_type": event_type,
        "summary": format!("{event_type} event"),
        "resource": resource,
        "links": [link(&format!("/v1/notifications/webhooks-events/{id}"), "self", "GET")],
    })
}

fn link(path: &str, rel: &str, method: &str) -> Value {
    json!({ "href": format!("https://api-m.paypal.com{path}"), "rel": rel, "method": method })
}

fn find<'a>(objects: &'a [Value], id: &str) -> Option<&'a Value> {
    objects.iter().find(|object| object["id"] == *id)
}

fn upsert(objects: &mut Vec<Value>, object: Value) {
    let id = object["id"]
        .as_str()
        .expect("an object has an id")
        .to_string();
    match objects.iter_mut().find(|kept| kept["id"] == *id) {
        Some(kept) => *kept = object,
        None => objects.push(object),
    }
}

/// Fills, where absent, what PayPal derives from the plan.
fn complete_billing_info(sub: &mut Value, plan: &Value) {
    let cycles = plan["billing_cycles"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let regular = cycles
        .iter()
        .find(|cycle| cycle["tenure_type"] == "REGULAR");
    let price = regular.map(|cycle| &cycle["pricing_scheme"]["fixed_price"]);
    let currency = price
        .and_then(|p| p["currency_code"].as_str())
        .unwrap_or("USD");
    let info = &mut sub["billing_info"];
    if info["outstanding_balance"].is_null() {
        info["outstanding_balance"] = json!({ "currency_code": currency, "value": "0.0" });
    }
    if info["cycle_executions"]
        .as_array()
        .is_none_or(Vec::is_empty)
    {
        info["cycle_executions"] = cycles.iter().map(cycle_execution).collect();
    }
    let paid = info["last_payment"].get("time").is_some();
    if paid && info["last_payment"].get("amount").is_none() {
        let quantity = sub["quantity"].as_str().unwrap_or("1").parse().unwrap_or(1);
        let value = price.and_then(|p| p["value"].as_str()).unwrap_or("0");
        sub["billing_info"]["last_payment"]["amount"] =
            json!({ "currency_code": currency, "value": times(value, quantity) });
    }
}

fn cycle_execution(cycle: &Value) -> Value {
    json!({
        "tenure_type": cycle["tenure_type"],
        "sequence": cycle["sequence"],
        "cycles_completed": 0,
        "cycles_remaining": cycle["total_cycles"],
        "current_pricing_scheme_version": 1,
        "total_cycles": cycle["total_cycles"],
    })
}

/// A decimal string × a whole quantity, exactly ("9.99" × 3 = "29.97").
fn times(value: &str, quantity: u64) -> String {
    let (whole, fraction) = value.split_once('.').unwrap_or((value, ""));
    let digits: u128 = format!("{whole}{fraction}").parse().unwrap_or(0);
    let product = (digits * u128::from(quantity)).to_string();
    if fraction.is_empty() {
        return product;
    }
    let padded = format!("{product:0>width$}", width = fraction.len() + 1);
    let (head, tail) = padded.split_at(padded.len() - fraction.len());
    format!("{head}.{tail}")
}

// ---- Serving ----

async fn handle(State(shared): State<Arc<Mutex<Shared>>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let body = to_bytes(body, 1 << 20).await.unwrap_or_default();
    let path = parts.uri.path().to_string();
    let query = parts.uri.query().unwrap_or("").to_string();
    let mut shared = shared.lock().unwrap();
    shared
        .seen
        .push((parts.method.to_string(), path.clone(), query.clone()));
    if path == "/v1/oauth2/token" && parts.method == Method::POST {
        return issue_token(&mut shared, &parts.headers, &body);
    }
    if !bearer_is_live(&shared, &parts.headers) {
        return error(
            StatusCode::UNAUTHORIZED,
            "AUTHENTICATION_FAILURE",
            "Authentication failed due to missing authorization header, or invalid authentication credentials.",
            vec![Detail::new(
                "INVALID_TOKEN",
                "The access token is missing, invalid or expired.",
            )],
        );
    }
    route(&shared, &parts.method, &path, &parse_query(&query), &body)
}

fn issue_token(shared: &mut Shared, headers: &HeaderMap, body: &[u8]) -> Response {
    shared.token_requests += 1;
    let expected = STANDARD.encode(format!("{}:{}", shared.client_id, shared.secret));
    let basic = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Basic "));
    if basic != Some(expected.as_str()) {
        return oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "Client Authentication failed",
        );
    }
    let form = parse_query(&String::from_utf8_lossy(body));
    match form.iter().find(|(key, _)| key == "grant_type") {
        None => oauth_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "Grant Type is NULL",
        ),
        Some((_, grant)) if grant != "client_credentials" => oauth_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "unsupported grant_type",
        ),
        Some(_) => {
            shared.issued += 1;
            let token = format!(
                "A21AA{:0>40}{}",
                shared.issued, "Fk7n9bCHSRxbrd8A9zrhdu2rMyFrmz"
            );
            shared.live_tokens.push(token.clone());
            Json(json!({
                "scope": SCOPES,
                "access_token": token,
                "token_type": "Bearer",
                "app_id": APP_ID,
                "expires_in": EXPIRES_IN,
                "nonce": format!("{}{:x}", paypal_time(now()).replace("+0000", "Z"), shared.issued),
            }))
            .into_response()
        }
    }
}

fn bearer_is_live(shared: &Shared, headers: &HeaderMap) -> bool {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .is_some_and(|token| shared.live_tokens.iter().any(|live| live == token))
}

fn route(
    shared: &Shared,
    method: &Method,
    path: &str,
    params: &[(String, String)],
    body: &[u8],
) -> Response {
    let id_after = |prefix: &str| {
        path.strip_prefix(prefix)
            .filter(|id| !id.is_empty() && !id.contains('/'))
    };
    match *method {
        Method::GET if path == "/v1/reporting/transactions" => search(shared, params),
        Method::POST if path == "/v1/notifications/verify-webhook-signature" => {
            verify(shared, body)
        }
        Method::GET => {
            if let Some(id) = id_after("/v1/billing/plans/") {
                show_plan(shared, id, params)
            } else if let Some(id) = id_after("/v1/billing/subscriptions/") {
                show_subscription(shared, id, params)
            } else {
                not_found(vec![])
            }
        }
        _ => not_found(vec![]),
    }
}

fn show_plan(shared: &Shared, id: &str, params: &[(String, String)]) -> Response {
    if let Some((key, _)) = params.first() {
        return bad_request(vec![Detail::unknown(key)]);
    }
    match find(&shared.plans, id) {
        Some(plan) => Json(plan.clone()).into_response(),
        None => not_found(vec![Detail::invalid_id()]),
    }
}

fn show_subscription(shared: &Shared, id: &str, params: &[(String, String)]) -> Response {
    let mut with_plan = false;
    for (key, value) in params {
        if key != "fields" {
            return bad_request(vec![Detail::unknown(key)]);
        }
        for field in value.split(',') {
            match field {
                "plan" => with_plan = true,
                "last_failed_payment" => {}
                _ => return bad_request(vec![Detail::value("fields", value)]),
            }
        }
    }
    let Some(sub) = find(&shared.subscriptions, id) else {
        return not_found(vec![Detail::invalid_id()]);
    };
    let mut sub = sub.clone();
    if with_plan && let Some(plan) = find(&shared.plans, sub["plan_id"].as_str().unwrap_or("")) {
        sub["plan"] = plan.clone();
    }
    Json(sub).into_response()
}

// ---- Transaction Search ----

struct Search {
    start: i64,
    end: i64,
    page: u64,
    page_size: u64,
    fields: Vec<String>,
}

fn search(shared: &Shared, params: &[(String, String)]) -> Response {
    let search = match read_search(params) {
        Ok(search) => search,
        Err(response) => return *response,
    };
    let mut found: Vec<(i64, &Value)> = shared
        .subscriptions
        .iter()
        .filter_map(|sub| Some((payment_time(sub)?, sub)))
        .filter(|(at, _)| (search.start..=search.end).contains(at))
        .collect();
    found.sort_by_key(|(at, _)| *at);
    let total = found.len() as u64;
    let total_pages = total.div_ceil(search.page_size);
    let skip = ((search.page - 1) * search.page_size) as usize;
    let details: Vec<Value> = found
        .iter()
        .skip(skip)
        .take(search.page_size as usize)
        .map(|(at, sub)| transaction(*at, sub, &search.fields))
        .collect();
    let mut links = vec![search_link(&search, search.page, "self")];
    if search.page < total_pages {
        links.push(search_link(&search, search.page + 1, "next"));
    }
    Json(json!({
        "transaction_details": details,
        "account_number": "XZXSPECPDZHZU",
        "start_date": paypal_time(search.start),
        "end_date": paypal_time(search.end),
        "last_refreshed_datetime": paypal_time(now()),
        "page": search.page,
        "total_items": total,
        "total_pages": total_pages,
        "links": links,
    }))
    .into_response()
}

type Refused = Box<Response>;

fn read_search(params: &[(String, String)]) -> Result<Search, Refused> {
    let (mut start, mut end) = (None, None);
    let mut search = Search {
        start: 0,
        end: 0,
        page: 1,
        page_size: 100,
        fields: vec!["transaction_info".into()],
    };
    for (key, value) in params {
        match key.as_str() {
            "start_date" => start = Some(date_param(key, value)?),
            "end_date" => end = Some(date_param(key, value)?),
            "page" => search.page = number_param(key, value, 2_147_483_647)?,
            "page_size" => search.page_size = number_param(key, value, 500)?,
            "fields" => search.fields = fields_param(value)?,
            "balance_affecting_records_only" if value == "Y" || value == "N" => {}
            "balance_affecting_records_only" => return refuse(Detail::value(key, value)),
            _ if UNIMPLEMENTED_FILTERS.contains(&key.as_str()) => {
                return refuse(Detail::unimplemented(key));
            }
            _ => return refuse(Detail::unknown(key)),
        }
    }
    search.start = start.ok_or_else(|| refused(Detail::missing("start_date")))?;
    search.end = end.ok_or_else(|| refused(Detail::missing("end_date")))?;
    check_range(search.start, search.end)?;
    Ok(search)
}

/// `end_date` after `start_date`, at most 31 days later; nothing older than three years.
fn check_range(start: i64, end: i64) -> Result<(), Refused> {
    if end < start {
        return refuse(Detail::range("end_date must not be before start_date."));
    }
    if end - start > SEARCH_MAX_SECS {
        return refuse(Detail::range("The maximum supported range is 31 days."));
    }
    if start < now() - SEARCH_HISTORY_SECS {
        return Err(Box::new(error(
            StatusCode::BAD_REQUEST,
            "INVALID_REQUEST",
            "Data for the given start date is not available.",
            vec![],
        )));
    }
    Ok(())
}

fn date_param(key: &str, value: &str) -> Result<i64, Refused> {
    parse_rfc3339(value).ok_or_else(|| refused(Detail::syntax(key, value)))
}

fn number_param(key: &str, value: &str, max: u64) -> Result<u64, Refused> {
    match value.parse::<u64>() {
        Ok(n) if (1..=max).contains(&n) => Ok(n),
        _ => refuse(Detail::value(key, value)),
    }
}

fn fields_param(value: &str) -> Result<Vec<String>, Refused> {
    let fields: Vec<String> = value.split(',').map(str::to_string).collect();
    match fields.iter().find(|f| !SEARCH_FIELDS.contains(&f.as_str())) {
        Some(_) => refuse(Detail::value("fields", value)),
        None => Ok(fields),
    }
}

fn payment_time(sub: &Value) -> Option<i64> {
    parse_rfc3339(sub["billing_info"]["last_payment"]["time"].as_str()?)
}

fn transaction(at: i64, sub: &Value, fields: &[String]) -> Value {
    let wants = |field: &str| fields.iter().any(|f| f == field || f == "all");
    let mut detail = json!({});
    if wants("transaction_info") {
        let id = sub["id"].as_str().unwrap_or("");
        detail["transaction_info"] = json!({
            "paypal_account_id": sub["subscriber"]["payer_id"],
            "transaction_id": transaction_id(id),
            "paypal_reference_id": id,
            "paypal_reference_id_type": "SUB",
            "transaction_event_code": "T0002",
            "transaction_initiation_date": paypal_time(at),
            "transaction_updated_date": paypal_time(at),
            "transaction_amount": sub["billing_info"]["last_payment"]["amount"],
            "transaction_status": "S",
            "protection_eligibility": "02",
        });
    }
    if wants("payer_info") {
        detail["payer_info"] = json!({
            "account_id": sub["subscriber"]["payer_id"],
            "email_address": sub["subscriber"]["email_address"],
            "payer_status": "Y",
        });
    }
    detail
}

/// 17 characters, as PayPal's transaction ids, derived from the subscription's id.
fn transaction_id(subscription_id: &str) -> String {
    let hash = subscription_id
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        });
    format!("5{hash:016X}")
}

fn search_link(search: &Search, page: u64, rel: &str) -> Value {
    let query = format!(
        "start_date={}&end_date={}&fields={}&page_size={}&page={page}",
        rfc3339(search.start),
        rfc3339(search.end),
        search.fields.join(","),
        search.page_size
    );
    link(&format!("/v1/reporting/transactions?{query}"), rel, "GET")
}

// ---- Webhook signatures ----

fn verify(shared: &Shared, body: &[u8]) -> Response {
    let Ok(request) = serde_json::from_slice::<Value>(body) else {
        return bad_request(vec![Detail::syntax("/", "the body is not JSON")]);
    };
    let event_missing = (!request["webhook_event"].is_object()).then_some(&"webhook_event");
    let missing: Vec<Detail> = VERIFY_FIELDS
        .iter()
        .filter(|field| request[**field].as_str().is_none_or(str::is_empty))
        .chain(event_missing)
        .map(|field| Detail::missing_in_body(field))
        .collect();
    if !missing.is_empty() {
        return bad_request(missing);
    }
    let pair = (
        request["webhook_id"].as_str().unwrap_or("").to_string(),
        request["transmission_sig"]
            .as_str()
            .unwrap_or("")
            .to_string(),
    );
    let verified = shared.valid_signature.as_ref() == Some(&pair);
    let status = if verified { "SUCCESS" } else { "FAILURE" };
    Json(json!({ "verification_status": status })).into_response()
}

// ---- Errors ----

/// One entry of an error's `details`.
struct Detail {
    field: Option<String>,
    value: Option<String>,
    location: Option<&'static str>,
    issue: &'static str,
    description: String,
}

impl Detail {
    fn new(issue: &'static str, description: &str) -> Detail {
        Detail {
            field: None,
            value: None,
            location: None,
            issue,
            description: description.to_string(),
        }
    }

    fn in_query(
        issue: &'static str,
        field: &str,
        value: Option<&str>,
        description: &str,
    ) -> Detail {
        Detail {
            field: Some(field.to_string()),
            value: value.map(str::to_string),
            location: Some("query"),
            ..Detail::new(issue, description)
        }
    }

    fn missing(field: &str) -> Detail {
        Detail::in_query(
            "MISSING_REQUIRED_PARAMETER",
            field,
            None,
            "A required field / parameter is missing.",
        )
    }

    fn missing_in_body(field: &str) -> Detail {
        Detail {
            field: Some(format!("/{field}")),
            location: Some("body"),
            ..Detail::new(
                "MISSING_REQUIRED_PARAMETER",
                "A required field / parameter is missing.",
            )
        }
    }

    fn syntax(field: &str, value: &str) -> Detail {
        Detail::in_query(
            "INVALID_PARAMETER_SYNTAX",
            field,
            Some(value),
            "The value of a field does not conform to the expected format.",
        )
    }

    fn value(field: &str, value: &str) -> Detail {
        Detail::in_query(
            "INVALID_PARAMETER_VALUE",
            field,
            Some(value),
            "The value of a field is invalid.",
        )
    }

    fn range(description: &str) -> Detail {
        Detail::in_query("INVALID_PARAMETER_VALUE", "end_date", None, description)
    }

    fn unknown(field: &str) -> Detail {
        Detail::in_query(
            "UNSUPPORTED_PARAMETER",
            field,
            None,
            "PayPal documents no such parameter for this call.",
        )
    }

    fn unimplemented(field: &str) -> Detail {
        Detail::in_query(
            "UNSUPPORTED_PARAMETER",
            field,
            None,
            "fake_paypal does not implement this documented filter.",
        )
    }

    fn invalid_id() -> Detail {
        Detail {
            location: Some("path"),
            ..Detail::new(
                "INVALID_RESOURCE_ID",
                "Specified resource ID does not exist. Please check the resource ID and try again.",
            )
        }
    }

    fn to_json(&self) -> Value {
        let mut detail = json!({ "issue": self.issue, "description": self.description });
        for (key, value) in [
            ("field", self.field.as_deref()),
            ("value", self.value.as_deref()),
            ("location", self.location),
        ] {
            if let Some(value) = value {
                detail[key] = json!(value);
            }
        }
        detail
    }
}

fn refused(detail: Detail) -> Refused {
    Box::new(bad_request(vec![detail]))
}

fn refuse<T>(detail: Detail) -> Result<T, Refused> {
    Err(refused(detail))
}

fn bad_request(details: Vec<Detail>) -> Response {
    error(
        StatusCode::BAD_REQUEST,
        "INVALID_REQUEST",
        "Request is not well-formed, syntactically incorrect, or violates schema.",
        details,
    )
}

fn not_found(details: Vec<Detail>) -> Response {
    error(
        StatusCode::NOT_FOUND,
        "RESOURCE_NOT_FOUND",
        "The specified resource does not exist.",
        details,
    )
}

fn error(status: StatusCode, name: &str, message: &str, details: Vec<Detail>) -> Response {
    let debug_id = format!("{:x}", DEBUG_IDS.fetch_add(1, Ordering::Relaxed));
    let details: Vec<Value> = details.iter().map(Detail::to_json).collect();
    let body = json!({
        "name": name,
        "message": message,
        "debug_id": debug_id,
        "details": details,
    });
    (status, [("paypal-debug-id", debug_id)], Json(body)).into_response()
}

fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    (
        status,
        Json(json!({ "error": error, "error_description": description })),
    )
        .into_response()
}

// ---- Dates ----

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// `YYYY-MM-DDTHH:MM:SS[.fff](Z|±HH:MM)`, the parameters' documented pattern, as Unix seconds.
fn parse_rfc3339(text: &str) -> Option<i64> {
    chrono::DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|t| t.timestamp())
}

/// PayPal's way of writing a time in search answers: `2026-01-01T00:00:00+0000`.
fn paypal_time(secs: i64) -> String {
    format!("{}+0000", civil(secs))
}

fn rfc3339(secs: i64) -> String {
    format!("{}Z", civil(secs))
}

fn civil(secs: i64) -> String {
    chrono::DateTime::from_timestamp(secs, 0)
        .expect("a time in range")
        .format("%Y-%m-%dT%H:%M:%S")
        .to_string()
}

// ---- Queries ----

/// `application/x-www-form-urlencoded` pairs.
fn parse_query(query: &str) -> Vec<(String, String)> {
    form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect()
}
