//! Small shared counters with expiry: Redis when configured (shared by every instance), else an
//! in-process cache with the same behaviour for a single instance. A Redis that fails is known
//! as down for a moment (`Health`, a circuit breaker): meanwhile counters (log-in throttling,
//! rate limits) are kept in process and cache reads are misses, so a request costs no Redis
//! timeout, and the log says so once when it goes down and once when it is back.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bb8_redis::RedisConnectionManager;
use moka::future::Cache;
use moka::ops::compute::Op;

use crate::error::{AppError, AppResult};

mod gcra;
pub use gcra::{Rate, Spent};

pub type RedisPool = bb8::Pool<RedisConnectionManager>;

#[derive(Clone)]
pub enum Kv {
    Redis(Arc<Redis>),
    Memory(Memory),
}

pub struct Redis {
    pub pool: RedisPool,
    pub prefix: String,
    /// Where counters go while Redis is down.
    local: Memory,
    health: Health,
}

/// Whether Redis is known to be down: after a failure requests skip it, and a background
/// probe (every `PAUSE`) says when it is back, so that no request waits for a dead Redis twice.
pub struct Health {
    down: AtomicBool,
}

impl Health {
    fn new() -> Health {
        Health {
            down: AtomicBool::new(false),
        }
    }

    fn may_try(&self) -> bool {
        !self.is_down()
    }

    fn failed(&self, error: &str) {
        if !self.down.swap(true, Ordering::AcqRel) {
            tracing::warn!(
                error,
                probe_every_ms = PAUSE.as_millis() as u64,
                "Redis is unavailable: counters are kept in process and the cache is skipped until it is back"
            );
            metrics::gauge!("fahwa_redis_up").set(0.0);
        }
    }

    fn succeeded(&self) {
        if self.down.swap(false, Ordering::AcqRel) {
            tracing::info!("Redis is back");
            metrics::gauge!("fahwa_redis_up").set(1.0);
        }
    }

    pub fn is_down(&self) -> bool {
        self.down.load(Ordering::Acquire)
    }
}

/// The longest one Redis call may take before it counts as failed.
const CALL_TIMEOUT: Duration = Duration::from_millis(500);
/// How often a Redis known to be down is asked whether it is back.
const PAUSE: Duration = Duration::from_secs(2);

impl Redis {
    /// `call` on Redis unless it is known down; `None` when it is, or when the call fails (and
    /// then it is known down).
    async fn attempt<T, F, Fut>(&self, call: F) -> Option<T>
    where
        F: FnOnce(RedisPool, String) -> Fut,
        Fut: Future<Output = AppResult<T>>,
    {
        if !self.health.may_try() {
            return None;
        }
        self.call(call).await
    }

    /// `call` on Redis whatever the breaker says (work outside requests, which may wait), and
    /// so also a probe: its success closes the breaker.
    async fn call<T, F, Fut>(&self, call: F) -> Option<T>
    where
        F: FnOnce(RedisPool, String) -> Fut,
        Fut: Future<Output = AppResult<T>>,
    {
        match tokio::time::timeout(CALL_TIMEOUT, call(self.pool.clone(), self.prefix.clone())).await
        {
            Ok(Ok(value)) => {
                self.health.succeeded();
                Some(value)
            }
            Ok(Err(e)) => {
                self.health.failed(&e.to_string());
                None
            }
            Err(_) => {
                self.health.failed("no answer in time");
                None
            }
        }
    }
}

#[derive(Clone)]
pub struct Memory {
    counters: Cache<String, (i64, Instant)>,
    blobs: Cache<String, Arc<Vec<u8>>>,
}

impl Memory {
    fn new() -> Memory {
        Memory {
            counters: Cache::builder()
                .max_capacity(1_000_000)
                .time_to_idle(Duration::from_secs(3600))
                .build(),
            blobs: Cache::builder()
                // Weighed in bytes: 256 MiB of cached results at most.
                .weigher(|k: &String, v: &Arc<Vec<u8>>| {
                    (k.len() + v.len()).try_into().unwrap_or(u32::MAX)
                })
                .max_capacity(256 * 1024 * 1024)
                .time_to_live(BLOB_TTL)
                .build(),
        }
    }

    /// Replaces a counter by `next(live value)` (`None` keeps it); returns what it holds after.
    async fn update_counter(
        &self,
        key: &str,
        next: impl FnOnce(Option<(i64, Instant)>) -> Option<(i64, Instant)>,
    ) -> Option<i64> {
        let now = Instant::now();
        let entry = self
            .counters
            .entry(key.to_string())
            .and_compute_with(|old| {
                let live = old.map(|e| e.into_value()).filter(|(_, exp)| *exp > now);
                std::future::ready(match next(live) {
                    Some(value) => Op::Put(value),
                    None => Op::Nop,
                })
            })
            .await;
        entry.into_entry().map(|e| e.value().0)
    }

