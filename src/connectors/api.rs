//! Requests to providers' APIs, as every connector makes them: within a budget of requests per
//! second per provider account, retried with exponential backoff and jitter on a network
//! error or a 5xx, waiting out `429` for as long as `Retry-After` says (up to a bound; beyond it
//! the job is retried later), and never with a body or a secret in the log.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::jobs::backoff::retry_delay;

/// How requests are retried.
#[derive(Clone, Copy, Debug)]
pub struct RetryPolicy {
    /// Attempts per request, the first included.
    pub attempts: u32,
    pub base: Duration,
    pub cap: Duration,
    /// The longest `Retry-After` waited out inside a request.
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            attempts: 5,
            base: Duration::from_millis(500),
            cap: Duration::from_secs(30),
            max_retry_after: Duration::from_secs(60),
        }
    }
}

/// A provider's object id as one path segment: ids are letters, digits, `_` and `-`; anything
/// else is escaped rather than trusted.
pub fn path_segment(id: &str) -> String {
    id.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b == b'_' || b == b'-' {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// Requests per second per provider account: each account's next free slot.
pub struct Budgets {
    per_second: f64,
    next: Mutex<HashMap<String, Instant>>,
}

impl Budgets {
    pub fn new(per_second: f64) -> Budgets {
        Budgets {
            per_second: per_second.max(0.1),
            next: Mutex::default(),
        }
    }

    /// Waits for `account`'s next slot.
    pub async fn take(&self, account: &str) {
        let wait = {
            let mut next = self.next.lock().unwrap_or_else(|e| e.into_inner());
            let now = Instant::now();
            let slot = next.get(account).copied().unwrap_or(now).max(now);
            next.insert(
                account.to_string(),
                slot + Duration::from_secs_f64(1.0 / self.per_second),
            );
            if next.len() > 10_000 {
                next.retain(|_, at| *at > now);
            }
            slot - now
        };
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }
}

/// Providers' access tokens per account, kept until a minute before they expire.
#[derive(Default)]
pub struct Tokens {
    held: Mutex<HashMap<String, (String, Instant)>>,
}

impl Tokens {
    const MARGIN: Duration = Duration::from_secs(60);

    pub fn get(&self, account: &str) -> Option<String> {
        let held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        held.get(account)
            .filter(|(_, until)| *until > Instant::now())
            .map(|(token, _)| token.clone())
    }

    pub fn put(&self, account: &str, token: &str, lifetime: Duration) {
        let until = Instant::now() + lifetime.saturating_sub(Self::MARGIN);
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        if held.len() > 10_000 {
            let now = Instant::now();
            held.retain(|_, (_, u)| *u > now);
        }
        held.insert(account.to_string(), (token.to_string(), until));
    }

    pub fn forget(&self, account: &str) {
        self.held
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(account);
    }
}

/// Why a request did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The credentials were refused (401).
    #[error("{provider} refused the credentials (401)")]
    Unauthorized { provider: &'static str },
    /// The provider asked to wait longer than a request waits.
    #[error("{provider} asked to wait {after:?} (429)")]
    RateLimited {
        provider: &'static str,
        after: Duration,
    },
    /// A 4xx other than 401 and 429: asking again will not help.
    #[error("{provider} answered {status}: {message}")]
    Refused {
        provider: &'static str,
        status: u16,
        message: String,
    },
    /// 5xx or no answer, after every attempt.
    #[error("{provider} is unavailable: {message}")]
    Unavailable {
        provider: &'static str,
        message: String,
    },
}

impl ApiError {
    /// Whether a later attempt (of the job) may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            ApiError::RateLimited { .. } | ApiError::Unavailable { .. }
        )
    }
}

/// One provider account's API.
pub struct Api<'a> {
    pub provider: &'static str,
    pub http: &'a reqwest::Client,
    pub budgets: &'a Budgets,
    pub retry: RetryPolicy,
    /// The budget's key: the integration.
    pub account: String,
}

fn retry_after(response: &reqwest::Response) -> Option<Duration> {
    let value = response.headers().get(reqwest::header::RETRY_AFTER)?;
    let text = value.to_str().ok()?.trim();
    if let Ok(secs) = text.parse::<f64>() {
        return (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs));
    }
    let at = chrono::DateTime::parse_from_rfc2822(text).ok()?;
    let secs = (at.with_timezone(&chrono::Utc) - chrono::Utc::now()).num_milliseconds();
    Some(Duration::from_millis(secs.max(0) as u64))
}

