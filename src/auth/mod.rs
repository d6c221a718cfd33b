//! Who the caller is and what they may do: roles, passwords, tokens, API keys, guards.

pub mod guards;
pub mod key_grants;
pub mod password;
pub mod principal;
pub mod secrets;
pub mod session_check;
pub mod throttle;
pub mod tokens;

mod role;

pub use principal::{ApiKeyPrincipal, MemberClaims, Principal};
pub use role::{ApiKeyScope, Role};
