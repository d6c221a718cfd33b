//! Account operations shared by the GraphQL API and the CLI: sign-up, sessions, members, API keys,
//! tenant settings. Each mutation writes its audit record in the same transaction as its change.

pub mod api_keys;
pub mod members;
pub mod sessions;
pub mod tenant;

use crate::app::App;
use crate::auth::Principal;
use crate::db::audit::RequestMeta;
use uuid::Uuid;

/// After a transaction that ended sessions of `tenant` (one member's, when given) committed:
/// this instance forgets what it knew of them at once, and every other instance when the word
/// reaches it (or, had it missed it, when its answers expire: `auth::session_check`).
pub async fn end_sessions(app: &App, tenant: Uuid, member: Option<Uuid>) {
    app.session_check.forget(tenant, member);
    app.sockets.check_soon();
    let word = vec![crate::live::message::LiveMessage::SessionsEnded { member }];
    if let Err(e) = app.live.publish(tenant, word).await {
        tracing::warn!(error = %e, "could not tell other instances that sessions ended");
    }
}

/// What every operation needs to know about the request it serves.
pub struct Caller<'a> {
    pub app: &'a App,
    pub principal: &'a Principal,
    pub meta: &'a RequestMeta,
}

impl<'a> Caller<'a> {
    /// The caller as a member acting on saved reports.
    pub fn reports(&self) -> crate::reports::Acting<'a> {
        crate::reports::Acting {
            services: &self.app.reports,
            principal: self.principal,
            meta: self.meta,
        }
    }

    /// The caller as a member acting on integrations.
    pub fn connectors(&self) -> crate::connectors::Acting<'a> {
        crate::connectors::Acting {
            services: &self.app.connectors,
            principal: self.principal,
            meta: self.meta,
        }
    }

    /// The caller as a writer of data (events, revenue changes, rates).
    pub fn writer(&self) -> crate::ingestion::Writer<'a> {
        crate::ingestion::Writer {
            db: &self.app.db,
            mirror: self.app.version_mirror(),
            principal: self.principal,
            meta: self.meta,
        }
    }
}