/// The message of a provider's error body (Stripe's `error.message`, PayPal's `message` or
/// `error_description`), cut short.
fn error_message(body: &Value) -> String {
    let text = body["error"]["message"]
        .as_str()
        .or(body["message"].as_str())
        .or(body["error_description"].as_str())
        .unwrap_or("no message");
    text.chars().take(300).collect()
}

impl Api<'_> {
    /// Sends the request `build` makes (again for each attempt) and reads its JSON answer.
    pub async fn send(
        &self,
        build: impl Fn(&reqwest::Client) -> reqwest::RequestBuilder,
    ) -> Result<Value, ApiError> {
        let provider = self.provider;
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            self.budgets.take(&self.account).await;
            let last = attempt >= self.retry.attempts;
            let backoff = retry_delay(attempt as i32, self.retry.base, self.retry.cap);
            let response = match build(self.http).send().await {
                Ok(r) => r,
                Err(e) if last => {
                    return Err(ApiError::Unavailable {
                        provider,
                        message: e.without_url().to_string(),
                    });
                }
                Err(e) => {
                    tracing::info!(provider, attempt, error = %e.without_url(), "provider request failed; retrying");
                    tokio::time::sleep(backoff).await;
                    continue;
                }
            };
            let status = response.status();
            if status.is_success() {
                return response.json().await.map_err(|e| ApiError::Unavailable {
                    provider,
                    message: format!("unreadable answer: {}", e.without_url()),
                });
            }
            if status.as_u16() == 429 {
                let after = retry_after(&response).unwrap_or(backoff);
                if after > self.retry.max_retry_after || last {
                    return Err(ApiError::RateLimited { provider, after });
                }
                tracing::info!(
                    provider,
                    attempt,
                    wait_ms = after.as_millis() as u64,
                    "provider rate limit; waiting"
                );
                tokio::time::sleep(after).await;
                continue;
            }
            if status.is_server_error() && !last {
                tracing::info!(
                    provider,
                    attempt,
                    status = status.as_u16(),
                    "provider error; retrying"
                );
                tokio::time::sleep(backoff).await;
                continue;
            }
            let body: Value = response.json().await.unwrap_or(Value::Null);
            return Err(match status.as_u16() {
                401 => ApiError::Unauthorized { provider },
                s if s >= 500 => ApiError::Unavailable {
                    provider,
                    message: format!("{s}: {}", error_message(&body)),
                },
                s => ApiError::Refused {
                    provider,
                    status: s,
                    message: error_message(&body),
                },
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_budget_spaces_one_accounts_requests_and_not_anothers() {
        let budgets = Budgets::new(20.0);
        let start = Instant::now();
        for _ in 0..5 {
            budgets.take("a").await;
        }
        budgets.take("b").await;
        let spent = start.elapsed();
        assert!(spent >= Duration::from_millis(190), "{spent:?}");
        assert!(spent < Duration::from_millis(1_000), "{spent:?}");
    }

    #[test]
    fn ids_cannot_leave_their_path_segment() {
        assert_eq!(path_segment("sub_1Ab-9"), "sub_1Ab-9");
        assert_eq!(path_segment("../v1/x?y=1"), "%2E%2E%2Fv1%2Fx%3Fy%3D1");
    }

    #[test]
    fn tokens_are_kept_until_shortly_before_they_expire() {
        let tokens = Tokens::default();
        tokens.put("a", "t1", Duration::from_secs(3600));
        tokens.put("b", "t2", Duration::from_secs(30));
        assert_eq!(tokens.get("a").as_deref(), Some("t1"));
        assert_eq!(tokens.get("b"), None, "within the margin: fetched again");
        tokens.forget("a");
        assert_eq!(tokens.get("a"), None);
    }

    #[test]
    fn provider_messages_are_read_from_either_shape() {
        let stripe = serde_json::json!({"error": {"message": "No such subscription"}});
        let paypal = serde_json::json!({"name": "X", "message": "Invalid request"});
        assert_eq!(error_message(&stripe), "No such subscription");
        assert_eq!(error_message(&paypal), "Invalid request");
        assert_eq!(error_message(&Value::Null), "no message");
    }
}
