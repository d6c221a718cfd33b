//! The member sessions behind this instance's open WebSockets. A socket outlives the access
//! token it was opened with, so every few seconds the sockets whose token expired, or whose
//! session ended (signed out, member removed, role changed), are told to close; the client
//! reconnects with a fresh token or not at all.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use scoped_futures::ScopedFutureExt;
use tokio::sync::{Notify, oneshot};
use uuid::Uuid;

use crate::auth::MemberClaims;
use crate::db::Db;
use crate::error::AppResult;

/// How often sockets are checked.
pub const CHECK_EVERY: Duration = Duration::from_secs(1);

/// Why the server closes a socket: a WebSocket close code and reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Closing {
    pub code: u16,
    pub reason: &'static str,
}

/// 4403, not 4401: graphql-ws gives up on 4401 for good, and retries 4403 with its
/// `connectionParams` called again, which is where a client puts its fresh token.
pub const TOKEN_EXPIRED: Closing = Closing {
    code: 4403,
    reason: "access token expired: reconnect with a fresh one",
};
pub const SESSION_ENDED: Closing = Closing {
    code: 4403,
    reason: "session ended: sign in again",
};

struct Open {
    claims: MemberClaims,
    close: oneshot::Sender<Closing>,
}

#[derive(Default)]
pub struct MemberSockets {
    open: Mutex<HashMap<u64, Open>>,
    next: AtomicU64,
    /// Sessions ended somewhere: check now rather than at the next tick.
    soon: Notify,
}

/// Keeps a socket registered while it lives (held in the connection's GraphQL data).
pub struct Registration {
    sockets: Arc<MemberSockets>,
    id: u64,
}

impl MemberSockets {
    pub fn register(
        self: &Arc<Self>,
        claims: MemberClaims,
        close: oneshot::Sender<Closing>,
    ) -> Registration {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        self.lock().insert(id, Open { claims, close });
        Registration {
            sockets: self.clone(),
            id,
        }
    }

    /// Asks the checking task for a check now.
    pub fn check_soon(&self) {
        self.soon.notify_one();
    }

    /// Resolves when a check was asked for.
    pub async fn asked_to_check(&self) {
        self.soon.notified().await;
    }

    /// Member sockets open on this instance.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Open>> {
        self.open.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn close(&self, ids: impl IntoIterator<Item = u64>, why: &Closing) {
        let mut open = self.lock();
        for id in ids {
            if let Some(socket) = open.remove(&id) {
                let _ = socket.close.send(why.clone());
            }
        }
    }

    /// One check of every open socket.
    pub async fn check(&self, db: &Db) -> AppResult<()> {
        // The token check's own rule (whole seconds, its leeway): a socket closes exactly when
        // its token would no longer be accepted at `connection_init`.
        let now = Utc::now().timestamp();
        type Sockets = Vec<(u64, MemberClaims)>;
        let (expired, live): (Sockets, Sockets) = self
            .lock()
            .iter()
            .map(|(id, s)| (*id, s.claims.clone()))
            .partition(|(_, c)| crate::auth::tokens::expired(c.expires_at.timestamp(), now));
        self.close(expired.into_iter().map(|(id, _)| id), &TOKEN_EXPIRED);
        if live.is_empty() {
            return Ok(());
        }
        // A session open in several tabs or widgets is checked once.
        let sessions: HashSet<(Uuid, Uuid, &str)> = live
            .iter()
            .map(|(_, c)| (c.family_id, c.member_id, c.role.as_str()))
            .collect();
        let families: Vec<Uuid> = sessions.iter().map(|s| s.0).collect();
        let members: Vec<Uuid> = sessions.iter().map(|s| s.1).collect();
        let roles: Vec<&str> = sessions.iter().map(|s| s.2).collect();
        let (families, members, roles) = (&families, &members, &roles);
        let ended = db
            .outside_tenants(|conn| {
                async move { crate::db::sessions::ended(conn, families, members, roles).await }
                    .scope_boxed()
            })
            .await?;
        if ended.is_empty() {
            return Ok(());
        }
        let ended: HashSet<Uuid> = ended.into_iter().collect();
        self.close(
            live.iter()
                .filter(|(_, c)| ended.contains(&c.family_id))
                .map(|(id, _)| *id),
            &SESSION_ENDED,
        );
        Ok(())
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.sockets.lock().remove(&self.id);
    }
}
