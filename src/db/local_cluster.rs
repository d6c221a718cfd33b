//! A PostgreSQL cluster of Fahwa's own, made from the machine's installed server binaries, with
//! logical decoding on. The tests run one for each run (temporary, fast and unsafe settings),
//! and `fahwa` runs one under a data directory when no database is configured and the default
//! server cannot decode logically: a fresh machine then needs no set-up step, and no server the
//! project did not start is ever reconfigured or restarted.
//!
//! `initdb` and `postgres` refuse to run as root: as root, they run as the `postgres` user,
//! which then owns the data directory. A watchdog process stops the cluster when the process
//! that owns it ends, however it ends. The owner is named in `fahwa.owner`: a process that
//! finds the cluster running under a live owner only uses it; one that finds its owner gone
//! (`fahwa migrate && fahwa serve`) takes it over, and the old watchdog leaves it running.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};

use crate::config::{Config, redact_url};

/// How a cluster is run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// Kept between runs, crash-safe.
    Serve,
    /// One test run's: thrown away with its directory, so durability is not worth its cost.
    Tests,
    /// A test's stand-in for a machine's server left at its defaults (`wal_level = replica`).
    TestsWithoutDecoding,
}

pub struct LocalCluster {
    dir: PathBuf,
    port: u16,
    bin: PathBuf,
    /// Whether this process owns it (and so stops it).
    owned: bool,
}

impl LocalCluster {
    /// The cluster in `dir` on `port`: made if `dir` holds none, started if not running (and
    /// then stopped when this process ends). `port` 0 picks a free one.
    pub fn start(dir: &Path, port: u16, purpose: Purpose) -> anyhow::Result<LocalCluster> {
        let bin = server_binaries()?;
        let port = match port {
            0 => free_port()?,
            p => p,
        };
        let mut cluster = LocalCluster {
            dir: dir.to_path_buf(),
            port,
            bin,
            owned: false,
        };
        if !dir.join("PG_VERSION").exists() {
            cluster.init()?;
        }
        if cluster.running()? {
            ensure!(
                cluster.answers(),
                "a cluster runs in {} but does not answer on port {port}",
                dir.display()
            );
            if cluster.owner_alive() {
                return Ok(cluster);
            }
        } else {
            cluster.launch(purpose)?;
        }
        cluster.own()?;
        cluster.watch(purpose)?;
        Ok(cluster)
    }

    /// A temporary cluster for one test run (`Tests` or `TestsWithoutDecoding`), on a free
    /// port, removed when the run ends.
    pub fn temporary(label: &str, purpose: Purpose) -> anyhow::Result<LocalCluster> {
        let dir = std::env::temp_dir().join(format!("{label}-{}", std::process::id()));
        if dir.exists() {
            std::fs::remove_dir_all(&dir)?;
        }
        Self::start(&dir, 0, purpose)
    }

    /// `postgres://postgres@127.0.0.1:PORT` (no database).
    pub fn server_url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Stops the cluster if this process owns it (a fast shutdown: connections end).
    pub fn stop(&self) -> anyhow::Result<()> {
        if !self.owned || !self.owned_by_this_process() {
            return Ok(());
        }
        let status = self
            .command("pg_ctl")
            .arg("-D")
            .arg(&self.dir)
            .args(["-m", "fast", "-w", "stop"])
            .stdout(Stdio::null())
            .status()?;
        ensure!(status.success(), "pg_ctl stop failed ({status})");
        Ok(())
    }

    /// A server binary, run as the `postgres` user when this process is root.
    fn command(&self, program: &str) -> Command {
        as_server_user(&self.bin.join(program))
    }

