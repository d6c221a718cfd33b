//! Configuration in layers: built-in defaults, then an optional TOML file, then environment
//! variables (`FAHWA_*`, plus `DATABASE_URL` for diesel's CLI), then command-line flags.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Environment {
    Development,
    Production,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

/// How the connection to the SMTP server is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SmtpSecurity {
    /// Plain SMTP upgraded with STARTTLS, which must succeed (port 587).
    Starttls,
    /// TLS from the first byte (port 465).
    Tls,
    /// No encryption: only for a relay on the same host or network (and tests).
    None,
}

#[derive(Clone, Serialize, Deserialize)]
pub struct Config {
    pub database_url: String,
    pub redis_url: Option<String>,
    /// Prefix of every Redis key this instance writes, so that deployments (and tests) can share
    /// one Redis.
    pub redis_prefix: String,
    pub listen: SocketAddr,
    /// PEM certificate chain for HTTPS (with `tls_key`); read again on SIGHUP.
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of `tls_cert`.
    pub tls_key: Option<PathBuf>,
    pub jwt_secret: Option<String>,
    /// Secrets of earlier signing keys, still accepted for verification during a rotation.
    pub jwt_previous_secrets: Vec<String>,
    pub env: Environment,
    pub log_format: LogFormat,
    pub access_token_ttl_secs: u64,
    pub refresh_token_ttl_days: u64,
    pub db_pool_size: u32,
    /// How long a request waits for a free database connection before `RATE_LIMITED`.
    pub db_acquire_timeout_ms: u64,
    /// The longest one statement of an analytics read may run (then `QUERY_TOO_COMPLEX`);
    /// 0: no limit.
    pub analytics_statement_timeout_secs: f64,
    pub max_body_bytes: usize,
    /// Take the client address from `X-Forwarded-For` (only behind a trusted proxy).
    pub trust_proxy: bool,
    pub max_query_depth: usize,
    pub max_query_complexity: usize,
    pub max_query_aliases: usize,
    /// Cache analytics results (turned off to measure cold queries).
    pub metric_cache: bool,
    /// Take part in change capture (one instance at a time leads it); needs `wal_level=logical`.
    pub live_capture: bool,
    /// WAL the change capture slot may hold back (MiB) before capture passes over event rows
    /// (live event feeds then get counts of what was skipped; values are computed again).
    pub capture_max_backlog_mb: u64,
    /// Memory for tenants' revenue changes kept for range totals (0: always read them in SQL).
    pub revenue_index_mb: u64,
    /// Operations one WebSocket may run at once; beyond it a `subscribe` gets an `error`.
    pub max_subscriptions_per_socket: usize,
    /// How long a WebSocket may wait before its `connection_init` (then 4408).
    pub ws_init_timeout_secs: f64,
    /// Sign-ups one address may start in an hour (then `RATE_LIMITED`).
    pub sign_ups_per_address_hour: u32,
    /// Where Fahwa keeps a PostgreSQL of its own, used when no database is configured and the
    /// default server cannot decode logically.
    pub local_postgres_dir: PathBuf,
    /// The port of that PostgreSQL.
    pub local_postgres_port: u16,
    /// The address clients reach this deployment at, for links in mail and in responses
    /// (default: `http://` and `listen`).
    pub public_url: Option<String>,
    /// Run the job worker (report runs, mail) and the schedules inside `serve`; off when
    /// separate `fahwa worker` processes do it.
    pub worker: bool,
    /// Jobs one worker runs at once.
    pub worker_concurrency: usize,
    /// How long a job stays a worker's without news from it before another takes it up.
    pub job_lease_secs: u64,
    /// The longest an idle worker waits before it looks for jobs (notifications wake it
    /// sooner).
    pub job_poll_secs: u64,
    /// How often a worker looks for due report schedules.
    pub schedule_tick_ms: u64,
    /// Where report files are kept.
    pub report_dir: PathBuf,
    /// How long a download link of a report file works.
    pub report_link_ttl_secs: u64,
    /// Report files are deleted this many days after their run finished.
    pub report_retention_days: u32,
    /// SMTP server for scheduled reports; without it runs are stored but not mailed.
    pub smtp_host: Option<String>,
    pub smtp_port: u16,
    pub smtp_security: SmtpSecurity,
    pub smtp_username: Option<String>,
    pub smtp_password: Option<String>,
    /// The sender of report mail, e.g. `Fahwa Reports <reports@example.com>`.
    pub smtp_from: String,
    /// Keys that seal secrets at rest, `<id>:<base64 of 32 bytes>`; the first seals, all open
    /// (older ones stay until every secret is sealed again). Required in production.
    pub secret_keys: Vec<String>,
    /// Run only the operations of the allow-list (`fahwa trust-documents`), by hash or by text.
    pub trusted_documents: bool,
    /// Answer introspection queries (`__schema`, `__type`); turn off in production.
    pub introspection: bool,
    /// Serve the GraphiQL playground at `/playground`.
    pub playground: bool,
    /// Origins whose browser pages may call the API (CORS), e.g. `https://app.example.com`;
    /// none by default (same-origin only).
    pub cors_origins: Vec<String>,
    /// Stripe's API (tests point it at a local server; never a tenant's input).
    pub stripe_api_base: String,
    /// PayPal's API (the live one; `https://api-m.sandbox.paypal.com` for the sandbox).
    pub paypal_api_base: String,
    /// Requests per second to one provider account (Stripe allows 100 in live mode, 25 in
    /// test mode).
    pub connector_requests_per_sec: f64,
    /// The longest a provider's `Retry-After` is waited out within a request; beyond it the
    /// sync is retried later from its checkpoint.
    pub connector_max_retry_after_secs: u64,
    /// Callers' budgets of points (README, "Rate limits").
    #[serde(flatten)]
    pub limits: RateLimits,
    /// Whether the database URL was given (file, environment or flag) rather than defaulted.
    #[serde(skip)]
    pub database_configured: bool,
}

