//! Stripe behind the connector trait: subscriptions listed with `status=all` and
//! `starting_after` paging, retrieved one by one when a payload lacks what MRR needs (tiers,
//! discounts given as ids), and webhook events read for the subscription they concern.

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::mrr::{self, Incomplete};
use super::subscription::{Event, List, Subscription, invoice_subscription_id};
use crate::connectors::api::{Api, ApiError, Budgets, RetryPolicy, path_segment};
use crate::connectors::provider::{Connector, Delivery, Interpreted, Observation, Page, Refusal};
use crate::connectors::timeline::Timeline;

/// The API version of our requests: fixed, so that what we ask for is the shape we read
/// (webhook payloads come in the account's version and are read tolerantly, or retrieved).
pub const API_VERSION: &str = "2025-09-30.clover";

/// Stripe's largest page.
pub const PAGE_SIZE: usize = 100;

/// The event types that change MRR; every other type is acknowledged and ignored.
pub const HANDLED: &[&str] = &[
    "customer.subscription.created",
    "customer.subscription.updated",
    "customer.subscription.deleted",
    "customer.subscription.paused",
    "customer.subscription.resumed",
    "invoice.paid",
];

pub struct Stripe {
    pub base: String,
    pub api_key: String,
    /// The endpoint's signing secret (`whsec_…`); without it no delivery is accepted.
    pub webhook_secret: Option<String>,
    pub http: reqwest::Client,
    pub budgets: std::sync::Arc<Budgets>,
    pub retry: RetryPolicy,
    pub account: String,
}

/// The credentials a member gives: `{ "apiKey": "sk_…" | "rk_…" }`.
pub fn api_key_of(credentials: &Value) -> Result<String, String> {
    let key = credentials
        .get("apiKey")
        .and_then(Value::as_str)
        .ok_or("credentials.apiKey: give the account's secret or restricted API key")?;
    let well_formed = (key.starts_with("sk_") || key.starts_with("rk_"))
        && key.len() <= 255
        && key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if !well_formed {
        return Err("credentials.apiKey: a Stripe secret key starts with sk_ or rk_".into());
    }
    Ok(key.to_string())
}

fn unix(at: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(at, 0).unwrap_or_default()
}

impl Stripe {
    fn api(&self) -> Api<'_> {
        Api {
            provider: "stripe",
            http: &self.http,
            budgets: &self.budgets,
            retry: self.retry,
            account: self.account.clone(),
        }
    }

    async fn get(&self, path: &str, query: &[(&str, String)]) -> Result<Value, ApiError> {
        let url = format!("{}{path}", self.base);
        self.api()
            .send(|http| {
                http.get(&url)
                    .bearer_auth(&self.api_key)
                    .header("Stripe-Version", API_VERSION)
                    .query(query)
            })
            .await
    }

    /// One subscription retrieved whole (expanded) and observed as of `seen_at`.
    async fn retrieve(
        &self,
        id: &str,
        seen_at: DateTime<Utc>,
    ) -> Result<Option<Observation>, ApiError> {
        let query: Vec<(&str, String)> = mrr::EXPAND_ONE
            .iter()
            .chain([&mrr::EXPAND_COUPON_ONE])
            .map(|e| ("expand[]", e.to_string()))
            .collect();
        let path = format!("/v1/subscriptions/{}", path_segment(id));
        let value = match self.get(&path, &query).await {
            Ok(v) => v,
            Err(ApiError::Refused { status: 404, .. }) => return Ok(None),
            Err(e) => return Err(e),
        };
        Ok(observe(&value, seen_at, false))
    }

    /// The observation of a payload, retrieving the subscription when the payload lacks what
    /// MRR needs.
    async fn observe_or_retrieve(
        &self,
        value: &Value,
        seen_at: DateTime<Utc>,
    ) -> Result<Option<Observation>, ApiError> {
        match observe(value, seen_at, true) {
            Some(o) => Ok(Some(o)),
            None => match value.get("id").and_then(Value::as_str) {
                Some(id) => self.retrieve(id, seen_at).await,
                None => Ok(None),
            },
        }
    }
}

