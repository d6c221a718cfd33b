//! The caller of one request, worked out once from its `Authorization` header.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{ApiKeyScope, Role};
use crate::db::Scope;
use crate::error::{AppError, AppResult};

/// What a valid access token says about its bearer.
#[derive(Debug, Clone)]
pub struct MemberClaims {
    pub member_id: Uuid,
    pub tenant_id: Uuid,
    pub role: Role,
    pub operator: bool,
    pub family_id: Uuid,
    pub expires_at: DateTime<Utc>,
}

/// The refusal of a member below `role`.
pub fn needs_role(role: Role) -> AppError {
    AppError::forbidden(format!("this needs the {} role or higher", role.as_str()))
}

#[derive(Debug, Clone)]
pub struct ApiKeyPrincipal {
    pub key_id: Uuid,
    pub tenant_id: Uuid,
    pub scopes: Vec<ApiKeyScope>,
}

#[derive(Debug, Clone)]
pub enum Principal {
    Anonymous,
    /// Credentials were presented and refused; the reason is safe to show.
    Rejected(String),
    Member(MemberClaims),
    ApiKey(ApiKeyPrincipal),
}

impl Principal {
    fn unauthenticated(&self) -> AppError {
        match self {
            Principal::Rejected(reason) => AppError::unauthenticated(reason.clone()),
            _ => {
                AppError::unauthenticated("sign in first: send Authorization: Bearer <accessToken>")
            }
        }
    }

    pub fn member(&self) -> AppResult<&MemberClaims> {
        match self {
            Principal::Member(m) => Ok(m),
            Principal::ApiKey(_) => Err(AppError::forbidden(
                "API keys cannot do this; sign in as a member",
            )),
            other => Err(other.unauthenticated()),
        }
    }

    /// A member with at least `role`.
    pub fn member_at_least(&self, role: Role) -> AppResult<&MemberClaims> {
        let member = self.member()?;
        if member.role.at_least(role) {
            Ok(member)
        } else {
            Err(needs_role(role))
        }
    }

    pub fn operator(&self) -> AppResult<&MemberClaims> {
        let member = self.member()?;
        if member.operator {
            Ok(member)
        } else {
            Err(AppError::forbidden("only platform operators can do this"))
        }
    }

    /// The tenant whose data the caller reads: a member's, or a READ API key's.
    pub fn reading_tenant(&self) -> AppResult<Uuid> {
        match self {
            Principal::Member(m) => Ok(m.tenant_id),
            Principal::ApiKey(k) if k.scopes.contains(&ApiKeyScope::Read) => Ok(k.tenant_id),
            Principal::ApiKey(_) => Err(AppError::forbidden("this API key has no READ scope")),
            other => Err(other.unauthenticated()),
        }
    }

    /// The database scope in which `tenant_id`'s rows may be read by this caller.
    pub fn read_scope_for(&self, tenant_id: Uuid) -> AppResult<Scope> {
        match self {
            Principal::Member(m) if m.tenant_id == tenant_id => Ok(Scope::Tenant(tenant_id)),
            Principal::Member(m) if m.operator => Ok(Scope::Operator),
            Principal::ApiKey(k) if k.tenant_id == tenant_id => Ok(Scope::Tenant(tenant_id)),
            Principal::Member(_) | Principal::ApiKey(_) => Err(AppError::NotFound("tenant")),
            other => Err(other.unauthenticated()),
        }
    }

    /// The scope for batch loaders of this request.
    pub fn loader_scope(&self) -> Scope {
        match self {
            Principal::Member(m) if m.operator => Scope::Operator,
            Principal::Member(m) => Scope::Tenant(m.tenant_id),
            Principal::ApiKey(k) => Scope::Tenant(k.tenant_id),
            _ => Scope::Anonymous,
        }
    }
}
