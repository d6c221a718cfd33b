//! The server under test, as a child process, so that its memory is its own.

use std::process::Stdio;
use std::time::Duration;

use anyhow::Context;
use tokio::process::{Child, Command};

pub struct Server {
    child: Child,
    pub base: String,
}

impl Server {
    pub async fn start(
        database_url: &str,
        redis_url: Option<&str>,
        metric_cache: bool,
    ) -> anyhow::Result<Server> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let mut cmd = Command::new(std::env::current_exe()?);
        cmd.arg("serve")
            .env("FAHWA_DATABASE_URL", database_url)
            .env("FAHWA_LISTEN", format!("127.0.0.1:{port}"))
            .env("FAHWA_JWT_SECRET", crate::auth::secrets::generate("bench-"))
            .env("FAHWA_METRIC_CACHE", metric_cache.to_string())
            .env("FAHWA_DB_POOL_SIZE", "16")
            .env(
                "FAHWA_REPORT_DIR",
                std::env::temp_dir().join(format!("fahwa-bench-reports-{port}")),
            )
            .env("RUST_LOG", "warn")
            .env_remove("FAHWA_REDIS_URL")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .kill_on_drop(true);
        if let Some(r) = redis_url {
            cmd.env("FAHWA_REDIS_URL", r);
        }
        // Budgets are counted (their cost is part of what is measured) but never run out.
        for who in [
            "ADMIN",
            "ANALYST",
            "VIEWER",
            "INGEST_KEY",
            "READ_KEY",
            "ANONYMOUS",
        ] {
            cmd.env(format!("FAHWA_POINTS_PER_MINUTE_{who}"), "1000000000");
        }
        let child = cmd.spawn().context("cannot start the server")?;
        let base = format!("http://127.0.0.1:{port}");
        for _ in 0..300 {
            if let Ok(r) = reqwest::get(format!("{base}/readyz")).await
                && r.status().is_success()
            {
                return Ok(Server { child, base });
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        anyhow::bail!("the server did not become ready")
    }

    /// SQL statements the server has sent so far (its `/metrics`).
    pub async fn statements(&self) -> Option<u64> {
        let text = reqwest::get(format!("{}/metrics", self.base))
            .await
            .ok()?
            .text()
            .await
            .ok()?;
        text.lines()
            .find_map(|l| l.strip_prefix("fahwa_db_statements_total "))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .map(|v| v as u64)
    }

    /// Peak resident memory so far (VmHWM), in MiB.
    pub fn peak_rss_mib(&self) -> Option<f64> {
        let pid = self.child.id()?;
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
        let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kib / 1024.0)
    }

    pub async fn stop(mut self) {
        if let Some(pid) = self.child.id() {
            let _ = std::process::Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status();
        }
        let _ = tokio::time::timeout(Duration::from_secs(10), self.child.wait()).await;
    }
}
