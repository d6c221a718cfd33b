//! Field-level access rules as async-graphql guards. A guarded field must be nullable, so that a
//! refusal is `null` with a `FORBIDDEN` error at its path and the rest of the response survives.

use async_graphql::{Context, Guard, Result};
use uuid::Uuid;

use super::{Principal, Role};

pub fn principal<'a>(ctx: &Context<'a>) -> &'a Principal {
    ctx.data_opt::<Principal>().unwrap_or(&Principal::Anonymous)
}

/// A member of at least this role.
pub struct RoleGuard(pub Role);

impl Guard for RoleGuard {
    async fn check(&self, ctx: &Context<'_>) -> Result<()> {
        principal(ctx).member_at_least(self.0)?;
        Ok(())
    }
}

/// The member themselves, or a member of at least this role in the same tenant (`User.email`).
pub struct SelfOrRole {
    user_id: Uuid,
    tenant_id: Uuid,
    role: Role,
    is_viewer: bool,
}

impl SelfOrRole {
    /// `is_viewer`: the object was built for its own member (a session just opened).
    pub fn new(user_id: Uuid, tenant_id: Uuid, role: Role, is_viewer: bool) -> Self {
        Self {
            user_id,
            tenant_id,
            role,
            is_viewer,
        }
    }
}

impl Guard for SelfOrRole {
    async fn check(&self, ctx: &Context<'_>) -> Result<()> {
        let p = principal(ctx);
        if self.is_viewer || matches!(p, Principal::Member(m) if m.member_id == self.user_id) {
            return Ok(());
        }
        let member = p.member_at_least(self.role)?;
        if member.tenant_id != self.tenant_id {
            return Err(crate::error::AppError::forbidden(
                "members of other tenants are not yours to see",
            )
            .into());
        }
        Ok(())
    }
}

/// Platform operators only.
pub struct OperatorGuard;

impl Guard for OperatorGuard {
    async fn check(&self, ctx: &Context<'_>) -> Result<()> {
        principal(ctx).operator()?;
        Ok(())
    }
}
