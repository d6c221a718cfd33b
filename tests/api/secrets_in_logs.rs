//! Secrets stay where they belong (OWASP API Security Top 10 2023, API2 Broken Authentication:
//! credentials that reach a log are credentials anyone with the log can use; API8 Security
//! Misconfiguration: verbose logging, error messages and audit trails are where they leak).
//! The real binary runs with everything logged (`RUST_LOG=trace`, dependencies included) while
//! a client signs up, logs in (wrongly, then rightly), refreshes, makes and uses an API key,
//! connects Stripe and receives deliveries, and logs out; then neither the captured log, nor
//! any answer, nor the audit log, nor any table holds a password, a token, a key or a
//! connector's credentials as sent.

use std::process::Stdio;
use std::time::Duration;

use base64::Engine;
use serde_json::{Value, json};
use tokio::io::AsyncReadExt;
use tokio::process::Command;

use crate::fake_stripe::{self, FakeStripe};
use crate::harness::{codes, fresh_database, redis_url};

/// A random string of `len` letters and digits: secrets of this test are unique to its run,
/// so that finding one anywhere can only mean it leaked there.
fn random(len: usize) -> String {
    use rand::Rng;
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    (0..len)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Terminal colours split a line into pieces; the search is over the text as a reader sees it.
fn without_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' && chars.peek() == Some(&'[') {
            chars.next();
            for c in chars.by_ref() {
                if ('@'..='~').contains(&c) {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// The lists of byte values in `line` (eight or more numbers up to 255 between brackets), each
/// read as UTF-8.
fn byte_lists(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = line;
    while let Some(open) = rest.find('[') {
        rest = &rest[open + 1..];
        let Some(close) = rest.find(']') else { break };
        let bytes: Option<Vec<u8>> = rest[..close]
            .split(',')
            .map(|n| n.trim().parse::<u8>().ok())
            .collect();
        if let Some(bytes) = bytes.filter(|b| b.len() >= 8) {
            out.push(String::from_utf8_lossy(&bytes).into_owned());
            rest = &rest[close + 1..];
        }
    }
    out
}

/// Everything that must never be written down, by name. Each is also searched for in lower
/// case (an email field is stored lower-cased, say) and, where part of it is shown by design
/// (an API key's first characters), by the part that is not.
#[derive(Clone)]
struct Secrets(Vec<(String, String)>);

impl Secrets {
    fn add(&mut self, name: &str, value: &str) {
        assert!(value.len() >= 16, "{name} is too short to search for");
        self.0.push((name.to_string(), value.to_string()));
    }

    /// Lines of `text` that hold a secret, each with the secret redacted and its name. A line
    /// is searched as written and with its byte lists (`[112, 119, …]`, how the database
    /// driver prints the parameters it binds) read as text.
    fn found_in(&self, text: &str) -> Vec<String> {
        let mut found = Vec::new();
        for line in text.lines() {
            let decoded = byte_lists(line);
            let readable = format!("{line}\n{}", decoded.join("\n")).to_lowercase();
            for (name, value) in &self.0 {
                let value = value.to_lowercase();
                if !readable.contains(&value) {
                    continue;
                }
                let mut shown = self.redact(line);
                if let Some(bytes) = decoded.iter().find(|d| d.to_lowercase().contains(&value)) {
                    shown = format!("{shown}\n    its bytes as text: {}", self.redact(bytes));
                }
                found.push(format!("[{name}] {shown}"));
            }
        }
        found
    }

    /// `line` with every secret replaced by its name, cut to the part around the first.
    fn redact(&self, line: &str) -> String {
        let mut line = line.to_string();
        for (name, value) in &self.0 {
            line = line.replace(value.as_str(), &format!("«{name}»"));
            line = line.replace(&value.to_lowercase(), &format!("«{name}, lower-cased»"));
        }
        let chars: Vec<char> = line.chars().collect();
        let first = chars.iter().position(|c| *c == '«').unwrap_or(0);
        let start = first.saturating_sub(200);
        let end = (first + 400).min(chars.len());
        chars[start..end].iter().collect()
    }
}

/// The `fahwa serve` under test, as a client reaches it.
struct Server {
    base: String,
    client: reqwest::Client,
}

impl Server {
    async fn gql(&self, token: Option<&str>, query: &str, variables: Value) -> Value {
        let mut request = self
            .client
            .post(format!("{}/api/v1/graphql", self.base))
            .json(&json!({ "query": query, "variables": variables }));
        if let Some(t) = token {
            request = request.bearer_auth(t);
        }
        request.send().await.unwrap().json().await.unwrap()
    }

    /// An operation of the client contract, as written there.
    async fn op(&self, token: Option<&str>, file: &str, name: &str, variables: Value) -> Value {
        let mut request = self
            .client
            .post(format!("{}/api/v1/graphql", self.base))
            .json(&json!({
                "query": crate::contract::operation(file, name),
                "operationName": name,
                "variables": variables,
            }));
        if let Some(t) = token {
            request = request.bearer_auth(t);
        }
        request.send().await.unwrap().json().await.unwrap()
    }
}

/// The refresh and access tokens of a session answer.
fn tokens(answer: &Value, field: &str) -> (String, String) {
    let session = &answer["data"][field];
    let access = session["accessToken"].as_str();
    let refresh = session["refreshToken"].as_str();
    match (access, refresh) {
        (Some(a), Some(r)) => (a.to_string(), r.to_string()),
        _ => panic!("{field} failed: {answer}"),
    }
}

#[tokio::test]
async fn no_password_token_key_or_credential_reaches_the_log_errors_or_the_audit_log() {
    let slug = "secretive";
    let email = "owner@secretive.example.com";
    let password = format!("pw-{}", random(28));
    let jwt_secret = format!("jwt-{}", random(44));
    let sealing_key = base64::engine::general_purpose::STANDARD.encode(rand::random::<[u8; 32]>());
    let stripe_key = format!("sk_test_{}", random(24));
    let wrong_stripe_key = format!("sk_test_{}", random(24));
    let webhook_secret = format!("whsec_{}", random(32));
    let mut secrets = Secrets(Vec::new());
    secrets.add("password", &password);
    secrets.add("JWT secret", &jwt_secret);
    secrets.add("sealing key", &sealing_key);
    secrets.add("Stripe key", &stripe_key);
    // Stripe shows a key's last four characters; everything before them is secret.
    secrets.add("Stripe key body", &stripe_key[..stripe_key.len() - 4]);
    secrets.add("rejected Stripe key", &wrong_stripe_key);
    secrets.add("webhook secret", &webhook_secret);
    secrets.add("webhook secret body", &webhook_secret["whsec_".len()..]);

    let stripe = FakeStripe::start(&stripe_key).await;
    let price = fake_stripe::price("price_s", "usd", 4_900, "month", 1);
    stripe.put_subscription(fake_stripe::subscription(
        "sub_s",
        "cus_s",
        "active",
        vec![fake_stripe::item("si_s", price, 1)],
    ));

    let database = fresh_database().await;
    let port = free_port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_fahwa"))
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .env_remove("FAHWA_CONFIG")
        .env_remove("FAHWA_ENV")
        .env_remove("FAHWA_LOG_FORMAT")
        .env_remove("DATABASE_URL")
        .env("FAHWA_DATABASE_URL", &database)
        .env("FAHWA_REDIS_URL", redis_url())
        .env(
            "FAHWA_REDIS_PREFIX",
            format!("test:{}:", uuid::Uuid::new_v4().simple()),
        )
        .env("FAHWA_LIVE_CAPTURE", "false")
        .env("FAHWA_JWT_SECRET", &jwt_secret)
        .env("FAHWA_SECRET_KEYS", format!("[test:{sealing_key}]"))
        .env("FAHWA_STRIPE_API_BASE", &stripe.base)
        .env("FAHWA_CONNECTOR_REQUESTS_PER_SEC", "1000")
        .env("FAHWA_JOB_POLL_SECS", "1")
        // Everything, dependencies included: a secret in any of their messages is a leak too.
        .env("RUST_LOG", "trace")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let collect = |mut pipe: Box<dyn tokio::io::AsyncRead + Send + Unpin>| {
        tokio::spawn(async move {
            let mut bytes = Vec::new();
            let _ = pipe.read_to_end(&mut bytes).await;
            String::from_utf8_lossy(&bytes).into_owned()
        })
    };
    let stdout = collect(Box::new(child.stdout.take().unwrap()));
    let stderr = collect(Box::new(child.stderr.take().unwrap()));

    let server = Server {
        base: format!("http://127.0.0.1:{port}"),
        client: reqwest::Client::new(),
    };
    let mut ready = false;
    for _ in 0..300 {
        if let Ok(r) = server
            .client
            .get(format!("{}/readyz", server.base))
            .send()
            .await
            && r.status() == 200
        {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(ready, "the server became ready");

    // Every answer, to search for secrets the same way as the log.
    let mut answers: Vec<Value> = Vec::new();

    let signed_up = server
        .op(
            None,
            "auth.graphql",
            "SignUp",
            json!({ "input": {
                "tenantName": "Secretive Inc.", "tenantSlug": slug, "name": "Olive Owner",
                "email": email, "password": password,
            }}),
        )
        .await;
    let (first_access, first_refresh) = tokens(&signed_up, "signUp");

    let wrong_password = format!("wrong-{}", random(26));
    secrets.add("wrong password", &wrong_password);
    let refused = server
        .op(
            None,
            "auth.graphql",
            "LogIn",
            json!({ "input": { "tenantSlug": slug, "email": email, "password": wrong_password } }),
        )
        .await;
    assert_eq!(codes(&refused), ["UNAUTHENTICATED"], "{refused}");
    answers.push(refused);

    let logged_in = server
        .op(
            None,
            "auth.graphql",
            "LogIn",
            json!({ "input": { "tenantSlug": slug, "email": email, "password": password } }),
        )
        .await;
    let (login_access, login_refresh) = tokens(&logged_in, "logIn");

    let refreshed = server
        .op(
            None,
            "auth.graphql",
            "RefreshSession",
            json!({ "refreshToken": login_refresh }),
        )
        .await;
    let (access, refresh) = tokens(&refreshed, "refreshSession");
    for (name, token) in [
        ("access token (sign-up)", &first_access),
        ("refresh token (sign-up)", &first_refresh),
        ("access token (log-in)", &login_access),
        ("refresh token (log-in)", &login_refresh),
        ("access token", &access),
        ("refresh token", &refresh),
    ] {
        secrets.add(name, token);
        // A JWT's signature is what makes it a credential; the rest is readable by design.
        if let Some((_, signature)) = token.rsplit_once('.') {
            secrets.add(&format!("{name} signature"), signature);
        }
    }

    let made = server
        .op(
            Some(&access),
            "tenant.graphql",
            "CreateApiKey",
            json!({ "input": { "name": "ingest", "scopes": ["INGEST"] } }),
        )
        .await;
    let api_key = made["data"]["createApiKey"]["secret"]
        .as_str()
        .unwrap_or_else(|| panic!("createApiKey failed: {made}"))
        .to_string();
    secrets.add("API key", &api_key);
    // The first ten characters are shown in listings by design; the rest must never be.
    secrets.add("API key body", &api_key[10..]);

    let ingested = server
        .client
        .post(format!("{}/api/v1/events", server.base))
        .bearer_auth(&api_key)
        .json(&json!({ "events": [{ "name": "signup", "userId": "u1" }] }))
        .send()
        .await
        .unwrap();
    assert_eq!(ingested.status(), 200);
    // A key that was never issued, as a typo of a real one would arrive.
    let unknown_key = format!("fwk_{}", random(43));
    secrets.add("unknown API key", &unknown_key);
    let unknown = server
        .client
        .post(format!("{}/api/v1/events", server.base))
        .bearer_auth(&unknown_key)
        .json(&json!({ "events": [{ "name": "signup", "userId": "u1" }] }))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 401);
    answers.push(unknown.json().await.unwrap());

    // A key Stripe refuses: the failure travels back through the connector's error paths.
    let rejected = server
        .op(
            Some(&access),
            "integrations.graphql",
            "ConnectIntegration",
            json!({ "input": {
                "provider": "STRIPE", "credentials": { "apiKey": wrong_stripe_key },
                "webhookSecret": webhook_secret,
            }}),
        )
        .await;
    assert!(!codes(&rejected).is_empty(), "{rejected}");
    answers.push(rejected);
    let connected = server
        .op(
            Some(&access),
            "integrations.graphql",
            "ConnectIntegration",
            json!({ "input": {
                "provider": "STRIPE", "credentials": { "apiKey": stripe_key },
                "webhookSecret": webhook_secret,
            }}),
        )
        .await;
    let integration = connected["data"]["connectIntegration"]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("connectIntegration failed: {connected}"))
        .to_string();
    answers.push(connected);
    // The backfill runs on the server's worker with the key: wait for it, so that its
    // requests to Stripe are in the log.
    let mut status = Value::Null;
    for _ in 0..300 {
        let listed = server
            .op(
                Some(&access),
                "integrations.graphql",
                "Integrations",
                json!({}),
            )
            .await;
        status = listed["data"]["integrations"][0]["status"].clone();
        answers.push(listed);
        if status != "SYNCING" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(status, "CONNECTED", "the backfill finished");
    assert!(
        stripe.request_count() >= 2,
        "the key was sent to Stripe: {:?}",
        stripe.requests()
    );

    let webhook = format!("{}/api/v1/webhooks/stripe/{integration}", server.base);
    let now = chrono::Utc::now().timestamp();
    let price = fake_stripe::price("price_s", "usd", 9_900, "month", 1);
    let subscription = fake_stripe::subscription(
        "sub_s",
        "cus_s",
        "active",
        vec![fake_stripe::item("si_s", price, 1)],
    );
    let event =
        fake_stripe::event("evt_s", "customer.subscription.updated", now, subscription).to_string();
    for (signature, expected) in [
        (
            fake_stripe::sign(&format!("whsec_{}", random(32)), now, &event),
            400,
        ),
        (fake_stripe::sign(&webhook_secret, now, &event), 200),
    ] {
        let delivered = server
            .client
            .post(&webhook)
            .header("content-type", "application/json")
            .header("Stripe-Signature", signature)
            .body(event.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(delivered.status(), expected);
        answers.push(delivered.json().await.unwrap_or(Value::Null));
    }

    // The password where it does not belong: a variable the operation never reads, and the
    // email box of a log-in form (what a user types when the focus is in the wrong field).
    let stray = server
        .gql(
            Some(&access),
            "query($note: String) { me { id } }",
            json!({ "note": password, "password": password }),
        )
        .await;
    answers.push(stray);
    let misplaced = server
        .op(
            None,
            "auth.graphql",
            "LogIn",
            json!({ "input": { "tenantSlug": slug, "email": password, "password": password } }),
        )
        .await;
    assert_eq!(codes(&misplaced), ["UNAUTHENTICATED"], "{misplaced}");
    answers.push(misplaced);

    let audit = server
        .op(
            Some(&access),
            "tenant.graphql",
            "AuditLog",
            json!({ "first": 100 }),
        )
        .await;
    assert!(audit["errors"].is_null(), "{audit}");
    let logged_out = server
        .op(
            None,
            "auth.graphql",
            "LogOut",
            json!({ "refreshToken": refresh }),
        )
        .await;
    assert!(logged_out["errors"].is_null(), "{logged_out}");
    answers.push(logged_out);
    // Tokens presented after they stopped working, the refusals of which must not repeat them:
    // one already exchanged (a replay), and one of a session that ended.
    for used in [&login_refresh, &refresh] {
        let refused = server
            .op(
                None,
                "auth.graphql",
                "RefreshSession",
                json!({ "refreshToken": used }),
            )
            .await;
        assert_eq!(codes(&refused), ["UNAUTHENTICATED"], "{refused}");
        answers.push(refused);
    }

    // Stopped as an operator stops it, so that everything it buffered is written out.
    let pid = child.id().unwrap().to_string();
    std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    let exited = tokio::time::timeout(Duration::from_secs(30), child.wait())
        .await
        .expect("the server stops on SIGTERM")
        .unwrap();
    assert!(exited.success(), "{exited}");
    let log = without_ansi(&format!(
        "{}{}",
        stdout.await.unwrap(),
        stderr.await.unwrap()
    ));

    // The log is worth searching: it holds the requests, the connector's work and the
    // dependencies' own trace lines, so that a logging set-up that silently wrote nothing
    // cannot pass.
    for expected in [
        "/api/v1/graphql",
        "/api/v1/events",
        "/api/v1/webhooks/stripe/",
        "sync page applied",
        "TRACE",
    ] {
        assert!(
            log.contains(expected),
            "the log never mentions {expected:?} ({} bytes):\n{}",
            log.len(),
            log.chars().take(3_000).collect::<String>()
        );
    }

    let (db, connection) = tokio_postgres::connect(&database, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    // What sign-up stored for the password: a hash, at home in its table, but one that can be
    // attacked offline by whoever reads the log.
    let hash: String = db
        .query_one("SELECT password_hash FROM members", &[])
        .await
        .unwrap()
        .get(0);
    let mut log_secrets = secrets.clone();
    log_secrets.add("password hash", &hash);
    let in_log = log_secrets.found_in(&log);
    let in_answers: Vec<String> = answers
        .iter()
        .flat_map(|a| secrets.found_in(&a.to_string()))
        .collect();
    let in_audit_op = secrets.found_in(&audit.to_string());

    let audit_rows: Vec<String> = db
        .query("SELECT a::text FROM audit_log a ORDER BY at", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(
        audit_rows.iter().any(|r| r.contains("integration.connect")),
        "the audit log records the work: {audit_rows:#?}"
    );
    let in_audit_table = secrets.found_in(&audit_rows.join("\n"));
    // Every other table too: credentials are sealed, passwords hashed, tokens digested.
    let tables: Vec<String> = db
        .query(
            "SELECT quote_ident(table_schema) || '.' || quote_ident(table_name) \
             FROM information_schema.tables \
             WHERE table_type = 'BASE TABLE' AND table_schema NOT IN ('pg_catalog', 'information_schema') \
               AND table_name <> 'audit_log'",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    let mut at_rest = Vec::new();
    for table in &tables {
        let rows = db
            .query(&format!("SELECT t::text FROM {table} t"), &[])
            .await
            .unwrap();
        for row in rows {
            let text: String = row.get(0);
            at_rest.extend(
                secrets
                    .found_in(&text)
                    .into_iter()
                    .map(|f| format!("{table}: {f}")),
            );
        }
    }

    let report = |what: &str, found: &[String]| {
        if found.is_empty() {
            String::new()
        } else {
            format!("\n{what}:\n  {}", found.join("\n  "))
        }
    };
    let all = [
        report("in the log", &in_log),
        report("in answers", &in_answers),
        report("in the AuditLog operation", &in_audit_op),
        report("in the audit_log table", &in_audit_table),
        report("at rest", &at_rest),
    ]
    .concat();
    assert!(all.is_empty(), "secrets were written down:{all}");
}
