//! PayPal's subscription, plan, webhook and OAuth payloads, as PayPal's public OpenAPI specs
//! (github.com/paypal/paypal-rest-api-specifications: `openapi/billing_subscriptions_v1.json`,
//! `openapi/notifications_webhooks_v1.json`, `openapi/reporting_transactions_v1.json`) name
//! them. Only the fields MRR and the sync need are read; every other field is ignored, so that
//! a field PayPal adds tomorrow cannot make a payload unreadable.
//!
//! ## How a backfill finds the subscriptions
//!
//! Subscriptions API v1 has no call that lists subscriptions: its paths are create, show,
//! update, revise, suspend, cancel, activate, capture and list *transactions* of one
//! subscription, all under `/v1/billing/subscriptions/{id}`. `GET /v1/billing/plans` lists
//! plans, but neither a plan nor any other Subscriptions call leads from a plan to its
//! subscribers, so walking plans finds no subscription.
//!
//! The documented way to enumerate them is the Transaction Search API
//! (`GET /v1/reporting/transactions`): every payment of a subscription is a transaction whose
//! `transaction_info.paypal_reference_id` is the subscription's id with
//! `paypal_reference_id_type` `SUB`. A backfill searches back from now in windows of at most
//! 31 days (`start_date`/`end_date`, both required, RFC 3339 with seconds), each window paged
//! with `page` (from 1) and `page_size` (at most 500) until `page` reaches `total_pages`,
//! collects the distinct `SUB` ids, and then reads each with
//! `GET /v1/billing/subscriptions/{id}?fields=plan` (the plan as this subscription is billed,
//! overrides included). Its documented limits are the backfill's: transactions of the last
//! three years only (older windows get 400 "Data for the given start date is not available."),
//! up to three hours before a payment is searchable, and the scope
//! `https://uri.paypal.com/services/reporting/search/read` on the app. A subscription with no
//! payment in those three years (awaiting approval, in a free trial, suspended before paying)
//! is not found this way; webhooks (`BILLING.SUBSCRIPTION.*`) cover those from the connection
//! on.

use chrono::{DateTime, Duration, SecondsFormat, Utc};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

/// The headers of a webhook delivery that `verify-webhook-signature` needs.
pub const HEADER_AUTH_ALGO: &str = "PAYPAL-AUTH-ALGO";
pub const HEADER_CERT_URL: &str = "PAYPAL-CERT-URL";
pub const HEADER_TRANSMISSION_ID: &str = "PAYPAL-TRANSMISSION-ID";
pub const HEADER_TRANSMISSION_SIG: &str = "PAYPAL-TRANSMISSION-SIG";
pub const HEADER_TRANSMISSION_TIME: &str = "PAYPAL-TRANSMISSION-TIME";

/// `fields` for showing a subscription with the plan it is billed at.
pub const FIELDS_PLAN: &str = "plan";

/// The Transaction Search call and its documented limits.
pub const SEARCH_PATH: &str = "/v1/reporting/transactions";
pub const SEARCH_MAX_DAYS: i64 = 31;
pub const SEARCH_MAX_PAGE_SIZE: u32 = 500;
/// How far back a backfill searches: PayPal keeps three years, and refuses a window that
/// starts before; a few days' margin keeps the oldest window clear of that edge however the
/// clocks differ.
pub const SEARCH_HISTORY_DAYS: i64 = 3 * 364;
/// `paypal_reference_id_type` of a transaction that belongs to a subscription.
pub const REFERENCE_SUBSCRIPTION: &str = "SUB";

/// An amount: `value` is a decimal string in major units ("10.00"; "1000" for JPY).
#[derive(Deserialize, Serialize, Debug, Clone, PartialEq, Eq)]
pub struct Money {
    pub currency_code: String,
    pub value: String,
}

