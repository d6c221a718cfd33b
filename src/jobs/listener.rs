//! The workers' wake-up: a connection of its own (notifications belong to one connection, so
//! never a pooled one) that listens on `fahwa_jobs` and wakes the worker's loop when a job of
//! one of its kinds is enqueued or retried. It reconnects with a capped backoff when the
//! connection drops, and wakes the loop once connected, for whatever was enqueued meanwhile;
//! the loop polls as well, so a lost notification costs at most one poll interval.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use tokio::sync::Notify;
use tokio_postgres::{AsyncMessage, NoTls};

use super::CHANNEL;
use super::backoff::doubled;

const FIRST_RETRY: Duration = Duration::from_millis(50);
const LAST_RETRY: Duration = Duration::from_secs(5);

/// Listens until the task is aborted.
pub(crate) async fn listen(database_url: String, kinds: Vec<&'static str>, wake: Arc<Notify>) {
    let mut config: tokio_postgres::Config = match database_url.parse() {
        Ok(config) => config,
        Err(e) => {
            tracing::error!(error = %e, "jobs: the database URL does not parse; workers only poll");
            return;
        }
    };
    config
        .application_name("fahwa-jobs")
        // A peer that vanishes without closing is noticed, and the connection made again.
        .keepalives(true)
        .keepalives_idle(Duration::from_secs(30));
    let mut retry = FIRST_RETRY;
    loop {
        let ended = session(&config, &kinds, &wake).await;
        if ended.listened {
            retry = FIRST_RETRY;
        }
        match ended.error {
            Some(e) => {
                tracing::warn!(error = %e, retry_in = ?retry, "jobs: no notification connection")
            }
            None => tracing::warn!(retry_in = ?retry, "jobs: the notification connection closed"),
        }
        tokio::time::sleep(retry).await;
        retry = doubled(retry, LAST_RETRY);
    }
}

/// How a connection ended.
struct Ended {
    /// It had been listening.
    listened: bool,
    /// Why, unless the server closed it.
    error: Option<tokio_postgres::Error>,
}

/// One connection: LISTEN, then wake the loop for each notification of one of `kinds`, until
/// the connection ends.
async fn session(config: &tokio_postgres::Config, kinds: &[&'static str], wake: &Notify) -> Ended {
    let ended = |listened, error| Ended { listened, error };
    let (client, mut connection) = match config.connect(NoTls).await {
        Ok(connected) => connected,
        Err(e) => return ended(false, Some(e)),
    };
    // The connection is driven here, in this task, so aborting the task closes it.
    let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
    {
        let sql = format!("LISTEN {CHANNEL}");
        let listen = client.batch_execute(&sql);
        tokio::pin!(listen);
        loop {
            tokio::select! {
                done = &mut listen => match done {
                    Ok(()) => break,
                    Err(e) => return ended(false, Some(e)),
                },
                message = messages.next() => match message {
                    Some(Ok(_)) => {}
                    Some(Err(e)) => return ended(false, Some(e)),
                    None => return ended(false, None),
                },
            }
        }
    }
    tracing::debug!("jobs: listening for notifications");
    // Whatever was enqueued while no connection listened.
    wake.notify_one();
    while let Some(message) = messages.next().await {
        match message {
            Ok(AsyncMessage::Notification(n)) if kinds.contains(&n.payload()) => wake.notify_one(),
            Ok(_) => {}
            Err(e) => return ended(true, Some(e)),
        }
    }
    drop(client);
    ended(true, None)
}