    async fn incr(&self, key: &str, ttl: Duration) -> i64 {
        let now = Instant::now();
        self.update_counter(key, |live| match live {
            Some((n, exp)) => Some((n + 1, exp)),
            None => Some((1, now + ttl)),
        })
        .await
        .unwrap_or(1)
    }

    async fn set(&self, key: &str, value: i64, ttl: Duration) {
        self.counters
            .insert(key.to_string(), (value, Instant::now() + ttl))
            .await
    }

    async fn get(&self, key: &str) -> Option<(i64, Duration)> {
        self.counters.get(key).await.and_then(|(n, exp)| {
            let left = exp.checked_duration_since(Instant::now())?;
            Some((n, left))
        })
    }

    async fn delete(&self, key: &str) {
        self.counters.invalidate(key).await
    }
}

/// How long a cached blob may live at most (entries are also keyed by data version).
pub const BLOB_TTL: Duration = Duration::from_secs(15 * 60);

pub(crate) fn redis_err(e: impl std::fmt::Display) -> AppError {
    AppError::internal(anyhow::anyhow!("redis: {e}"))
}

async fn set_counter(
    pool: &RedisPool,
    prefix: &str,
    key: &str,
    value: i64,
    ttl: Duration,
) -> AppResult<()> {
    let mut conn = pool.get().await.map_err(redis_err)?;
    let _: () = redis::cmd("SET")
        .arg(format!("{prefix}{key}"))
        .arg(value)
        .arg("PX")
        .arg(ttl.as_millis().max(1) as u64)
        .query_async(&mut *conn)
        .await
        .map_err(redis_err)?;
    Ok(())
}

/// The values of several keys in one round trip.
async fn mget<T: redis::FromRedisValue>(
    pool: &RedisPool,
    prefix: &str,
    keys: &[String],
) -> AppResult<Vec<Option<T>>> {
    if keys.is_empty() {
        return Ok(Vec::new());
    }
    let mut conn = pool.get().await.map_err(redis_err)?;
    let mut cmd = redis::cmd("MGET");
    for k in keys {
        cmd.arg(format!("{prefix}{k}"));
    }
    cmd.query_async(&mut *conn).await.map_err(redis_err)
}