#[derive(Deserialize, Debug, Clone)]
pub struct Subscription {
    pub id: String,
    pub plan_id: String,
    /// `APPROVAL_PENDING`, `APPROVED`, `ACTIVE`, `SUSPENDED`, `CANCELLED` or `EXPIRED`.
    pub status: String,
    /// A string, as PayPal sends it ("1", or with decimals for fractional quantities).
    pub quantity: Option<String>,
    pub start_time: Option<DateTime<Utc>>,
    pub status_update_time: Option<DateTime<Utc>>,
    pub create_time: Option<DateTime<Utc>>,
    pub update_time: Option<DateTime<Utc>>,
    pub subscriber: Option<Subscriber>,
    pub billing_info: Option<BillingInfo>,
    /// Only with `fields=plan`: the plan as billed to this subscription.
    pub plan: Option<Plan>,
    /// True when the subscription was created with a `plan` override: the plan that
    /// `plan_id` names is then not what it is billed at.
    pub plan_overridden: Option<bool>,
}

impl Subscription {
    /// The payer's PayPal id, else their email (a guest card payer may have no id).
    pub fn customer_id(&self) -> Option<&str> {
        let subscriber = self.subscriber.as_ref()?;
        subscriber
            .payer_id
            .as_deref()
            .or(subscriber.email_address.as_deref())
            .filter(|id| !id.is_empty())
    }
}

#[derive(Deserialize, Debug, Clone)]
pub struct Subscriber {
    pub payer_id: Option<String>,
    pub email_address: Option<String>,
}

#[derive(Deserialize, Debug, Clone)]
pub struct BillingInfo {
    pub last_payment: Option<LastPayment>,
}

#[derive(Deserialize, Debug, Clone)]
pub struct LastPayment {
    pub amount: Money,
}

#[derive(Deserialize, Debug, Clone)]
pub struct Plan {
    /// Absent from some inline plans (`fields=plan`).
    #[serde(default)]
    pub id: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub billing_cycles: Vec<BillingCycle>,
}

#[derive(Deserialize, Debug, Clone)]
pub struct BillingCycle {
    pub frequency: Frequency,
    /// `REGULAR` or `TRIAL`.
    pub tenure_type: String,
    pub sequence: u32,
    /// 0: infinite (REGULAR only). PayPal's default is 1.
    #[serde(default = "one")]
    pub total_cycles: u32,
    /// Absent for a free trial.
    pub pricing_scheme: Option<PricingScheme>,
}

#[derive(Deserialize, Debug, Clone)]
pub struct Frequency {
    /// `DAY`, `WEEK`, `MONTH` or `YEAR`.
    pub interval_unit: String,
    #[serde(default = "one")]
    pub interval_count: u32,
}

#[derive(Deserialize, Debug, Clone)]
pub struct PricingScheme {
    pub fixed_price: Option<Money>,
    /// `VOLUME` or `TIERED`, with `tiers`.
    pub pricing_model: Option<String>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub tiers: Vec<PricingTier>,
}

/// A tier of a VOLUME or TIERED plan: quantities as decimal strings, `amount` per unit.
#[derive(Deserialize, Debug, Clone)]
pub struct PricingTier {
    pub starting_quantity: String,
    /// Absent for the last, unbounded tier.
    pub ending_quantity: Option<String>,
    pub amount: Money,
}

/// A webhook delivery's body.
#[derive(Deserialize, Debug, Clone)]
pub struct Event {
    pub id: String,
    pub event_type: String,
    pub create_time: DateTime<Utc>,
    pub resource: Value,
}

impl Event {
    /// The subscription a `BILLING.SUBSCRIPTION.*` event carries; `None` for other types.
    /// An error when the resource is not a v2 subscription (a legacy billing agreement).
    pub fn subscription(&self) -> Option<Result<Subscription, serde_json::Error>> {
        self.event_type
            .starts_with("BILLING.SUBSCRIPTION.")
            .then(|| Subscription::deserialize(&self.resource))
    }
}

/// The subscription a `PAYMENT.SALE.*` resource was paid for: its `billing_agreement_id`.
/// `None` for a sale that is not a subscription's.
pub fn sale_subscription_id(resource: &Value) -> Option<String> {
    resource
        .get("billing_agreement_id")?
        .as_str()
        .filter(|id| !id.is_empty())
        .map(str::to_owned)
}

