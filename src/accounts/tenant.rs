//! Tenant settings.

use scoped_futures::ScopedFutureExt;
use serde_json::json;

use super::Caller;
use crate::auth::Role;
use crate::db::audit::{self, Actor, AuditEntry};
use crate::db::tenants::{TenantChanges, TenantRow};
use crate::error::AppResult;
use crate::validate;

pub struct UpdateTenant {
    pub name: Option<String>,
    pub timezone: Option<String>,
    pub currency: Option<String>,
}

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
    };
    let meta = caller.meta;
    let tenant_id = actor.tenant_id;
    caller
        .app
        .db
        .tenant(tenant_id, |conn| {
            async move {
                let before = TenantRow::find(conn, tenant_id).await?;
                TenantRow::update(conn, tenant_id, &changes).await?;
                let after = TenantRow::find(conn, tenant_id).await?;
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
                            "before": { "name": before.name, "timezone": before.timezone, "currency": before.currency },
                            "after": { "name": after.name, "timezone": after.timezone, "currency": after.currency },
                        }),
                    },
                )
                .await?;
                Ok(after)
            }
            .scope_boxed()
        })
        .await
}
