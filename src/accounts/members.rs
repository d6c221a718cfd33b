//! Adding and removing members and changing roles. Only an OWNER grants or revokes OWNER or
//! ADMIN, and a tenant always keeps at least one OWNER.

use scoped_futures::ScopedFutureExt;
use serde_json::json;
use uuid::Uuid;

use super::Caller;
use crate::auth::acting;
use crate::auth::{MemberClaims, Role, password};
use crate::db::audit::{self, Actor, AuditEntry};
use crate::db::members::{MemberRow, NewMember};
use crate::error::{AppError, AppResult};
use crate::validate;

pub struct AddMember {
    pub name: String,
    pub email: String,
    pub role: Role,
    pub password: String,
}

fn require_owner_for(actor_role: Role, role: Role, verb: &str) -> AppResult<()> {
    if role.is_privileged() && actor_role != Role::Owner {
        return Err(AppError::forbidden(format!(
            "only an OWNER can {verb} the {} role",
            role.as_str()
        )));
    }
    Ok(())
}

pub async fn add(caller: &Caller<'_>, input: AddMember) -> AppResult<MemberRow> {
    let actor = caller.principal.member_at_least(Role::Admin)?.clone();
    require_owner_for(actor.role, input.role, "grant")?;
    let name = validate::name(&input.name, "input.name")?;
    let email = validate::email(&input.email, "input.email")?;
    password::validate(&input.password, "input.password")?;
    let password_hash = password::hash(&input.password).await?;
    let meta = caller.meta;
    let tenant_id = actor.tenant_id;
    caller
        .app
        .db
        .tenant(tenant_id, |conn| {
            async move {
                MemberRow::lock_membership(conn, tenant_id).await?;
                let actor_role = acting::member_at_least(conn, &actor, Role::Admin).await?;
                require_owner_for(actor_role, input.role, "grant")?;
                let member = MemberRow::insert(
                    conn,
                    &NewMember {
                        id: Uuid::new_v4(),
                        tenant_id,
                        email: &email,
                        name: &name,
                        password_hash: &password_hash,
                        role: input.role.as_str(),
                        is_operator: false,
                    },
                )
                .await?;
                audit::record(
                    conn,
                    meta,
                    AuditEntry {
                        tenant_id: Some(tenant_id),
                        actor: Actor::Member(actor.member_id),
                        action: "member.add",
                        target_type: Some("Member"),
                        target_id: Some(member.id.to_string()),
                        details: json!({ "email": email, "role": input.role.as_str() }),
                    },
                )
                .await?;
                Ok(member)
            }
            .scope_boxed()
        })
        .await
}

pub async fn change_role(caller: &Caller<'_>, user_id: &str, role: Role) -> AppResult<MemberRow> {
    let changed = change_role_in_db(caller, user_id, role).await?;
    super::end_sessions(caller.app, changed.tenant_id, Some(changed.id)).await;
    Ok(changed)
}

async fn change_role_in_db(caller: &Caller<'_>, user_id: &str, role: Role) -> AppResult<MemberRow> {
    let actor = caller.principal.member_at_least(Role::Admin)?.clone();
    let target_id = validate::uuid(user_id, "userId")?;
    let meta = caller.meta;
    let tenant_id = actor.tenant_id;
    caller
        .app
        .db
        .tenant(tenant_id, |conn| {
            async move {
                MemberRow::lock_membership(conn, tenant_id).await?;
                let actor_role = acting::member_at_least(conn, &actor, Role::Admin).await?;
                let owners = MemberRow::lock_owner_ids(conn, tenant_id).await?;
                let target = MemberRow::find_active(conn, target_id).await?;
                let from = target.role();
                require_owner_for(actor_role, from, "revoke")?;
                require_owner_for(actor_role, role, "grant")?;
                if from == role {
                    return Ok(target);
                }
                if from == Role::Owner && owners.len() <= 1 {
                    return Err(AppError::bad_input(
                        "role: the last OWNER cannot be demoted; make another member OWNER first",
                    ));
                }
                let updated = MemberRow::set_role(conn, target_id, role).await?;
                let revoked = MemberRow::revoke_sessions(conn, target_id).await?;
                audit::record(
                    conn,
                    meta,
                    AuditEntry {
                        tenant_id: Some(tenant_id),
                        actor: Actor::Member(actor.member_id),
                        action: "member.role_change",
                        target_type: Some("Member"),
                        target_id: Some(target_id.to_string()),
                        details: json!({
                            "from": from.as_str(),
                            "to": role.as_str(),
                            "revokedTokens": revoked,
                        }),
                    },
                )
                .await?;
                Ok(updated)
            }
            .scope_boxed()
        })
        .await
}

pub async fn remove(caller: &Caller<'_>, user_id: &str) -> AppResult<bool> {
    let actor = caller.principal.member_at_least(Role::Admin)?.clone();
    let target_id = validate::uuid(user_id, "userId")?;
    remove_in_db(caller, &actor, target_id).await?;
    super::end_sessions(caller.app, actor.tenant_id, Some(target_id)).await;
    Ok(true)
}

async fn remove_in_db(caller: &Caller<'_>, actor: &MemberClaims, target_id: Uuid) -> AppResult<()> {
    let meta = caller.meta;
    let tenant_id = actor.tenant_id;
    caller
        .app
        .db
        .tenant(tenant_id, |conn| {
            async move {
                MemberRow::lock_membership(conn, tenant_id).await?;
                let actor_role = acting::member_at_least(conn, actor, Role::Admin).await?;
                let owners = MemberRow::lock_owner_ids(conn, tenant_id).await?;
                let target = MemberRow::find_active(conn, target_id).await?;
                require_owner_for(actor_role, target.role(), "revoke")?;
                if target.role() == Role::Owner && owners.len() <= 1 {
                    return Err(AppError::bad_input(
                        "userId: the last OWNER cannot be removed",
                    ));
                }
                MemberRow::mark_removed(conn, target_id).await?;
                let revoked = MemberRow::revoke_sessions(conn, target_id).await?;
                audit::record(
                    conn,
                    meta,
                    AuditEntry {
                        tenant_id: Some(tenant_id),
                        actor: Actor::Member(actor.member_id),
                        action: "member.remove",
                        target_type: Some("Member"),
                        target_id: Some(target_id.to_string()),
                        details: json!({
                            "email": target.email,
                            "role": target.role,
                            "revokedTokens": revoked,
                        }),
                    },
                )
                .await?;
                Ok(())
            }
            .scope_boxed()
        })
        .await
}

/// A member with a known password, made the first time (the demo's people, the bench's
/// analyst): set-up work of the command line, not a request's, so nothing is audited.
pub async fn ensure_with_password(
    app: &crate::App,
    tenant_id: Uuid,
    role: Role,
    name: &str,
    email: &str,
    password_given: &str,
) -> AppResult<()> {
    let password_hash = password::hash(password_given).await?;
    app.db
        .tenant(tenant_id, |conn| {
            async move {
                if MemberRow::find_active_by_email(conn, email)
                    .await?
                    .is_none()
                {
                    MemberRow::insert(
                        conn,
                        &NewMember {
                            id: Uuid::new_v4(),
                            tenant_id,
                            email,
                            name,
                            password_hash: &password_hash,
                            role: role.as_str(),
                            is_operator: false,
                        },
                    )
                    .await?;
                }
                Ok(())
            }
            .scope_boxed()
        })
        .await
}
