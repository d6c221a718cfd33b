//! Whole GraphQL responses of analytics-only queries, cached per tenant, audience and request
//! under the data version they were computed from. A repeated dashboard load then costs one
//! key-value round trip (the tenant's mirrored version and the stored response together) and no
//! GraphQL work at all; a response is served only while its version is the tenant's current one.
//!
//! Only queries whose every root field is `analytics` or `report` are stored: other fields
//! (members, keys, settings) change without a data version bump. A saved report's changes bump
//! it; its runs, schedule and owner do not, so a query that mentions them is not stored, and
//! its widgets' ranges end with today in the tenant's zone, so its key holds the quarter hour
//! (every zone's midnight falls on one). The audience (member role, or key scopes) is part of
//! the key, so that a field a role may not read is never served from another's answer.

use std::sync::Arc;

use async_graphql::parser::types::{ExecutableDocument, OperationType, Selection};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::analytics::versions;
use crate::auth::Principal;
use crate::kv::Kv;

/// How long a stored response is kept. It is worth something only while the tenant's data
/// version holds, and every distinct request (a range ending "now" is a new one each time) is a
/// new entry: a short life keeps Redis from filling with answers nobody asks for again. The
/// series behind them stay cached longer (`kv::BLOB_TTL`).
const RESPONSE_TTL: std::time::Duration = std::time::Duration::from_secs(60);

/// Seconds a saved report's key holds: every zone's midnight falls on a quarter hour.
pub const REPORT_KEY_SECS: i64 = 900;

/// Bytes of recent responses each instance keeps in memory.
const RECENT_BYTES: u64 = 64 * 1024 * 1024;

/// Copies of recently served responses in this instance, so that a hit reads only the tenant's
/// version from the key-value store instead of the whole document (a 90-day Overview is tens
/// of kilobytes). A copy is served under exactly the rule of the shared store: only while its
/// version is the tenant's current one.
pub struct Recent(moka::future::Cache<String, Arc<Vec<u8>>>);

impl Default for Recent {
    fn default() -> Self {
        Recent(
            moka::future::Cache::builder()
                .max_capacity(RECENT_BYTES)
                .weigher(|k: &String, v: &Arc<Vec<u8>>| {
                    u32::try_from(k.len() + v.len()).unwrap_or(u32::MAX)
                })
                .time_to_live(RESPONSE_TTL)
                .build(),
        )
    }
}

/// What a report shows that changes without a data version bump.
const NOT_VERSIONED: [&str; 4] = ["lastRun", "runs", "schedule", "owner"];

/// One request's place in the cache.
pub struct Probe<'a> {
    kv: &'a Kv,
    tenant: Uuid,
    key: String,
}

/// Who may read what: the tenant and the class of caller whose answers may be shared.
fn audience(principal: &Principal) -> Option<(Uuid, String)> {
    match principal {
        Principal::Member(m) if !m.operator => Some((m.tenant_id, format!("m:{:?}", m.role))),
        Principal::ApiKey(k) => {
            let mut scopes: Vec<String> = k.scopes.iter().map(|s| format!("{s:?}")).collect();
            scopes.sort();
            Some((k.tenant_id, format!("k:{}", scopes.join(","))))
        }
        _ => None,
    }
}

