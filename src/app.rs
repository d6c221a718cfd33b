//! The application: pools, clients and configuration, shared by handlers and resolvers.

use std::ops::Deref;
use std::sync::Arc;

use anyhow::Context;

use crate::auth::key_grants::KeyGrants;
use crate::auth::session_check::SessionCheck;
use crate::auth::tokens::TokenKeys;
use crate::config::{Config, redact_url};
use crate::db::{Db, migrate};
use crate::kv::Kv;
use crate::live::Broker;
use crate::live::hub::Hub;
use crate::live::sessions::MemberSockets;

#[derive(Clone)]
pub struct App(Arc<AppInner>);

/// The signing and sealing keys, made first: a bad one is refused before anything is touched
/// or started (a database created, Fahwa's own PostgreSQL run).
pub struct Keys {
    tokens: TokenKeys,
    vault: Arc<crate::vault::Vault>,
}

impl Keys {
    pub fn from_config(config: &Config) -> anyhow::Result<Keys> {
        Ok(Keys {
            tokens: TokenKeys::from_config(config)?,
            vault: Arc::new(crate::vault::Vault::from_config(config)?),
        })
    }
}

pub struct AppInner {
    pub config: Config,
    pub db: Db,
    pub kv: Kv,
    pub tokens: TokenKeys,
    pub key_grants: KeyGrants,
    /// Whether access tokens' sessions still stand, remembered for a moment.
    pub session_check: SessionCheck,
    /// Live messages to every instance's subscribers.
    pub live: Broker,
    /// Members' open WebSockets, closed when their token expires or their session ends.
    pub sockets: Arc<MemberSockets>,
    /// Tenants' revenue changes in memory, for the totals of a range.
    pub revenue_index: Option<Arc<crate::revenue::index::Index>>,
    /// What saved reports work with: storage, signed links, mail.
    pub reports: crate::reports::Services,
    /// Seals and opens secrets at rest.
    pub vault: Arc<crate::vault::Vault>,
    /// What connectors to providers work with.
    pub connectors: crate::connectors::Services,
    /// Callers' budgets of points; `None` when rate limits are off.
    pub limiter: Option<Arc<crate::limits::Limiter>>,
}

impl Deref for App {
    type Target = AppInner;

    fn deref(&self) -> &AppInner {
        &self.0
    }
}

impl App {
    /// What the live machinery works with.
    pub fn live_parts(&self) -> crate::live::Live {
        crate::live::Live {
            db: self.db.clone(),
            kv: self.kv.clone(),
            broker: self.live.clone(),
            sockets: self.sockets.clone(),
            session_check: self.session_check.clone(),
            capture_from: self
                .config
                .live_capture
                .then(|| self.config.database_url.clone()),
            capture_max_backlog: self.config.capture_max_backlog_mb * 1024 * 1024,
        }
    }

    /// Where writes announce new data versions: the response cache's store, when it is on.
    pub fn version_mirror(&self) -> Option<&Kv> {
        self.config.metric_cache.then_some(&self.kv)
    }

    /// Creates the database if needed, migrates it, and builds the pools.
    pub async fn build(config: Config) -> anyhow::Result<App> {
        let keys = Keys::from_config(&config)?;
        Self::with_keys(config, keys).await
    }

    /// `build` with keys already checked (see [`Keys`]).
    pub async fn with_keys(config: Config, keys: Keys) -> anyhow::Result<App> {
        let Keys { tokens, vault } = keys;
        let url = config.database_url.clone();
        migrate::create_database_if_missing(&url)
            .await
            .with_context(|| format!("database {}", redact_url(&url)))?;
        let applied = migrate::run_pending(&url).await?;
        if applied > 0 {
            tracing::info!(applied, "ran migrations");
        }
        let db = Db::with_limits(
            &url,
            config.db_pool_size,
            std::time::Duration::from_millis(config.db_acquire_timeout_ms),
            std::time::Duration::from_secs_f64(config.analytics_statement_timeout_secs),
        );
        let kv = match &config.redis_url {
            Some(redis_url) => {
                tracing::info!(redis = %redact_url(redis_url), "using Redis");
                Kv::redis(redis_url, &config.redis_prefix)?
            }
            None => {
                tracing::info!("no FAHWA_REDIS_URL: using in-process counters and caches");
                Kv::memory()
            }
        };
        let hub = Arc::new(Hub::default());
        let live = match (&kv, &config.redis_url) {
            (Kv::Redis(r), Some(url)) => Broker::redis(hub, url, r.pool.clone(), &r.prefix),
            _ => Broker::local(hub),
        };
        let revenue_index =
            crate::revenue::index::Index::new(db.clone(), config.revenue_index_mb * 1024 * 1024);
        let reports = crate::reports::Services {
            db: db.clone(),
            cache: config.metric_cache.then(|| kv.clone()),
            revenue_index: revenue_index.clone(),
            storage: Arc::new(crate::reports::storage::Directory::new(&config.report_dir)),
            broker: live.clone(),
            links: crate::reports::Links {
                key: *tokens.link_key(),
                base: config.public_url(),
                ttl: chrono::Duration::seconds(config.report_link_ttl_secs as i64),
            },
            mailer: crate::mail::Mailer::from_config(&config)?,
        };
        let connectors = crate::connectors::Services {
            db: db.clone(),
            vault: vault.clone(),
            http: reqwest::Client::builder()
                .timeout(std::time::Duration::from_secs(30))
                .connect_timeout(std::time::Duration::from_secs(10))
                .redirect(reqwest::redirect::Policy::none())
                .build()?,
            endpoints: crate::connectors::Endpoints {
                stripe: config.stripe_api_base.trim_end_matches('/').to_string(),
                paypal: config.paypal_api_base.trim_end_matches('/').to_string(),
            },
            public_url: config.public_url(),
            mirror: config.metric_cache.then(|| kv.clone()),
            budget: Arc::new(crate::connectors::api::Budgets::new(
                config.connector_requests_per_sec,
            )),
            tokens: Arc::default(),
            retry: crate::connectors::api::RetryPolicy {
                max_retry_after: std::time::Duration::from_secs(
                    config.connector_max_retry_after_secs,
                ),
                ..Default::default()
            },
        };
        let limiter =
            crate::limits::Limiter::new(kv.clone(), db.clone(), &config.limits)?.map(Arc::new);
        Ok(App(Arc::new(AppInner {
            limiter,
            connectors,
            reports,
            vault,
            config,
            revenue_index,
            db,
            kv,
            tokens,
            key_grants: KeyGrants::default(),
            session_check: SessionCheck::default(),
            live,
            sockets: Arc::default(),
        })))
    }
}
