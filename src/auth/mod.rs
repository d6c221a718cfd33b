//! Who the caller is and what they may do: roles, passwords, tokens, API keys, guards.

pub mod acting;
pub mod guards;
pub mod key_grants;
pub mod password;
pub mod principal;
pub mod secrets;
pub mod session_check;
pub mod throttle;
pub mod tokens;

pub use crate::role::{ApiKeyScope, Role};
pub use principal::{ApiKeyPrincipal, MemberClaims, Principal};
