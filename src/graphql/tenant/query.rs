use async_graphql::connection::{Connection, Edge, EmptyFields};
use async_graphql::{Context, Object, Result};
use scoped_futures::ScopedFutureExt;

use super::types::{AuditEntry, Tenant, TotalCount};
use crate::auth::Role;
use crate::auth::guards::{OperatorGuard, RoleGuard, principal};
use crate::db::Scope;
use crate::db::audit;
use crate::db::tenants::TenantRow;
use crate::error::AppError;
use crate::graphql::pagination::{
    decode_id, decode_time_id, encode_id, encode_time_id, page_cost, page_size,
};
use crate::graphql::{app, loaders::Loaders};

#[derive(Default)]
pub struct TenantQuery;

#[Object]
impl TenantQuery {
    /// The caller's tenant.
    async fn tenant(&self, ctx: &Context<'_>) -> Result<Tenant> {
        let tenant_id = principal(ctx).reading_tenant()?;
        let row = ctx
            .data_unchecked::<Loaders>()
            .tenants
            .load_one(tenant_id)
            .await?
            .ok_or(AppError::NotFound("tenant"))?;
        Ok(Tenant(row))
    }

    /// What happened in the tenant, newest first. ADMIN and OWNER only.
    #[graphql(
        guard = "RoleGuard(Role::Admin)",
        complexity = "page_cost(first) * child_complexity + 1"
    )]
    async fn audit_log(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
    ) -> Result<Option<Connection<String, AuditEntry, EmptyFields>>> {
        let tenant_id = principal(ctx).member()?.tenant_id;
        let limit = page_size(first)?;
        let before = after.map(|c| decode_id("audit", &c)).transpose()?;
        let rows = app(ctx)
            .db
            .tenant(tenant_id, |conn| {
                async move { audit::page(conn, tenant_id, before, limit + 1).await }.scope_boxed()
            })
            .await?;
        let has_next = rows.len() as i64 > limit;
        let mut connection = Connection::new(before.is_some(), has_next);
        connection.edges.extend(
            rows.into_iter()
                .take(limit as usize)
                .map(|row| Edge::new(encode_id("audit", row.id), AuditEntry(row))),
        );
        Ok(Some(connection))
    }

    /// Every tenant on this deployment. Platform operators only.
    #[graphql(
        guard = "OperatorGuard",
        complexity = "page_cost(first) * child_complexity + 2"
    )]
    async fn tenants(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
    ) -> Result<Option<Connection<String, Tenant, TotalCount>>> {
        let limit = page_size(first)?;
        let after = after.map(|c| decode_time_id("tenant", &c)).transpose()?;
        let want_total = ctx.look_ahead().field("totalCount").exists();
        let (rows, total) = app(ctx)
            .db
            .scoped(Scope::Operator, |conn| {
                async move {
                    let rows = TenantRow::page(conn, after, limit + 1).await?;
                    let total = if want_total {
                        TenantRow::count(conn).await?
                    } else {
                        0
                    };
                    Ok((rows, total))
                }
                .scope_boxed()
            })
            .await?;
        let has_next = rows.len() as i64 > limit;
        let mut connection = Connection::with_additional_fields(
            after.is_some(),
            has_next,
            TotalCount { total_count: total },
        );
        connection
            .edges
            .extend(rows.into_iter().take(limit as usize).map(|row| {
                Edge::new(
                    encode_time_id("tenant", row.created_at, row.id),
                    Tenant(row),
                )
            }));
        Ok(Some(connection))
    }
}