impl std::fmt::Debug for Config {
    // Secrets stay out of logs, even at debug level.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("database_url", &redact_url(&self.database_url))
            .field("redis_url", &self.redis_url.as_deref().map(redact_url))
            .field("listen", &self.listen)
            .field("env", &self.env)
            .field("jwt_secret", &self.jwt_secret.as_ref().map(|_| "<set>"))
            .field("smtp_host", &self.smtp_host)
            .field(
                "smtp_password",
                &self.smtp_password.as_ref().map(|_| "<set>"),
            )
            .finish_non_exhaustive()
    }
}

/// Points each kind of caller may spend a minute. A query costs from its complexity, a
/// mutation more, ingestion more still, an opened subscription as a mutation.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct RateLimits {
    /// Off: nothing is counted or refused (and no `RateLimit-*` headers are sent).
    pub rate_limits: bool,
    /// A member who is OWNER or ADMIN.
    pub points_per_minute_admin: u64,
    pub points_per_minute_analyst: u64,
    pub points_per_minute_viewer: u64,
    /// An API key with the INGEST scope (with or without READ).
    pub points_per_minute_ingest_key: u64,
    /// An API key with only the READ scope.
    pub points_per_minute_read_key: u64,
    /// Callers without credentials (sign-up, log-in), per address.
    pub points_per_minute_anonymous: u64,
    /// Local hours `start-end` (end excluded, may wrap midnight) in which budgets are larger.
    pub off_peak_hours: String,
    /// How much larger budgets are off-peak.
    pub off_peak_factor: f64,
    /// The IANA time zone of those hours (the deployment's), or `tenant`: each caller's
    /// tenant's own zone (callers without a tenant: UTC).
    pub off_peak_zone: String,
}

impl Default for RateLimits {
    fn default() -> Self {
        Self {
            rate_limits: true,
            points_per_minute_admin: 6_000,
            points_per_minute_analyst: 3_000,
            points_per_minute_viewer: 1_500,
            points_per_minute_ingest_key: 12_000,
            points_per_minute_read_key: 3_000,
            points_per_minute_anonymous: 300,
            off_peak_hours: "0-6".into(),
            off_peak_factor: 2.0,
            off_peak_zone: "UTC".into(),
        }
    }
}

