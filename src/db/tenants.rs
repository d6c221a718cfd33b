//! Tenants: the companies that use Fahwa.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{Nullable, Text, Uuid as SqlUuid};
use diesel_async::RunQueryDsl;
use uuid::Uuid;

use super::Conn;
use super::schema::{members, tenant_usage, tenants};
use crate::error::AppResult;

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = tenants)]
pub struct TenantRow {
    pub id: Uuid,
    pub name: String,
    pub slug: String,
    pub timezone: String,
    pub currency: String,
    pub created_at: DateTime<Utc>,
    /// Months of events kept; `None` keeps them all.
    pub retention_months: Option<i32>,
    /// Property keys the tenant asks the rollups to keep.
    pub tracked_properties: Vec<String>,
    /// Property keys the rollups hold now (set by each rebuild).
    pub rollup_properties: Vec<String>,
}

#[derive(Debug, Default, AsChangeset)]
#[diesel(table_name = tenants)]
pub struct TenantChanges {
    pub name: Option<String>,
    pub timezone: Option<String>,
    pub currency: Option<String>,
    /// `Some(None)` clears it.
    pub retention_months: Option<Option<i32>>,
    pub tracked_properties: Option<Vec<String>>,
}

#[derive(QueryableByName)]
struct FoundId {
    #[diesel(sql_type = Nullable<SqlUuid>)]
    id: Option<Uuid>,
}

impl TenantRow {
    pub async fn insert(conn: &mut Conn, row: &TenantRow) -> Result<(), diesel::result::Error> {
        diesel::insert_into(tenants::table)
            .values(row)
            .execute(conn)
            .await?;
        diesel::insert_into(tenant_usage::table)
            .values(tenant_usage::tenant_id.eq(row.id))
            .execute(conn)
            .await?;
        Ok(())
    }

    /// Works in any scope: the slug is public, and only the id comes back.
    pub async fn id_by_slug(conn: &mut Conn, slug: &str) -> AppResult<Option<Uuid>> {
        let found: FoundId = diesel::sql_query("SELECT fahwa_tenant_id_by_slug($1) AS id")
            .bind::<Text, _>(slug)
            .get_result(conn)
            .await?;
        Ok(found.id)
    }

    pub async fn find(conn: &mut Conn, id: Uuid) -> AppResult<TenantRow> {
        Ok(tenants::table
            .find(id)
            .select(TenantRow::as_select())
            .first(conn)
            .await?)
    }

    pub async fn find_many(conn: &mut Conn, ids: &[Uuid]) -> AppResult<Vec<TenantRow>> {
        Ok(tenants::table
            .filter(tenants::id.eq_any(ids))
            .select(TenantRow::as_select())
            .load(conn)
            .await?)
    }

    pub async fn update(conn: &mut Conn, id: Uuid, changes: &TenantChanges) -> AppResult<()> {
        if changes.name.is_none()
            && changes.timezone.is_none()
            && changes.currency.is_none()
            && changes.retention_months.is_none()
            && changes.tracked_properties.is_none()
        {
            return Ok(());
        }
        diesel::update(tenants::table.find(id))
            .set(changes)
            .execute(conn)
            .await?;
        Ok(())
    }

    pub async fn delete(conn: &mut Conn, id: Uuid) -> AppResult<()> {
        diesel::delete(tenants::table.find(id))
            .execute(conn)
            .await?;
        Ok(())
    }

    /// One page in creation order, after `after` (created_at, id).
    pub async fn page(
        conn: &mut Conn,
        after: Option<(DateTime<Utc>, Uuid)>,
        limit: i64,
    ) -> AppResult<Vec<TenantRow>> {
        let mut query = tenants::table
            .select(TenantRow::as_select())
            .order((tenants::created_at, tenants::id))
            .limit(limit)
            .into_boxed();
        if let Some((at, id)) = after {
            query = query.filter(
                tenants::created_at
                    .gt(at)
                    .or(tenants::created_at.eq(at).and(tenants::id.gt(id))),
            );
        }
        Ok(query.load(conn).await?)
    }

    /// Events stored for one tenant (the counter ingestion keeps).
    pub async fn events_total(conn: &mut Conn, id: Uuid) -> AppResult<i64> {
        Ok(tenant_usage::table
            .find(id)
            .select(tenant_usage::events_total)
            .first(conn)
            .await?)
    }

    /// Every tenant's retention (operator scope).
    pub async fn retentions(conn: &mut Conn) -> AppResult<Vec<(Uuid, Option<i32>)>> {
        Ok(tenants::table
            .select((tenants::id, tenants::retention_months))
            .load(conn)
            .await?)
    }

    /// Every tenant's id (operator scope).
    pub async fn ids(conn: &mut Conn) -> AppResult<Vec<Uuid>> {
        Ok(tenants::table.select(tenants::id).load(conn).await?)
    }

    pub async fn count(conn: &mut Conn) -> AppResult<i64> {
        Ok(tenants::table.count().get_result(conn).await?)
    }

    pub async fn member_counts(conn: &mut Conn, ids: &[Uuid]) -> AppResult<Vec<(Uuid, i64)>> {
        Ok(members::table
            .filter(members::tenant_id.eq_any(ids))
            .filter(members::removed_at.is_null())
            .group_by(members::tenant_id)
            .select((members::tenant_id, diesel::dsl::count_star()))
            .load(conn)
            .await?)
    }

    pub async fn event_counts(conn: &mut Conn, ids: &[Uuid]) -> AppResult<Vec<(Uuid, i64)>> {
        Ok(tenant_usage::table
            .filter(tenant_usage::tenant_id.eq_any(ids))
            .select((tenant_usage::tenant_id, tenant_usage::events_total))
            .load(conn)
            .await?)
    }
}
