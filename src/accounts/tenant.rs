//! Tenant settings.

use scoped_futures::ScopedFutureExt;
use serde_json::json;

use super::Caller;
use crate::auth::Role;
use crate::auth::acting;
use crate::db::audit::{self, Actor, AuditEntry};
use crate::db::tenants::{TenantChanges, TenantRow};
use crate::db::{Scope, set_scope};
use crate::error::{AppError, AppResult};
use crate::validate;

pub struct UpdateTenant {
    pub name: Option<String>,
    pub timezone: Option<String>,
    pub currency: Option<String>,
    /// `Some(None)` keeps events forever.
    pub retention_months: Option<Option<i32>>,
    pub tracked_properties: Option<Vec<String>>,
}

pub const MAX_RETENTION_MONTHS: i32 = 120;

pub async fn update(caller: &Caller<'_>, input: UpdateTenant) -> AppResult<TenantRow> {
    let actor = caller.principal.member_at_least(Role::Admin)?.clone();
    let changes = TenantChanges {
        name: input
            .name
            .as_deref()
            .map(|n| validate::name(n, "input.name"))
            .transpose()?,
        timezone: input
            .timezone
            .as_deref()
            .map(|t| validate::timezone(t, "input.timezone"))
            .transpose()?,
        currency: input
            .currency
            .as_deref()
            .map(|c| validate::currency(c, "input.currency"))
            .transpose()?,
        retention_months: match input.retention_months {
            Some(Some(m)) if !(1..=MAX_RETENTION_MONTHS).contains(&m) => {
                return Err(AppError::bad_input(format!(
                    "input.retentionMonths: must be 1 to {MAX_RETENTION_MONTHS}, or null to keep everything"
                )));
            }
            other => other,
        },
        tracked_properties: input
            .tracked_properties
            .map(|keys| validate::tracked_properties(keys, "input.trackedProperties"))
            .transpose()?,
    };
    let meta = caller.meta;
    let tenant_id = actor.tenant_id;
    let (before, after) = caller
        .app
        .db
        .tenant(tenant_id, |conn| {
            async move {
                acting::member_at_least(conn, &actor, Role::Admin).await?;
                let before = TenantRow::find(conn, tenant_id).await?;
                if let Some(currency) = &changes.currency
                    && *currency != before.currency
                    && crate::revenue::has_changes(conn).await?
                {
                    // Stored amounts and rates are in the old currency: converting them all
                    // needs rates between the two currencies for every day, which no one gave.
                    return Err(AppError::bad_input(format!(
                        "input.currency: revenue is already stored in {}; the reporting currency cannot change once revenue exists",
                        before.currency
                    )));
                }
                TenantRow::update(conn, tenant_id, &changes).await?;
                let after = TenantRow::find(conn, tenant_id).await?;
                if before.timezone != after.timezone {
                    crate::revenue::rebuild_periods(conn, tenant_id).await?;
                }
                audit::record(
                    conn,
                    meta,
                    AuditEntry {
                        tenant_id: Some(tenant_id),
                        actor: Actor::Member(actor.member_id),
                        action: "tenant.update",
                        target_type: Some("Tenant"),
                        target_id: Some(tenant_id.to_string()),
                        details: json!({
                            "before": { "name": before.name, "timezone": before.timezone, "currency": before.currency, "retentionMonths": before.retention_months, "trackedProperties": before.tracked_properties },
                            "after": { "name": after.name, "timezone": after.timezone, "currency": after.currency, "retentionMonths": after.retention_months, "trackedProperties": after.tracked_properties },
                        }),
                    },
                )
                .await?;
                Ok((before, after))
            }
            .scope_boxed()
        })
        .await?;
    if before.timezone != after.timezone || before.tracked_properties != after.tracked_properties {
        // Days are local: every rollup moves to the new zone's days. Tracked keys change what
        // the segment rollup holds.
        crate::events::rollups::rebuild_in_background(&caller.app.db, tenant_id);
    }
    if before.timezone != after.timezone
        && let Some(limiter) = &caller.app.limiter
    {
        // Off-peak hours may be the tenant's: this instance reads the new zone at once, others
        // within minutes.
        limiter.forget_zone(tenant_id).await;
    }
    Ok(after)
}

/// Deletes the tenant and everything it owns. OWNER only, and the slug must be typed again.
/// The audit record is kept without a tenant, so that operators can still see who did it.
pub async fn delete(caller: &Caller<'_>, confirm_slug: &str) -> AppResult<bool> {
    let actor = caller.principal.member_at_least(Role::Owner)?.clone();
    let meta = caller.meta;
    let tenant_id = actor.tenant_id;
    let confirm_slug = confirm_slug.trim().to_string();
    caller
        .app
        .db
        .tenant(tenant_id, |conn| {
            async move {
                acting::member_at_least(conn, &actor, Role::Owner).await?;
                let tenant = TenantRow::find(conn, tenant_id).await?;
                if tenant.slug != confirm_slug {
                    return Err(AppError::bad_input(format!(
                        "confirmSlug: type the tenant's slug ('{}') to confirm",
                        tenant.slug
                    )));
                }
                let events = crate::events::rollups::delete_event_data(conn, tenant_id).await?;
                TenantRow::delete(conn, tenant_id).await?;
                set_scope(conn, Scope::Anonymous).await?;
                audit::record(
                    conn,
                    meta,
                    AuditEntry {
                        tenant_id: None,
                        actor: Actor::Member(actor.member_id),
                        action: "tenant.delete",
                        target_type: Some("Tenant"),
                        target_id: Some(tenant_id.to_string()),
                        details: json!({ "slug": tenant.slug, "name": tenant.name, "events": events }),
                    },
                )
                .await?;
                Ok(true)
            }
            .scope_boxed()
        })
        .await?;
    caller.app.key_grants.forget_tenant(tenant_id);
    super::end_sessions(caller.app, tenant_id, None).await;
    // The tenant's report files went with its runs; a failure here leaves files no run names.
    if let Err(e) = caller
        .app
        .reports
        .storage
        .delete_folder(&tenant_id.to_string())
        .await
    {
        e.report("deleting a deleted tenant's report files");
    }
    Ok(true)
}
