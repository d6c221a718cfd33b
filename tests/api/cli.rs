//! The `fahwa` binary as operators use it.

use std::process::Stdio;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

use crate::harness::{codes, fresh_database};

fn fahwa() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_fahwa"));
    cmd.env_remove("FAHWA_REDIS_URL")
        .env_remove("FAHWA_JWT_SECRET")
        .env_remove("FAHWA_ENV")
        .env_remove("DATABASE_URL")
        .kill_on_drop(true);
    cmd
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn post(base: &str, token: Option<&str>, query: &str, variables: Value) -> Value {
    let mut req = reqwest::Client::new()
        .post(format!("{base}/api/v1/graphql"))
        .json(&json!({ "query": query, "variables": variables }));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    req.send().await.unwrap().json().await.unwrap()
}

const LOG_IN: &str = "mutation($i: LogInInput!) { logIn(input: $i) { accessToken user { role } } }";

#[tokio::test]
async fn serve_demo_creates_one_member_per_role_and_stops_gracefully() {
    let db = fresh_database().await;
    let port = free_port();
    let mut child = fahwa()
        .args(["serve", "--demo"])
        .env("FAHWA_DATABASE_URL", &db)
        .env("FAHWA_LISTEN", format!("127.0.0.1:{port}"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut printed = String::new();
    tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            printed.push_str(&line);
            printed.push('\n');
            if line.contains("viewer@demo.fahwa.dev") {
                break;
            }
        }
    })
    .await
    .expect("the demo credentials are printed");
    let base = format!("http://127.0.0.1:{port}");
    let mut ready = false;
    for _ in 0..100 {
        if let Ok(r) = reqwest::get(format!("{base}/readyz")).await {
            ready = r.status() == 200;
            if ready {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(ready, "the server became ready");

    for role in ["OWNER", "ADMIN", "ANALYST", "VIEWER"] {
        let line = printed
            .lines()
            .find(|l| l.trim_start().starts_with(role))
            .unwrap();
        let parts: Vec<&str> = line.split_whitespace().collect();
        let resp = post(
            &base,
            None,
            LOG_IN,
            json!({ "i": { "tenantSlug": "demo", "email": parts[1], "password": parts[2] } }),
        )
        .await;
        assert_eq!(resp["data"]["logIn"]["user"]["role"], role, "{resp}");
    }

    let pid = child.id().unwrap().to_string();
    std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    let status = tokio::time::timeout(Duration::from_secs(15), child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "exits cleanly on SIGTERM: {status}");
}

#[tokio::test]
async fn create_operator_makes_a_member_who_lists_tenants() {
    let db = fresh_database().await;
    let out = fahwa()
        .args([
            "create-operator",
            "--email",
            "ops@fahwa.example.com",
            "--password",
            "operator passphrase",
        ])
        .env("FAHWA_DATABASE_URL", &db)
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("fahwa-operators"));

    let port = free_port();
    let _server = fahwa()
        .args([
            "serve",
            "--jwt-secret",
            "a-test-secret-that-is-long-enough-1234",
        ])
        .env("FAHWA_DATABASE_URL", &db)
        .env("FAHWA_LISTEN", format!("127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let mut token = None;
    for _ in 0..100 {
        if let Ok(r) = reqwest::Client::new()
            .post(format!("{base}/api/v1/graphql"))
            .json(&json!({ "query": LOG_IN, "variables": { "i": { "tenantSlug": "fahwa-operators", "email": "ops@fahwa.example.com", "password": "operator passphrase" } } }))
            .send()
            .await
        {
            let v: Value = r.json().await.unwrap();
            token = v["data"]["logIn"]["accessToken"].as_str().map(str::to_string);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let token = token.expect("the operator logs in");
    let tenants = post(
        &base,
        Some(&token),
        "{ tenants { totalCount edges { node { slug memberCount } } } }",
        json!({}),
    )
    .await;
    assert_eq!(tenants["data"]["tenants"]["totalCount"], 1, "{tenants}");
    assert_eq!(
        tenants["data"]["tenants"]["edges"][0]["node"]["slug"],
        "fahwa-operators"
    );

    let weak = fahwa()
        .args([
            "create-operator",
            "--email",
            "x@fahwa.example.com",
            "--password",
            "short",
        ])
        .env("FAHWA_DATABASE_URL", &db)
        .output()
        .await
        .unwrap();
    assert!(!weak.status.success());
    assert!(String::from_utf8_lossy(&weak.stderr).contains("at least 10 characters"));
    assert!(codes(&tenants).is_empty());
}

/// Runs `args` in production with `env` set, expecting a refusal naming `named`; a refusal
/// comes before anything starts, so no PostgreSQL of Fahwa's own is made (with no database
/// configured, one would be).
async fn refused_in_production(args: &[&str], env: &[(&str, &str)], named: &str) {
    let own = std::env::temp_dir().join(format!("fahwa-refused-{}", uuid::Uuid::new_v4().simple()));
    let mut cmd = fahwa();
    cmd.args(args)
        .args(["--env", "production"])
        .env_remove("FAHWA_DATABASE_URL")
        .env_remove("FAHWA_SECRET_KEYS")
        .env("FAHWA_LOCAL_POSTGRES_DIR", &own)
        .env("FAHWA_LOCAL_POSTGRES_PORT", free_port().to_string());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = tokio::time::timeout(Duration::from_secs(30), cmd.output())
        .await
        .unwrap()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(named), "{args:?}: {err}");
    assert!(
        !own.exists(),
        "{args:?} started a PostgreSQL before refusing: {err}"
    );
}

#[tokio::test]
async fn production_refuses_to_start_without_a_strong_key() {
    const STRONG: (&str, &str) = (
        "FAHWA_JWT_SECRET",
        "a-production-signing-key-of-enough-bytes",
    );
    const SEALING: (&str, &str) = (
        "FAHWA_SECRET_KEYS",
        "[k1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=]",
    );
    let serve = ["serve", "--listen", "127.0.0.1:0"];
    refused_in_production(&serve, &[], "FAHWA_JWT_SECRET").await;
    refused_in_production(
        &serve,
        &[("FAHWA_JWT_SECRET", "too-short")],
        "FAHWA_JWT_SECRET",
    )
    .await;
    // A strong signing key, but no key to seal secrets at rest with.
    refused_in_production(&serve, &[STRONG], "FAHWA_SECRET_KEYS").await;
    refused_in_production(&["worker"], &[STRONG], "FAHWA_SECRET_KEYS").await;
    refused_in_production(&["rotate-key"], &[], "FAHWA_JWT_SECRET").await;
    // Keys that would do, but demo members in production.
    let demo = ["serve", "--demo", "--listen", "127.0.0.1:0"];
    refused_in_production(&demo, &[STRONG, SEALING], "--demo").await;
}

#[tokio::test]
async fn print_schema_prints_the_checked_in_schema() {
    let out = fahwa().arg("print-schema").output().await.unwrap();
    let on_disk =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/schema.graphql")).unwrap();
    assert_eq!(String::from_utf8(out.stdout).unwrap(), on_disk);
}

async fn seeded_digest(db: &str) -> (i64, i64, String, String) {
    let (client, conn) = tokio_postgres::connect(db, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    let row = client
        .query_one(
            "SELECT count(*), count(DISTINCT user_id), md5(string_agg(user_id || name || occurred_at::text || properties::text, ',' ORDER BY user_id, occurred_at, name)) FROM events",
            &[],
        )
        .await
        .unwrap();
    let revenue: String = client
        .query_one(
            "SELECT md5(string_agg(customer_id || occurred_at::text || mrr::text || currency, ',' ORDER BY customer_id, occurred_at, id)) FROM revenue_changes",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    (row.get(0), row.get(1), row.get(2), revenue)
}

#[tokio::test]
async fn seed_is_deterministic_and_rolled_up() {
    let mut digests = Vec::new();
    for _ in 0..2 {
        let db = fresh_database().await;
        let out = fahwa()
            .args([
                "seed", "--tenant", "seeded", "--users", "300", "--events", "6000", "--days", "30",
                "--seed", "9",
            ])
            .env("FAHWA_DATABASE_URL", &db)
            .output()
            .await
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{stdout} {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            stdout.contains("seeded 6000 events") && stdout.contains("rows/s"),
            "{stdout}"
        );
        let (client, conn) = tokio_postgres::connect(&db, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(conn);
        let rolled: i64 = client
            .query_one("SELECT sum(events)::int8 FROM event_counts_daily", &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(rolled, 6000);
        let users: i64 = client
            .query_one("SELECT count(*) FROM end_users", &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(users, 300);
        let names: i64 = client
            .query_one("SELECT count(DISTINCT name) FROM events", &[])
            .await
            .unwrap()
            .get(0);
        assert!(names >= 5, "a realistic mix of event names");
        // Revenue belongs to seeded users, and each customer's state is its last change.
        let row = client
            .query_one(
                "SELECT (SELECT count(*) FROM revenue_changes), \
                   (SELECT count(*) FROM customers c WHERE NOT EXISTS \
                      (SELECT 1 FROM end_users u WHERE u.user_id = c.customer_id)), \
                   (SELECT count(*) FROM customers c WHERE c.mrr IS DISTINCT FROM \
                      (SELECT r.mrr FROM revenue_changes r WHERE r.customer_id = c.customer_id \
                       ORDER BY r.occurred_at DESC, r.id DESC LIMIT 1)), \
                   (SELECT count(DISTINCT currency) FROM revenue_changes)",
                &[],
            )
            .await
            .unwrap();
        let (changes, strangers, stale, currencies): (i64, i64, i64, i64) =
            (row.get(0), row.get(1), row.get(2), row.get(3));
        assert!(changes > 100, "{changes} revenue changes");
        assert!(
            stdout.contains(&format!("{changes} revenue changes")),
            "{stdout}"
        );
        assert_eq!((strangers, stale), (0, 0));
        assert!(currencies >= 3, "{currencies} currencies");
        digests.push(seeded_digest(&db).await);
    }
    assert_eq!(
        digests[0], digests[1],
        "the same seed gives the same events"
    );
    assert_eq!(digests[0].0, 6000);
}

#[tokio::test]
async fn drop_capture_slot_refuses_while_a_server_captures() {
    let mut t = crate::harness::TestApp::spawn_live().await;
    for _ in 0..100 {
        if t.app.live.leading() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let db_url = t.db_url.clone();
    let drop_slot = || async {
        fahwa()
            .arg("drop-capture-slot")
            .env("FAHWA_DATABASE_URL", &db_url)
            .output()
            .await
            .unwrap()
    };
    let refused = drop_slot().await;
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("stop every server first"));

    t.kill();
    // The leader's connection closes with it, and the slot is free.
    let mut out = String::new();
    for _ in 0..50 {
        let done = drop_slot().await;
        out = String::from_utf8_lossy(&done.stdout).into_owned();
        if done.status.success() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(out.trim(), "dropped the change capture slot");
    let again = drop_slot().await;
    assert_eq!(
        String::from_utf8_lossy(&again.stdout).trim(),
        "this database has no change capture slot"
    );
}

#[tokio::test]
async fn exchange_rates_are_set_from_a_csv_file() {
    let t = crate::harness::TestApp::spawn().await;
    t.sign_up("acme").await;
    let dir = std::env::temp_dir().join(format!("fahwa-rates-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let good = dir.join("rates.csv");
    std::fs::write(
        &good,
        "currency,date,rate\nEUR,2026-03-01,1.08\nGBP,2026-03-01,1.27\n",
    )
    .unwrap();
    let bad = dir.join("bad.csv");
    std::fs::write(&bad, "EUR,2026-03-02,1.09\nEUR,2026-03-03\n").unwrap();
    let run = |file: std::path::PathBuf| {
        fahwa()
            .args(["set-exchange-rates", "--tenant", "acme", "--file"])
            .arg(file)
            .env("FAHWA_DATABASE_URL", &t.db_url)
            .output()
    };
    let out = run(good).await.unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("set 2 exchange rates for acme"));
    let out = run(bad).await.unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("line 2"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let pg = t.pg().await;
    let rates: Vec<(String, String)> = pg
        .query(
            "SELECT currency, rate::text FROM exchange_rates ORDER BY currency",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(
        rates,
        [
            ("EUR".to_string(), "1.08".to_string()),
            ("GBP".to_string(), "1.27".to_string())
        ]
    );
    let audited: i64 = pg
        .query_one(
            "SELECT count(*) FROM audit_log WHERE action = 'revenue.set_exchange_rates' AND actor_kind = 'SYSTEM'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(audited, 1);
    std::fs::remove_dir_all(dir).ok();
}
