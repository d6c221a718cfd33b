//! Tenant administration: members, API keys, settings, the audit log, operators' tenant list.

mod mutation;
mod query;
pub mod types;

pub use mutation::TenantMutation;
pub use query::TenantQuery;
