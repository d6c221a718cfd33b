//! Roles of a tenant's members and scopes of its API keys: the vocabulary of rights that
//! storage, tokens and guards share.

use std::str::FromStr;

/// A member's role in a tenant, strongest first.
#[derive(
    async_graphql::Enum, Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Role {
    Owner,
    Admin,
    Analyst,
    Viewer,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Owner => "OWNER",
            Role::Admin => "ADMIN",
            Role::Analyst => "ANALYST",
            Role::Viewer => "VIEWER",
        }
    }

    fn rank(self) -> u8 {
        match self {
            Role::Owner => 3,
            Role::Admin => 2,
            Role::Analyst => 1,
            Role::Viewer => 0,
        }
    }

    pub fn at_least(self, other: Role) -> bool {
        self.rank() >= other.rank()
    }

    /// Granting, changing or revoking these roles takes an OWNER.
    pub fn is_privileged(self) -> bool {
        matches!(self, Role::Owner | Role::Admin)
    }

    /// The capabilities of the contract's role table, as `me.permissions` lists them.
    pub fn permissions(self) -> Vec<&'static str> {
        let mut out = vec!["analytics:read", "reports:read", "members:read"];
        if self.at_least(Role::Analyst) {
            out.extend(["revenue:read", "reports:write"]);
        }
        if self.at_least(Role::Admin) {
            out.extend([
                "reports:write:any",
                "members:read:email",
                "members:write",
                "api_keys:manage",
                "integrations:manage",
                "tenant:update",
                "audit_log:read",
            ]);
        }
        if self == Role::Owner {
            out.extend(["members:write:privileged", "tenant:delete"]);
        }
        out
    }
}

impl FromStr for Role {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "OWNER" => Ok(Role::Owner),
            "ADMIN" => Ok(Role::Admin),
            "ANALYST" => Ok(Role::Analyst),
            "VIEWER" => Ok(Role::Viewer),
            other => Err(format!("unknown role {other}")),
        }
    }
}

/// What an API key may do.
#[derive(async_graphql::Enum, Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ApiKeyScope {
    /// Send events and revenue changes.
    Ingest,
    /// Run analytics queries.
    Read,
}

impl ApiKeyScope {
    pub fn as_str(self) -> &'static str {
        match self {
            ApiKeyScope::Ingest => "INGEST",
            ApiKeyScope::Read => "READ",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "INGEST" => Some(ApiKeyScope::Ingest),
            "READ" => Some(ApiKeyScope::Read),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_order_and_round_trip() {
        assert!(Role::Owner.at_least(Role::Admin));
        assert!(Role::Admin.at_least(Role::Admin));
        assert!(!Role::Analyst.at_least(Role::Admin));
        assert!(!Role::Viewer.at_least(Role::Analyst));
        for role in [Role::Owner, Role::Admin, Role::Analyst, Role::Viewer] {
            assert_eq!(role.as_str().parse::<Role>(), Ok(role));
        }
        assert!("owner".parse::<Role>().is_err());
    }

    #[test]
    fn viewers_cannot_read_revenue_and_only_owners_delete() {
        assert!(!Role::Viewer.permissions().contains(&"revenue:read"));
        assert!(Role::Analyst.permissions().contains(&"revenue:read"));
        assert!(!Role::Admin.permissions().contains(&"tenant:delete"));
        assert!(Role::Owner.permissions().contains(&"tenant:delete"));
    }
}