impl<'a> Probe<'a> {
    /// `None` when this request cannot be served from the cache (no reader, or the cache off).
    pub fn new(
        kv: Option<&'a Kv>,
        principal: &Principal,
        request: &async_graphql::Request,
    ) -> Option<Probe<'a>> {
        let kv = kv?;
        let text = &request.query;
        // Anything else (mutations, settings, sign-in) would only ever miss: no round trip.
        let report = text.contains("report");
        if !text.contains("analytics") && !report {
            return None;
        }
        if report && NOT_VERSIONED.iter().any(|field| text.contains(field)) {
            return None;
        }
        let (tenant, audience) = audience(principal)?;
        let quarter = match report {
            true => (chrono::Utc::now().timestamp() / REPORT_KEY_SECS).to_string(),
            false => String::new(),
        };
        let mut hash = Sha256::new();
        for part in [
            audience.as_bytes(),
            request.query.as_bytes(),
            request.operation_name.as_deref().unwrap_or("").as_bytes(),
            quarter.as_bytes(),
        ] {
            hash.update((part.len() as u64).to_be_bytes());
            hash.update(part);
        }
        hash.update(serde_json::to_vec(&request.variables).unwrap_or_default());
        let digest = hash.finalize();
        Some(Probe {
            kv,
            tenant,
            key: format!("rc:{tenant}:{}", hex::encode(&digest[..16])),
        })
    }

    /// The stored response body, if it was computed at the tenant's current data version.
    pub async fn lookup(&self, recent: &Recent) -> Option<Vec<u8>> {
        let hit = match recent.0.get(&self.key).await {
            Some(copy) => match self.version().await {
                Some(current) => match unpack(&copy, current) {
                    Some(body) => Some(body),
                    None => self.shared(recent).await,
                },
                None => None,
            },
            None => self.shared(recent).await,
        };
        let result = if hit.is_some() { "hit" } else { "miss" };
        metrics::counter!("fahwa_response_cache_total", "result" => result).increment(1);
        hit
    }

    /// The tenant's mirrored data version alone.
    async fn version(&self) -> Option<i64> {
        match self.kv.get_many(&[versions::mirror_key(self.tenant)]).await {
            Ok(found) => found.into_iter().next().flatten(),
            // A Redis known to be down was said once, when it went.
            Err(_) if self.kv.redis_down() => None,
            Err(e) => {
                tracing::warn!(error = %e, "response cache read failed");
                None
            }
        }
    }

    /// The response in the shared store (another instance may have stored it), kept here too.
    async fn shared(&self, recent: &Recent) -> Option<Vec<u8>> {
        let found = self
            .kv
            .get_with_blob(&versions::mirror_key(self.tenant), &self.key)
            .await;
        match found {
            Ok((Some(current), Some(stored))) => {
                let body = unpack(&stored, current)?;
                recent.0.insert(self.key.clone(), stored).await;
                Some(body)
            }
            Ok(_) => None,
            Err(e) => {
                tracing::warn!(error = %e, "response cache read failed");
                None
            }
        }
    }

    /// Stores `body`, computed at data `version`, and raises the tenant's mirrored version to
    /// it (a version just read from PostgreSQL).
    pub async fn store(&self, recent: &Recent, version: i64, body: &[u8]) {
        let mut packed = Vec::with_capacity(8 + body.len());
        packed.extend_from_slice(&version.to_be_bytes());
        packed.extend_from_slice(body);
        let packed = Arc::new(packed);
        recent.0.insert(self.key.clone(), packed.clone()).await;
        if let Err(e) = self
            .kv
            .set_blob(&self.key, packed.as_ref().clone(), RESPONSE_TTL)
            .await
        {
            tracing::warn!(error = %e, "response cache write failed");
        }
        versions::raise(self.kv, self.tenant, version).await;
    }
}

fn unpack(stored: &[u8], current: i64) -> Option<Vec<u8>> {
    let (version, body) = stored.split_at_checked(8)?;
    let version = i64::from_be_bytes(version.try_into().ok()?);
    (version == current).then(|| body.to_vec())
}

/// Whether the operation the request runs is a query that selects only `analytics` and `report`
/// (and `__typename`) at its root. Anything else, fragments at the root included, is not stored.
pub fn cacheable(doc: &ExecutableDocument, wanted: Option<&str>) -> bool {
    let mut chosen = doc
        .operations
        .iter()
        .filter(|(name, _)| wanted.is_none() || name.map(|n| n.as_str()) == wanted);
    let (Some((_, op)), None) = (chosen.next(), chosen.next()) else {
        return false;
    };
    op.node.ty == OperationType::Query
        && op.node.directives.is_empty()
        && op
            .node
            .selection_set
            .node
            .items
            .iter()
            .all(|s| match &s.node {
                Selection::Field(f) => {
                    matches!(
                        f.node.name.node.as_str(),
                        "analytics" | "report" | "__typename"
                    ) && f.node.directives.is_empty()
                }
                _ => false,
            })
}

#[cfg(test)]
mod tests {
    use uuid::Uuid;

    use super::{Kv, Principal, Probe, unpack};
    use crate::auth::{ApiKeyPrincipal, ApiKeyScope, MemberClaims, Role};

    fn request(query: &str, op: Option<&str>) -> async_graphql::Request {
        let r = async_graphql::Request::new(query);
        match op {
            Some(op) => r.operation_name(op),
            None => r,
        }
    }

    fn reads_only_analytics(request: &async_graphql::Request) -> bool {
        async_graphql::parser::parse_query(&request.query)
            .is_ok_and(|doc| super::cacheable(&doc, request.operation_name.as_deref()))
    }

