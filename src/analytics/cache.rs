//! The metric cache: results keyed by tenant, query and the tenant's data version, which every
//! ingest bumps in the same transaction as its rows. A repeated dashboard load costs one look-up,
//! and a result can never outlive the data it was computed from.

use diesel::sql_types::{BigInt, Uuid as SqlUuid};
use diesel_async::RunQueryDsl;
use serde::Serialize;
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::db::Conn;
use crate::error::AppResult;
use crate::kv::Kv;

/// A tenant's time zone, data version and tracked keys, read outside any transaction.
#[derive(diesel::QueryableByName)]
pub struct TenantContext {
    #[diesel(sql_type = diesel::sql_types::Text)]
    pub timezone: String,
    #[diesel(sql_type = BigInt)]
    pub data_version: i64,
    /// Property keys the segment rollup holds, in its order.
    #[diesel(sql_type = diesel::sql_types::Array<diesel::sql_types::Text>)]
    pub rollup_properties: Vec<String>,
    /// Whether ingestion deltas wait to be merged into the rollups.
    #[diesel(sql_type = diesel::sql_types::Bool)]
    pub pending: bool,
}

impl TenantContext {
    pub async fn get(conn: &mut Conn, tenant: Uuid) -> AppResult<TenantContext> {
        diesel::sql_query("SELECT * FROM fahwa_tenant_context($1)")
            .bind::<SqlUuid, _>(tenant)
            .get_result(conn)
            .await
            .map_err(|e| match e {
                diesel::result::Error::NotFound => crate::error::AppError::NotFound("tenant"),
                other => other.into(),
            })
    }
}

fn cache_key<Q: Serialize>(tenant: Uuid, version: i64, query: &Q) -> String {
    let digest = Sha256::digest(serde_json::to_vec(query).unwrap_or_default());
    // `mc2`: points carry their bucket as seconds since the first format.
    format!("mc2:{tenant}:{version}:{}", hex::encode(&digest[..16]))
}

/// The cached value of `query` at the tenant's data `version`, if any. Cache failures count as
/// misses (logged): a slower answer beats an error.
pub async fn lookup<T: DeserializeOwned, Q: Serialize>(
    kv: Option<&Kv>,
    tenant: Uuid,
    version: i64,
    query: &Q,
) -> Option<T> {
    let kv = kv?;
    match kv.get_blob(&cache_key(tenant, version, query)).await {
        Ok(Some(bytes)) => {
            if let Ok(value) = serde_json::from_slice(&bytes) {
                metrics::counter!("fahwa_metric_cache_total", "result" => "hit").increment(1);
                return Some(value);
            }
        }
        Ok(None) => {}
        Err(e) => tracing::warn!(error = %e, "metric cache read failed"),
    }
    metrics::counter!("fahwa_metric_cache_total", "result" => "miss").increment(1);
    None
}

/// Several look-ups in one round trip; `None` where missing.
pub async fn lookup_many<T: DeserializeOwned, Q: Serialize>(
    kv: Option<&Kv>,
    tenant: Uuid,
    version: i64,
    queries: &[Q],
) -> Vec<Option<T>> {
    let Some(kv) = kv else {
        return queries.iter().map(|_| None).collect();
    };
    let keys: Vec<String> = queries
        .iter()
        .map(|q| cache_key(tenant, version, q))
        .collect();
    let found = match kv.get_blobs(&keys).await {
        Ok(found) => found,
        Err(e) => {
            tracing::warn!(error = %e, "metric cache read failed");
            keys.iter().map(|_| None).collect()
        }
    };
    found
        .into_iter()
        .map(|bytes| {
            let value = bytes.and_then(|b| serde_json::from_slice(&b).ok());
            let result = if value.is_some() { "hit" } else { "miss" };
            metrics::counter!("fahwa_metric_cache_total", "result" => result).increment(1);
            value
        })
        .collect()
}

pub async fn store<T: Serialize, Q: Serialize>(
    kv: Option<&Kv>,
    tenant: Uuid,
    version: i64,
    query: &Q,
    value: &T,
) {
    let Some(kv) = kv else { return };
    if let Ok(bytes) = serde_json::to_vec(value)
        && let Err(e) = kv
            .set_blob(
                &cache_key(tenant, version, query),
                bytes,
                crate::kv::BLOB_TTL,
            )
            .await
    {
        tracing::warn!(error = %e, "metric cache write failed");
    }
}

/// Returns the cached value for `query` at the tenant's data `version`, or computes and stores it.
pub async fn cached<T, Q, F>(
    kv: Option<&Kv>,
    tenant: Uuid,
    version: i64,
    query: &Q,
    compute: F,
) -> AppResult<T>
where
    T: Serialize + DeserializeOwned,
    Q: Serialize,
    F: AsyncFnOnce() -> AppResult<T>,
{
    if let Some(hit) = lookup(kv, tenant, version, query).await {
        return Ok(hit);
    }
    let value = compute().await?;
    store(kv, tenant, version, query, &value).await;
    Ok(value)
}