/// Whose clock the off-peak hours are read on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OffPeakZone {
    Fixed(chrono_tz::Tz),
    /// Each caller's tenant's time zone.
    Tenant,
}

impl RateLimits {
    /// The off-peak hours `[start, end)` and their zone, or why they cannot be read.
    pub fn off_peak(&self) -> anyhow::Result<(u32, u32, OffPeakZone)> {
        let hours = || -> Option<(u32, u32)> {
            let (a, b) = self.off_peak_hours.split_once('-')?;
            let (a, b) = (a.trim().parse().ok()?, b.trim().parse().ok()?);
            (a < 24 && b <= 24).then_some((a, b))
        };
        let (start, end) = hours().ok_or_else(|| {
            anyhow::anyhow!(
                "off_peak_hours must be `start-end` in whole hours 0-24, e.g. `0-6`, not {:?}",
                self.off_peak_hours
            )
        })?;
        if self.off_peak_zone == "tenant" {
            return Ok((start, end, OffPeakZone::Tenant));
        }
        let zone = self.off_peak_zone.parse().map_err(|_| {
            anyhow::anyhow!(
                "off_peak_zone {:?} is neither an IANA time zone nor `tenant`",
                self.off_peak_zone
            )
        })?;
        Ok((start, end, OffPeakZone::Fixed(zone)))
    }

    fn validate(&self) -> anyhow::Result<()> {
        self.off_peak()?;
        anyhow::ensure!(
            self.off_peak_factor.is_finite() && (1.0..=100.0).contains(&self.off_peak_factor),
            "off_peak_factor must be between 1 and 100"
        );
        let budgets = [
            self.points_per_minute_admin,
            self.points_per_minute_analyst,
            self.points_per_minute_viewer,
            self.points_per_minute_ingest_key,
            self.points_per_minute_read_key,
            self.points_per_minute_anonymous,
        ];
        anyhow::ensure!(
            budgets.iter().all(|&b| b >= 1),
            "every points_per_minute_* must be at least 1"
        );
        Ok(())
    }
}

pub const MAX_ACCESS_TOKEN_TTL_SECS: u64 = 15 * 60;

/// `/var/lib/fahwa/<what>` for root, else under the user's data directory.
fn data_dir(what: &str) -> PathBuf {
    let root = std::env::var("USER").is_ok_and(|u| u == "root")
        || std::env::var("HOME").is_ok_and(|h| h == "/root");
    if root {
        return PathBuf::from("/var/lib/fahwa").join(what);
    }
    let data = std::env::var_os("XDG_DATA_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share")))
        .unwrap_or_else(std::env::temp_dir);
    data.join("fahwa").join(what)
}

impl Default for Config {
    fn default() -> Self {
        Self {
            database_url: "postgres://postgres@127.0.0.1:5432/fahwa".into(),
            redis_url: None,
            redis_prefix: "fahwa:".into(),
            listen: ([127, 0, 0, 1], 8080).into(),
            tls_cert: None,
            tls_key: None,
            jwt_secret: None,
            jwt_previous_secrets: Vec::new(),
            env: Environment::Development,
            log_format: LogFormat::Text,
            access_token_ttl_secs: MAX_ACCESS_TOKEN_TTL_SECS,
            refresh_token_ttl_days: 30,
            db_pool_size: 16,
            db_acquire_timeout_ms: 5_000,
            analytics_statement_timeout_secs: 30.0,
            max_body_bytes: 6 * 1024 * 1024,
            trust_proxy: false,
            max_query_depth: 16,
            max_query_complexity: 2_000,
            max_query_aliases: 30,
            metric_cache: true,
            live_capture: true,
            capture_max_backlog_mb: 1024,
            revenue_index_mb: 256,
            max_subscriptions_per_socket: 100,
            ws_init_timeout_secs: 10.0,
            sign_ups_per_address_hour: 20,
            // Root's home is closed to the `postgres` user, hence /var/lib for root.
            local_postgres_dir: data_dir("postgres"),
            local_postgres_port: 54320,
            public_url: None,
            worker: true,
            worker_concurrency: 2,
            job_lease_secs: 60,
            job_poll_secs: 10,
            schedule_tick_ms: 15_000,
            report_dir: data_dir("reports"),
            report_link_ttl_secs: 3600,
            report_retention_days: 30,
            smtp_host: None,
            smtp_port: 587,
            smtp_security: SmtpSecurity::Starttls,
            smtp_username: None,
            smtp_password: None,
            smtp_from: "Fahwa Reports <reports@localhost>".into(),
            secret_keys: Vec::new(),
            trusted_documents: false,
            introspection: true,
            playground: true,
            cors_origins: Vec::new(),
            stripe_api_base: "https://api.stripe.com".into(),
            paypal_api_base: "https://api-m.paypal.com".into(),
            connector_requests_per_sec: 20.0,
            connector_max_retry_after_secs: 60,
            limits: RateLimits::default(),
            database_configured: false,
        }
    }
}

