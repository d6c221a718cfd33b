//! API keys: stored as a SHA-256 of the secret (the secret has 256 bits of entropy, so a slow
//! hash would add latency to every ingest call and no safety).

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{Bytea, Nullable, Uuid as SqlUuid};
use diesel_async::RunQueryDsl;
use uuid::Uuid;

use super::Conn;
use super::schema::api_keys;
use crate::error::{AppError, AppResult};

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = api_keys)]
pub struct ApiKeyRow {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub name: String,
    pub key_prefix: String,
    pub scopes: Vec<String>,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Insertable)]
#[diesel(table_name = api_keys)]
pub struct NewApiKey<'a> {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub name: &'a str,
    pub key_prefix: &'a str,
    pub key_hash: &'a [u8],
    pub scopes: Vec<String>,
    pub created_by: Option<Uuid>,
}

/// What authenticating a key needs, found by its hash in one statement.
#[derive(Debug, Clone, QueryableByName)]
pub struct KeyGrant {
    #[diesel(sql_type = SqlUuid)]
    pub id: Uuid,
    #[diesel(sql_type = SqlUuid)]
    pub tenant_id: Uuid,
    #[diesel(sql_type = diesel::sql_types::Array<diesel::sql_types::Text>)]
    pub scopes: Vec<String>,
    #[diesel(sql_type = diesel::sql_types::Bool)]
    pub revoked: bool,
    #[diesel(sql_type = Nullable<diesel::sql_types::Timestamptz>)]
    pub last_used_at: Option<DateTime<Utc>>,
}

impl KeyGrant {
    pub async fn by_hash(conn: &mut Conn, hash: &[u8]) -> AppResult<Option<KeyGrant>> {
        Ok(diesel::sql_query("SELECT * FROM fahwa_api_key_by_hash($1)")
            .bind::<Bytea, _>(hash)
            .get_result(conn)
            .await
            .optional()?)
    }
}

impl ApiKeyRow {
    pub async fn insert(conn: &mut Conn, new: &NewApiKey<'_>) -> AppResult<ApiKeyRow> {
        Ok(diesel::insert_into(api_keys::table)
            .values(new)
            .returning(ApiKeyRow::as_returning())
            .get_result(conn)
            .await?)
    }

    pub async fn list(conn: &mut Conn, tenant_id: Uuid) -> AppResult<Vec<ApiKeyRow>> {
        Ok(api_keys::table
            .filter(api_keys::tenant_id.eq(tenant_id))
            .select(ApiKeyRow::as_select())
            .order((api_keys::created_at.desc(), api_keys::id))
            .load(conn)
            .await?)
    }

    pub async fn revoke(conn: &mut Conn, id: Uuid) -> AppResult<ApiKeyRow> {
        let key: ApiKeyRow = api_keys::table
            .find(id)
            .select(ApiKeyRow::as_select())
            .first(conn)
            .await
            .optional()?
            .ok_or(AppError::NotFound("API key"))?;
        if key.revoked_at.is_none() {
            diesel::update(api_keys::table.find(id))
                .set(api_keys::revoked_at.eq(diesel::dsl::now))
                .execute(conn)
                .await?;
        }
        Ok(key)
    }

    pub async fn touch_last_used(conn: &mut Conn, id: Uuid) -> AppResult<()> {
        diesel::update(api_keys::table.find(id))
            .set(api_keys::last_used_at.eq(diesel::dsl::now))
            .execute(conn)
            .await?;
        Ok(())
    }
}
