//! Slows down password guessing: after a few failures for one account or one address, each
//! further attempt must wait twice as long as the one before, up to 15 minutes.

use std::time::Duration;

use crate::error::{AppError, AppResult};
use crate::kv::Kv;

const FREE_ACCOUNT_FAILURES: i64 = 5;
const FREE_ADDRESS_FAILURES: i64 = 20;
const WINDOW: Duration = Duration::from_secs(15 * 60);
const MAX_DELAY_SECS: u64 = 15 * 60;

pub struct LoginThrottle<'a> {
    kv: &'a Kv,
    account_key: String,
    address_key: Option<String>,
}

impl<'a> LoginThrottle<'a> {
    pub fn new(kv: &'a Kv, tenant_slug: &str, email: &str, ip: Option<&str>) -> Self {
        Self {
            kv,
            account_key: format!("login:acct:{tenant_slug}:{email}"),
            address_key: ip.map(|ip| format!("login:ip:{ip}")),
        }
    }

    /// Refuses with `RATE_LIMITED` while the caller must still wait.
    pub async fn check(&self) -> AppResult<()> {
        let mut wait = Duration::ZERO;
        for (key, free) in self.keys() {
            if let Some(w) = self.required_wait(&key, free).await? {
                wait = wait.max(w);
            }
        }
        if wait.is_zero() {
            Ok(())
        } else {
            Err(AppError::RateLimited {
                retry_after_secs: wait.as_secs().max(1),
            })
        }
    }

    pub async fn record_failure(&self) -> AppResult<()> {
        for (key, _) in self.keys() {
            self.kv.incr(&key, WINDOW).await?;
            self.kv
                .set(&format!("{key}:last"), 1, backoff(i64::MAX))
                .await?;
        }
        Ok(())
    }

    pub async fn record_success(&self) -> AppResult<()> {
        self.kv.delete(&self.account_key).await?;
        self.kv.delete(&format!("{}:last", self.account_key)).await
    }

    fn keys(&self) -> Vec<(String, i64)> {
        let mut keys = vec![(self.account_key.clone(), FREE_ACCOUNT_FAILURES)];
        if let Some(a) = &self.address_key {
            keys.push((a.clone(), FREE_ADDRESS_FAILURES));
        }
        keys
    }

    /// The `:last` key lives for the longest delay from the latest failure, so its time left
    /// tells how long ago that failure was.
    async fn required_wait(&self, key: &str, free: i64) -> AppResult<Option<Duration>> {
        let Some((failures, _)) = self.kv.get(key).await? else {
            return Ok(None);
        };
        if failures < free {
            return Ok(None);
        }
        let Some((_, left)) = self.kv.get(&format!("{key}:last")).await? else {
            return Ok(None);
        };
        let since_last = backoff(i64::MAX).saturating_sub(left);
        let needed = backoff(failures - free + 1);
        Ok(needed.checked_sub(since_last).filter(|d| !d.is_zero()))
    }
}

/// Sign-ups from one address: each makes a tenant and hashes a password, so an anonymous
/// caller may start `per_hour` of them an hour, counted before any work is done.
pub async fn count_sign_up(kv: &Kv, ip: Option<&str>, per_hour: u32) -> AppResult<()> {
    const HOUR: Duration = Duration::from_secs(3600);
    let Some(ip) = ip else {
        return Ok(());
    };
    let key = format!("signup:ip:{ip}");
    let count = kv.incr(&key, HOUR).await?;
    if count <= i64::from(per_hour) {
        return Ok(());
    }
    let left = kv.get(&key).await?.map_or(HOUR, |(_, left)| left);
    Err(AppError::RateLimited {
        retry_after_secs: left.as_secs().max(1),
    })
}

fn backoff(over: i64) -> Duration {
    let secs = 1u64
        .checked_shl(over.clamp(0, 20) as u32)
        .unwrap_or(u64::MAX)
        .min(MAX_DELAY_SECS);
    Duration::from_secs(secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_caps() {
        assert_eq!(backoff(1), Duration::from_secs(2));
        assert_eq!(backoff(3), Duration::from_secs(8));
        assert_eq!(backoff(40), Duration::from_secs(MAX_DELAY_SECS));
    }

    #[tokio::test]
    async fn blocks_after_free_failures_and_clears_on_success() {
        let kv = Kv::memory();
        let t = LoginThrottle::new(&kv, "acme", "a@acme.io", Some("10.0.0.1"));
        for _ in 0..FREE_ACCOUNT_FAILURES - 1 {
            t.record_failure().await.unwrap();
            t.check().await.unwrap();
        }
        t.record_failure().await.unwrap();
        match t.check().await {
            Err(AppError::RateLimited { retry_after_secs }) => assert!(retry_after_secs >= 1),
            other => panic!("expected RATE_LIMITED, got {other:?}"),
        }
        t.record_success().await.unwrap();
        t.check().await.unwrap();
    }
}
