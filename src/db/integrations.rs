//! Connections to providers: their rows, what a sync leaves behind (checkpoint, status, error),
//! and the ledger of webhook deliveries. Credentials are only ever stored sealed.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{Jsonb, Nullable, Text, Timestamptz, Uuid as SqlUuid};
use diesel_async::RunQueryDsl;
use uuid::Uuid;

use super::Conn;
use super::schema::integrations;
use crate::error::{AppError, AppResult};

#[derive(Debug, Clone, Queryable, Selectable, Insertable, QueryableByName)]
#[diesel(table_name = integrations)]
pub struct IntegrationRow {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub provider: String,
    pub status: String,
    /// Sealed: never logged, never returned.
    pub credentials: String,
    pub webhook_secret: Option<String>,
    pub created_by: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub last_sync_at: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    pub checkpoint: Option<serde_json::Value>,
    pub disconnected_at: Option<DateTime<Utc>>,
}

/// A row as listed: with what waits for an exchange rate, which `lastError` reports.
#[derive(Debug, Clone)]
pub struct Listed {
    pub row: IntegrationRow,
    pub waiting: Option<Waiting>,
}

/// Revenue changes of an integration that wait for a rate: the first currency and day, and
/// how many wait in all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Waiting {
    pub currency: String,
    pub day: chrono::NaiveDate,
    pub count: i64,
}

impl std::fmt::Display for Waiting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} revenue change(s) wait for an exchange rate: {} on {} (set it with setExchangeRates)",
            self.count, self.currency, self.day
        )
    }
}

#[derive(QueryableByName)]
struct WaitingRow {
    #[diesel(sql_type = Text)]
    integration: String,
    #[diesel(sql_type = Text)]
    currency: String,
    #[diesel(sql_type = diesel::sql_types::Date)]
    day: chrono::NaiveDate,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    count: i64,
}

/// The prefix of every revenue change an integration writes: `<integration id>:`.
pub fn change_prefix(integration: Uuid) -> String {
    format!("{integration}:")
}

impl IntegrationRow {
    pub async fn insert(conn: &mut Conn, row: &IntegrationRow) -> AppResult<()> {
        diesel::insert_into(integrations::table)
            .values(row)
            .execute(conn)
            .await?;
        Ok(())
    }

    /// The tenant's integrations, disconnected ones included, oldest first.
    pub async fn list(conn: &mut Conn) -> AppResult<Vec<IntegrationRow>> {
        Ok(integrations::table
            .order(integrations::id)
            .select(IntegrationRow::as_select())
            .load(conn)
            .await?)
    }

    /// The integration, locked for the rest of the transaction; NOT_FOUND when the tenant in
    /// scope has none by that id.
    pub async fn lock(conn: &mut Conn, id: Uuid) -> AppResult<IntegrationRow> {
        integrations::table
            .find(id)
            .select(IntegrationRow::as_select())
            .for_update()
            .get_result(conn)
            .await
            .optional()?
            .ok_or_else(|| AppError::NotFound("integration"))
    }

    pub async fn find(conn: &mut Conn, id: Uuid) -> AppResult<Option<IntegrationRow>> {
        Ok(integrations::table
            .find(id)
            .select(IntegrationRow::as_select())
            .get_result(conn)
            .await
            .optional()?)
    }

    pub async fn set_status(
        conn: &mut Conn,
        id: Uuid,
        status: &str,
        last_error: Option<&str>,
    ) -> AppResult<()> {
        diesel::update(integrations::table.find(id))
            .set((
                integrations::status.eq(status),
                integrations::last_error.eq(last_error),
            ))
            .execute(conn)
            .await?;
        Ok(())
    }

    pub async fn save_checkpoint(
        conn: &mut Conn,
        id: Uuid,
        checkpoint: Option<&serde_json::Value>,
    ) -> AppResult<()> {
        diesel::sql_query("UPDATE integrations SET checkpoint = $2 WHERE id = $1")
            .bind::<SqlUuid, _>(id)
            .bind::<Nullable<Jsonb>, _>(checkpoint)
            .execute(conn)
            .await?;
        Ok(())
    }

    /// A sync finished: connected again, when, and no checkpoint.
    pub async fn finish_sync(conn: &mut Conn, id: Uuid, at: DateTime<Utc>) -> AppResult<()> {
        diesel::sql_query(
            "UPDATE integrations SET status = 'CONNECTED', last_error = NULL, checkpoint = NULL, \
             last_sync_at = $2 WHERE id = $1 AND status <> 'DISCONNECTED'",
        )
        .bind::<SqlUuid, _>(id)
        .bind::<Timestamptz, _>(at)
        .execute(conn)
        .await?;
        Ok(())
    }

    /// Seals replaced: the credentials (and secret) sealed again, e.g. under a new key.
    pub async fn reseal(
        conn: &mut Conn,
        id: Uuid,
        credentials: &str,
        webhook_secret: Option<&str>,
    ) -> AppResult<()> {
        diesel::update(integrations::table.find(id))
            .set((
                integrations::credentials.eq(credentials),
                integrations::webhook_secret.eq(webhook_secret),
            ))
            .execute(conn)
            .await?;
        Ok(())
    }

    /// Disconnected: the secrets are erased, the row and what was synced stay.
    pub async fn disconnect(conn: &mut Conn, id: Uuid) -> AppResult<()> {
        diesel::update(integrations::table.find(id))
            .set((
                integrations::status.eq("DISCONNECTED"),
                integrations::credentials.eq(""),
                integrations::webhook_secret.eq(None::<String>),
                integrations::checkpoint.eq(None::<serde_json::Value>),
                integrations::disconnected_at.eq(Utc::now()),
            ))
            .execute(conn)
            .await?;
        Ok(())
    }
}