/// `POST /v1/oauth2/token`'s answer for `grant_type=client_credentials`.
#[derive(Deserialize, Debug, Clone)]
pub struct Token {
    pub access_token: String,
    /// Seconds from issue.
    pub expires_in: u64,
}

/// `POST /v1/notifications/verify-webhook-signature`'s body: the delivery's headers, the
/// webhook's id, and the event exactly as delivered.
#[derive(Serialize, Debug, Clone)]
pub struct VerifySignature {
    pub auth_algo: String,
    pub cert_url: String,
    pub transmission_id: String,
    pub transmission_sig: String,
    pub transmission_time: String,
    pub webhook_id: String,
    pub webhook_event: Value,
}

#[derive(Deserialize, Debug, Clone)]
pub struct VerifyResponse {
    /// `SUCCESS` or `FAILURE`.
    pub verification_status: String,
}

impl VerifyResponse {
    pub fn verified(&self) -> bool {
        self.verification_status == "SUCCESS"
    }
}

/// One page of `GET /v1/reporting/transactions`.
#[derive(Deserialize, Debug, Clone)]
pub struct TransactionSearch {
    /// Absent, not empty, when the window has none.
    #[serde(default, deserialize_with = "null_as_default")]
    pub transaction_details: Vec<TransactionDetail>,
    pub page: Option<u32>,
    pub total_pages: Option<u32>,
}

impl TransactionSearch {
    /// The next `page` to ask for, or `None` after the last.
    pub fn next_page(&self) -> Option<u32> {
        let page = self.page.unwrap_or(1).max(1);
        (page < self.total_pages.unwrap_or(0)).then_some(page + 1)
    }

    /// The subscriptions this page's transactions belong to, each once, in order.
    pub fn subscription_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = Vec::new();
        for info in self.transaction_details.iter().map(|d| &d.transaction_info) {
            if info.paypal_reference_id_type.as_deref() != Some(REFERENCE_SUBSCRIPTION) {
                continue;
            }
            if let Some(id) = &info.paypal_reference_id
                && !ids.contains(id)
            {
                ids.push(id.clone());
            }
        }
        ids
    }
}

#[derive(Deserialize, Debug, Clone)]
pub struct TransactionDetail {
    pub transaction_info: TransactionInfo,
}

#[derive(Deserialize, Debug, Clone)]
pub struct TransactionInfo {
    pub paypal_reference_id: Option<String>,
    /// `ODR`, `TXN`, `SUB` or `PAP`.
    pub paypal_reference_id_type: Option<String>,
}

/// The `(start_date, end_date)` windows that cover `from..until`, newest first, each at most
/// `SEARCH_MAX_DAYS` long, each older one ending where the newer one starts (a transaction on
/// the boundary may be listed twice; ids are deduplicated anyway). `from` earlier than
/// `SEARCH_HISTORY_DAYS` before `until` is moved up to it: PayPal refuses older windows.
pub fn search_windows(from: DateTime<Utc>, until: DateTime<Utc>) -> Vec<(String, String)> {
    let from = from.max(until - Duration::days(SEARCH_HISTORY_DAYS));
    let mut windows = Vec::new();
    let mut end = until;
    while end > from {
        let start = (end - Duration::days(SEARCH_MAX_DAYS)).max(from);
        windows.push((search_date(start), search_date(end)));
        end = start;
    }
    windows
}