/// `None` when the payload lacks what is needed and `may_retrieve`; otherwise what can be
/// said (an object whose MRR cannot be derived is observed with no MRR, and says why).
fn observe(value: &Value, seen_at: DateTime<Utc>, may_retrieve: bool) -> Option<Observation> {
    let sub: Subscription = match serde_json::from_value(value.clone()) {
        Ok(s) => s,
        Err(e) if may_retrieve => {
            tracing::info!(error = %e, "a Stripe subscription payload lacks fields; retrieving it");
            return None;
        }
        Err(e) => {
            tracing::warn!(error = %e, "a retrieved Stripe subscription could not be read");
            return None;
        }
    };
    match mrr::derive(&sub) {
        Ok(derived) => Some(Observation {
            object_id: sub.id.clone(),
            seen_at,
            timeline: derived,
        }),
        Err(_) if may_retrieve => None,
        Err(why) => Some(Observation {
            object_id: sub.id.clone(),
            seen_at,
            timeline: Timeline {
                customer: sub.customer_id().to_string(),
                currency: sub
                    .currency
                    .clone()
                    .unwrap_or_else(|| "USD".into())
                    .to_uppercase(),
                steps: Vec::new(),
                left_out: vec![incomplete_sentence(&sub.id, &why)],
            },
        }),
    }
}

fn incomplete_sentence(id: &str, why: &Incomplete) -> String {
    format!("{id}: not counted, Stripe did not give what its MRR needs ({why:?})")
}

#[async_trait::async_trait]
impl Connector for Stripe {
    async fn authenticate(&self) -> Result<(), ApiError> {
        self.get("/v1/subscriptions", &[("limit", "1".to_string())])
            .await
            .map(|_| ())
    }

    async fn pull(&self, checkpoint: Option<&Value>) -> Result<Page, ApiError> {
        let mut query: Vec<(&str, String)> = vec![
            ("status", "all".to_string()),
            ("limit", PAGE_SIZE.to_string()),
        ];
        query.extend(
            mrr::EXPAND_LIST
                .iter()
                .chain([&mrr::EXPAND_COUPON_LIST])
                .map(|e| ("expand[]", e.to_string())),
        );
        if let Some(after) = checkpoint
            .and_then(|c| c.get("starting_after"))
            .and_then(Value::as_str)
        {
            query.push(("starting_after", after.to_string()));
        }
        let seen_at = Utc::now();
        let page = self.get("/v1/subscriptions", &query).await?;
        let list: List<Value> =
            serde_json::from_value(page).map_err(|e| ApiError::Unavailable {
                provider: "stripe",
                message: format!("a list of subscriptions could not be read: {e}"),
            })?;
        let mut observations = Vec::with_capacity(list.data.len());
        for value in &list.data {
            if let Some(o) = self.observe_or_retrieve(value, seen_at).await? {
                observations.push(o);
            }
        }
        let last = list
            .data
            .last()
            .and_then(|v| v.get("id"))
            .and_then(Value::as_str);
        let next = match (list.has_more, last) {
            (true, Some(id)) => Some(serde_json::json!({ "starting_after": id })),
            _ => None,
        };
        Ok(Page { observations, next })
    }

    async fn fetch(&self, object_id: &str) -> Result<Option<Observation>, ApiError> {
        self.retrieve(object_id, Utc::now()).await
    }

    async fn verify(
        &self,
        headers: &axum::http::HeaderMap,
        body: &[u8],
    ) -> Result<Delivery, Refusal> {
        let secret = self
            .webhook_secret
            .as_deref()
            .ok_or_else(|| Refusal("no webhook secret is set for this integration".into()))?;
        let header = headers
            .get("stripe-signature")
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| Refusal("no Stripe-Signature header".into()))?;
        super::signature::verify(
            header,
            body,
            secret.as_bytes(),
            Utc::now().timestamp(),
            super::signature::TOLERANCE_SECS,
        )
        .map_err(|why| Refusal(format!("Stripe-Signature refused: {why:?}")))?;
        let event: Event = serde_json::from_slice(body)
            .map_err(|_| Refusal("the body is not a Stripe event".into()))?;
        let handled = HANDLED.contains(&event.type_.as_str());
        Ok(Delivery {
            event_id: event.id.clone(),
            event_type: event.type_.clone(),
            handled,
            payload: serde_json::from_slice(body).unwrap_or(Value::Null),
        })
    }

    async fn interpret(&self, delivery: &Delivery) -> Result<Interpreted, ApiError> {
        let Ok(event) = serde_json::from_value::<Event>(delivery.payload.clone()) else {
            return Ok(Interpreted::Nothing("not a Stripe event".into()));
        };
        let seen_at = unix(event.created);
        let object = &event.data.object;
        if event.type_ == "invoice.paid" {
            let Some(subscription) = invoice_subscription_id(object) else {
                return Ok(Interpreted::Nothing("an invoice of no subscription".into()));
            };
            return Ok(match self.retrieve(&subscription, seen_at).await? {
                Some(o) => Interpreted::Observations(vec![o]),
                None => Interpreted::Nothing(format!("{subscription} no longer exists")),
            });
        }
        Ok(match self.observe_or_retrieve(object, seen_at).await? {
            Some(o) => Interpreted::Observations(vec![o]),
            None => Interpreted::Nothing("the subscription could not be read".into()),
        })
    }
}
