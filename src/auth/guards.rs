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

/// Revenue is for ANALYST and above (contract README); API keys need the READ scope, which
/// every reading resolver checks.
pub fn may_read_revenue(principal: &Principal) -> Result<(), crate::error::AppError> {
    match principal {
        Principal::Member(m) if !m.role.at_least(Role::Analyst) => Err(
            crate::error::AppError::forbidden("revenue needs the ANALYST role or higher"),
        ),
        _ => Ok(()),
    }
}

/// `analytics.revenue` and everything under it.
pub struct RevenueGuard;

impl Guard for RevenueGuard {
    async fn check(&self, ctx: &Context<'_>) -> Result<()> {
        may_read_revenue(principal(ctx))?;
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
