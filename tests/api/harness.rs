//! A real server per test: its own database (copied from a template migrated once per run), its
//! own Redis key prefix, listening on a random port.

use std::path::PathBuf;
use std::time::Duration;

use fahwa::App;
use fahwa::config::{Config, Environment};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio::sync::{OnceCell, oneshot};
use uuid::Uuid;

/// The server the tests use: `FAHWA_TEST_PG`, or else a cluster of the run's own (logical
/// decoding on, stopped and removed when the run ends), so that no set-up step is needed and no
/// server of the machine is reconfigured.
fn test_server() -> &'static str {
    static SERVER: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    SERVER.get_or_init(|| match std::env::var("FAHWA_TEST_PG") {
        Ok(url) => url.trim_end_matches('/').to_string(),
        Err(_) => {
            use fahwa::db::local_cluster::{LocalCluster, Purpose};
            let cluster = LocalCluster::temporary("fahwa-test-pg", Purpose::Tests)
                .expect("a PostgreSQL cluster for the tests (or set FAHWA_TEST_PG)");
            let url = cluster.server_url();
            // Lives as long as the run; its watchdog stops and removes it afterwards.
            std::mem::forget(cluster);
            url
        }
    })
}

pub fn pg_admin_url(db: &str) -> String {
    format!("{}/{db}", test_server())
}

pub fn redis_url() -> String {
    std::env::var("FAHWA_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

async fn admin() -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(&pg_admin_url("postgres"), tokio_postgres::NoTls)
        .await
        .expect("PostgreSQL must run for the tests (see README)");
    tokio::spawn(conn);
    client
}

/// A digest of the schema's sources: the migrations and the replaceable layer's functions.
fn migrations_hash() -> String {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let mut files: Vec<PathBuf> = ["migrations", "src/db/functions"]
        .iter()
        .flat_map(|dir| std::fs::read_dir(root.join(dir)).unwrap())
        .flat_map(|e| {
            let p = e.unwrap().path();
            if p.is_dir() {
                std::fs::read_dir(p)
                    .unwrap()
                    .map(|f| f.unwrap().path())
                    .collect()
            } else {
                vec![p]
            }
        })
        .collect();
    files.sort();
    let mut hasher = Sha256::new();
    for f in files {
        hasher.update(f.to_string_lossy().as_bytes());
        hasher.update(std::fs::read(&f).unwrap());
    }
    hex::encode(&hasher.finalize()[..6])
}

/// The migrated template, built once per test process (and reused across runs while the
/// migrations are unchanged).
async fn template() -> &'static str {
    static TEMPLATE: OnceCell<String> = OnceCell::const_new();
    TEMPLATE
        .get_or_init(|| async {
            let name = format!("fahwa_tmpl_{}", migrations_hash());
            let client = admin().await;
            client.execute("SELECT pg_advisory_lock(4242001)", &[]).await.unwrap();
            // Databases of earlier runs are dropped here; tests of this run make new ones.
            let stale = client
                .query(
                    "SELECT datname FROM pg_database WHERE datname LIKE 'fahwa_t\\_%' OR (datname LIKE 'fahwa_tmpl_%' AND datname <> $1)",
                    &[&name],
                )
                .await
                .unwrap();
            for row in stale {
                let db: String = row.get(0);
                // A database with a replication slot cannot be dropped.
                let _ = client
                    .execute(
                        "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE database = $1 AND NOT active",
                        &[&db],
                    )
                    .await;
                let _ = client
                    .batch_execute(&format!("DROP DATABASE IF EXISTS \"{db}\" WITH (FORCE)"))
                    .await;
            }
            let exists = client
                .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&name])
                .await
                .unwrap()
                .is_some();
            if !exists {
                let wip = format!("{name}_wip");
                for sql in [
                    format!("DROP DATABASE IF EXISTS \"{wip}\" WITH (FORCE)"),
                    format!("CREATE DATABASE \"{wip}\""),
                ] {
                    client.batch_execute(&sql).await.unwrap();
                }
                fahwa::db::migrate::run_pending(&pg_admin_url(&wip)).await.unwrap();
                wait_for_no_connections(&client, &wip).await;
                client
                    .batch_execute(&format!("ALTER DATABASE \"{wip}\" RENAME TO \"{name}\""))
                    .await
                    .unwrap();
            }
            client.execute("SELECT pg_advisory_unlock(4242001)", &[]).await.unwrap();
            name
        })
        .await
}

async fn wait_for_no_connections(client: &tokio_postgres::Client, db: &str) {
    for _ in 0..100 {
        let n: i64 = client
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = $1",
                &[&db],
            )
            .await
            .unwrap()
            .get(0);
        if n == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("connections to {db} did not close");
}