/// RFC 3339 in UTC with whole seconds, which the parameters' pattern requires.
pub fn search_date(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn one() -> u32 {
    1
}

/// `null` read like an absent field.
fn null_as_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Shaped like the "Show subscription details" example of billing_subscriptions_v1.
    fn documented_subscription() -> Value {
        json!({
            "id": "I-BW452GLLEP1G",
            "plan_id": "P-5ML4271244454362WXNWU5NQ",
            "start_time": "2019-04-10T07:00:00Z",
            "quantity": "20",
            "shipping_amount": {"currency_code": "USD", "value": "10.0"},
            "subscriber": {
                "shipping_address": {"name": {"full_name": "John Doe"}},
                "name": {"given_name": "John", "surname": "Doe"},
                "email_address": "customer@example.com",
                "payer_id": "2J6QB8YJQSJRJ"
            },
            "billing_info": {
                "outstanding_balance": {"currency_code": "USD", "value": "1.0"},
                "cycle_executions": [
                    {"tenure_type": "TRIAL", "sequence": 1, "cycles_completed": 0,
                     "cycles_remaining": 2, "total_cycles": 2},
                    {"tenure_type": "REGULAR", "sequence": 2, "cycles_completed": 0,
                     "cycles_remaining": 0, "total_cycles": 0}
                ],
                "last_payment": {
                    "amount": {"currency_code": "USD", "value": "1.15"},
                    "time": "2019-04-09T10:27:20Z"
                },
                "next_billing_time": "2019-04-10T10:00:00Z",
                "failed_payments_count": 0
            },
            "create_time": "2019-04-09T10:26:04Z",
            "update_time": "2019-04-09T10:27:27Z",
            "links": [{"href": "https://api-m.paypal.com/v1/billing/subscriptions/I-BW452GLLEP1G",
                       "rel": "self", "method": "GET"}],
            "status": "ACTIVE",
            "status_update_time": "2019-04-09T10:27:27Z"
        })
    }

    #[test]
    fn a_documented_subscription_is_read() {
        let sub: Subscription = serde_json::from_value(documented_subscription()).unwrap();
        assert_eq!(sub.customer_id(), Some("2J6QB8YJQSJRJ"));
        assert_eq!(sub.quantity.as_deref(), Some("20"));
        let billing = sub.billing_info.unwrap();
        assert_eq!(billing.last_payment.unwrap().amount.value, "1.15");
        assert!(sub.plan.is_none());
    }

    #[test]
    fn the_customer_is_the_payer_else_the_email() {
        let mut payload = documented_subscription();
        payload["subscriber"]
            .as_object_mut()
            .unwrap()
            .remove("payer_id");
        let sub: Subscription = serde_json::from_value(payload.clone()).unwrap();
        assert_eq!(sub.customer_id(), Some("customer@example.com"));
        payload.as_object_mut().unwrap().remove("subscriber");
        let sub: Subscription = serde_json::from_value(payload).unwrap();
        assert_eq!(sub.customer_id(), None);
    }

    #[test]
    fn events_name_their_subscription() {
        let event: Event = serde_json::from_value(json!({
            "id": "WH-77687562XN25889J8-8Y6T55435R66168T6",
            "create_time": "2018-12-19T22:20:32.000Z",
            "resource_type": "subscription",
            "event_type": "BILLING.SUBSCRIPTION.ACTIVATED",
            "summary": "A billing agreement was activated.",
            "resource": documented_subscription(),
            "resource_version": "2.0",
            "event_version": "1.0",
            "links": []
        }))
        .unwrap();
        assert_eq!(event.subscription().unwrap().unwrap().id, "I-BW452GLLEP1G");

        let sale = json!({
            "id": "80021663DE681814L", "state": "completed",
            "amount": {"total": "1.00", "currency": "USD"},
            "billing_agreement_id": "I-BW452GLLEP1G", "create_time": "2018-12-19T22:21:07Z"
        });
        assert_eq!(
            sale_subscription_id(&sale).as_deref(),
            Some("I-BW452GLLEP1G")
        );
        assert_eq!(sale_subscription_id(&json!({"id": "1"})), None);
    }

    #[test]
    fn a_search_page_gives_its_subscriptions_and_the_next_page() {
        let page: TransactionSearch = serde_json::from_value(json!({
            "transaction_details": [
                {"transaction_info": {"transaction_id": "5TY05013RG002845M",
                    "paypal_reference_id": "I-BW452GLLEP1G", "paypal_reference_id_type": "SUB",
                    "transaction_event_code": "T0002",
                    "transaction_initiation_date": "2026-01-01T10:00:00+0000"}},
                {"transaction_info": {"transaction_id": "0UT082612B570000E",
                    "paypal_reference_id": "4J3265475X6749251", "paypal_reference_id_type": "TXN",
                    "transaction_event_code": "T0700"}},
                {"transaction_info": {"transaction_id": "6TY05013RG002845M",
                    "paypal_reference_id": "I-BW452GLLEP1G", "paypal_reference_id_type": "SUB"}}
            ],
            "account_number": "XZXSPECPDZHZU",
            "start_date": "2026-01-01T00:00:00+0000",
            "end_date": "2026-01-31T00:00:00+0000",
            "last_refreshed_datetime": "2026-02-01T00:00:00+0000",
            "page": 1, "total_items": 3, "total_pages": 2,
            "links": [{"href": "https://api-m.paypal.com/v1/reporting/transactions?page=2", "rel": "next", "method": "GET"}]
        }))
        .unwrap();
        assert_eq!(page.subscription_ids(), vec!["I-BW452GLLEP1G"]);
        assert_eq!(page.next_page(), Some(2));
        let empty: TransactionSearch =
            serde_json::from_value(json!({"page": 1, "total_items": 0, "total_pages": 0})).unwrap();
        assert!(empty.subscription_ids().is_empty());
        assert_eq!(empty.next_page(), None);
    }

    #[test]
    fn windows_cover_the_range_within_the_limits() {
        let until: DateTime<Utc> = "2026-03-01T00:00:00Z".parse().unwrap();
        let from: DateTime<Utc> = "2026-01-01T00:00:00Z".parse().unwrap();
        assert_eq!(
            search_windows(from, until),
            vec![
                ("2026-01-29T00:00:00Z".into(), "2026-03-01T00:00:00Z".into()),
                ("2026-01-01T00:00:00Z".into(), "2026-01-29T00:00:00Z".into()),
            ]
        );
        let long_ago: DateTime<Utc> = "2000-01-01T00:00:00Z".parse().unwrap();
        let windows = search_windows(long_ago, until);
        assert_eq!(windows.len(), 36, "three years of 31 days");
        assert_eq!(windows.last().unwrap().0, "2023-03-05T00:00:00Z");
    }

    #[test]
    fn tokens_and_verifications_are_read() {
        let token: Token = serde_json::from_value(json!({
            "scope": "https://uri.paypal.com/services/reporting/search/read",
            "access_token": "A21AAFEpH4PsADK7qSS7pSRsgzfENtu-Q1ysgEDVDESseMHBYXVJYE8ovjj68elIDy8nF26AwPhfXTIeWAZHSLIsQkSYz9ifg",
            "token_type": "Bearer",
            "app_id": "APP-80W284485P519543T",
            "expires_in": 31_668,
            "nonce": "2020-04-03T15:35:36ZaYZlGvEkV4yVSz8g6bAKFoGSEzuy3CQcz3ljhibkOHg"
        }))
        .unwrap();
        assert_eq!(token.expires_in, 31_668);
        let answer: VerifyResponse =
            serde_json::from_value(json!({"verification_status": "FAILURE"})).unwrap();
        assert!(!answer.verified());
        let body = serde_json::to_value(VerifySignature {
            auth_algo: "SHA256withRSA".into(),
            cert_url: "https://api-m.paypal.com/v1/notifications/certs/CERT".into(),
            transmission_id: "69cd13f0-d67a-11e5-baa3-778b53f4ae55".into(),
            transmission_sig: "lmI95Jx3Y9nhR5SJWlHVIWpg4AgFk7n9bCHSRxbrd8A9zrhdu2rMyFrmz==".into(),
            transmission_time: "2016-02-18T20:01:35Z".into(),
            webhook_id: "1JE4291016473214C".into(),
            webhook_event: json!({"id": "8PT597110X687430LKGECATA"}),
        })
        .unwrap();
        assert_eq!(body["webhook_event"]["id"], "8PT597110X687430LKGECATA");
        assert_eq!(body["auth_algo"], "SHA256withRSA");
    }
}
