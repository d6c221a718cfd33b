//! Live updates: change capture from PostgreSQL (`capture/`), the broker that carries messages
//! between instances (`broker.rs`, Redis pub/sub or in process), each instance's fan-out to its
//! WebSocket subscribers (`hub.rs`), the marks that say what anyone follows (`watch.rs`), and
//! the sessions behind open sockets (`sessions.rs`).

pub mod broker;
pub mod capture;
pub mod hub;
pub mod message;
pub mod sessions;
pub mod watch;

use std::collections::HashMap;
use std::sync::Arc;

use tokio::sync::broadcast;
use tokio::task::JoinHandle;
use uuid::Uuid;

pub use broker::Broker;

use self::hub::Topic;
use self::message::MetricKey;
use self::sessions::MemberSockets;
use crate::auth::session_check::SessionCheck;
use crate::calendar::Granularity;
use crate::db::Db;
use crate::error::AppResult;
use crate::kv::Kv;

/// What the live machinery works with, handed over by the application at start.
#[derive(Clone)]
pub struct Live {
    pub db: Db,
    /// Where instances mark what their subscribers follow.
    pub kv: Kv,
    pub broker: Broker,
    pub sockets: Arc<MemberSockets>,
    /// Forgotten for the sessions that other instances say ended.
    pub session_check: SessionCheck,
    /// The database to capture changes from, when this instance competes for capture.
    pub capture_from: Option<String>,
    /// The slot's backlog beyond which capture passes over event rows (bytes).
    pub capture_max_backlog: u64,
}

/// The live machinery's background tasks; dropping this stops them (a stopped server must give
/// up capture leadership at once, even inside a test process).
pub struct LiveTasks(Vec<JoinHandle<()>>);

impl Drop for LiveTasks {
    fn drop(&mut self) {
        for task in &self.0 {
            task.abort();
        }
    }
}

/// Starts receiving from the broker, marking this instance's topics, and (where configured)
/// competing for change capture.
pub fn spawn(app: Live) -> LiveTasks {
    let mut tasks = vec![tokio::spawn(app.broker.clone().run_receiver())];
    let marker = app.clone();
    tasks.push(tokio::spawn(async move {
        let mut every = tokio::time::interval(watch::REFRESH);
        loop {
            every.tick().await;
            let hub = marker.broker.hub();
            metrics::gauge!("fahwa_live_subscriptions").set(hub.subscriptions() as f64);
            watch::mark(&marker.kv, &hub.topics()).await;
        }
    }));
    let forgetter = app.clone();
    let mut ended = app.broker.hub().sessions_ended();
    tasks.push(tokio::spawn(async move {
        loop {
            match ended.recv().await {
                Ok((tenant, member)) => forgetter.session_check.forget(tenant, member),
                Err(broadcast::error::RecvError::Lagged(_)) => forgetter.session_check.forget_all(),
                Err(broadcast::error::RecvError::Closed) => return,
            }
            forgetter.sockets.check_soon();
        }
    }));
    let checker = app.clone();
    tasks.push(tokio::spawn(async move {
        let mut every = tokio::time::interval(sessions::CHECK_EVERY);
        loop {
            tokio::select! {
                _ = every.tick() => {}
                () = checker.sockets.asked_to_check() => {}
            }
            if let Err(e) = checker.sockets.check(&checker.db).await {
                tracing::warn!(error = %e, "could not check the sessions of open sockets");
            }
            metrics::gauge!("fahwa_live_member_sockets").set(checker.sockets.len() as f64);
        }
    }));
    let refresher = app.clone();
    tasks.push(tokio::spawn(async move {
        loop {
            refresher.broker.subscribed().notified().await;
            if let Err(e) = refresh_local(&refresher).await {
                tracing::warn!(error = %e, "live: could not bring subscribers up to date");
            }
        }
    }));
    if let Some(url) = app.capture_from.clone() {
        tasks.push(tokio::spawn(capture::run(capture::Capture {
            database_url: url,
            db: app.db,
            kv: app.kv,
            broker: app.broker,
            max_backlog: app.capture_max_backlog,
        })));
    }
    LiveTasks(tasks)
}

/// Marks this instance's topics again and hands its metric subscribers the current values:
/// after the Redis subscription was down, what was published meanwhile never arrives. The
/// values carry the log position of their snapshot, so any value computed later wins.
async fn refresh_local(app: &Live) -> AppResult<()> {
    let topics = app.broker.hub().topics();
    watch::mark(&app.kv, &topics).await;
    let mut wanted: HashMap<Uuid, Vec<(MetricKey, Granularity)>> = HashMap::new();
    for (tenant, topic) in topics {
        if let Topic::Metric(m, g) = topic {
            wanted.entry(tenant).or_default().push((m, g));
        }
    }
    if wanted.is_empty() {
        return Ok(());
    }
    let now = chrono::Utc::now();
    for (tenant, wanted) in wanted {
        let (version, values) = capture::values::newest(&app.db, tenant, &wanted, now, &[]).await?;
        for c in values {
            app.broker.hub().dispatch(tenant, &c.message(now, version));
        }
    }
    Ok(())
}
