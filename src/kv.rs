//! Small shared counters with expiry: Redis when configured (shared by every instance), else an
//! in-process cache with the same behaviour for a single instance.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bb8_redis::RedisConnectionManager;
use moka::future::Cache;
use moka::ops::compute::Op;

use crate::error::{AppError, AppResult};

pub type RedisPool = bb8::Pool<RedisConnectionManager>;

#[derive(Clone)]
pub enum Kv {
    Redis { pool: RedisPool, prefix: String },
    Memory(Memory),
}

#[derive(Clone)]
pub struct Memory {
    counters: Cache<String, (i64, Instant)>,
    blobs: Cache<String, Arc<Vec<u8>>>,
}

impl Memory {
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
}

/// How long a cached blob may live at most (entries are also keyed by data version).
pub const BLOB_TTL: Duration = Duration::from_secs(15 * 60);

pub(crate) fn redis_err(e: impl std::fmt::Display) -> AppError {
    AppError::internal(anyhow::anyhow!("redis: {e}"))
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
            .connection_timeout(Duration::from_secs(3))
            .build_unchecked(manager);
        Ok(Kv::Redis {
            pool,
            prefix: prefix.to_string(),
        })
    }

    pub fn memory() -> Self {
        Kv::Memory(Memory {
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
        })
    }

    pub async fn get_blob(&self, key: &str) -> AppResult<Option<Arc<Vec<u8>>>> {
        match self {
            Kv::Redis { pool, prefix } => {
                let mut conn = pool.get().await.map_err(redis_err)?;
                let value: Option<Vec<u8>> = redis::cmd("GET")
                    .arg(format!("{prefix}{key}"))
                    .query_async(&mut *conn)
                    .await
                    .map_err(redis_err)?;
                Ok(value.map(Arc::new))
            }
            Kv::Memory(m) => Ok(m.blobs.get(key).await),
        }
    }

    /// `get_blob` for several keys in one round trip.
    pub async fn get_blobs(&self, keys: &[String]) -> AppResult<Vec<Option<Arc<Vec<u8>>>>> {
        match self {
            Kv::Redis { pool, prefix } => {
                let values: Vec<Option<Vec<u8>>> = mget(pool, prefix, keys).await?;
                Ok(values.into_iter().map(|v| v.map(Arc::new)).collect())
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
    /// `BLOB_TTL` within the cache's weight limit, whatever `ttl` says.
    pub async fn set_blob(&self, key: &str, value: Vec<u8>, ttl: Duration) -> AppResult<()> {
        match self {
            Kv::Redis { pool, prefix } => {
                let mut conn = pool.get().await.map_err(redis_err)?;
                let _: () = redis::cmd("SET")
                    .arg(format!("{prefix}{key}"))
                    .arg(value)
                    .arg("PX")
                    .arg(ttl.min(BLOB_TTL).as_millis().max(1) as u64)
                    .query_async(&mut *conn)
                    .await
                    .map_err(redis_err)?;
            }
            Kv::Memory(m) => m.blobs.insert(key.to_string(), Arc::new(value)).await,
        }
        Ok(())
    }

    pub fn is_redis(&self) -> bool {
        matches!(self, Kv::Redis { .. })
    }

    pub async fn ping(&self) -> AppResult<()> {
        if let Kv::Redis { pool, .. } = self {
            let mut conn = pool.get().await.map_err(redis_err)?;
            let _: String = redis::cmd("PING")
                .query_async(&mut *conn)
                .await
                .map_err(redis_err)?;
        }
        Ok(())
    }

    /// Adds one to `key` and returns the new count; the key expires `ttl` after its first count.
    pub async fn incr(&self, key: &str, ttl: Duration) -> AppResult<i64> {
        match self {
            Kv::Redis { pool, prefix } => {
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
            }
            Kv::Memory(m) => {
                let now = Instant::now();
                let count = m
                    .update_counter(key, |live| match live {
                        Some((n, exp)) => Some((n + 1, exp)),
                        None => Some((1, now + ttl)),
                    })
                    .await;
                Ok(count.unwrap_or(1))
            }
        }
    }

    /// Sets `key` to `value`, to expire `ttl` from now (replacing any earlier expiry).
    pub async fn set(&self, key: &str, value: i64, ttl: Duration) -> AppResult<()> {
        match self {
            Kv::Redis { pool, prefix } => {
                let mut conn = pool.get().await.map_err(redis_err)?;
                let _: () = redis::cmd("SET")
                    .arg(format!("{prefix}{key}"))
                    .arg(value)
                    .arg("PX")
                    .arg(ttl.as_millis().max(1) as u64)
                    .query_async(&mut *conn)
                    .await
                    .map_err(redis_err)?;
            }
            Kv::Memory(m) => {
                m.counters
                    .insert(key.to_string(), (value, Instant::now() + ttl))
                    .await
            }
        }
        Ok(())
    }

    /// The count and the time it has left, if the key is alive.
    pub async fn get(&self, key: &str) -> AppResult<Option<(i64, Duration)>> {
        match self {
            Kv::Redis { pool, prefix } => {
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
            }
            Kv::Memory(m) => Ok(m.counters.get(key).await.and_then(|(n, exp)| {
                let left = exp.checked_duration_since(Instant::now())?;
                Some((n, left))
            })),
        }
    }

    /// `get`'s counts for several keys in one round trip (without the time they have left).
    pub async fn get_many(&self, keys: &[String]) -> AppResult<Vec<Option<i64>>> {
        match self {
            Kv::Redis { pool, prefix } => mget(pool, prefix, keys).await,
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
    /// it holds after. Concurrent writers can only move it forward.
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
            Kv::Redis { pool, prefix } => {
                let mut conn = pool.get().await.map_err(redis_err)?;
                RAISE
                    .key(format!("{prefix}{key}"))
                    .arg(value)
                    .arg(ttl.as_millis().max(1) as u64)
                    .invoke_async(&mut *conn)
                    .await
                    .map_err(redis_err)
            }
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
            Kv::Redis { pool, prefix } => {
                let mut conn = pool.get().await.map_err(redis_err)?;
                let (n, bytes): (Option<i64>, Option<Vec<u8>>) = redis::cmd("MGET")
                    .arg(format!("{prefix}{counter}"))
                    .arg(format!("{prefix}{blob}"))
                    .query_async(&mut *conn)
                    .await
                    .map_err(redis_err)?;
                Ok((n, bytes.map(Arc::new)))
            }
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
            Kv::Redis { pool, prefix } => {
                let mut conn = pool.get().await.map_err(redis_err)?;
                let _: i64 = redis::cmd("DEL")
                    .arg(format!("{prefix}{key}"))
                    .query_async(&mut *conn)
                    .await
                    .map_err(redis_err)?;
            }
            Kv::Memory(m) => m.counters.invalidate(key).await,
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