impl Kv {
    pub fn redis(url: &str, prefix: &str) -> anyhow::Result<Self> {
        let manager = RedisConnectionManager::new(url)?;
        let pool = bb8::Pool::builder()
            .max_size(16)
            .connection_timeout(CALL_TIMEOUT)
            .build_unchecked(manager);
        let redis = Arc::new(Redis {
            pool,
            prefix: prefix.to_string(),
            local: Memory::new(),
            health: Health::new(),
        });
        let probed = Arc::downgrade(&redis);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(PAUSE).await;
                let Some(redis) = probed.upgrade() else {
                    return;
                };
                if redis.health.is_down() {
                    redis
                        .call(|pool, _| async move {
                            let mut conn = pool.get().await.map_err(redis_err)?;
                            let _: String = redis::cmd("PING")
                                .query_async(&mut *conn)
                                .await
                                .map_err(redis_err)?;
                            Ok(())
                        })
                        .await;
                }
            }
        });
        Ok(Kv::Redis(redis))
    }

    pub fn memory() -> Self {
        Kv::Memory(Memory::new())
    }

    /// Whether Redis is configured and known to be down at the moment.
    pub fn redis_down(&self) -> bool {
        matches!(self, Kv::Redis(r) if r.health.is_down())
    }

    pub async fn get_blob(&self, key: &str) -> AppResult<Option<Arc<Vec<u8>>>> {
        match self {
            Kv::Redis(r) => Ok(r
                .attempt(|pool, prefix| async move {
                    let mut conn = pool.get().await.map_err(redis_err)?;
                    let value: Option<Vec<u8>> = redis::cmd("GET")
                        .arg(format!("{prefix}{key}"))
                        .query_async(&mut *conn)
                        .await
                        .map_err(redis_err)?;
                    Ok(value.map(Arc::new))
                })
                .await
                .flatten()),
            Kv::Memory(m) => Ok(m.blobs.get(key).await),
        }
    }

    /// `get_blob` for several keys in one round trip.
    pub async fn get_blobs(&self, keys: &[String]) -> AppResult<Vec<Option<Arc<Vec<u8>>>>> {
        match self {
            Kv::Redis(r) => {
                let found = r
                    .attempt(
                        |pool, prefix| async move { mget::<Vec<u8>>(&pool, &prefix, keys).await },
                    )
                    .await;
                Ok(match found {
                    Some(values) => values.into_iter().map(|v| v.map(Arc::new)).collect(),
                    None => vec![None; keys.len()],
                })
            }
            Kv::Memory(m) => {
                let mut out = Vec::with_capacity(keys.len());
                for k in keys {
                    out.push(m.blobs.get(k).await);
                }
                Ok(out)
            }
        }
    }

    /// Stores `value` under `key` for `ttl` (at most `BLOB_TTL`). In process, entries live up to
    /// `BLOB_TTL` within the cache's weight limit, whatever `ttl` says. Skipped while Redis is
    /// down.
    pub async fn set_blob(&self, key: &str, value: Vec<u8>, ttl: Duration) -> AppResult<()> {
        match self {
            Kv::Redis(r) => {
                r.attempt(|pool, prefix| async move {
                    let mut conn = pool.get().await.map_err(redis_err)?;
                    let _: () = redis::cmd("SET")
                        .arg(format!("{prefix}{key}"))
                        .arg(value)
                        .arg("PX")
                        .arg(ttl.min(BLOB_TTL).as_millis().max(1) as u64)
                        .query_async(&mut *conn)
                        .await
                        .map_err(redis_err)?;
                    Ok(())
                })
                .await;
            }
            Kv::Memory(m) => m.blobs.insert(key.to_string(), Arc::new(value)).await,
        }
        Ok(())
    }

    pub fn is_redis(&self) -> bool {
        matches!(self, Kv::Redis(_))
    }

    /// Asks Redis itself, whatever the breaker says (for `/readyz`).
    pub async fn ping(&self) -> AppResult<()> {
        if let Kv::Redis(r) = self {
            let call = async {
                let mut conn = r.pool.get().await.map_err(redis_err)?;
                let _: String = redis::cmd("PING")
                    .query_async(&mut *conn)
                    .await
                    .map_err(redis_err)?;
                Ok::<(), AppError>(())
            };
            match tokio::time::timeout(CALL_TIMEOUT, call).await {
                Ok(Ok(())) => r.health.succeeded(),
                Ok(Err(e)) => {
                    r.health.failed(&e.to_string());
                    return Err(e);
                }
                Err(_) => {
                    r.health.failed("no answer in time");
                    return Err(redis_err("no answer in time"));
                }
            }
        }
        Ok(())
    }

    /// Adds one to `key` and returns the new count; the key expires `ttl` after its first count.
    /// While Redis is down, counted in process.
    pub async fn incr(&self, key: &str, ttl: Duration) -> AppResult<i64> {
        match self {
            Kv::Redis(r) => {
                let counted = r
                    .attempt(|pool, prefix| async move {
                        let mut conn = pool.get().await.map_err(redis_err)?;
                        let (count, _): (i64, i64) = redis::pipe()
                            .atomic()
                            .cmd("INCR")
                            .arg(format!("{prefix}{key}"))
                            .cmd("EXPIRE")
                            .arg(format!("{prefix}{key}"))
                            .arg(ttl.as_secs().max(1))
                            .arg("NX")
                            .query_async(&mut *conn)
                            .await
                            .map_err(redis_err)?;
                        Ok(count)
                    })
                    .await;
                match counted {
                    Some(n) => Ok(n),
                    None => Ok(r.local.incr(key, ttl).await),
                }
            }
            Kv::Memory(m) => Ok(m.incr(key, ttl).await),
        }
    }

    /// Sets `key` to `value`, to expire `ttl` from now (replacing any earlier expiry).
    pub async fn set(&self, key: &str, value: i64, ttl: Duration) -> AppResult<()> {
        match self {
            Kv::Redis(r) => {
                let done = r
                    .attempt(|pool, prefix| async move {
                        set_counter(&pool, &prefix, key, value, ttl).await
                    })
                    .await;
                if done.is_none() {
                    r.local.set(key, value, ttl).await;
                }
            }
            Kv::Memory(m) => m.set(key, value, ttl).await,
        }
        Ok(())
    }

    /// Sets a mark every instance reads (what is followed live): in Redis or not at all (an
    /// error), tried even while Redis is thought down, since this runs outside requests.
    pub async fn set_shared(&self, key: &str, value: i64, ttl: Duration) -> AppResult<()> {
        match self {
            Kv::Redis(r) => r
                .call(|pool, prefix| async move {
                    set_counter(&pool, &prefix, key, value, ttl).await
                })
                .await
                .ok_or_else(|| redis_err("unavailable")),
            Kv::Memory(m) => {
                m.set(key, value, ttl).await;
                Ok(())
            }
        }
    }

    /// The count and the time it has left, if the key is alive.
    pub async fn get(&self, key: &str) -> AppResult<Option<(i64, Duration)>> {
        match self {
            Kv::Redis(r) => {
                let found = r
                    .attempt(|pool, prefix| async move {
                        let mut conn = pool.get().await.map_err(redis_err)?;
                        let (count, ttl_ms): (Option<i64>, i64) = redis::pipe()
                            .cmd("GET")
                            .arg(format!("{prefix}{key}"))
                            .cmd("PTTL")
                            .arg(format!("{prefix}{key}"))
                            .query_async(&mut *conn)
                            .await
                            .map_err(redis_err)?;
                        Ok(count.map(|c| (c, Duration::from_millis(ttl_ms.max(0) as u64))))
                    })
                    .await;
                match found {
                    Some(v) => Ok(v),
                    None => Ok(r.local.get(key).await),
                }
            }
            Kv::Memory(m) => Ok(m.get(key).await),
        }
    }

    /// `get`'s counts for several keys in one round trip (without the time they have left). An
    /// error while Redis is down: these are marks shared by every instance (what is followed, the
    /// data versions), which no instance can answer alone.
    pub async fn get_many(&self, keys: &[String]) -> AppResult<Vec<Option<i64>>> {
        match self {
            Kv::Redis(r) => r
                .attempt(|pool, prefix| async move { mget(&pool, &prefix, keys).await })
                .await
                .ok_or_else(|| redis_err("unavailable")),
            Kv::Memory(m) => {
                let now = Instant::now();
                let mut out = Vec::with_capacity(keys.len());
                for k in keys {
                    let live = m.counters.get(k).await.filter(|(_, exp)| *exp > now);
                    out.push(live.map(|(n, _)| n));
                }
                Ok(out)
            }
        }
    }

    /// Sets `key` to `value` unless it holds a larger one, to expire `ttl` from now; returns what
    /// it holds after. Concurrent writers can only move it forward. Skipped while Redis is down
    /// (readers then find no mark and ask PostgreSQL).
    pub async fn raise(&self, key: &str, value: i64, ttl: Duration) -> AppResult<i64> {
        static RAISE: std::sync::LazyLock<redis::Script> = std::sync::LazyLock::new(|| {
            redis::Script::new(
                "local cur = tonumber(redis.call('GET', KEYS[1]) or '-1') \
                 local new = tonumber(ARGV[1]) \
                 if new >= cur then redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) return new end \
                 return cur",
            )
        });
        match self {
            Kv::Redis(r) => Ok(r
                .attempt(|pool, prefix| async move {
                    let mut conn = pool.get().await.map_err(redis_err)?;
                    RAISE
                        .key(format!("{prefix}{key}"))
                        .arg(value)
                        .arg(ttl.as_millis().max(1) as u64)
                        .invoke_async(&mut *conn)
                        .await
                        .map_err(redis_err)
                })
                .await
                .unwrap_or(value)),
            Kv::Memory(m) => {
                let now = Instant::now();
                let held = m
                    .update_counter(key, |live| match live {
                        Some((cur, _)) if cur > value => None,
                        _ => Some((value, now + ttl)),
                    })
                    .await;
                Ok(held.unwrap_or(value))
            }
        }
    }

    /// A counter and a blob in one round trip (a version and what was stored under it).
    pub async fn get_with_blob(
        &self,
        counter: &str,
        blob: &str,
    ) -> AppResult<(Option<i64>, Option<Arc<Vec<u8>>>)> {
        match self {
            Kv::Redis(r) => Ok(r
                .attempt(|pool, prefix| async move {
                    let mut conn = pool.get().await.map_err(redis_err)?;
                    let (n, bytes): (Option<i64>, Option<Vec<u8>>) = redis::cmd("MGET")
                        .arg(format!("{prefix}{counter}"))
                        .arg(format!("{prefix}{blob}"))
                        .query_async(&mut *conn)
                        .await
                        .map_err(redis_err)?;
                    Ok((n, bytes.map(Arc::new)))
                })
                .await
                .unwrap_or((None, None))),
            Kv::Memory(m) => {
                let now = Instant::now();
                let n = m
                    .counters
                    .get(counter)
                    .await
                    .and_then(|(n, exp)| (exp > now).then_some(n));
                Ok((n, m.blobs.get(blob).await))
            }
        }
    }

    pub async fn delete(&self, key: &str) -> AppResult<()> {
        match self {
            Kv::Redis(r) => {
                r.local.delete(key).await;
                r.attempt(|pool, prefix| async move {
                    let mut conn = pool.get().await.map_err(redis_err)?;
                    let _: i64 = redis::cmd("DEL")
                        .arg(format!("{prefix}{key}"))
                        .query_async(&mut *conn)
                        .await
                        .map_err(redis_err)?;
                    Ok(())
                })
                .await;
            }
            Kv::Memory(m) => m.delete(key).await,
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn memory_counts_and_expires() {
        let kv = Kv::memory();
        assert_eq!(kv.incr("a", Duration::from_millis(80)).await.unwrap(), 1);
        assert_eq!(kv.incr("a", Duration::from_millis(80)).await.unwrap(), 2);
        assert_eq!(kv.get("a").await.unwrap().map(|(n, _)| n), Some(2));
        tokio::time::sleep(Duration::from_millis(120)).await;
        assert_eq!(kv.get("a").await.unwrap(), None);
        assert_eq!(kv.incr("a", Duration::from_secs(5)).await.unwrap(), 1);
        kv.delete("a").await.unwrap();
        assert_eq!(kv.get("a").await.unwrap(), None);
    }

    #[tokio::test]
    async fn a_redis_that_is_down_costs_one_timeout_and_counters_go_on_in_process() {
        // Nothing listens on port 1.
        let kv = Kv::redis("redis://127.0.0.1:1", "t:").unwrap();
        let ttl = Duration::from_secs(60);
        assert_eq!(
            kv.incr("a", ttl).await.unwrap(),
            1,
            "the failing call counts in process"
        );
        assert!(kv.redis_down());
        let started = Instant::now();
        for n in 2..=100 {
            assert_eq!(kv.incr("a", ttl).await.unwrap(), n);
        }
        assert_eq!(kv.get("a").await.unwrap().map(|(n, _)| n), Some(100));
        assert_eq!(kv.get_blob("b").await.unwrap(), None, "the cache is a miss");
        assert!(
            kv.get_many(&["v".into()]).await.is_err(),
            "shared marks are not guessed"
        );
        assert!(
            started.elapsed() < CALL_TIMEOUT,
            "a known-down Redis is not waited for: {:?}",
            started.elapsed()
        );
        assert!(kv.ping().await.is_err(), "readiness asks Redis itself");
    }

    #[tokio::test]
    async fn a_redis_marked_down_is_skipped_until_the_probe_finds_it_back() {
        let url = std::env::var("FAHWA_TEST_REDIS_URL")
            .unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
        let kv = Kv::redis(&url, &format!("t:{}:", uuid::Uuid::new_v4().simple())).unwrap();
        kv.set_blob("b", vec![1], BLOB_TTL).await.unwrap();
        assert_eq!(kv.get_blob("b").await.unwrap().as_deref(), Some(&vec![1]));
        let Kv::Redis(r) = &kv else { unreachable!() };
        r.health.failed("as if it had gone");
        assert_eq!(kv.get_blob("b").await.unwrap(), None, "skipped while down");
        tokio::time::sleep(PAUSE + Duration::from_millis(700)).await;
        assert!(!kv.redis_down(), "the probe found it back");
        assert_eq!(kv.get_blob("b").await.unwrap().as_deref(), Some(&vec![1]));
    }

    #[tokio::test]
    async fn memory_raise_only_moves_forward_until_it_expires() {
        let kv = Kv::memory();
        let ttl = Duration::from_millis(80);
        assert_eq!(kv.raise("v", 5, ttl).await.unwrap(), 5);
        assert_eq!(kv.raise("v", 3, ttl).await.unwrap(), 5);
        assert_eq!(kv.raise("v", 7, ttl).await.unwrap(), 7);
        kv.set_blob("b", vec![1], BLOB_TTL).await.unwrap();
        let (n, blob) = kv.get_with_blob("v", "b").await.unwrap();
        assert_eq!((n, blob.as_deref().cloned()), (Some(7), Some(vec![1])));
        tokio::time::sleep(Duration::from_millis(120)).await;
        assert_eq!(kv.get_with_blob("v", "b").await.unwrap().0, None);
        assert_eq!(kv.raise("v", 2, ttl).await.unwrap(), 2);
    }
}
