use async_graphql::{Context, ID, InputObject, MaybeUndefined, Object, Result};

use super::types::{ApiKey, CreatedApiKey, Tenant, User};
use crate::accounts::{api_keys, members, tenant};
use crate::auth::{ApiKeyScope, Role};
use crate::graphql::caller;

#[derive(InputObject)]
pub struct AddMemberInput {
    pub name: String,
    pub email: String,
    pub role: Role,
    /// At least 10 characters; the member can change it later.
    pub password: String,
}

#[derive(InputObject)]
pub struct UpdateTenantInput {
    pub name: Option<String>,
    /// IANA name, e.g. `Europe/Berlin`.
    pub timezone: Option<String>,
    /// ISO 4217 code, e.g. `EUR`.
    pub currency: Option<String>,
    /// Months of events to keep (1 to 120); `null` keeps everything.
    pub retention_months: MaybeUndefined<i32>,
    /// Event property keys (at most 5) that rollups keep, so that filters and breakdowns on
    /// them are as fast as unfiltered metrics. Changing them rebuilds the rollups in the
    /// background; until then such filters are answered from the events (still exact).
    pub tracked_properties: Option<Vec<String>>,
}

#[derive(InputObject)]
pub struct CreateApiKeyInput {
    pub name: String,
    pub scopes: Vec<ApiKeyScope>,
}

#[derive(Default)]
pub struct TenantMutation;

#[Object]
impl TenantMutation {
    /// ADMIN+; granting OWNER or ADMIN takes an OWNER.
    async fn add_member(&self, ctx: &Context<'_>, input: AddMemberInput) -> Result<User> {
        let row = members::add(
            &caller(ctx),
            members::AddMember {
                name: input.name,
                email: input.email,
                role: input.role,
                password: input.password,
            },
        )
        .await?;
        Ok(User::new(row))
    }

    /// ADMIN+; changing to or from OWNER or ADMIN takes an OWNER. Ends the member's sessions.
    async fn update_member_role(&self, ctx: &Context<'_>, user_id: ID, role: Role) -> Result<User> {
        let row = members::change_role(&caller(ctx), &user_id, role).await?;
        Ok(User::new(row))
    }

    /// ADMIN+; removing an OWNER or ADMIN takes an OWNER; the last OWNER stays.
    async fn remove_member(&self, ctx: &Context<'_>, user_id: ID) -> Result<bool> {
        Ok(members::remove(&caller(ctx), &user_id).await?)
    }

    /// ADMIN+.
    async fn update_tenant(&self, ctx: &Context<'_>, input: UpdateTenantInput) -> Result<Tenant> {
        let row = tenant::update(
            &caller(ctx),
            tenant::UpdateTenant {
                name: input.name,
                timezone: input.timezone,
                currency: input.currency,
                retention_months: match input.retention_months {
                    MaybeUndefined::Undefined => None,
                    MaybeUndefined::Null => Some(None),
                    MaybeUndefined::Value(m) => Some(Some(m)),
                },
                tracked_properties: input.tracked_properties,
            },
        )
        .await?;
        Ok(Tenant(row))
    }

    /// ADMIN+. The secret comes back this once.
    async fn create_api_key(
        &self,
        ctx: &Context<'_>,
        input: CreateApiKeyInput,
    ) -> Result<CreatedApiKey> {
        let (row, secret) = api_keys::create(&caller(ctx), &input.name, &input.scopes).await?;
        Ok(CreatedApiKey {
            secret,
            api_key: ApiKey(row),
        })
    }

    /// OWNER only: deletes the tenant with all its data. `confirmSlug` must be its slug.
    async fn delete_tenant(&self, ctx: &Context<'_>, confirm_slug: String) -> Result<bool> {
        Ok(tenant::delete(&caller(ctx), &confirm_slug).await?)
    }

    /// ADMIN+.
    async fn revoke_api_key(&self, ctx: &Context<'_>, id: ID) -> Result<bool> {
        Ok(api_keys::revoke(&caller(ctx), &id).await?)
    }
}
