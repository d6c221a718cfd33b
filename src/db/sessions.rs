//! Refresh tokens, stored hashed. A log-in starts a family; each refresh uses up one token and
//! adds the next, so a token presented twice reveals a theft and ends the whole family.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{Array, Bytea, Nullable, Text, Uuid as SqlUuid};
use diesel_async::RunQueryDsl;
use uuid::Uuid;

use super::Conn;
use super::schema::refresh_tokens;
use crate::error::AppResult;

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = refresh_tokens)]
pub struct RefreshTokenRow {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub member_id: Uuid,
    pub family_id: Uuid,
    pub expires_at: DateTime<Utc>,
    pub used_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Insertable)]
#[diesel(table_name = refresh_tokens)]
pub struct NewRefreshToken<'a> {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub member_id: Uuid,
    pub family_id: Uuid,
    pub token_hash: &'a [u8],
    pub expires_at: DateTime<Utc>,
}

#[derive(QueryableByName)]
struct FoundTenant {
    #[diesel(sql_type = Nullable<SqlUuid>)]
    tenant_id: Option<Uuid>,
}

impl RefreshTokenRow {
    /// The tenant a token belongs to, found by its hash before any tenant is in scope.
    pub async fn tenant_of(conn: &mut Conn, hash: &[u8]) -> AppResult<Option<Uuid>> {
        let found: FoundTenant =
            diesel::sql_query("SELECT fahwa_refresh_token_tenant($1) AS tenant_id")
                .bind::<Bytea, _>(hash)
                .get_result(conn)
                .await?;
        Ok(found.tenant_id)
    }

    pub async fn insert(conn: &mut Conn, new: &NewRefreshToken<'_>) -> AppResult<()> {
        diesel::insert_into(refresh_tokens::table)
            .values(new)
            .execute(conn)
            .await?;
        Ok(())
    }

    /// The token, locked until the end of the transaction so that two concurrent refreshes
    /// with one token cannot both succeed.
    pub async fn lock_by_hash(conn: &mut Conn, hash: &[u8]) -> AppResult<Option<RefreshTokenRow>> {
        Ok(refresh_tokens::table
            .filter(refresh_tokens::token_hash.eq(hash))
            .select(RefreshTokenRow::as_select())
            .for_update()
            .first(conn)
            .await
            .optional()?)
    }

    pub async fn mark_used(conn: &mut Conn, id: Uuid) -> AppResult<()> {
        diesel::update(refresh_tokens::table.find(id))
            .set(refresh_tokens::used_at.eq(diesel::dsl::now))
            .execute(conn)
            .await?;
        Ok(())
    }

    pub async fn revoke_family(conn: &mut Conn, family_id: Uuid) -> AppResult<usize> {
        Ok(diesel::update(
            refresh_tokens::table
                .filter(refresh_tokens::family_id.eq(family_id))
                .filter(refresh_tokens::revoked_at.is_null()),
        )
        .set(refresh_tokens::revoked_at.eq(diesel::dsl::now))
        .execute(conn)
        .await?)
    }
}

#[derive(QueryableByName)]
struct Family {
    #[diesel(sql_type = SqlUuid)]
    family: Uuid,
}

/// Which of these sessions (family, member, role: what an access token claims) have ended:
/// signed out, member removed, role changed, tenant deleted. Outside any tenant, so that one
/// call checks sessions of many tenants; returns only family ids.
pub async fn ended(
    conn: &mut Conn,
    families: &[Uuid],
    members: &[Uuid],
    roles: &[&str],
) -> AppResult<Vec<Uuid>> {
    let ended: Vec<Family> = diesel::sql_query(
        "SELECT fahwa_ended_sessions AS family FROM fahwa_ended_sessions($1, $2, $3)",
    )
    .bind::<Array<SqlUuid>, _>(families)
    .bind::<Array<SqlUuid>, _>(members)
    .bind::<Array<Text>, _>(roles)
    .load(conn)
    .await?;
    Ok(ended.into_iter().map(|f| f.family).collect())
}
