//! PayPal behind the connector trait: an OAuth2 client-credentials token, cached until it
//! expires and fetched again once when an API call answers 401 (a token revoked or expired
//! early); a backfill through Transaction Search (the subscriptions paid in the last three
//! years, see `subscription`), each subscription read with its plan; webhooks verified by
//! PayPal's `verify-webhook-signature` call.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::mrr;
use super::subscription::{
    self as wire, Event, Plan, Subscription, Token, TransactionSearch, VerifyResponse,
    VerifySignature,
};
use crate::connectors::api::{Api, ApiError, Budgets, RetryPolicy, Tokens, path_segment};
use crate::connectors::provider::{Connector, Delivery, Interpreted, Observation, Page, Refusal};
use crate::connectors::timeline::Timeline;

/// The event types that change MRR; every other type is acknowledged and ignored.
pub const HANDLED: &[&str] = &[
    "BILLING.SUBSCRIPTION.CREATED",
    "BILLING.SUBSCRIPTION.ACTIVATED",
    "BILLING.SUBSCRIPTION.UPDATED",
    "BILLING.SUBSCRIPTION.RE-ACTIVATED",
    "BILLING.SUBSCRIPTION.SUSPENDED",
    "BILLING.SUBSCRIPTION.CANCELLED",
    "BILLING.SUBSCRIPTION.EXPIRED",
    "PAYMENT.SALE.COMPLETED",
];

pub struct Paypal {
    pub base: String,
    pub client_id: String,
    pub client_secret: String,
    /// The webhook's id in PayPal, which `verify-webhook-signature` checks deliveries against.
    pub webhook_id: Option<String>,
    pub http: reqwest::Client,
    pub budgets: Arc<Budgets>,
    pub tokens: Arc<Tokens>,
    pub retry: RetryPolicy,
    pub account: String,
    /// Subscriptions already read in this sync: Transaction Search names one in every window
    /// it was paid in.
    pub seen: Mutex<HashSet<String>>,
}

/// The credentials a member gives: `{ "clientId": "…", "clientSecret": "…" }`.
pub fn credentials_of(credentials: &Value) -> Result<(String, String), String> {
    let field = |name: &str| {
        credentials
            .get(name)
            .and_then(Value::as_str)
            .filter(|v| !v.is_empty() && v.len() <= 255 && !v.chars().any(char::is_control))
            .map(str::to_string)
            .ok_or_else(|| format!("credentials.{name}: give the REST app's {name}"))
    };
    Ok((field("clientId")?, field("clientSecret")?))
}

/// Where a backfill stands: the search window (newest first) and its next page.
fn position(checkpoint: Option<&Value>) -> (usize, u32) {
    let window = checkpoint.and_then(|c| c["window"].as_u64()).unwrap_or(0) as usize;
    let page = checkpoint
        .and_then(|c| c["page"].as_u64())
        .unwrap_or(1)
        .max(1) as u32;
    (window, page)
}

