//! API keys checked in the last moments, so a busy key costs a hash per call instead of a
//! database round trip. A revocation or tenant deletion on this instance takes effect at once;
//! on other instances within [`GRANT_TTL`].

use std::time::Duration;

use moka::future::Cache;
use uuid::Uuid;

use crate::db::api_keys::KeyGrant;

/// How long another instance may still honour a key revoked elsewhere.
pub const GRANT_TTL: Duration = Duration::from_secs(2);

pub struct KeyGrants(Cache<Vec<u8>, KeyGrant>);

impl Default for KeyGrants {
    fn default() -> Self {
        Self(
            Cache::builder()
                .max_capacity(10_000)
                .time_to_live(GRANT_TTL)
                .support_invalidation_closures()
                .build(),
        )
    }
}

impl KeyGrants {
    pub async fn get(&self, hash: &[u8]) -> Option<KeyGrant> {
        self.0.get(hash).await
    }

    /// Only live keys are kept: an unknown or revoked secret is looked up every time.
    pub async fn remember(&self, hash: Vec<u8>, grant: KeyGrant) {
        if !grant.revoked {
            self.0.insert(hash, grant).await;
        }
    }

    pub fn forget_key(&self, key_id: Uuid) {
        self.forget(move |g| g.id == key_id);
    }

    pub fn forget_tenant(&self, tenant_id: Uuid) {
        self.forget(move |g| g.tenant_id == tenant_id);
    }

    fn forget(&self, which: impl Fn(&KeyGrant) -> bool + Send + Sync + 'static) {
        if let Err(e) = self.0.invalidate_entries_if(move |_, g| which(g)) {
            // Only possible without invalidation closures; drop everything rather than keep
            // honouring a revoked key.
            tracing::warn!(error = %e, "could not forget API keys selectively");
            self.0.invalidate_all();
        }
    }
}