/// A fresh database copied from the template; returns its URL.
pub async fn fresh_database() -> String {
    let template = template().await;
    let name = format!("fahwa_t_{}", Uuid::new_v4().simple());
    let client = admin().await;
    for attempt in 0.. {
        match client
            .batch_execute(&format!(
                "CREATE DATABASE \"{name}\" TEMPLATE \"{template}\""
            ))
            .await
        {
            Ok(()) => break,
            // Another test is copying the template at this moment.
            Err(e) if attempt < 100 && e.to_string().contains("being accessed") => {
                tokio::time::sleep(Duration::from_millis(50)).await
            }
            Err(e) => panic!("cannot create test database: {e}"),
        }
    }
    pg_admin_url(&name)
}

pub struct TestApp {
    pub base: String,
    pub app: App,
    pub db_url: String,
    pub client: reqwest::Client,
    server: tokio::task::JoinHandle<()>,
    _shutdown: oneshot::Sender<()>,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.server.abort();
    }
}

#[derive(Debug, Clone)]
pub struct Session {
    pub access: String,
    pub refresh: String,
    pub user_id: String,
    pub tenant_id: String,
    pub email: String,
}

pub const PASSWORD: &str = "a long enough passphrase";

impl TestApp {
    pub async fn spawn() -> TestApp {
        Self::spawn_with(true).await
    }

    pub async fn spawn_with(redis: bool) -> TestApp {
        Self::start(Self::config(redis).await).await
    }

    /// A server with Redis whose configuration `adjust` changes first.
    pub async fn spawn_configured(adjust: impl FnOnce(&mut Config)) -> TestApp {
        let mut config = Self::config(true).await;
        adjust(&mut config);
        Self::start(config).await
    }

    /// A server with Redis that takes part in change capture (live updates).
    pub async fn spawn_live() -> TestApp {
        Self::spawn_live_on(Some(redis_url())).await
    }

    /// `spawn_live` with a Redis of its own, or none (the in-process broker).
    pub async fn spawn_live_on(redis: Option<String>) -> TestApp {
        let mut config = Self::config(true).await;
        config.redis_url = redis;
        config.live_capture = true;
        Self::start(config).await
    }

    /// The configuration of a new test server on a fresh database.
    async fn config(redis: bool) -> Config {
        let db_url = fresh_database().await;
        Config {
            database_url: db_url.clone(),
            redis_url: redis.then(redis_url),
            redis_prefix: format!("test:{}:", Uuid::new_v4().simple()),
            listen: "127.0.0.1:0".parse().unwrap(),
            jwt_secret: Some(format!("test-secret-{}", Uuid::new_v4())),
            env: Environment::Development,
            db_pool_size: 4,
            max_body_bytes: 256 * 1024,
            // Each capturing database holds a replication slot: only the live tests ask for it.
            live_capture: false,
            // Only the tests of jobs and reports run a worker.
            worker: false,
            job_poll_secs: 1,
            schedule_tick_ms: 100,
            report_dir: std::env::temp_dir()
                .join(format!("fahwa-test-reports-{}", Uuid::new_v4().simple())),
            // One key for the deployment, so that its instances and workers open each other's
            // seals.
            secret_keys: vec![format!("test:{}", {
                use base64::Engine;
                let bytes = [*Uuid::new_v4().as_bytes(), *Uuid::new_v4().as_bytes()].concat();
                base64::engine::general_purpose::STANDARD.encode(bytes)
            })],
            // Every caller of a test comes from 127.0.0.1, so anonymous callers (sign-ups and
            // log-ins of many members) share one address's budget: a larger one here.
            limits: fahwa::config::RateLimits {
                points_per_minute_anonymous: 100_000,
                ..Default::default()
            },
            ..Config::default()
        }
    }

    /// Another instance of the same deployment: same database, Redis, prefix and signing key.
    pub async fn peer(&self) -> TestApp {
        Self::start(self.app.config.clone()).await
    }

    /// `peer`, with its configuration changed by `adjust` first (e.g. running a worker).
    pub async fn peer_configured(&self, adjust: impl FnOnce(&mut Config)) -> TestApp {
        let mut config = self.app.config.clone();
        adjust(&mut config);
        Self::start(config).await
    }

    async fn start(config: Config) -> TestApp {
        let _ = tracing_subscriber::fmt()
            .with_test_writer()
            .with_env_filter(std::env::var("RUST_LOG").unwrap_or_else(|_| "fahwa=warn".into()))
            .try_init();
        let db_url = config.database_url.clone();
        let app = App::build(config).await.expect("app builds");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (tx, rx) = oneshot::channel::<()>();
        let served = app.clone();
        let server = tokio::spawn(async move {
            fahwa::http::serve(served, listener, async {
                let _ = rx.await;
            })
            .await
            .unwrap();
        });
        TestApp {
            base,
            app,
            db_url,
            client: reqwest::Client::new(),
            server,
            _shutdown: tx,
        }
    }