/// Values given on the command line; `None` leaves the lower layers in force.
#[derive(Debug, Default, Clone, Serialize, clap::Args)]
pub struct ConfigFlags {
    /// PostgreSQL URL [env: FAHWA_DATABASE_URL]
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database_url: Option<String>,
    /// Redis URL; without it the server uses in-process equivalents [env: FAHWA_REDIS_URL]
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub redis_url: Option<String>,
    /// Address to listen on [env: FAHWA_LISTEN]
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<SocketAddr>,
    /// Serve HTTPS with this PEM certificate chain (reloaded on SIGHUP) [env: FAHWA_TLS_CERT]
    #[arg(long, requires = "tls_key")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert [env: FAHWA_TLS_KEY]
    #[arg(long, requires = "tls_cert")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_key: Option<PathBuf>,
    /// Signing key for access tokens, at least 32 bytes [env: FAHWA_JWT_SECRET]
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jwt_secret: Option<String>,
    /// development or production [env: FAHWA_ENV]
    #[arg(long, value_enum)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub env: Option<Environment>,
    /// text or json [env: FAHWA_LOG_FORMAT]
    #[arg(long, value_enum)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_format: Option<LogFormat>,
}

impl Config {
    /// Reads every layer. `file` is the `--config` path (or `FAHWA_CONFIG`).
    pub fn load(file: Option<&Path>, flags: &ConfigFlags) -> anyhow::Result<Self> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        let file = file
            .map(Path::to_path_buf)
            .or_else(|| std::env::var_os("FAHWA_CONFIG").map(Into::into));
        if let Some(path) = file {
            anyhow::ensure!(path.exists(), "config file {} not found", path.display());
            figment = figment.merge(Toml::file(path));
        }
        if let Ok(url) = std::env::var("DATABASE_URL") {
            figment = figment.merge(Serialized::default("database_url", url));
        }
        figment = figment
            .merge(Env::prefixed("FAHWA_").ignore(&["config"]))
            .merge(Serialized::defaults(flags));
        let mut config: Config = figment.extract()?;
        // The built-in defaults are the provider named after `Config` itself.
        config.database_configured = figment
            .find_metadata("database_url")
            .is_some_and(|m| m.name != std::any::type_name::<Config>());
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(
            (60..=MAX_ACCESS_TOKEN_TTL_SECS).contains(&self.access_token_ttl_secs),
            "access_token_ttl_secs must be between 60 and {MAX_ACCESS_TOKEN_TTL_SECS}"
        );
        anyhow::ensure!(self.db_pool_size >= 2, "db_pool_size must be at least 2");
        self.limits.validate()?;
        anyhow::ensure!(
            (1..=600_000).contains(&self.db_acquire_timeout_ms),
            "db_acquire_timeout_ms must be between 1 and 600000"
        );
        anyhow::ensure!(
            (0.0..=86_400.0).contains(&self.analytics_statement_timeout_secs),
            "analytics_statement_timeout_secs must be between 0 (no limit) and 86400"
        );
        anyhow::ensure!(
            self.tls_cert.is_some() == self.tls_key.is_some(),
            "tls_cert and tls_key go together: give both or neither"
        );
        anyhow::ensure!(
            self.max_subscriptions_per_socket >= 1,
            "max_subscriptions_per_socket must be at least 1"
        );
        anyhow::ensure!(
            self.ws_init_timeout_secs > 0.0 && self.ws_init_timeout_secs <= 3600.0,
            "ws_init_timeout_secs must be more than 0 and at most 3600"
        );
        anyhow::ensure!(
            (60..=7 * 86_400).contains(&self.report_link_ttl_secs),
            "report_link_ttl_secs must be between 60 and 604800 (a week)"
        );
        anyhow::ensure!(
            self.job_lease_secs >= 1 && self.job_poll_secs >= 1,
            "job_lease_secs and job_poll_secs must be at least 1"
        );
        anyhow::ensure!(
            self.schedule_tick_ms >= 10,
            "schedule_tick_ms must be at least 10"
        );
        Ok(())
    }

    /// Where clients reach this deployment, without a trailing slash.
    pub fn public_url(&self) -> String {
        match &self.public_url {
            Some(url) => url.trim_end_matches('/').to_string(),
            None => format!("http://{}", self.listen),
        }
    }

    pub fn ws_init_timeout(&self) -> std::time::Duration {
        std::time::Duration::from_secs_f64(self.ws_init_timeout_secs)
    }
}

