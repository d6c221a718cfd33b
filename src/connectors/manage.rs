//! Connecting, listing, syncing and disconnecting integrations (ADMIN and above, each action
//! audited). Credentials are checked with the provider, sealed, and never returned, logged or
//! audited; a connection starts its first sync (the backfill) at once.

use std::sync::Arc;

use chrono::Utc;
use scoped_futures::ScopedFutureExt;
use serde_json::{Value, json};
use uuid::Uuid;

use super::api::ApiError;
use super::provider::Connector;
use super::{Acting, IntegrationStatus, Provider, Services};
use crate::auth::{Role, acting};
use crate::db::Conn;
use crate::db::audit::{self, Actor, AuditEntry};
use crate::db::integrations::{self as rows, IntegrationRow, Listed};
use crate::error::{AppError, AppResult};
use crate::jobs::{self, NewJob};
use crate::validate;

/// The job that syncs one integration (payload `{ "integration": id }`).
pub const SYNC_KIND: &str = "connector.sync";
/// Credentials as sent are small; anything larger is a mistake.
const MAX_CREDENTIALS_BYTES: usize = 4 * 1024;

fn credentials_context(id: Uuid) -> String {
    format!("integration:{id}:credentials")
}

fn secret_context(id: Uuid) -> String {
    format!("integration:{id}:webhook_secret")
}

/// The connector of an integration, its credentials opened.
pub fn connector(services: &Services, row: &IntegrationRow) -> AppResult<Arc<dyn Connector>> {
    let provider = Provider::from_stored(&row.provider)
        .ok_or_else(|| AppError::internal(anyhow::anyhow!("unknown provider {}", row.provider)))?;
    if row.status == "DISCONNECTED" {
        return Err(AppError::bad_input("this integration is disconnected"));
    }
    let credentials: Value = serde_json::from_slice(
        &services
            .vault
            .open(&row.credentials, &credentials_context(row.id))?,
    )
    .map_err(|e| AppError::internal(anyhow::anyhow!("sealed credentials: {e}")))?;
    let webhook_secret = match &row.webhook_secret {
        Some(sealed) => Some(
            String::from_utf8(services.vault.open(sealed, &secret_context(row.id))?)
                .map_err(|e| AppError::internal(anyhow::anyhow!("sealed secret: {e}")))?,
        ),
        None => None,
    };
    match provider {
        Provider::Stripe => Ok(Arc::new(super::stripe::Stripe {
            base: services.endpoints.stripe.clone(),
            api_key: super::stripe::connector::api_key_of(&credentials)
                .map_err(AppError::bad_input)?,
            webhook_secret,
            http: services.http.clone(),
            budgets: services.budget.clone(),
            retry: services.retry,
            account: row.id.to_string(),
        })),
        Provider::Paypal => {
            let (client_id, client_secret) = super::paypal::connector::credentials_of(&credentials)
                .map_err(AppError::bad_input)?;
            Ok(Arc::new(super::paypal::Paypal {
                base: services.endpoints.paypal.clone(),
                client_id,
                client_secret,
                webhook_id: webhook_secret,
                http: services.http.clone(),
                budgets: services.budget.clone(),
                tokens: services.tokens.clone(),
                retry: services.retry,
                account: row.id.to_string(),
                seen: Default::default(),
            }))
        }
        other => Err(not_available(other)),
    }
}

fn not_available(provider: Provider) -> AppError {
    AppError::bad_input(format!(
        "input.provider: {} is not available yet (Stripe and PayPal are)",
        provider.stored()
    ))
}

/// What a member may send as credentials for `provider`.
fn check_credentials(provider: Provider, credentials: &Value) -> AppResult<()> {
    if !credentials.is_object() {
        return Err(AppError::bad_input("input.credentials: an object"));
    }
    if credentials.to_string().len() > MAX_CREDENTIALS_BYTES {
        return Err(AppError::bad_input(format!(
            "input.credentials: at most {MAX_CREDENTIALS_BYTES} bytes"
        )));
    }
    match provider {
        Provider::Stripe => super::stripe::connector::api_key_of(credentials)
            .map(|_| ())
            .map_err(|e| AppError::bad_input(format!("input.{e}"))),
        Provider::Paypal => super::paypal::connector::credentials_of(credentials)
            .map(|_| ())
            .map_err(|e| AppError::bad_input(format!("input.{e}"))),
        other => Err(not_available(other)),
    }
}

