//! Rate limits on HTTP: the `RateLimit-*` headers of the IETF draft (`RateLimit-Limit`,
//! `RateLimit-Remaining`, `RateLimit-Reset`, `RateLimit-Policy`) on every charged answer,
//! `Retry-After` on a refused one, and the charge of requests that do not reach the schema.

use axum::http::{HeaderMap, HeaderName, HeaderValue, header};

use super::HttpState;
use crate::auth::Principal;
use crate::db::audit::RequestMeta;
use crate::limits::Charge;

const LIMIT: HeaderName = HeaderName::from_static("ratelimit-limit");
const REMAINING: HeaderName = HeaderName::from_static("ratelimit-remaining");
const RESET: HeaderName = HeaderName::from_static("ratelimit-reset");
const POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");

pub(super) fn apply(headers: &mut HeaderMap, charge: &Charge) {
    let number = |n: u64| HeaderValue::from(n);
    headers.insert(LIMIT, number(charge.limit));
    headers.insert(REMAINING, number(charge.remaining));
    headers.insert(RESET, number(charge.reset_secs));
    if let Ok(policy) = HeaderValue::from_str(&format!("{};w=60", charge.limit)) {
        headers.insert(POLICY, policy);
    }
    if let Some(secs) = charge.retry_after_secs {
        headers.insert(header::RETRY_AFTER, number(secs));
    }
}

/// Charges `points` to the caller, when rate limits are on.
pub(super) async fn charge(
    state: &HttpState,
    principal: &Principal,
    meta: &RequestMeta,
    points: u64,
) -> Option<Charge> {
    let limiter = state.app.limiter.as_deref()?;
    let payer = limiter.payer(principal, meta.ip.as_deref());
    Some(limiter.charge(&payer, points).await)
}

/// `body`, a serialized GraphQL response without `extensions`, with `extensions.cost` added.
pub(super) fn with_cost(mut body: Vec<u8>, cost: &serde_json::Value) -> Vec<u8> {
    if body.last() != Some(&b'}') {
        return body;
    }
    body.pop();
    body.extend_from_slice(b",\"extensions\":{\"cost\":");
    serde_json::to_writer(&mut body, cost).unwrap_or_default();
    body.extend_from_slice(b"}}");
    body
}

#[cfg(test)]
mod tests {
    use super::*;

    fn charge(retry: Option<u64>) -> Charge {
        Charge {
            points: 3,
            limit: 600,
            remaining: 597,
            reset_secs: 1,
            retry_after_secs: retry,
        }
    }

    #[test]
    fn headers_say_the_budget_and_a_refusal_says_when_to_retry() {
        let mut headers = HeaderMap::new();
        apply(&mut headers, &charge(None));
        assert_eq!(headers["ratelimit-limit"], "600");
        assert_eq!(headers["ratelimit-remaining"], "597");
        assert_eq!(headers["ratelimit-policy"], "600;w=60");
        assert!(headers.get(header::RETRY_AFTER).is_none());
        apply(&mut headers, &charge(Some(4)));
        assert_eq!(headers[header::RETRY_AFTER], "4");
    }

    #[test]
    fn the_cost_is_added_to_a_stored_body_as_valid_json() {
        let body = br#"{"data":{"a":1}}"#.to_vec();
        let out = with_cost(body, &charge(None).to_json());
        let parsed: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(parsed["data"]["a"], 1);
        assert_eq!(parsed["extensions"]["cost"]["points"], 3);
        assert_eq!(parsed["extensions"]["cost"]["remaining"], 597);
    }
}
