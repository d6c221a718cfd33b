//! The GraphQL shapes of tenants, members, API keys and audit records.

use async_graphql::connection::{Connection, Edge};
use async_graphql::{Context, ID, Json, Object, Result, SimpleObject};
use chrono::{DateTime, Utc};
use scoped_futures::ScopedFutureExt;

use crate::auth::guards::{RoleGuard, SelfOrRole, principal};
use crate::auth::{ApiKeyScope, Role};
use crate::db::api_keys::ApiKeyRow;
use crate::db::audit::AuditRow;
use crate::db::members::MemberRow;
use crate::db::tenants::TenantRow;
use crate::error::AppError;
use crate::graphql::pagination::{decode_time_id, encode_time_id, page_cost, page_size};
use crate::graphql::{app, loaders};

#[derive(SimpleObject)]
pub struct TotalCount {
    /// How many items the whole list holds.
    pub total_count: i64,
}

/// A member of a tenant.
pub struct User {
    pub row: MemberRow,
    /// Set where the viewer is this member by construction (the session they just opened).
    pub is_viewer: bool,
}

impl User {
    pub fn new(row: MemberRow) -> Self {
        Self {
            row,
            is_viewer: false,
        }
    }
}

#[Object]
impl User {
    async fn id(&self) -> ID {
        ID(self.row.id.to_string())
    }

    async fn name(&self) -> &str {
        &self.row.name
    }

    /// Visible to the member themselves and to ADMIN or OWNER of their tenant.
    #[graphql(
        guard = "SelfOrRole::new(self.row.id, self.row.tenant_id, Role::Admin, self.is_viewer)"
    )]
    async fn email(&self) -> Option<&str> {
        Some(&self.row.email)
    }

    async fn role(&self) -> Role {
        self.row.role()
    }

    /// What this member's role allows, as capability names (e.g. `revenue:read`).
    async fn permissions(&self) -> Vec<&'static str> {
        self.row.role().permissions()
    }

    async fn tenant(&self, ctx: &Context<'_>) -> Result<Tenant> {
        let row = ctx
            .data_unchecked::<loaders::Loaders>()
            .tenants
            .load_one(self.row.tenant_id)
            .await?
            .ok_or(AppError::NotFound("tenant"))?;
        Ok(Tenant(row))
    }

    async fn created_at(&self) -> DateTime<Utc> {
        self.row.created_at
    }

    async fn last_active_at(&self) -> Option<DateTime<Utc>> {
        self.row.last_active_at
    }
}

/// A company using Fahwa: its settings and its people.
pub struct Tenant(pub TenantRow);