/// What waits for a rate, per integration of the tenant in scope, in one statement.
pub async fn waiting(conn: &mut Conn, ids: &[Uuid]) -> AppResult<Vec<(Uuid, Waiting)>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<String> = ids.iter().map(Uuid::to_string).collect();
    let rows: Vec<WaitingRow> = diesel::sql_query(
        "SELECT integration, currency, day, count FROM ( \
           SELECT split_part(client_id, ':', 1) AS integration, currency, \
                  (occurred_at AT TIME ZONE 'UTC')::date AS day, \
                  count(*) OVER (PARTITION BY split_part(client_id, ':', 1)) AS count, \
                  row_number() OVER (PARTITION BY split_part(client_id, ':', 1) \
                                     ORDER BY occurred_at, currency) AS n \
           FROM revenue_changes_waiting WHERE split_part(client_id, ':', 1) = ANY($1)) w \
         WHERE n = 1",
    )
    .bind::<diesel::sql_types::Array<Text>, _>(&ids)
    .load(conn)
    .await?;
    Ok(rows
        .into_iter()
        .filter_map(|w| {
            let id = w.integration.parse().ok()?;
            Some((
                id,
                Waiting {
                    currency: w.currency,
                    day: w.day,
                    count: w.count,
                },
            ))
        })
        .collect())
}

/// The customers with changes of `integration` that wait for a rate.
pub async fn waiting_customers(conn: &mut Conn, integration: Uuid) -> AppResult<Vec<String>> {
    #[derive(QueryableByName)]
    struct Customer {
        #[diesel(sql_type = Text)]
        customer_id: String,
    }
    let rows: Vec<Customer> = diesel::sql_query(
        "SELECT DISTINCT customer_id FROM revenue_changes_waiting WHERE starts_with(client_id, $1)",
    )
    .bind::<Text, _>(change_prefix(integration))
    .load(conn)
    .await?;
    Ok(rows.into_iter().map(|c| c.customer_id).collect())
}

/// The tenant of an integration that still stands, before any tenant is in scope.
pub async fn tenant_of(conn: &mut Conn, id: Uuid) -> AppResult<Option<Uuid>> {
    #[derive(QueryableByName)]
    struct Found {
        #[diesel(sql_type = Nullable<SqlUuid>)]
        tenant: Option<Uuid>,
    }
    let found: Found = diesel::sql_query("SELECT fahwa_integration_tenant($1) AS tenant")
        .bind::<SqlUuid, _>(id)
        .get_result(conn)
        .await?;
    Ok(found.tenant)
}

/// Records a delivery once per provider event id; false when it was recorded before.
pub async fn record_delivery(conn: &mut Conn, delivery: &NewDelivery<'_>) -> AppResult<bool> {
    let inserted = diesel::sql_query(
        "INSERT INTO webhook_deliveries (id, tenant_id, integration_id, provider_event_id, \
         event_type, payload, processed_at, outcome) \
         VALUES ($1, $2, $3, $4, $5, $6, CASE WHEN $7::text IS NULL THEN NULL ELSE now() END, $7) \
         ON CONFLICT (integration_id, provider_event_id) DO NOTHING",
    )
    .bind::<SqlUuid, _>(delivery.id)
    .bind::<SqlUuid, _>(delivery.tenant_id)
    .bind::<SqlUuid, _>(delivery.integration_id)
    .bind::<Text, _>(delivery.event_id)
    .bind::<Text, _>(delivery.event_type)
    .bind::<Jsonb, _>(delivery.payload)
    .bind::<Nullable<Text>, _>(delivery.outcome)
    .execute(conn)
    .await?;
    Ok(inserted == 1)
}

pub struct NewDelivery<'a> {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub integration_id: Uuid,
    pub event_id: &'a str,
    pub event_type: &'a str,
    pub payload: &'a serde_json::Value,
    /// Set when nothing is left to do (an event type that is acknowledged and ignored).
    pub outcome: Option<&'a str>,
}

#[derive(Debug, Clone, QueryableByName)]
pub struct DeliveryRow {
    #[diesel(sql_type = SqlUuid)]
    pub integration_id: Uuid,
    #[diesel(sql_type = Text)]
    pub provider_event_id: String,
    #[diesel(sql_type = Text)]
    pub event_type: String,
    #[diesel(sql_type = Jsonb)]
    pub payload: serde_json::Value,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    pub processed_at: Option<DateTime<Utc>>,
}

pub async fn delivery(conn: &mut Conn, id: Uuid) -> AppResult<Option<DeliveryRow>> {
    Ok(diesel::sql_query(
        "SELECT integration_id, provider_event_id, event_type, payload, processed_at \
         FROM webhook_deliveries WHERE id = $1",
    )
    .bind::<SqlUuid, _>(id)
    .get_result(conn)
    .await
    .optional()?)
}

pub async fn finish_delivery(conn: &mut Conn, id: Uuid, outcome: &str) -> AppResult<()> {
    diesel::sql_query(
        "UPDATE webhook_deliveries SET processed_at = now(), outcome = $2 WHERE id = $1",
    )
    .bind::<SqlUuid, _>(id)
    .bind::<Text, _>(outcome)
    .execute(conn)
    .await?;
    Ok(())
}
