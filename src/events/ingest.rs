//! Ingestion: a batch is validated whole, then written in one transaction with its rollup deltas,
//! so it is stored whole or not at all. The deltas reach the rollups in a flush (see
//! `rollups::flush`) that any read runs first when deltas are pending, so every metric sees the
//! batch the moment the call returns.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use diesel::sql_types::{Array, BigInt, Jsonb, Nullable, Text, Timestamptz, Uuid as SqlUuid};
use diesel_async::RunQueryDsl;
use scoped_futures::ScopedFutureExt;
use serde::Deserialize;
use serde_json::{Value, json};

use super::partitions;
use crate::analytics::versions::Added;
use crate::auth::Role;
use crate::error::{AppError, AppResult};
use crate::ingestion::{Batch, IngestOutcome, Writer, close_batch, ingesting_tenant};

pub const MAX_BATCH: usize = 10_000;
pub const MAX_BATCH_BYTES: usize = 5 * 1024 * 1024;
const MAX_PROPERTIES_BYTES: usize = 32 * 1024;

/// One event as a client sends it (GraphQL `EventInput`, or JSON on the REST path).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NewEvent {
    /// Client id: the idempotency key.
    pub id: Option<String>,
    pub name: String,
    pub user_id: String,
    pub occurred_at: Option<DateTime<Utc>>,
    pub properties: Option<Value>,
}

fn check_text(value: &str, index: usize, field: &str) -> AppResult<()> {
    crate::validate::item_text(value, "events", index, field)
}

/// Columns ready for the insert, in the order of the batch, without in-batch duplicates.
struct Columns {
    client_ids: Vec<Option<String>>,
    names: Vec<String>,
    users: Vec<String>,
    times: Vec<DateTime<Utc>>,
    properties: Vec<Value>,
    in_batch_duplicates: i64,
}

fn validate(events: Vec<NewEvent>, now: DateTime<Utc>) -> AppResult<Columns> {
    if events.is_empty() {
        return Err(AppError::bad_input("events: send at least one event"));
    }
    if events.len() > MAX_BATCH {
        return Err(AppError::bad_input(format!(
            "events: at most {MAX_BATCH} events per batch, got {}",
            events.len()
        )));
    }
    let mut seen = HashSet::new();
    let mut cols = Columns {
        client_ids: Vec::with_capacity(events.len()),
        names: Vec::with_capacity(events.len()),
        users: Vec::with_capacity(events.len()),
        times: Vec::with_capacity(events.len()),
        properties: Vec::with_capacity(events.len()),
        in_batch_duplicates: 0,
    };
    let mut bytes = 0usize;
    for (i, e) in events.into_iter().enumerate() {
        check_text(&e.name, i, "name")?;
        check_text(&e.user_id, i, "userId")?;
        if let Some(id) = &e.id {
            check_text(id, i, "id")?;
        }
        let at = e.occurred_at.unwrap_or(now);
        crate::validate::occurred_at(at, now, &format!("events[{i}].occurredAt"))?;
        let props = match e.properties {
            None | Some(Value::Null) => json!({}),
            Some(Value::Object(map)) => Value::Object(map),
            Some(_) => {
                return Err(AppError::bad_input(format!(
                    "events[{i}].properties: must be a JSON object"
                )));
            }
        };
        crate::validate::json_text(&props, &format!("events[{i}].properties"))?;
        let size = props.to_string().len();
        if size > MAX_PROPERTIES_BYTES {
            return Err(AppError::bad_input(format!(
                "events[{i}].properties: {size} bytes, at most {MAX_PROPERTIES_BYTES}"
            )));
        }
        bytes += size + e.name.len() + e.user_id.len();
        if bytes > MAX_BATCH_BYTES {
            return Err(AppError::bad_input(format!(
                "events: the batch is larger than {MAX_BATCH_BYTES} bytes (at events[{i}])"
            )));
        }
        if let Some(id) = &e.id
            && !seen.insert(id.clone())
        {
            cols.in_batch_duplicates += 1;
            continue;
        }
        cols.client_ids.push(e.id);
        cols.names.push(e.name);
        cols.users.push(e.user_id);
        cols.times.push(at);
        cols.properties.push(props);
    }
    Ok(cols)
}

#[derive(diesel::QueryableByName)]
struct Written {
    #[diesel(sql_type = BigInt)]
    inserted: i64,
}