#[Object]
impl Tenant {
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }

    async fn name(&self) -> &str {
        &self.0.name
    }

    async fn slug(&self) -> &str {
        &self.0.slug
    }

    /// IANA time zone that analytics buckets align to.
    async fn timezone(&self) -> &str {
        &self.0.timezone
    }

    /// ISO 4217 code that revenue is reported in.
    async fn currency(&self) -> &str {
        &self.0.currency
    }

    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }

    /// Months of events kept; `null` keeps everything.
    async fn retention_months(&self) -> Option<i32> {
        self.0.retention_months
    }

    /// Event property keys the rollups keep for fast filters and breakdowns.
    async fn tracked_properties(&self) -> &[String] {
        &self.0.tracked_properties
    }

    /// Whether the rollups already hold `trackedProperties` (a change rebuilds them in the
    /// background).
    async fn tracked_properties_ready(&self) -> bool {
        self.0.tracked_properties == self.0.rollup_properties
    }

    /// Active members in the order they joined.
    #[graphql(complexity = "page_cost(first) * child_complexity + 2")]
    async fn members(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
    ) -> Result<Connection<String, User, TotalCount>> {
        let scope = principal(ctx).read_scope_for(self.0.id)?;
        let limit = page_size(first)?;
        let after = after.map(|c| decode_time_id("member", &c)).transpose()?;
        let want_total = ctx.look_ahead().field("totalCount").exists();
        let tenant_id = self.0.id;
        let (rows, total) = app(ctx)
            .db
            .scoped(scope, |conn| {
                async move {
                    let rows = MemberRow::page(conn, tenant_id, after, limit + 1).await?;
                    let total = if want_total {
                        MemberRow::count_active(conn, tenant_id).await?
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
                    encode_time_id("member", row.created_at, row.id),
                    User::new(row),
                )
            }));
        Ok(connection)
    }

    /// For ADMIN and OWNER of this tenant.
    #[graphql(guard = "RoleGuard(Role::Admin)")]
    async fn api_keys(&self, ctx: &Context<'_>) -> Result<Option<Vec<ApiKey>>> {
        let member = principal(ctx).member()?;
        if member.tenant_id != self.0.id {
            return Err(
                AppError::forbidden("API keys are visible only inside their tenant").into(),
            );
        }
        let tenant_id = self.0.id;
        let rows = app(ctx)
            .db
            .tenant(tenant_id, |conn| {
                async move { ApiKeyRow::list(conn, tenant_id).await }.scope_boxed()
            })
            .await?;
        Ok(Some(rows.into_iter().map(ApiKey).collect()))
    }

    /// Active members.
    async fn member_count(&self, ctx: &Context<'_>) -> Result<i64> {
        principal(ctx).read_scope_for(self.0.id)?;
        let loaders = ctx.data_unchecked::<loaders::Loaders>();
        Ok(loaders
            .member_counts
            .load_one(self.0.id)
            .await?
            .unwrap_or(0))
    }

    /// Events stored for this tenant.
    async fn event_count(&self, ctx: &Context<'_>) -> Result<i64> {
        principal(ctx).read_scope_for(self.0.id)?;
        let loaders = ctx.data_unchecked::<loaders::Loaders>();
        Ok(loaders.event_counts.load_one(self.0.id).await?.unwrap_or(0))
    }
}

/// An API key, without its secret.
pub struct ApiKey(pub ApiKeyRow);

#[Object]
impl ApiKey {
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }

    async fn name(&self) -> &str {
        &self.0.name
    }

    /// The first characters of the secret, to tell keys apart.
    async fn prefix(&self) -> &str {
        &self.0.key_prefix
    }

    async fn scopes(&self) -> Vec<ApiKeyScope> {
        self.0
            .scopes
            .iter()
            .filter_map(|s| ApiKeyScope::parse(s))
            .collect()
    }

    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }

    async fn last_used_at(&self) -> Option<DateTime<Utc>> {
        self.0.last_used_at
    }

    async fn revoked_at(&self) -> Option<DateTime<Utc>> {
        self.0.revoked_at
    }
}

/// A new API key with its secret, which is shown this once.
#[derive(SimpleObject)]
pub struct CreatedApiKey {
    pub secret: String,
    pub api_key: ApiKey,
}

/// One recorded action.
pub struct AuditEntry(pub AuditRow);

#[Object]
impl AuditEntry {
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }

    async fn at(&self) -> DateTime<Utc> {
        self.0.at
    }

    /// What happened, e.g. `member.add` or `session.login_failed`.
    async fn action(&self) -> &str {
        &self.0.action
    }

    /// MEMBER, API_KEY, ANONYMOUS or SYSTEM.
    async fn actor_kind(&self) -> &str {
        &self.0.actor_kind
    }

    /// The member who acted, when a member did.
    async fn actor(&self, ctx: &Context<'_>) -> Result<Option<User>> {
        if self.0.actor_kind != "MEMBER" {
            return Ok(None);
        }
        let Some(id) = self.0.actor_id else {
            return Ok(None);
        };
        let loaders = ctx.data_unchecked::<loaders::Loaders>();
        Ok(loaders.members.load_one(id).await?.map(User::new))
    }

    async fn target_type(&self) -> Option<&str> {
        self.0.target_type.as_deref()
    }

    async fn target_id(&self) -> Option<&str> {
        self.0.target_id.as_deref()
    }

    async fn ip(&self) -> Option<&str> {
        self.0.ip.as_deref()
    }

    async fn user_agent(&self) -> Option<&str> {
        self.0.user_agent.as_deref()
    }

    async fn request_id(&self) -> Option<&str> {
        self.0.request_id.as_deref()
    }

    async fn details(&self) -> Json<&serde_json::Value> {
        Json(&self.0.details)
    }
}
