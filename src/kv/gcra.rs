//! Point budgets as a generic cell rate algorithm (GCRA): a budget of `limit` points refills at
//! `limit` per `period`, and is kept as one number, the time at which it will be full again
//! (its "theoretical arrival time"). A charge of `cost` points moves that time `cost` intervals
//! later; it is refused when that would put it more than a whole period ahead of now. One
//! key, one atomic step, the same in Redis (a script, on Redis's clock, so every instance
//! agrees) and in process.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::{Kv, Memory, redis_err};
use crate::error::AppResult;

/// A budget's shape: `limit` points, refilled evenly over `period`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    pub limit: u64,
    pub period: Duration,
}

impl Rate {
    /// Microseconds for one point to come back (at least one).
    fn interval_us(&self) -> i64 {
        ((self.period.as_micros() as u64) / self.limit.max(1)).max(1) as i64
    }

    fn period_us(&self) -> i64 {
        self.interval_us() * self.limit.max(1) as i64
    }
}

/// What a budget said to one charge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Spent {
    pub allowed: bool,
    /// Points left after the charge (before it, when refused).
    pub remaining: u64,
    /// Until the budget is full again.
    pub reset: Duration,
    /// Until this charge would be allowed (zero when it was).
    pub retry_after: Duration,
}

/// One step of the algorithm: the new time at which the budget is full (if allowed) and what
/// to say. `tat_us` is the stored time, `now_us` the clock, both in microseconds.
pub fn step(tat_us: Option<i64>, now_us: i64, cost: u64, rate: Rate) -> (Option<i64>, Spent) {
    let interval = rate.interval_us();
    let period = rate.period_us();
    let tat = tat_us.unwrap_or(now_us).max(now_us);
    let new_tat = tat.saturating_add(interval.saturating_mul(cost as i64));
    let allow_at = new_tat - period;
    let remaining = |full_at: i64| ((period - (full_at - now_us)).max(0) / interval) as u64;
    let us = |n: i64| Duration::from_micros(n.max(0) as u64);
    if allow_at > now_us {
        let spent = Spent {
            allowed: false,
            remaining: remaining(tat),
            reset: us(tat - now_us),
            retry_after: us(allow_at - now_us),
        };
        return (None, spent);
    }
    let spent = Spent {
        allowed: true,
        remaining: remaining(new_tat),
        reset: us(new_tat - now_us),
        retry_after: Duration::ZERO,
    };
    (Some(new_tat), spent)
}

/// The same step in Lua, on Redis's own clock. Returns `{allowed, tat - now, retry}` in
/// microseconds, where `tat` is the stored time after the step.
const SCRIPT: &str = r"
local interval = tonumber(ARGV[1])
local period = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local new_tat = tat + interval * cost
local allow_at = new_tat - period
if allow_at > now then
  return {0, tat - now, allow_at - now}
end
redis.call('SET', KEYS[1], string.format('%d', new_tat), 'PX', math.ceil((new_tat - now) / 1000) + 1)
return {1, new_tat - now, 0}
";

fn now_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64)
}

impl Memory {
    async fn spend(&self, key: &str, cost: u64, rate: Rate) -> Spent {
        let now = now_us();
        let mut said = None;
        self.update_counter(key, |live| {
            let (tat, spent) = step(live.map(|(tat, _)| tat), now, cost, rate);
            said = Some(spent);
            tat.map(|t| {
                let left = Duration::from_micros((t - now).max(0) as u64);
                (t, Instant::now() + left + Duration::from_millis(1))
            })
        })
        .await;
        said.unwrap_or_else(|| step(None, now, cost, rate).1)
    }
}

impl Kv {
    /// Charges `cost` points to the budget at `key`. While Redis is down the budget is kept in
    /// process (each instance then allows its own budget).
    pub async fn spend(&self, key: &str, cost: u64, rate: Rate) -> AppResult<Spent> {
        static GCRA: std::sync::LazyLock<redis::Script> =
            std::sync::LazyLock::new(|| redis::Script::new(SCRIPT));
        match self {
            Kv::Redis(r) => {
                let answered = r
                    .attempt(|pool, prefix| async move {
                        let mut conn = pool.get().await.map_err(redis_err)?;
                        let (allowed, ahead, retry): (i64, i64, i64) = GCRA
                            .key(format!("{prefix}{key}"))
                            .arg(rate.interval_us())
                            .arg(rate.period_us())
                            .arg(cost)
                            .invoke_async(&mut *conn)
                            .await
                            .map_err(redis_err)?;
                        Ok((allowed, ahead, retry))
                    })
                    .await;
                match answered {
                    Some((allowed, ahead, retry)) => Ok(from_script(allowed, ahead, retry, rate)),
                    None => Ok(r.local.spend(key, cost, rate).await),
                }
            }
            Kv::Memory(m) => Ok(m.spend(key, cost, rate).await),
        }
    }
}

fn from_script(allowed: i64, ahead_us: i64, retry_us: i64, rate: Rate) -> Spent {
    let us = |n: i64| Duration::from_micros(n.max(0) as u64);
    Spent {
        allowed: allowed == 1,
        remaining: ((rate.period_us() - ahead_us).max(0) / rate.interval_us()) as u64,
        reset: us(ahead_us),
        retry_after: us(retry_us),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINUTE: Rate = Rate {
        limit: 60,
        period: Duration::from_secs(60),
    };
    const SEC: i64 = 1_000_000;

    #[test]
    fn a_full_budget_allows_its_limit_at_once_then_refuses_until_a_point_comes_back() {
        let now = 1_000 * SEC;
        let (tat, spent) = step(None, now, 60, MINUTE);
        assert!(spent.allowed);
        assert_eq!(spent.remaining, 0);
        assert_eq!(spent.reset, Duration::from_secs(60));
        let (none, refused) = step(tat, now, 1, MINUTE);
        assert_eq!(none, None);
        assert!(!refused.allowed);
        assert_eq!(refused.retry_after, Duration::from_secs(1));
        let (_, later) = step(tat, now + SEC, 1, MINUTE);
        assert!(later.allowed);
    }

    #[test]
    fn points_come_back_evenly_and_a_charge_beyond_what_is_left_waits_for_the_difference() {
        let now = 1_000 * SEC;
        let (tat, spent) = step(None, now, 50, MINUTE);
        assert_eq!(spent.remaining, 10);
        let (_, refused) = step(tat, now, 20, MINUTE);
        assert!(!refused.allowed);
        assert_eq!(refused.remaining, 10);
        assert_eq!(refused.retry_after, Duration::from_secs(10));
        let (_, after) = step(tat, now + 30 * SEC, 20, MINUTE);
        assert!(after.allowed);
        assert_eq!(after.remaining, 20);
    }

    #[test]
    fn an_old_time_counts_as_a_full_budget() {
        let (_, spent) = step(Some(5 * SEC), 1_000 * SEC, 1, MINUTE);
        assert!(spent.allowed);
        assert_eq!(spent.remaining, 59);
    }

    #[tokio::test]
    async fn in_process_budgets_are_kept_per_key() {
        let kv = Kv::memory();
        assert!(kv.spend("a", 60, MINUTE).await.unwrap().allowed);
        assert!(!kv.spend("a", 1, MINUTE).await.unwrap().allowed);
        assert!(kv.spend("b", 1, MINUTE).await.unwrap().allowed);
    }
}