fn check_secret(secret: Option<&str>) -> AppResult<()> {
    match secret {
        Some(s) if s.is_empty() || s.len() > 255 || s.chars().any(char::is_control) => Err(
            AppError::bad_input("input.webhookSecret: 1 to 255 printable characters"),
        ),
        _ => Ok(()),
    }
}

/// Why a provider refused a connection, in words a member can act on (never the credentials).
fn refused(e: ApiError) -> AppError {
    match e {
        ApiError::Unauthorized { provider } => AppError::bad_input(format!(
            "input.credentials: {provider} refused them; check the key and its permissions"
        )),
        ApiError::Refused { message, .. } => {
            AppError::bad_input(format!("input.credentials: the provider said: {message}"))
        }
        other => {
            tracing::warn!(error = %other, "a provider could not be reached while connecting");
            AppError::Busy {
                retry_after_secs: 30,
            }
        }
    }
}

/// The audit record of a member's action on an integration.
async fn record(
    conn: &mut Conn,
    meta: &crate::db::audit::RequestMeta,
    member: &crate::auth::MemberClaims,
    action: &'static str,
    id: Uuid,
    details: Value,
) -> AppResult<()> {
    audit::record(
        conn,
        meta,
        AuditEntry {
            tenant_id: Some(member.tenant_id),
            actor: Actor::Member(member.member_id),
            action,
            target_type: Some("Integration"),
            target_id: Some(id.to_string()),
            details,
        },
    )
    .await
}

pub async fn connect(
    acting: &Acting<'_>,
    provider: Provider,
    credentials: Value,
    webhook_secret: Option<String>,
) -> AppResult<IntegrationRow> {
    let member = acting.principal.member_at_least(Role::Admin)?.clone();
    check_credentials(provider, &credentials)?;
    check_secret(webhook_secret.as_deref())?;
    let services = acting.services;
    let id = Uuid::now_v7();
    let sealed = services
        .vault
        .seal(credentials.to_string().as_bytes(), &credentials_context(id))?;
    let sealed_secret = webhook_secret
        .as_deref()
        .map(|s| services.vault.seal(s.as_bytes(), &secret_context(id)))
        .transpose()?;
    let row = IntegrationRow {
        id,
        tenant_id: member.tenant_id,
        provider: provider.stored().to_string(),
        status: "SYNCING".into(),
        credentials: sealed,
        webhook_secret: sealed_secret,
        created_by: Some(member.member_id),
        created_at: Utc::now(),
        last_sync_at: None,
        last_error: None,
        checkpoint: None,
        disconnected_at: None,
    };
    connector(services, &row)?
        .authenticate()
        .await
        .map_err(refused)?;
    let meta = acting.meta;
    let tenant_id = member.tenant_id;
    let stored = row.clone();
    services
        .db
        .tenant(tenant_id, |conn| {
            async move {
                acting::member_at_least(conn, &member, Role::Admin).await?;
                IntegrationRow::insert(conn, &stored).await?;
                enqueue_sync(conn, tenant_id, id).await?;
                record(
                    conn,
                    meta,
                    &member,
                    "integration.connect",
                    id,
                    json!({
                        "provider": provider.stored(),
                        "webhookSecret": stored.webhook_secret.is_some(),
                    }),
                )
                .await?;
                Ok(())
            }
            .scope_boxed()
        })
        .await?;
    Ok(row)
}

pub async fn enqueue_sync(conn: &mut Conn, tenant: Uuid, integration: Uuid) -> AppResult<()> {
    let mut job = NewJob::new(
        SYNC_KIND,
        Some(tenant),
        json!({ "integration": integration.to_string() }),
    );
    job.max_attempts = 8;
    jobs::enqueue(conn, job).await?;
    Ok(())
}

pub async fn list(acting: &Acting<'_>) -> AppResult<Vec<Listed>> {
    let member = acting.principal.member_at_least(Role::Admin)?.clone();
    acting
        .services
        .db
        .tenant(member.tenant_id, |conn| {
            async move {
                acting::member_at_least(conn, &member, Role::Admin).await?;
                let list = IntegrationRow::list(conn).await?;
                let ids: Vec<Uuid> = list.iter().map(|r| r.id).collect();
                let waiting = rows::waiting(conn, &ids).await?;
                Ok(list
                    .into_iter()
                    .map(|row| Listed {
                        waiting: waiting
                            .iter()
                            .find(|(id, _)| *id == row.id)
                            .map(|(_, w)| w.clone()),
                        row,
                    })
                    .collect())
            }
            .scope_boxed()
        })
        .await
}