impl Paypal {
    fn api(&self) -> Api<'_> {
        Api {
            provider: "paypal",
            http: &self.http,
            budgets: &self.budgets,
            retry: self.retry,
            account: self.account.clone(),
        }
    }

    async fn token(&self, fresh: bool) -> Result<String, ApiError> {
        if !fresh && let Some(token) = self.tokens.get(&self.account) {
            return Ok(token);
        }
        let url = format!("{}/v1/oauth2/token", self.base);
        let answer = self
            .api()
            .send(|http| {
                http.post(&url)
                    .basic_auth(&self.client_id, Some(&self.client_secret))
                    .form(&[("grant_type", "client_credentials")])
            })
            .await?;
        let token: Token = serde_json::from_value(answer).map_err(|e| ApiError::Unavailable {
            provider: "paypal",
            message: format!("an unreadable token: {e}"),
        })?;
        self.tokens.put(
            &self.account,
            &token.access_token,
            std::time::Duration::from_secs(token.expires_in),
        );
        Ok(token.access_token)
    }

    /// A call with the cached token; on 401 once more with a new one.
    async fn call(
        &self,
        build: impl Fn(&reqwest::Client, &str) -> reqwest::RequestBuilder,
    ) -> Result<Value, ApiError> {
        let token = self.token(false).await?;
        match self.api().send(|http| build(http, &token)).await {
            Err(ApiError::Unauthorized { .. }) => {
                self.tokens.forget(&self.account);
                let token = self.token(true).await?;
                self.api().send(|http| build(http, &token)).await
            }
            other => other,
        }
    }

    async fn get(&self, path: &str, query: &[(&str, String)]) -> Result<Value, ApiError> {
        let url = format!("{}{path}", self.base);
        self.call(|http, token| http.get(&url).bearer_auth(token).query(query))
            .await
    }

    /// A subscription with the plan it is billed at, observed as of `seen_at`; `None` when
    /// PayPal no longer has it.
    async fn retrieve(
        &self,
        id: &str,
        seen_at: DateTime<Utc>,
    ) -> Result<Option<Observation>, ApiError> {
        let path = format!("/v1/billing/subscriptions/{}", path_segment(id));
        let query = [("fields", wire::FIELDS_PLAN.to_string())];
        let value = match self.get(&path, &query).await {
            Ok(v) => v,
            Err(ApiError::Refused { status: 404, .. }) => return Ok(None),
            Err(e) => return Err(e),
        };
        let sub: Subscription =
            serde_json::from_value(value).map_err(|e| ApiError::Unavailable {
                provider: "paypal",
                message: format!("an unreadable subscription: {e}"),
            })?;
        let plan = match &sub.plan {
            Some(plan) => plan.clone(),
            None => {
                let path = format!("/v1/billing/plans/{}", path_segment(&sub.plan_id));
                let value = self.get(&path, &[]).await?;
                serde_json::from_value::<Plan>(value).map_err(|e| ApiError::Unavailable {
                    provider: "paypal",
                    message: format!("an unreadable plan: {e}"),
                })?
            }
        };
        Ok(Some(match mrr::derive(&sub, &plan) {
            Ok(derived) => Observation {
                object_id: sub.id.clone(),
                seen_at,
                timeline: derived,
            },
            Err(why) => Observation {
                object_id: sub.id.clone(),
                seen_at,
                timeline: Timeline {
                    customer: sub.customer_id().unwrap_or(&sub.id).to_string(),
                    currency: "USD".into(),
                    steps: Vec::new(),
                    left_out: vec![format!(
                        "{}: not counted, PayPal did not give what its MRR needs ({why:?})",
                        sub.id
                    )],
                },
            },
        }))
    }
}

fn header(headers: &axum::http::HeaderMap, name: &str) -> Result<String, Refusal> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .ok_or_else(|| Refusal(format!("no {name} header")))
}

#[async_trait::async_trait]
impl Connector for Paypal {
    async fn authenticate(&self) -> Result<(), ApiError> {
        self.token(true).await.map(|_| ())
    }

