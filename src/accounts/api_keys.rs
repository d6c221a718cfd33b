//! API keys: the secret is returned once, at creation, and only its hash is kept.

use scoped_futures::ScopedFutureExt;
use serde_json::json;
use uuid::Uuid;

use super::Caller;
use crate::auth::acting;
use crate::auth::{ApiKeyScope, Role, secrets};
use crate::db::api_keys::{ApiKeyRow, NewApiKey};
use crate::db::audit::{self, Actor, AuditEntry};
use crate::error::{AppError, AppResult};
use crate::validate;

pub async fn create(
    caller: &Caller<'_>,
    name: &str,
    scopes: &[ApiKeyScope],
) -> AppResult<(ApiKeyRow, String)> {
    let actor = caller.principal.member_at_least(Role::Admin)?.clone();
    let name = validate::name(name, "input.name")?;
    if scopes.is_empty() {
        return Err(AppError::bad_input("input.scopes: give at least one scope"));
    }
    let mut scope_names: Vec<String> = scopes.iter().map(|s| s.as_str().to_string()).collect();
    scope_names.sort();
    scope_names.dedup();
    let secret = secrets::generate(secrets::API_KEY_PREFIX);
    let hash = secrets::digest(&secret);
    let prefix = secrets::display_prefix(&secret);
    let meta = caller.meta;
    let tenant_id = actor.tenant_id;
    let row = caller
        .app
        .db
        .tenant(tenant_id, |conn| {
            async move {
                acting::member_at_least(conn, &actor, Role::Admin).await?;
                let row = ApiKeyRow::insert(
                    conn,
                    &NewApiKey {
                        id: Uuid::new_v4(),
                        tenant_id,
                        name: &name,
                        key_prefix: &prefix,
                        key_hash: &hash,
                        scopes: scope_names.clone(),
                        created_by: Some(actor.member_id),
                    },
                )
                .await?;
                audit::record(
                    conn,
                    meta,
                    AuditEntry {
                        tenant_id: Some(tenant_id),
                        actor: Actor::Member(actor.member_id),
                        action: "api_key.create",
                        target_type: Some("ApiKey"),
                        target_id: Some(row.id.to_string()),
                        details: json!({ "name": name, "scopes": scope_names, "prefix": prefix }),
                    },
                )
                .await?;
                Ok(row)
            }
            .scope_boxed()
        })
        .await?;
    Ok((row, secret))
}

pub async fn revoke(caller: &Caller<'_>, id: &str) -> AppResult<bool> {
    let actor = caller.principal.member_at_least(Role::Admin)?.clone();
    let key_id = validate::uuid(id, "id")?;
    let meta = caller.meta;
    let tenant_id = actor.tenant_id;
    caller
        .app
        .db
        .tenant(tenant_id, |conn| {
            async move {
                acting::member_at_least(conn, &actor, Role::Admin).await?;
                let key = ApiKeyRow::revoke(conn, key_id).await?;
                audit::record(
                    conn,
                    meta,
                    AuditEntry {
                        tenant_id: Some(tenant_id),
                        actor: Actor::Member(actor.member_id),
                        action: "api_key.revoke",
                        target_type: Some("ApiKey"),
                        target_id: Some(key_id.to_string()),
                        details: json!({ "name": key.name, "alreadyRevoked": key.revoked_at.is_some() }),
                    },
                )
                .await?;
                Ok(true)
            }
            .scope_boxed()
        })
        .await?;
    caller.app.key_grants.forget_key(key_id);
    Ok(true)
}