/// Inserts the new events (skipping client ids already stored) and, from exactly the rows
/// inserted, the batch's deltas for the rollups: events per (local day, name, tracked values,
/// user), and each user's first and last event. Plain inserts: nothing another batch writes.
const INSERT_EVENTS: &str = r#"
WITH input AS (
  SELECT * FROM unnest($2::text[], $3::text[], $4::text[], $5::timestamptz[], $6::jsonb[])
    AS t(client_id, name, user_id, occurred_at, properties)
), fresh_ids AS (
  INSERT INTO event_client_ids (tenant_id, client_id)
  SELECT $1, client_id FROM input WHERE client_id IS NOT NULL ORDER BY client_id
  ON CONFLICT DO NOTHING
  RETURNING client_id
), ins AS (
  INSERT INTO events (tenant_id, client_id, name, user_id, occurred_at, properties)
  SELECT $1, i.client_id, i.name, i.user_id, i.occurred_at, i.properties FROM input i
  WHERE i.client_id IS NULL OR i.client_id IN (SELECT client_id FROM fresh_ids)
  RETURNING name, user_id, occurred_at, properties
), tz AS (
  SELECT timezone, rollup_properties FROM tenants WHERE id = $1
), segments AS (
  INSERT INTO pending_segments (tenant_id, day, name, dims, user_id, events)
  SELECT $1, (ins.occurred_at AT TIME ZONE tz.timezone)::date, ins.name,
         ARRAY(SELECT ins.properties ->> k FROM unnest(tz.rollup_properties)
               WITH ORDINALITY AS u(k, o) ORDER BY o),
         ins.user_id, count(*)
  FROM ins, tz GROUP BY 2, 3, 4, 5
), users AS (
  INSERT INTO pending_users (tenant_id, user_id, first_seen, last_seen, properties)
  SELECT DISTINCT ON (user_id) $1, user_id, min(occurred_at) OVER w, max(occurred_at) OVER w, properties
  FROM ins WINDOW w AS (PARTITION BY user_id) ORDER BY user_id, occurred_at DESC
)
SELECT count(*) AS inserted FROM ins
"#;

pub async fn ingest_events(writer: Writer<'_>, events: Vec<NewEvent>) -> AppResult<IngestOutcome> {
    let (tenant_id, actor) = ingesting_tenant(writer.principal)?;
    let now = Utc::now();
    let cols = validate(events, now)?;
    let in_batch_duplicates = cols.in_batch_duplicates;
    let sent = cols.names.len() as i64;
    let empty = || AppError::bad_input("events: send at least one event");
    let min = cols.times.iter().min().copied().ok_or_else(empty)?;
    let max = cols.times.iter().max().copied().ok_or_else(empty)?;
    let (meta, principal) = (writer.meta, writer.principal);
    let (inserted, version) = writer
        .db
        .tenant(tenant_id, |conn| {
            async move {
                crate::auth::acting::confirm(conn, principal, Role::Admin).await?;
                super::rollups::lock_for_ingest(conn, tenant_id).await?;
                partitions::ensure(conn, min, max).await?;
                let written: Written = diesel::sql_query(INSERT_EVENTS)
                    .bind::<SqlUuid, _>(tenant_id)
                    .bind::<Array<Nullable<Text>>, _>(&cols.client_ids)
                    .bind::<Array<Text>, _>(&cols.names)
                    .bind::<Array<Text>, _>(&cols.users)
                    .bind::<Array<Timestamptz>, _>(&cols.times)
                    .bind::<Array<Jsonb>, _>(&cols.properties)
                    .get_result(conn)
                    .await?;
                let version = close_batch(
                    conn,
                    meta,
                    Batch {
                        tenant_id,
                        actor,
                        action: "events.ingest",
                        target_type: "Events",
                        received: sent + in_batch_duplicates,
                        added: Added::Events(written.inserted),
                    },
                )
                .await?;
                Ok((written.inserted, version))
            }
            .scope_boxed()
        })
        .await?;
    writer.announce(tenant_id, version).await;
    Ok(IngestOutcome::of(sent, in_batch_duplicates, inserted))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(id: Option<&str>) -> NewEvent {
        NewEvent {
            id: id.map(str::to_string),
            name: "login".into(),
            user_id: "u1".into(),
            occurred_at: None,
            properties: None,
        }
    }

    #[test]
    fn validation_names_the_index_and_field() {
        let now = Utc::now();
        let mut bad = event(None);
        bad.occurred_at = Some(now + chrono::Duration::hours(2));
        let err = validate(vec![event(None), bad], now).err().unwrap();
        assert!(err.to_string().starts_with("events[1].occurredAt"), "{err}");

        let mut bad = event(None);
        bad.properties = Some(json!([1, 2]));
        let err = validate(vec![bad], now).err().unwrap();
        assert!(err.to_string().starts_with("events[0].properties"), "{err}");

        let mut bad = event(None);
        bad.name = " ".into();
        assert!(validate(vec![bad], now).is_err());
        assert!(validate(vec![], now).is_err());
        assert!(validate(vec![event(None); MAX_BATCH + 1], now).is_err());
    }

    #[test]
    fn duplicates_inside_a_batch_are_counted_once() {
        let cols = validate(
            vec![event(Some("a")), event(Some("a")), event(None)],
            Utc::now(),
        )
        .unwrap();
        assert_eq!(cols.names.len(), 2);
        assert_eq!(cols.in_batch_duplicates, 1);
    }
}
