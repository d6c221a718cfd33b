//! Members: the people of a tenant, each with one role.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use uuid::Uuid;

use super::Conn;
use super::schema::{members, refresh_tokens};
use crate::error::{AppError, AppResult};
use crate::role::Role;

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = members)]
pub struct MemberRow {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub email: String,
    pub name: String,
    pub password_hash: String,
    pub role: String,
    pub is_operator: bool,
    pub created_at: DateTime<Utc>,
    pub last_active_at: Option<DateTime<Utc>>,
    pub removed_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Insertable)]
#[diesel(table_name = members)]
pub struct NewMember<'a> {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub email: &'a str,
    pub name: &'a str,
    pub password_hash: &'a str,
    pub role: &'a str,
    pub is_operator: bool,
}

pub const EMAIL_TAKEN_CONSTRAINT: &str = "members_tenant_email_key";

impl MemberRow {
    pub fn role(&self) -> Role {
        self.role.parse().unwrap_or(Role::Viewer)
    }

    pub async fn insert(conn: &mut Conn, new: &NewMember<'_>) -> AppResult<MemberRow> {
        diesel::insert_into(members::table)
            .values(new)
            .returning(MemberRow::as_returning())
            .get_result(conn)
            .await
            .map_err(|e| {
                if super::is_unique_violation(&e, EMAIL_TAKEN_CONSTRAINT) {
                    AppError::bad_input(format!(
                        "email: {} is already a member of this tenant",
                        new.email
                    ))
                } else {
                    e.into()
                }
            })
    }

    /// An active member of the scoped tenant.
    pub async fn find_active(conn: &mut Conn, id: Uuid) -> AppResult<MemberRow> {
        members::table
            .find(id)
            .filter(members::removed_at.is_null())
            .select(MemberRow::as_select())
            .first(conn)
            .await
            .optional()?
            .ok_or(AppError::NotFound("member"))
    }

    pub async fn find_active_by_email(
        conn: &mut Conn,
        email: &str,
    ) -> AppResult<Option<MemberRow>> {
        Ok(members::table
            .filter(members::email.eq(email))
            .filter(members::removed_at.is_null())
            .select(MemberRow::as_select())
            .first(conn)
            .await
            .optional()?)
    }

    /// Removed members too: the audit log still names them.
    pub async fn find_many(conn: &mut Conn, ids: &[Uuid]) -> AppResult<Vec<MemberRow>> {
        Ok(members::table
            .filter(members::id.eq_any(ids))
            .select(MemberRow::as_select())
            .load(conn)
            .await?)
    }

    pub async fn page(
        conn: &mut Conn,
        tenant_id: Uuid,
        after: Option<(DateTime<Utc>, Uuid)>,
        limit: i64,
    ) -> AppResult<Vec<MemberRow>> {
        let mut query = members::table
            .filter(members::tenant_id.eq(tenant_id))
            .filter(members::removed_at.is_null())
            .select(MemberRow::as_select())
            .order((members::created_at, members::id))
            .limit(limit)
            .into_boxed();
        if let Some((at, id)) = after {
            query = query.filter(
                members::created_at
                    .gt(at)
                    .or(members::created_at.eq(at).and(members::id.gt(id))),
            );
        }
        Ok(query.load(conn).await?)
    }

    pub async fn count_active(conn: &mut Conn, tenant_id: Uuid) -> AppResult<i64> {
        Ok(members::table
            .filter(members::tenant_id.eq(tenant_id))
            .filter(members::removed_at.is_null())
            .count()
            .get_result(conn)
            .await?)
    }

    /// Locks the tenant's owners, so that two concurrent changes cannot both remove the last one.
    /// Serializes the tenant's membership changes (adding, removing, changing roles) until
    /// the transaction ends, so that each one reads roles no other can be changing.
    pub async fn lock_membership(conn: &mut Conn, tenant_id: Uuid) -> AppResult<()> {
        super::locks::exclusive(conn, super::locks::TenantLock::Membership, tenant_id).await
    }

    /// The member's role now, if they are still a member and the session `family` has not
    /// ended; the row is locked against changes until the transaction ends, so the caller
    /// acts on this role and no other.
    pub async fn standing_role(
        conn: &mut Conn,
        member_id: Uuid,
        family_id: Uuid,
    ) -> AppResult<Option<Role>> {
        let live_session = diesel::dsl::exists(
            refresh_tokens::table
                .filter(refresh_tokens::family_id.eq(family_id))
                .filter(refresh_tokens::revoked_at.is_null()),
        );
        let role: Option<String> = members::table
            .filter(members::id.eq(member_id))
            .filter(members::removed_at.is_null())
            .filter(live_session)
            .select(members::role)
            .for_share()
            .first(conn)
            .await
            .optional()?;
        Ok(role.map(|r| r.parse().unwrap_or(Role::Viewer)))
    }

    pub async fn lock_owner_ids(conn: &mut Conn, tenant_id: Uuid) -> AppResult<Vec<Uuid>> {
        Ok(members::table
            .filter(members::tenant_id.eq(tenant_id))
            .filter(members::removed_at.is_null())
            .filter(members::role.eq(Role::Owner.as_str()))
            .select(members::id)
            .for_update()
            .load(conn)
            .await?)
    }

    pub async fn set_role(conn: &mut Conn, id: Uuid, role: Role) -> AppResult<MemberRow> {
        Ok(diesel::update(members::table.find(id))
            .set(members::role.eq(role.as_str()))
            .returning(MemberRow::as_returning())
            .get_result(conn)
            .await?)
    }

    pub async fn mark_removed(conn: &mut Conn, id: Uuid) -> AppResult<()> {
        diesel::update(members::table.find(id))
            .set(members::removed_at.eq(diesel::dsl::now))
            .execute(conn)
            .await?;
        Ok(())
    }

    pub async fn touch_last_active(conn: &mut Conn, id: Uuid) -> AppResult<()> {
        diesel::update(members::table.find(id))
            .set(members::last_active_at.eq(diesel::dsl::now))
            .execute(conn)
            .await?;
        Ok(())
    }

    /// Ends every session of the member at once (their refresh tokens stop working).
    pub async fn revoke_sessions(conn: &mut Conn, id: Uuid) -> AppResult<usize> {
        Ok(diesel::update(
            refresh_tokens::table
                .filter(refresh_tokens::member_id.eq(id))
                .filter(refresh_tokens::revoked_at.is_null()),
        )
        .set(refresh_tokens::revoked_at.eq(diesel::dsl::now))
        .execute(conn)
        .await?)
    }
}