/// `scheme://user:password@host/...` becomes `scheme://user:***@host/...`.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let userinfo = &url[scheme_end + 3..at];
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme_end + 3], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[allow(clippy::result_large_err)] // figment's Jail fixes the closure's error type
    fn layers_apply_in_order() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "fahwa.toml",
                "listen = \"127.0.0.1:9000\"\nredis_url = \"redis://file:6379\"\ndb_pool_size = 7",
            )?;
            jail.set_env("DATABASE_URL", "postgres://diesel@db/x");
            jail.set_env("FAHWA_REDIS_URL", "redis://env:6379");
            let path = jail.directory().join("fahwa.toml");
            let flags = ConfigFlags {
                listen: Some("127.0.0.1:9100".parse().unwrap()),
                ..ConfigFlags::default()
            };
            let c = Config::load(None, &ConfigFlags::default()).map_err(|e| e.to_string())?;
            assert!(c.database_configured, "DATABASE_URL configures it");
            let c = Config::load(Some(&path), &flags).map_err(|e| e.to_string())?;
            assert_eq!(c.database_url, "postgres://diesel@db/x");
            assert_eq!(c.redis_url.as_deref(), Some("redis://env:6379"));
            assert_eq!(c.listen.port(), 9100);
            assert_eq!(c.db_pool_size, 7);

            jail.set_env("FAHWA_DATABASE_URL", "postgres://fahwa@db/y");
            let c =
                Config::load(Some(&path), &ConfigFlags::default()).map_err(|e| e.to_string())?;
            assert_eq!(
                c.database_url, "postgres://fahwa@db/y",
                "FAHWA_ wins over DATABASE_URL"
            );
            assert_eq!(c.listen.port(), 9000);

            jail.set_env("FAHWA_ACCESS_TOKEN_TTL_SECS", "3600");
            assert!(
                Config::load(None, &ConfigFlags::default()).is_err(),
                "tokens live 15 minutes at most"
            );
            Ok(())
        });
    }

    #[test]
    #[allow(clippy::result_large_err)] // figment's Jail fixes the closure's error type
    fn a_database_left_unset_is_known_as_such() {
        figment::Jail::expect_with(|jail| {
            jail.clear_env();
            let c = Config::load(None, &ConfigFlags::default()).map_err(|e| e.to_string())?;
            assert!(!c.database_configured);
            jail.create_file("f.toml", "database_url = \"postgres://x@db/y\"")?;
            let path = jail.directory().join("f.toml");
            let c =
                Config::load(Some(&path), &ConfigFlags::default()).map_err(|e| e.to_string())?;
            assert!(c.database_configured, "a file configures it");
            Ok(())
        });
    }

    #[test]
    fn redacts_passwords_in_urls() {
        assert_eq!(
            redact_url("postgres://app:s3cret@db:5432/x"),
            "postgres://app:***@db:5432/x"
        );
        assert_eq!(
            redact_url("redis://127.0.0.1:6379"),
            "redis://127.0.0.1:6379"
        );
        assert_eq!(redact_url("postgres://app@db/x"), "postgres://app@db/x");
    }
}
