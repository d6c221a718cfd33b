//! A closed-loop HTTP load driver: N clients, each sending its next request when the last one
//! answered, for a fixed time; latencies recorded per request.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::Value;

#[derive(Debug, Clone, Serialize)]
pub struct LoadResult {
    pub requests: usize,
    pub errors: usize,
    pub seconds: f64,
    pub throughput: f64,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
}

pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Sends `body` to `url` from `clients` concurrent clients for `duration` (at most
/// `max_requests` in all). A response with GraphQL errors counts as an error.
pub async fn run(
    url: &str,
    token: &str,
    body: Value,
    clients: usize,
    duration: Duration,
    max_requests: usize,
) -> LoadResult {
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(clients)
        .build()
        .unwrap_or_default();
    let body = Arc::new(body);
    let started = Instant::now();
    let deadline = started + duration;
    let budget = Arc::new(std::sync::atomic::AtomicUsize::new(max_requests));
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let (http, body, budget) = (http.clone(), body.clone(), budget.clone());
        let (url, token) = (url.to_string(), token.to_string());
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut errors = 0;
            while Instant::now() < deadline {
                let left = budget.fetch_update(
                    std::sync::atomic::Ordering::Relaxed,
                    std::sync::atomic::Ordering::Relaxed,
                    |n| n.checked_sub(1),
                );
                if left.is_err() {
                    break;
                }
                let sent = Instant::now();
                let resp = http
                    .post(&url)
                    .bearer_auth(&token)
                    .json(&*body)
                    .send()
                    .await;
                let ok = match resp {
                    Ok(r) if r.status().is_success() => {
                        r.bytes().await.is_ok_and(|b| answered_without_errors(&b))
                    }
                    _ => false,
                };
                latencies.push(sent.elapsed().as_secs_f64() * 1000.0);
                if !ok {
                    errors += 1;
                }
            }
            (latencies, errors)
        }));
    }
    let mut all = Vec::new();
    let mut errors = 0;
    for t in tasks {
        if let Ok((l, e)) = t.await {
            all.extend(l);
            errors += e;
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    all.sort_by(f64::total_cmp);
    LoadResult {
        requests: all.len(),
        errors,
        seconds,
        throughput: all.len() as f64 / seconds.max(1e-9),
        p50_ms: percentile(&all, 50.0),
        p95_ms: percentile(&all, 95.0),
        p99_ms: percentile(&all, 99.0),
    }
}

/// Whether a GraphQL response body holds data and no errors. The driver shares the server's
/// cores, so a body is parsed only when the word `"errors"` occurs in it at all (data may hold
/// that word too: an event named so).
fn answered_without_errors(body: &[u8]) -> bool {
    let needle = b"\"errors\"";
    if !body.windows(needle.len()).any(|w| w == needle) {
        return body.starts_with(b"{");
    }
    serde_json::from_slice::<Value>(body).is_ok_and(|v| v.get("errors").is_none_or(Value::is_null))
}

#[cfg(test)]
mod tests {
    use super::{answered_without_errors, percentile};

    #[test]
    fn only_top_level_errors_count() {
        assert!(answered_without_errors(br#"{"data":{"a":1}}"#));
        assert!(answered_without_errors(br#"{"data":{"label":"errors"}}"#));
        assert!(!answered_without_errors(
            br#"{"data":null,"errors":[{"message":"no"}]}"#
        ));
        assert!(!answered_without_errors(b"<html>"));
    }

    #[test]
    fn percentiles_use_nearest_rank() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 50.0), 50.0);
        assert_eq!(percentile(&v, 95.0), 95.0);
        assert_eq!(percentile(&v, 99.0), 99.0);
        assert_eq!(percentile(&[7.0], 99.0), 7.0);
        assert_eq!(percentile(&[], 50.0), 0.0);
    }
}
