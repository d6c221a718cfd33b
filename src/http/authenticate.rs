//! Turns an `Authorization` header (or a WebSocket `connection_init` value) into a [`Principal`].

use chrono::Utc;
use scoped_futures::ScopedFutureExt;

use crate::app::App;
use crate::auth::secrets::{self, API_KEY_PREFIX};
use crate::auth::session_check::SESSION_ENDED;
use crate::auth::{ApiKeyPrincipal, ApiKeyScope, Principal};
use crate::db::api_keys::{ApiKeyRow, KeyGrant};

/// A key's `lastUsedAt` is written at most this often, so busy keys do not write every call.
const LAST_USED_RESOLUTION_SECS: i64 = 60;

pub async fn authenticate(app: &App, authorization: Option<&str>) -> Principal {
    let Some(value) = authorization.map(str::trim).filter(|v| !v.is_empty()) else {
        return Principal::Anonymous;
    };
    let Some(token) = value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("bearer "))
        .map(str::trim)
    else {
        return Principal::Rejected("use Authorization: Bearer <token>".into());
    };
    if token.starts_with(API_KEY_PREFIX) {
        return api_key(app, token).await;
    }
    match app.tokens.verify(token) {
        Ok(claims) => match app.session_check.stands(&app.db, &claims).await {
            Ok(true) => Principal::Member(claims),
            Ok(false) => Principal::Rejected(SESSION_ENDED.into()),
            Err(e) => {
                e.report("session check");
                Principal::Rejected("could not check the session; try again".into())
            }
        },
        Err(reason) => Principal::Rejected(reason),
    }
}

async fn api_key(app: &App, secret: &str) -> Principal {
    let hash = secrets::digest(secret);
    let cached = app.key_grants.get(&hash).await;
    let from_cache = cached.is_some();
    let found = match cached {
        Some(grant) => Ok(Some(grant)),
        None => {
            let lookup = hash.clone();
            app.db
                .outside_tenants(|conn| {
                    async move { KeyGrant::by_hash(conn, &lookup).await }.scope_boxed()
                })
                .await
        }
    };
    match found {
        Ok(Some(mut key)) if !key.revoked => {
            let stale = key
                .last_used_at
                .is_none_or(|t| (Utc::now() - t).num_seconds() >= LAST_USED_RESOLUTION_SECS);
            if stale {
                touch_last_used(app, key.tenant_id, key.id).await;
                key.last_used_at = Some(Utc::now());
            }
            if stale || !from_cache {
                app.key_grants.remember(hash, key.clone()).await;
            }
            Principal::ApiKey(ApiKeyPrincipal {
                key_id: key.id,
                tenant_id: key.tenant_id,
                scopes: key
                    .scopes
                    .iter()
                    .filter_map(|s| ApiKeyScope::parse(s))
                    .collect(),
            })
        }
        Ok(Some(_)) => Principal::Rejected("this API key has been revoked".into()),
        Ok(None) => Principal::Rejected("unknown API key".into()),
        Err(e) => {
            tracing::error!(error = %e, "API key look-up failed");
            Principal::Rejected("could not check the API key; try again".into())
        }
    }
}

async fn touch_last_used(app: &App, tenant: uuid::Uuid, key: uuid::Uuid) {
    let result = app
        .db
        .tenant(tenant, |conn| {
            async move { ApiKeyRow::touch_last_used(conn, key).await }.scope_boxed()
        })
        .await;
    if let Err(e) = result {
        tracing::warn!(error = %e, "could not record an API key's last use");
    }
}
