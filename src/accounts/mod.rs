//! Account operations shared by the GraphQL API and the CLI: sign-up, sessions, members, API keys,
//! tenant settings. Each mutation writes its audit record in the same transaction as its change.

pub mod api_keys;
pub mod members;
pub mod sessions;
pub mod tenant;

use crate::app::App;
use crate::auth::Principal;
use crate::db::audit::RequestMeta;

/// What every operation needs to know about the request it serves.
pub struct Caller<'a> {
    pub app: &'a App,
    pub principal: &'a Principal,
    pub meta: &'a RequestMeta,
}
