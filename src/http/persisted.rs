//! Automatic persisted queries, as Apollo's clients speak them (`extensions.persistedQuery`,
//! version 1): a request may carry only the SHA-256 of its query; an unknown hash answers
//! `PersistedQueryNotFound` (HTTP 200, code `PERSISTED_QUERY_NOT_FOUND`, as Apollo Server
//! does), and the client sends the query with its hash once, which is then kept for every
//! instance (Redis, or in process without it) for [`crate::kv::BLOB_TTL`].

use async_graphql::{ErrorExtensionValues, Request, ServerError};
use axum::http::StatusCode;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::kv::{BLOB_TTL, Kv};

/// Longer queries run but are not kept: a client sends them whole again.
const MAX_KEPT_BYTES: usize = 256 * 1024;

/// Why a persisted-query request cannot run as sent.
#[derive(Debug, PartialEq, Eq)]
pub enum Refusal {
    /// The hash is not known (any more): the client sends the query with it.
    NotFound,
    /// The extension is malformed, of another version, or its hash is not the query's.
    Bad(String),
}

impl Refusal {
    pub fn status(&self) -> StatusCode {
        match self {
            Refusal::NotFound => StatusCode::OK,
            Refusal::Bad(_) => StatusCode::BAD_REQUEST,
        }
    }

    pub fn error(&self) -> ServerError {
        let (message, code) = match self {
            Refusal::NotFound => (
                "PersistedQueryNotFound".to_string(),
                "PERSISTED_QUERY_NOT_FOUND",
            ),
            Refusal::Bad(why) => (why.clone(), "BAD_USER_INPUT"),
        };
        let mut err = ServerError::new(message, None);
        let mut ext = ErrorExtensionValues::default();
        ext.set("code", code);
        err.extensions = Some(ext);
        err
    }
}

fn key(hash: &str) -> String {
    format!("apq:{hash}")
}

/// The hash a request asks for, if it uses persisted queries.
fn requested_hash(request: &Request) -> Result<Option<String>, Refusal> {
    let Some(ext) = request.extensions.get("persistedQuery") else {
        return Ok(None);
    };
    let ext = ext.clone().into_json().unwrap_or(Value::Null);
    if ext.get("version").and_then(Value::as_i64) != Some(1) {
        return Err(Refusal::Bad(
            "extensions.persistedQuery.version: only version 1 is supported".into(),
        ));
    }
    match ext.get("sha256Hash").and_then(Value::as_str) {
        Some(h) if h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()) => {
            Ok(Some(h.to_ascii_lowercase()))
        }
        _ => Err(Refusal::Bad(
            "extensions.persistedQuery.sha256Hash: must be 64 hexadecimal digits".into(),
        )),
    }
}

/// Fills in the query of a request that sent only its hash, or keeps the query of one that
/// sent both. A store that cannot be reached is logged and treated as empty: the client then
/// sends the query whole.
pub async fn resolve(kv: &Kv, request: &mut Request) -> Result<(), Refusal> {
    let Some(hash) = requested_hash(request)? else {
        return Ok(());
    };
    if request.query.is_empty() {
        let stored = kv.get_blob(&key(&hash)).await.unwrap_or_else(|e| {
            e.report("persisted query look-up");
            None
        });
        let query = stored
            .and_then(|q| String::from_utf8(q.to_vec()).ok())
            .ok_or(Refusal::NotFound)?;
        request.query = query;
        return Ok(());
    }
    if hex::encode(Sha256::digest(request.query.as_bytes())) != hash {
        return Err(Refusal::Bad(
            "extensions.persistedQuery.sha256Hash: provided sha does not match query".into(),
        ));
    }
    if request.query.len() <= MAX_KEPT_BYTES
        && let Err(e) = kv
            .set_blob(&key(&hash), request.query.as_bytes().to_vec(), BLOB_TTL)
            .await
    {
        e.report("persisted query store");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_hash(query: &str, hash: &str) -> Request {
        let mut r = Request::new(query);
        r.extensions.insert(
            "persistedQuery".into(),
            async_graphql::Value::from_json(
                serde_json::json!({ "version": 1, "sha256Hash": hash }),
            )
            .unwrap(),
        );
        r
    }

    #[tokio::test]
    async fn a_hash_is_known_once_its_query_was_sent() {
        let kv = Kv::memory();
        let query = "{ me { id } }";
        let hash = hex::encode(Sha256::digest(query));
        let mut only_hash = with_hash("", &hash);
        assert_eq!(resolve(&kv, &mut only_hash).await, Err(Refusal::NotFound));
        resolve(&kv, &mut with_hash(query, &hash)).await.unwrap();
        let mut only_hash = with_hash("", &hash);
        resolve(&kv, &mut only_hash).await.unwrap();
        assert_eq!(only_hash.query, query);
        let wrong = hex::encode(Sha256::digest("{ other }"));
        assert!(matches!(
            resolve(&kv, &mut with_hash(query, &wrong)).await,
            Err(Refusal::Bad(m)) if m.contains("does not match")
        ));
        assert!(matches!(
            resolve(&kv, &mut with_hash("", "abc")).await,
            Err(Refusal::Bad(_))
        ));
        resolve(&kv, &mut Request::new(query)).await.unwrap();
    }
}