    #[test]
    fn only_analytics_queries_are_stored() {
        let q = "query A { analytics(range: {from: \"x\", to: \"y\"}, granularity: DAY) { __typename } __typename }";
        assert!(reads_only_analytics(&request(q, None)));
        assert!(!reads_only_analytics(&request(
            "query { analytics(range: {}, granularity: DAY) { __typename } me { id } }",
            None
        )));
        assert!(!reads_only_analytics(&request(
            "mutation { analytics { __typename } }",
            None
        )));
        assert!(!reads_only_analytics(&request(
            "query { ...F } fragment F on Query { me { id } }",
            None
        )));
        let two = "query A { analytics { __typename } } query B { me { id } }";
        assert!(reads_only_analytics(&request(two, Some("A"))));
        assert!(!reads_only_analytics(&request(two, Some("B"))));
        assert!(!reads_only_analytics(&request(two, None)));
        assert!(!reads_only_analytics(&request(
            "query { analytics @include(if: $x) { __typename } }",
            None
        )));
        assert!(!reads_only_analytics(&request("query {", None)));
        assert!(reads_only_analytics(&request(
            "query R { report(id: \"x\") { name } }",
            None
        )));
        assert!(!reads_only_analytics(&request(
            "query { reports { totalCount } }",
            None
        )));
    }

    #[test]
    fn report_answers_that_show_unversioned_fields_are_not_stored() {
        let kv = Kv::memory();
        let reader = Principal::ApiKey(ApiKeyPrincipal {
            key_id: Uuid::new_v4(),
            tenant_id: Uuid::new_v4(),
            scopes: vec![ApiKeyScope::Read],
        });
        let probe = |q: &str| Probe::new(Some(&kv), &reader, &request(q, None)).is_some();
        assert!(probe(
            "{ report(id: \"x\") { widgets { data { total } } } }"
        ));
        assert!(!probe("{ report(id: \"x\") { lastRun { status } } }"));
        assert!(!probe("{ report(id: \"x\") { owner { name } } }"));
        assert!(!probe("{ report(id: \"x\") { schedule { cron } } }"));
    }

    fn member(tenant: Uuid, role: Role, operator: bool) -> Principal {
        Principal::Member(MemberClaims {
            member_id: Uuid::new_v4(),
            tenant_id: tenant,
            role,
            operator,
            family_id: Uuid::new_v4(),
            expires_at: chrono::Utc::now(),
        })
    }

    #[test]
    fn answers_are_shared_within_one_tenant_and_audience_only() {
        let kv = Kv::memory();
        let req = request("{ analytics { __typename } }", None);
        let key = |p: &Principal| Probe::new(Some(&kv), p, &req).map(|probe| probe.key);
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        let viewer = key(&member(a, Role::Viewer, false)).unwrap();
        assert_eq!(Some(viewer.clone()), key(&member(a, Role::Viewer, false)));
        assert_ne!(Some(viewer.clone()), key(&member(a, Role::Owner, false)));
        assert_ne!(Some(viewer.clone()), key(&member(b, Role::Viewer, false)));
        let reader = Principal::ApiKey(ApiKeyPrincipal {
            key_id: Uuid::new_v4(),
            tenant_id: a,
            scopes: vec![ApiKeyScope::Read],
        });
        assert_ne!(Some(viewer), key(&reader));
        assert_eq!(
            key(&member(a, Role::Owner, true)),
            None,
            "operators read any tenant"
        );
        assert_eq!(key(&Principal::Anonymous), None);
        assert!(
            Probe::new(None, &reader, &req).is_none(),
            "the cache is off"
        );
        let me = request("{ me { id } }", None);
        assert!(
            Probe::new(Some(&kv), &reader, &me).is_none(),
            "not analytics"
        );
        let other = request("{ analytics { __typename } }", Some("Other"));
        assert_ne!(
            Probe::new(Some(&kv), &reader, &req).map(|p| p.key),
            Probe::new(Some(&kv), &reader, &other).map(|p| p.key)
        );
    }

    #[test]
    fn a_stored_body_serves_its_own_version_only() {
        let mut stored = 7i64.to_be_bytes().to_vec();
        stored.extend_from_slice(b"{}");
        assert_eq!(unpack(&stored, 7), Some(b"{}".to_vec()));
        assert_eq!(unpack(&stored, 8), None);
        assert_eq!(unpack(b"short", 7), None);
    }
}
