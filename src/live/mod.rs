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

use tokio::sync::broadcast;
use tokio::task::JoinHandle;
use uuid::Uuid;

pub use broker::Broker;

use self::hub::Topic;
use self::message::MetricKey;
use crate::App;
use crate::error::AppResult;
use crate::metrics::Granularity;

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
pub fn spawn(app: &App) -> LiveTasks {
    let mut tasks = vec![tokio::spawn(app.live.clone().run_receiver())];
    let marker = app.clone();
    tasks.push(tokio::spawn(async move {
        let mut every = tokio::time::interval(watch::REFRESH);
        loop {
            every.tick().await;
            let hub = marker.live.hub();
            metrics::gauge!("fahwa_live_subscriptions").set(hub.subscriptions() as f64);
            watch::mark(&marker.kv, &hub.topics()).await;
        }
    }));
    let forgetter = app.clone();
    let mut ended = app.live.hub().sessions_ended();
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
            refresher.live.subscribed().notified().await;
            if let Err(e) = refresh_local(&refresher).await {
                tracing::warn!(error = %e, "live: could not bring subscribers up to date");
            }
        }
    }));
    if app.config.live_capture {
        tasks.push(tokio::spawn(capture::run(app.clone())));
    }
    LiveTasks(tasks)
}

/// Marks this instance's topics again and hands its metric subscribers the current values:
/// after the Redis subscription was down, what was published meanwhile never arrives. The
/// values carry the log position of their snapshot, so any value computed later wins.
async fn refresh_local(app: &App) -> AppResult<()> {
    let topics = app.live.hub().topics();
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
            app.live.hub().dispatch(tenant, &c.message(now, version));
        }
    }
    Ok(())
}
