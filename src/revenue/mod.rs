//! Revenue: changes of customers' MRR in (`ingest`), exchange rates into the tenant's currency
//! (`rates`), and exact money handling (`amount`).

pub mod amount;
pub mod index;
pub mod ingest;
pub mod rates;
pub mod report;
pub mod sourced;

use chrono::{DateTime, Utc};
use diesel::sql_types::{Array, Text, Timestamptz, Uuid as SqlUuid};
use diesel_async::RunQueryDsl;
use uuid::Uuid;

pub use ingest::{NewRevenueChange, ingest_revenue};

use crate::db::Conn;
use crate::error::AppResult;

#[derive(diesel::QueryableByName)]
struct Exists {
    #[diesel(sql_type = diesel::sql_types::Bool)]
    exists: bool,
}

/// Whether the tenant in scope has stored any revenue change.
pub async fn has_changes(conn: &mut Conn) -> AppResult<bool> {
    let found: Exists =
        diesel::sql_query("SELECT EXISTS (SELECT 1 FROM revenue_changes) AS exists")
            .get_result(conn)
            .await?;
    Ok(found.exists)
}

/// Derives again, from all of their changes, what depends on the changes of `customers` at or
/// after `since` (SQL `fahwa_recompute_customers`), inside the caller's transaction.
async fn recompute_customers(
    conn: &mut Conn,
    tenant: Uuid,
    customers: &[String],
    since: Option<DateTime<Utc>>,
) -> AppResult<()> {
    let Some(since) = since.filter(|_| !customers.is_empty()) else {
        return Ok(());
    };
    diesel::sql_query("SELECT fahwa_recompute_customers($1, $2, $3)")
        .bind::<SqlUuid, _>(tenant)
        .bind::<Array<Text>, _>(customers)
        .bind::<Timestamptz, _>(since)
        .execute(conn)
        .await?;
    Ok(())
}

/// Serializes the tenant's revenue writes until the transaction ends: a batch recomputes its
/// customers from all of their changes, which a concurrent batch must not miss; a batch
/// converted at an old rate must not land after a new rate; periods are not rebuilt under one.
pub(crate) async fn lock(conn: &mut Conn, tenant: Uuid) -> AppResult<()> {
    crate::db::locks::exclusive(conn, crate::db::locks::TenantLock::Revenue, tenant).await
}

/// After the tenant's time zone changed, inside that transaction: the periods of the revenue
/// metrics are the new zone's days, weeks and months.
pub async fn rebuild_periods(conn: &mut Conn, tenant: Uuid) -> AppResult<()> {
    lock(conn, tenant).await?;
    diesel::sql_query("SELECT fahwa_rebuild_revenue_periods($1)")
        .bind::<SqlUuid, _>(tenant)
        .execute(conn)
        .await?;
    Ok(())
}
