//! Who acts in a mutation, as the database knows them inside the mutation's own transaction.
//! A token's role was true when it was issued; the member may have been demoted, removed or
//! signed out since. Mutations ask here, lock the member's row until they commit (a demotion
//! waits for them, and they never act on a role that is being changed), and act on the role
//! found.

use crate::auth::{MemberClaims, Principal, Role};
use crate::db::Conn;
use crate::db::members::MemberRow;
use crate::error::{AppError, AppResult};

/// The member's role now, which must be at least `at_least`.
pub async fn member_at_least(
    conn: &mut Conn,
    claims: &MemberClaims,
    at_least: Role,
) -> AppResult<Role> {
    let role = MemberRow::standing_role(conn, claims.member_id, claims.family_id)
        .await?
        .ok_or_else(|| AppError::unauthenticated(crate::auth::session_check::SESSION_ENDED))?;
    if role.at_least(at_least) {
        Ok(role)
    } else {
        Err(crate::auth::principal::needs_role(at_least))
    }
}

/// For what API keys may do too (ingestion): a member is checked as above; a key was
/// checked when the request was authenticated.
pub async fn confirm(conn: &mut Conn, principal: &Principal, at_least: Role) -> AppResult<()> {
    match principal {
        Principal::Member(claims) => member_at_least(conn, claims, at_least).await.map(|_| ()),
        _ => Ok(()),
    }
}