/// Starts a sync unless one is under way; returns the integration as it then stands.
pub async fn sync(acting: &Acting<'_>, id: &str) -> AppResult<IntegrationRow> {
    let member = acting.principal.member_at_least(Role::Admin)?.clone();
    let id = validate::uuid(id, "id")?;
    let meta = acting.meta;
    acting
        .services
        .db
        .tenant(member.tenant_id, |conn| {
            async move {
                acting::member_at_least(conn, &member, Role::Admin).await?;
                let mut row = IntegrationRow::lock(conn, id).await?;
                if row.status == "DISCONNECTED" {
                    return Err(AppError::bad_input(
                        "id: this integration is disconnected; connect it again",
                    ));
                }
                let started = row.status != "SYNCING";
                if started {
                    IntegrationRow::set_status(conn, id, "SYNCING", row.last_error.as_deref())
                        .await?;
                    enqueue_sync(conn, member.tenant_id, id).await?;
                    row.status = "SYNCING".into();
                }
                record(
                    conn,
                    meta,
                    &member,
                    "integration.sync",
                    id,
                    json!({ "started": started }),
                )
                .await?;
                Ok(row)
            }
            .scope_boxed()
        })
        .await
}

/// Disconnects: the secrets are erased and no delivery is accepted any more; what was synced
/// stays.
pub async fn disconnect(acting: &Acting<'_>, id: &str) -> AppResult<bool> {
    let member = acting.principal.member_at_least(Role::Admin)?.clone();
    let id = validate::uuid(id, "id")?;
    let meta = acting.meta;
    acting
        .services
        .db
        .tenant(member.tenant_id, |conn| {
            async move {
                acting::member_at_least(conn, &member, Role::Admin).await?;
                let row = IntegrationRow::lock(conn, id).await?;
                IntegrationRow::disconnect(conn, id).await?;
                record(
                    conn,
                    meta,
                    &member,
                    "integration.disconnect",
                    id,
                    json!({
                        "provider": row.provider,
                        "alreadyDisconnected": row.status == "DISCONNECTED",
                    }),
                )
                .await?;
                Ok(true)
            }
            .scope_boxed()
        })
        .await
}

/// The status a member sees.
pub fn status_of(row: &IntegrationRow) -> IntegrationStatus {
    IntegrationStatus::from_stored(&row.status)
}

/// Seals every integration's secrets again under the current key where another sealed them
/// (`fahwa rotate-key`); returns how many integrations there are and how many were sealed
/// again. Old keys stay configured until this has run.
pub async fn rotate_keys(services: &Services) -> AppResult<(usize, usize)> {
    let tenants = services
        .db
        .scoped(crate::db::Scope::Operator, |conn| {
            async move { crate::db::tenants::TenantRow::ids(conn).await }.scope_boxed()
        })
        .await?;
    let (mut seen, mut resealed) = (0, 0);
    for tenant in tenants {
        let (s, r) = services
            .db
            .tenant(tenant, |conn| {
                async move {
                    let (mut seen, mut resealed) = (0, 0);
                    for row in IntegrationRow::list(conn).await? {
                        seen += 1;
                        let stale = |sealed: &str| {
                            !sealed.is_empty() && services.vault.needs_rotation(sealed)
                        };
                        let secret_stale = row.webhook_secret.as_deref().is_some_and(stale);
                        if !stale(&row.credentials) && !secret_stale {
                            continue;
                        }
                        let reseal = |sealed: &str, context: &str| -> AppResult<String> {
                            if sealed.is_empty() {
                                return Ok(String::new());
                            }
                            let plain = services.vault.open(sealed, context)?;
                            services.vault.seal(&plain, context)
                        };
                        let credentials = reseal(&row.credentials, &credentials_context(row.id))?;
                        let secret = row
                            .webhook_secret
                            .as_deref()
                            .map(|s| reseal(s, &secret_context(row.id)))
                            .transpose()?;
                        IntegrationRow::reseal(conn, row.id, &credentials, secret.as_deref())
                            .await?;
                        resealed += 1;
                    }
                    Ok((seen, resealed))
                }
                .scope_boxed()
            })
            .await?;
        seen += s;
        resealed += r;
    }
    Ok((seen, resealed))
}
