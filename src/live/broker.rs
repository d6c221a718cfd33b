//! Publishing live messages and receiving them on every instance. With Redis, messages go to a
//! channel per tenant and each instance holds one pattern subscription, reconnected by itself
//! after Redis restarts; without Redis, publishing hands the message to this instance's hub.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures_util::StreamExt;
use tokio::sync::Notify;
use uuid::Uuid;

use super::hub::Hub;
use super::message::{Envelope, LiveMessage};
use crate::error::{AppError, AppResult};
use crate::kv::{RedisPool, redis_err};

#[derive(Clone)]
pub struct Broker {
    hub: Arc<Hub>,
    redis: Option<RedisSide>,
    /// Whether this instance leads change capture now.
    leading: Arc<AtomicBool>,
    /// Why change capture cannot run here, while it cannot (for `/readyz`).
    capture_off: Arc<std::sync::RwLock<Option<String>>>,
    /// The capture slot's backlog in bytes as this instance last measured it while leading
    /// (-1: not measured).
    capture_backlog: Arc<std::sync::atomic::AtomicI64>,
    /// Signalled each time the Redis subscription is (re)established: what was published
    /// while it was down never arrives, so the instance brings its subscribers up to date.
    subscribed: Arc<Notify>,
}

#[derive(Clone)]
struct RedisSide {
    url: String,
    pool: RedisPool,
    /// `<prefix>live:`; a tenant's channel is this and its id.
    channel: String,
}

impl Broker {
    pub fn local(hub: Arc<Hub>) -> Self {
        Broker {
            hub,
            redis: None,
            leading: Arc::default(),
            capture_off: Arc::default(),
            capture_backlog: Arc::new((-1).into()),
            subscribed: Arc::default(),
        }
    }

    pub fn redis(hub: Arc<Hub>, url: &str, pool: RedisPool, prefix: &str) -> Self {
        Broker {
            hub,
            redis: Some(RedisSide {
                url: url.to_string(),
                pool,
                channel: format!("{prefix}live:"),
            }),
            leading: Arc::default(),
            capture_off: Arc::default(),
            capture_backlog: Arc::new((-1).into()),
            subscribed: Arc::default(),
        }
    }

    pub fn hub(&self) -> &Arc<Hub> {
        &self.hub
    }

    pub fn subscribed(&self) -> &Notify {
        &self.subscribed
    }

    pub fn leading(&self) -> bool {
        self.leading.load(Ordering::Relaxed)
    }

    /// Why live updates are off on this deployment, if they are.
    pub fn capture_off(&self) -> Option<String> {
        self.capture_off
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub(super) fn set_capture_off(&self, why: Option<String>) {
        *self.capture_off.write().unwrap_or_else(|e| e.into_inner()) = why;
    }

    /// The slot's backlog in bytes while this instance leads capture.
    pub fn capture_backlog(&self) -> Option<u64> {
        let bytes = self.capture_backlog.load(Ordering::Relaxed);
        (self.leading() && bytes >= 0).then_some(bytes as u64)
    }

    pub(super) fn set_capture_backlog(&self, bytes: i64) {
        self.capture_backlog.store(bytes, Ordering::Relaxed);
    }

    pub(super) fn set_leading(&self, leading: bool) {
        self.leading.store(leading, Ordering::Relaxed);
        metrics::gauge!("fahwa_live_capture_leader").set(if leading { 1.0 } else { 0.0 });
    }

    /// Sends `messages`, in order, to `tenant`'s subscribers on every instance, in one round
    /// trip. An error means they may not have reached them: the caller tries again rather than
    /// moving on.
    pub async fn publish(&self, tenant: Uuid, messages: Vec<LiveMessage>) -> AppResult<()> {
        if messages.is_empty() {
            return Ok(());
        }
        metrics::counter!("fahwa_live_published_total").increment(messages.len() as u64);
        let Some(redis) = &self.redis else {
            for message in &messages {
                self.hub.dispatch(tenant, message);
            }
            return Ok(());
        };
        let channel = format!("{}{tenant}", redis.channel);
        let mut pipe = redis::pipe();
        for message in messages {
            let payload = serde_json::to_vec(&Envelope { tenant, message })
                .map_err(|e| AppError::internal(anyhow::anyhow!("live message: {e}")))?;
            pipe.cmd("PUBLISH").arg(&channel).arg(payload).ignore();
        }
        let mut conn = redis.pool.get().await.map_err(redis_err)?;
        let () = pipe.query_async(&mut *conn).await.map_err(redis_err)?;
        Ok(())
    }

    /// Receives what any instance publishes and hands it to this instance's hub, until the
    /// process ends. Without Redis there is nothing to receive.
    pub async fn run_receiver(self) {
        let Some(redis) = self.redis.clone() else {
            return;
        };
        let mut backoff = Duration::from_millis(100);
        loop {
            match self.receive(&redis).await {
                Ok(()) => {
                    tracing::warn!("live subscription to Redis ended; subscribing again");
                    backoff = Duration::from_millis(100);
                }
                Err(e) => {
                    tracing::warn!(error = %e, "live subscription to Redis failed; retrying");
                    backoff = (backoff * 2).min(Duration::from_secs(1));
                }
            }
            metrics::gauge!("fahwa_live_receiver_up").set(0.0);
            tokio::time::sleep(backoff).await;
        }
    }

    /// One subscription's life: returns when Redis closes it.
    async fn receive(&self, redis: &RedisSide) -> redis::RedisResult<()> {
        let client = redis::Client::open(redis.url.as_str())?;
        let mut pubsub = tokio::time::timeout(Duration::from_secs(3), client.get_async_pubsub())
            .await
            .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))??;
        pubsub.psubscribe(format!("{}*", redis.channel)).await?;
        metrics::gauge!("fahwa_live_receiver_up").set(1.0);
        tracing::info!("live: subscribed to Redis");
        self.subscribed.notify_one();
        let mut messages = pubsub.on_message();
        while let Some(msg) = messages.next().await {
            let payload: Vec<u8> = msg.get_payload()?;
            match serde_json::from_slice::<Envelope>(&payload) {
                Ok(envelope) => self.hub.dispatch(envelope.tenant, &envelope.message),
                Err(e) => tracing::warn!(error = %e, "live: a message that does not parse"),
            }
        }
        Ok(())
    }
}