    async fn pull(&self, checkpoint: Option<&Value>) -> Result<Page, ApiError> {
        let now = Utc::now();
        let windows =
            wire::search_windows(now - chrono::Duration::days(wire::SEARCH_HISTORY_DAYS), now);
        let (window, page) = position(checkpoint);
        let Some((start, end)) = windows.get(window) else {
            return Ok(Page {
                observations: Vec::new(),
                next: None,
            });
        };
        let query = [
            ("start_date", start.clone()),
            ("end_date", end.clone()),
            ("fields", "transaction_info".to_string()),
            ("page_size", wire::SEARCH_MAX_PAGE_SIZE.to_string()),
            ("page", page.to_string()),
        ];
        let answer = self.get(wire::SEARCH_PATH, &query).await?;
        let search: TransactionSearch =
            serde_json::from_value(answer).map_err(|e| ApiError::Unavailable {
                provider: "paypal",
                message: format!("an unreadable transaction search: {e}"),
            })?;
        let mut observations = Vec::new();
        for id in search.subscription_ids() {
            let fresh = self
                .seen
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(id.clone());
            if fresh && let Some(o) = self.retrieve(&id, now).await? {
                observations.push(o);
            }
        }
        let next = match search.next_page() {
            Some(p) => Some(json!({ "window": window, "page": p })),
            None if window + 1 < windows.len() => Some(json!({ "window": window + 1, "page": 1 })),
            None => None,
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
        let webhook_id = self
            .webhook_id
            .clone()
            .ok_or_else(|| Refusal("no webhook id is set for this integration".into()))?;
        let event_json: Value =
            serde_json::from_slice(body).map_err(|_| Refusal("the body is not JSON".into()))?;
        let request = VerifySignature {
            auth_algo: header(headers, wire::HEADER_AUTH_ALGO)?,
            cert_url: header(headers, wire::HEADER_CERT_URL)?,
            transmission_id: header(headers, wire::HEADER_TRANSMISSION_ID)?,
            transmission_sig: header(headers, wire::HEADER_TRANSMISSION_SIG)?,
            transmission_time: header(headers, wire::HEADER_TRANSMISSION_TIME)?,
            webhook_id,
            webhook_event: event_json.clone(),
        };
        let url = format!("{}/v1/notifications/verify-webhook-signature", self.base);
        let answer = self
            .call(|http, token| http.post(&url).bearer_auth(token).json(&request))
            .await
            .map_err(|e| Refusal(format!("PayPal could not verify it: {e}")))?;
        let verified = serde_json::from_value::<VerifyResponse>(answer)
            .map(|r| r.verified())
            .unwrap_or(false);
        if !verified {
            return Err(Refusal("PayPal says the signature does not hold".into()));
        }
        let event: Event = serde_json::from_value(event_json.clone())
            .map_err(|_| Refusal("the body is not a PayPal event".into()))?;
        Ok(Delivery {
            handled: HANDLED.contains(&event.event_type.as_str()),
            event_id: event.id,
            event_type: event.event_type,
            payload: event_json,
        })
    }

    async fn interpret(&self, delivery: &Delivery) -> Result<Interpreted, ApiError> {
        let Ok(event) = serde_json::from_value::<Event>(delivery.payload.clone()) else {
            return Ok(Interpreted::Nothing("not a PayPal event".into()));
        };
        // The resource names the subscription; its plan (and so its MRR) is read from PayPal,
        // which is also what makes a thin or older-version payload whole.
        let id = if event.event_type == "PAYMENT.SALE.COMPLETED" {
            wire::sale_subscription_id(&event.resource)
        } else {
            event
                .resource
                .get("id")
                .and_then(Value::as_str)
                .map(str::to_string)
        };
        let Some(id) = id else {
            return Ok(Interpreted::Nothing("names no subscription".into()));
        };
        Ok(match self.retrieve(&id, event.create_time).await? {
            Some(o) => Interpreted::Observations(vec![o]),
            None => Interpreted::Nothing(format!("{id} no longer exists")),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_backfill_position_is_read_from_its_checkpoint() {
        assert_eq!(position(None), (0, 1));
        assert_eq!(position(Some(&json!({ "window": 3, "page": 2 }))), (3, 2));
        assert_eq!(position(Some(&json!({ "window": 1, "page": 0 }))), (1, 1));
    }

    #[test]
    fn credentials_name_what_is_missing() {
        assert!(credentials_of(&json!({ "clientId": "a", "clientSecret": "b" })).is_ok());
        let e = credentials_of(&json!({ "clientId": "a" })).unwrap_err();
        assert!(e.starts_with("credentials.clientSecret"), "{e}");
    }
}