    fn init(&self) -> anyhow::Result<()> {
        std::fs::create_dir_all(&self.dir)
            .with_context(|| format!("cannot create {}", self.dir.display()))?;
        give_to_server_user(&self.dir)?;
        let output = self
            .command("initdb")
            .arg("-D")
            .arg(&self.dir)
            .args(["-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-sync"])
            .output()
            .context("cannot run initdb")?;
        if !output.status.success() {
            bail!(
                "initdb failed in {}: {}",
                self.dir.display(),
                String::from_utf8_lossy(&output.stderr).trim()
            );
        }
        Ok(())
    }

    fn running(&self) -> anyhow::Result<bool> {
        let status = self
            .command("pg_ctl")
            .arg("-D")
            .arg(&self.dir)
            .arg("status")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()?;
        Ok(status.success())
    }

    fn owner_file(&self) -> PathBuf {
        self.dir.join("fahwa.owner")
    }

    fn owner(&self) -> Option<u32> {
        std::fs::read_to_string(self.owner_file())
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    fn owned_by_this_process(&self) -> bool {
        self.owner() == Some(std::process::id())
    }

    /// Whether another process that owns the cluster still runs.
    fn owner_alive(&self) -> bool {
        self.owner().is_some_and(|pid| {
            pid != std::process::id() && Path::new(&format!("/proc/{pid}")).exists()
        })
    }

    fn own(&mut self) -> anyhow::Result<()> {
        std::fs::write(self.owner_file(), std::process::id().to_string())
            .with_context(|| format!("cannot write {}", self.owner_file().display()))?;
        self.owned = true;
        Ok(())
    }

    fn answers(&self) -> bool {
        std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok()
    }

    fn launch(&self, purpose: Purpose) -> anyhow::Result<()> {
        let wal_level = match purpose {
            Purpose::TestsWithoutDecoding => "replica",
            Purpose::Serve | Purpose::Tests => "logical",
        };
        let mut options = format!(
            "-p {} -c listen_addresses=127.0.0.1 -k {} -c wal_level={wal_level} \
             -c max_replication_slots=64 -c max_wal_senders=64 -c max_connections=300",
            self.port,
            self.dir.display()
        );
        if purpose != Purpose::Serve {
            options.push_str(" -c fsync=off -c full_page_writes=off");
        }
        let log = self.dir.join("server.log");
        let output = self
            .command("pg_ctl")
            .arg("-D")
            .arg(&self.dir)
            .arg("-l")
            .arg(&log)
            .args(["-o", &options, "-w", "-t", "60", "start"])
            .output()
            .context("cannot run pg_ctl")?;
        if !output.status.success() {
            let tail = std::fs::read_to_string(&log).unwrap_or_default();
            let tail: Vec<&str> = tail.lines().rev().take(5).collect();
            bail!(
                "PostgreSQL did not start in {} on port {}: {}",
                self.dir.display(),
                self.port,
                tail.into_iter().rev().collect::<Vec<_>>().join(" / ")
            );
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        while !self.answers() {
            ensure!(
                Instant::now() < deadline,
                "PostgreSQL does not answer on {}",
                self.port
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(())
    }

    /// A process that outlives this one only to stop the cluster (and, for tests, remove it)
    /// once this process has ended, even by a crash.
    fn watch(&self, purpose: Purpose) -> anyhow::Result<()> {
        let pg_ctl = self.bin.join("pg_ctl");
        let mut stop = format!(
            "'{}' -D '{}' -m fast stop",
            pg_ctl.display(),
            self.dir.display()
        );
        if is_root() {
            stop = format!("runuser -u postgres -- {stop}");
        }
        let pid = std::process::id();
        let owner = self.owner_file();
        let mut script = format!(
            "while kill -0 {pid} 2>/dev/null; do sleep 1; done; \
             [ \"$(cat '{}' 2>/dev/null)\" = {pid} ] || exit 0; {stop} >/dev/null 2>&1",
            owner.display()
        );
        if purpose != Purpose::Serve {
            script.push_str(&format!("; rm -rf '{}'", self.dir.display()));
        }
        Command::new("sh")
            .args(["-c", &script])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("cannot start the cluster's watchdog")?;
        Ok(())
    }
}

/// With no database configured: the default server when it can decode logically (live updates
/// need it), else a PostgreSQL of Fahwa's own in `local_postgres_dir`, started if needed and
/// stopped when this process ends. A configured database is used as it is: a server that
/// cannot decode logically then serves everything but live updates, and says so.
pub async fn when_unconfigured(config: &mut Config) -> anyhow::Result<Option<LocalCluster>> {
    if config.database_configured {
        return Ok(None);
    }
    let base = config.database_url.split('?').next().unwrap_or_default();
    let (server, database) = base.rsplit_once('/').unwrap_or((base, "fahwa"));
    let why = match decodes_logically(server).await {
        Ok(true) => return Ok(None),
        Ok(false) => format!(
            "{} cannot decode logically (wal_level is not logical)",
            redact_url(server)
        ),
        Err(e) => format!("{} does not answer ({e})", redact_url(server)),
    };
    let (dir, port) = (
        config.local_postgres_dir.clone(),
        config.local_postgres_port,
    );
    let cluster =
        tokio::task::spawn_blocking(move || LocalCluster::start(&dir, port, Purpose::Serve))
            .await??;
    tracing::info!(
        "no FAHWA_DATABASE_URL and {why}: using a PostgreSQL of Fahwa's own in {} on port {} (stopped when this process ends); set FAHWA_DATABASE_URL to use another server",
        cluster.dir().display(),
        cluster.port()
    );
    config.database_url = format!("{}/{database}", cluster.server_url());
    Ok(Some(cluster))
}

/// Whether the PostgreSQL at `server_url` (no database) can decode logically: `wal_level` is
/// `logical` and replication slots may be made. `Err` when it cannot be reached.
pub async fn decodes_logically(server_url: &str) -> anyhow::Result<bool> {
    let url = format!("{}/postgres", server_url.trim_end_matches('/'));
    let (client, connection) = tokio::time::timeout(
        Duration::from_secs(3),
        tokio_postgres::connect(&url, tokio_postgres::NoTls),
    )
    .await
    .context("timed out")??;
    let driver = tokio::spawn(connection);
    let row = client
        .query_one(
            "SELECT current_setting('wal_level') = 'logical' \
             AND current_setting('max_replication_slots')::int > 0",
            &[],
        )
        .await?;
    driver.abort();
    Ok(row.get(0))
}

/// The directory of `initdb`, `pg_ctl` and `postgres`: `pg_config --bindir`, else the newest
/// under Debian's `/usr/lib/postgresql`.
fn server_binaries() -> anyhow::Result<PathBuf> {
    let has_server = |dir: &Path| dir.join("initdb").exists() && dir.join("pg_ctl").exists();
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output()
        && out.status.success()
    {
        let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if has_server(&dir) {
            return Ok(dir);
        }
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let version = e.file_name().to_string_lossy().parse().ok()?;
            let bin = e.path().join("bin");
            has_server(&bin).then_some((version, bin))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin).context(
        "no PostgreSQL server binaries found (pg_config --bindir, /usr/lib/postgresql/*/bin): \
         install PostgreSQL's server package, or point FAHWA_DATABASE_URL at a server",
    )
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

fn as_server_user(program: &Path) -> Command {
    if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(program);
        c
    } else {
        Command::new(program)
    }
}

/// As root, the directory must be the `postgres` user's (its parents only need to be open to
/// all, as `/tmp` and `/var/lib` are).
fn give_to_server_user(dir: &Path) -> anyhow::Result<()> {
    if !is_root() {
        return Ok(());
    }
    let status = Command::new("chown")
        .args(["postgres:postgres"])
        .arg(dir)
        .status()?;
    ensure!(
        status.success(),
        "cannot give {} to the postgres user",
        dir.display()
    );
    Ok(())
}

fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}
