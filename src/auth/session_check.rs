//! Whether the session behind an access token still stands. A token's claims are a cache of
//! who its bearer is: a log-out, a reused refresh token, a removal or a role change ends the
//! session in PostgreSQL, and every request checks that here. An answer is remembered for
//! [`STANDING_TTL`]; whoever ends a session forgets the tenant's answers on every instance at
//! once (`accounts::end_sessions`), and the time limit bounds an instance that missed that.

use std::time::Duration;

use moka::sync::Cache;
use scoped_futures::ScopedFutureExt;
use uuid::Uuid;

use super::MemberClaims;
use crate::db::Db;
use crate::error::AppResult;

/// What a caller whose session ended is told.
pub const SESSION_ENDED: &str = "this session has ended; sign in again";

/// How long an instance may go on honouring a session ended elsewhere, had it missed the word.
pub const STANDING_TTL: Duration = Duration::from_secs(1);

#[derive(Clone)]
struct Standing {
    tenant: Uuid,
    member: Uuid,
    live: bool,
}

/// Clones share one cache.
#[derive(Clone)]
pub struct SessionCheck(Cache<Uuid, Standing>);

impl Default for SessionCheck {
    fn default() -> Self {
        Self(
            Cache::builder()
                .max_capacity(100_000)
                .time_to_live(STANDING_TTL)
                .support_invalidation_closures()
                .build(),
        )
    }
}

impl SessionCheck {
    /// True while the token's session (its family, for its member and role) has not ended.
    /// A remembered answer is read without waiting on anything (this is on every request's
    /// path); a missing one is looked up. Requests that miss together each look it up, which
    /// is one statement per session and second at most a few times over.
    pub async fn stands(&self, db: &Db, claims: &MemberClaims) -> AppResult<bool> {
        let family = claims.family_id;
        let standing = match self.0.get(&family) {
            Some(standing) => standing,
            None => {
                let (members, roles) = (&[claims.member_id][..], &[claims.role.as_str()][..]);
                let ended = db
                    .outside_tenants(|conn| {
                        async move {
                            crate::db::sessions::ended(conn, &[family], members, roles).await
                        }
                        .scope_boxed()
                    })
                    .await?;
                let standing = Standing {
                    tenant: claims.tenant_id,
                    member: claims.member_id,
                    live: ended.is_empty(),
                };
                self.0.insert(family, standing.clone());
                standing
            }
        };
        // A family is one member's: a token naming another member with it is not this session.
        Ok(standing.live && standing.member == claims.member_id)
    }

    /// Forgets what is known of `tenant`'s sessions (one member's, when given).
    pub fn forget(&self, tenant: Uuid, member: Option<Uuid>) {
        let which = move |_: &Uuid, s: &Standing| {
            s.tenant == tenant && member.is_none_or(|m| m == s.member)
        };
        if let Err(e) = self.0.invalidate_entries_if(which) {
            tracing::warn!(error = %e, "could not forget sessions selectively");
            self.0.invalidate_all();
        }
    }

    pub fn forget_all(&self) {
        self.0.invalidate_all();
    }
}
