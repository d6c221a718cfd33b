//! A fresh machine's PostgreSQL runs with its defaults (`wal_level = replica`), which cannot
//! decode logically. With no database configured, Fahwa runs a PostgreSQL of its own that can;
//! with one configured, it serves everything but live updates, and says why and what fixes it.

use std::time::Duration;

use fahwa::config::Config;
use fahwa::db::local_cluster::{self, LocalCluster, Purpose};
use serde_json::Value;

use crate::harness::TestApp;

/// A server like a fresh machine's, shared by this file's tests.
async fn replica_server() -> String {
    static SERVER: tokio::sync::OnceCell<String> = tokio::sync::OnceCell::const_new();
    SERVER
        .get_or_init(|| async {
            tokio::task::spawn_blocking(|| {
                let cluster =
                    LocalCluster::temporary("fahwa-test-replica", Purpose::TestsWithoutDecoding)
                        .unwrap();
                let url = cluster.server_url();
                // Stopped and removed by its watchdog when the run ends.
                std::mem::forget(cluster);
                url
            })
            .await
            .unwrap()
        })
        .await
        .clone()
}

#[tokio::test]
async fn with_no_database_configured_fahwa_runs_a_postgres_that_decodes() {
    let replica = replica_server().await;
    assert!(!local_cluster::decodes_logically(&replica).await.unwrap());
    let dir = std::env::temp_dir().join(format!("fahwa-own-{}", uuid::Uuid::new_v4().simple()));
    let mut config = Config {
        database_url: format!("{replica}/fahwa"),
        local_postgres_dir: dir.clone(),
        local_postgres_port: 0,
        ..Config::default()
    };
    let own = local_cluster::when_unconfigured(&mut config)
        .await
        .unwrap()
        .expect("a PostgreSQL of Fahwa's own");
    assert_eq!(config.database_url, format!("{}/fahwa", own.server_url()));
    assert!(
        local_cluster::decodes_logically(&own.server_url())
            .await
            .unwrap()
    );
    assert!(dir.join("fahwa.owner").exists());

    // A configured database is used as it is.
    let mut configured = Config {
        database_url: format!("{replica}/fahwa"),
        database_configured: true,
        ..Config::default()
    };
    assert!(
        local_cluster::when_unconfigured(&mut configured)
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(configured.database_url, format!("{replica}/fahwa"));

    own.stop().unwrap();
    assert!(
        local_cluster::decodes_logically(&own.server_url())
            .await
            .is_err(),
        "stopped"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn a_configured_database_that_cannot_decode_serves_all_but_live_updates() {
    let replica = replica_server().await;
    let t = TestApp::spawn_configured(|c| {
        c.database_url = format!("{replica}/fahwa_{}", uuid::Uuid::new_v4().simple());
        c.live_capture = true;
    })
    .await;
    let mut ready = Value::Null;
    for _ in 0..100 {
        ready = t.get("/readyz").await.json().await.unwrap();
        if ready["live"]
            .as_str()
            .is_some_and(|l| l.starts_with("off:"))
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(ready["status"], "ok", "{ready}");
    let live = ready["live"].as_str().unwrap();
    assert!(
        live.contains("wal_level = replica") && live.contains("wal_level = logical"),
        "says why and what fixes it: {live}"
    );
    // Everything else is served.
    let s = t.sign_up("acme").await;
    t.ingest_ok(
        &s.access,
        vec![serde_json::json!({ "name": "a", "userId": "u" })],
    )
    .await;
}