    /// Stops this instance at once, as a crash would: it accepts nothing more and its
    /// background work ends (change capture included; connections already open are not cut).
    pub fn kill(&mut self) {
        self.server.abort();
    }

    pub fn jwt_secret(&self) -> String {
        self.app.config.jwt_secret.clone().unwrap()
    }

    /// Posts a GraphQL request and returns the whole response body.
    pub async fn gql(&self, token: Option<&str>, query: &str, variables: Value) -> Value {
        let mut req = self
            .client
            .post(format!("{}/api/v1/graphql", self.base))
            .json(&json!({ "query": query, "variables": variables }));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let resp = req.send().await.unwrap();
        without_cost(resp.json().await.unwrap())
    }

    /// Runs one operation of the client contract, exactly as written there.
    pub async fn op(&self, token: Option<&str>, file: &str, name: &str, variables: Value) -> Value {
        let doc = crate::contract::operation(file, name);
        let mut req = self
            .client
            .post(format!("{}/api/v1/graphql", self.base))
            .json(&json!({
                "query": doc,
                "operationName": name,
                "variables": variables,
            }));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        without_cost(req.send().await.unwrap().json().await.unwrap())
    }

    /// Sets the tenant's tracked property keys (and time zone, when given) and waits for the
    /// background rebuild that follows.
    pub async fn track(&self, token: &str, keys: &[&str], timezone: Option<&str>) {
        let mut input = json!({ "trackedProperties": keys });
        if let Some(tz) = timezone {
            input["timezone"] = json!(tz);
        }
        let r = self
            .gql(
                Some(token),
                "mutation($input: UpdateTenantInput!) { updateTenant(input: $input) { trackedProperties } }",
                json!({ "input": input }),
            )
            .await;
        assert!(r["errors"].is_null(), "{r}");
        assert_eq!(r["data"]["updateTenant"]["trackedProperties"], json!(keys));
        for _ in 0..100 {
            let r = self
                .gql(
                    Some(token),
                    "{ tenant { trackedPropertiesReady } }",
                    json!({}),
                )
                .await;
            if r["data"]["tenant"]["trackedPropertiesReady"] == true {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        panic!("the rollups were not rebuilt for the tracked keys");
    }

    /// Merges every pending ingestion delta into the rollups (what a read does first).
    pub async fn flush(&self) {
        fahwa::events::rollups::flush_all(&self.app.db, true)
            .await
            .unwrap();
    }

    /// Sends the contract's IngestEvents and insists that it succeeded.
    pub async fn ingest_ok(&self, token: &str, events: Vec<Value>) -> Value {
        let r = self
            .op(
                Some(token),
                "ingest.graphql",
                "IngestEvents",
                json!({ "events": events }),
            )
            .await;
        assert!(r["errors"].is_null(), "{r}");
        r
    }

    pub async fn sign_up(&self, slug: &str) -> Session {
        let email = format!("owner@{slug}.example.com");
        let resp = self
            .op(
                None,
                "auth.graphql",
                "SignUp",
                json!({ "input": {
                    "tenantName": format!("{slug} Inc."),
                    "tenantSlug": slug,
                    "name": "Olive Owner",
                    "email": email,
                    "password": PASSWORD,
                }}),
            )
            .await;
        session_from(&resp, "signUp", &email)
    }

    /// A JSON POST to a REST path of the server (`/api/v1/events`, ...) with a bearer token.
    pub async fn post(&self, path: &str, token: &str, body: &Value) -> reqwest::Response {
        self.client
            .post(format!("{}{path}", self.base))
            .bearer_auth(token)
            .json(body)
            .send()
            .await
            .unwrap()
    }

    /// Bytes posted as JSON, as sent (malformed, oversized): the status and the body, `null`
    /// when it is not JSON.
    pub async fn post_bytes(&self, path: &str, token: &str, body: Vec<u8>) -> (u16, Value) {
        let r = self
            .client
            .post(format!("{}{path}", self.base))
            .bearer_auth(token)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// A GET to a path of the server.
    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap()
    }

    /// The contract's RefreshSession with `token`.
    pub async fn refresh(&self, token: &str) -> Value {
        self.op(
            None,
            "auth.graphql",
            "RefreshSession",
            json!({ "refreshToken": token }),
        )
        .await
    }

    pub async fn log_in(&self, slug: &str, email: &str, password: &str) -> Value {
        self.op(
            None,
            "auth.graphql",
            "LogIn",
            json!({ "input": { "tenantSlug": slug, "email": email, "password": password } }),
        )
        .await
    }

    /// Adds a member with `role` (as `by`) and logs them in.
    pub async fn member(&self, by: &Session, slug: &str, role: &str) -> Session {
        let email = format!(
            "{}-{}@{slug}.example.com",
            role.to_lowercase(),
            &Uuid::new_v4().simple().to_string()[..6]
        );
        let added = self
            .op(
                Some(&by.access),
                "tenant.graphql",
                "AddMember",
                json!({ "input": { "name": format!("{role} person"), "email": email, "role": role, "password": PASSWORD } }),
            )
            .await;
        assert!(added["errors"].is_null(), "addMember failed: {added}");
        let resp = self.log_in(slug, &email, PASSWORD).await;
        session_from(&resp, "logIn", &email)
    }

    /// A new API key with `scopes`, created by `token`'s member; returns its secret.
    pub async fn api_key(&self, token: &str, scopes: &[&str]) -> String {
        let r = self
            .op(
                Some(token),
                "tenant.graphql",
                "CreateApiKey",
                json!({ "input": { "name": "test key", "scopes": scopes } }),
            )
            .await;
        r["data"]["createApiKey"]["secret"]
            .as_str()
            .unwrap_or_else(|| panic!("createApiKey failed: {r}"))
            .to_string()
    }

    /// Makes the member an operator (what `fahwa create-operator` does) and logs in again.
    pub async fn make_operator(&self, slug: &str, session: &Session) -> Session {
        let client = self.pg().await;
        client
            .execute(
                "UPDATE members SET is_operator = true WHERE id = $1::text::uuid",
                &[&session.user_id],
            )
            .await
            .unwrap();
        let resp = self.log_in(slug, &session.email, PASSWORD).await;
        session_from(&resp, "logIn", &session.email)
    }

    /// A superuser connection to this test's database (bypasses row-level security).
    pub async fn pg(&self) -> tokio_postgres::Client {
        let (client, conn) = tokio_postgres::connect(&self.db_url, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(conn);
        client
    }

    /// Events stored in this server's database, every tenant's.
    pub async fn stored_events(&self) -> i64 {
        self.pg()
            .await
            .query_one("SELECT count(*) FROM events", &[])
            .await
            .unwrap()
            .get(0)
    }

    pub fn statements(&self) -> u64 {
        self.app.db.statement_count()
    }

    /// Statements sent while `work` runs, the session check's included: what the check
    /// remembered (for a second) is forgotten first, so every call pays it alike however long
    /// the calls before it took.
    pub async fn statements_during<T>(&self, work: impl Future<Output = T>) -> (u64, T) {
        self.app.session_check.forget_all();
        let before = self.statements();
        let out = work.await;
        (self.statements() - before, out)
    }
}

/// A response without its `extensions.cost` (what it cost changes from one request to the
/// next; `rate_limits.rs` reads it), so that answers compare as answers.
fn without_cost(mut body: Value) -> Value {
    if let Some(extensions) = body.get_mut("extensions").and_then(Value::as_object_mut) {
        extensions.remove("cost");
        if extensions.is_empty()
            && let Some(object) = body.as_object_mut()
        {
            object.remove("extensions");
        }
    }
    body
}

pub fn session_from(resp: &Value, field: &str, email: &str) -> Session {
    let s = &resp["data"][field];
    assert!(s.is_object(), "{field} failed: {resp}");
    Session {
        access: s["accessToken"].as_str().unwrap().into(),
        refresh: s["refreshToken"].as_str().unwrap().into(),
        user_id: s["user"]["id"].as_str().unwrap().into(),
        tenant_id: s["tenant"]["id"].as_str().unwrap().into(),
        email: email.into(),
    }
}

/// The `extensions.code` of every error, in order.
pub fn codes(resp: &Value) -> Vec<String> {
    resp["errors"]
        .as_array()
        .map(|errs| {
            errs.iter()
                .map(|e| {
                    e["extensions"]["code"]
                        .as_str()
                        .unwrap_or("<none>")
                        .to_string()
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The codes of errors at `path` (e.g. `["tenant", "apiKeys"]`).
pub fn codes_at(resp: &Value, path: &[&str]) -> Vec<String> {
    resp["errors"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| {
            let p: Vec<String> = e["path"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|s| match s {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                })
                .collect();
            p == path
        })
        .map(|e| {
            e["extensions"]["code"]
                .as_str()
                .unwrap_or("<none>")
                .to_string()
        })
        .collect()
}
