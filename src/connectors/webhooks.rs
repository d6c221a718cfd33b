//! Providers' webhook deliveries: verified and recorded while the provider waits (a bad or
//! missing signature: 400, an audit record, nothing stored), then processed on the job queue.
//! The ledger of provider event ids makes a replayed delivery a no-op; event types that change
//! nothing are acknowledged and ignored. Processing orders deliveries by the provider's own
//! time for each object (`apply`); two deliveries of the same moment are settled by fetching
//! the object from the provider.

use std::sync::Arc;

use chrono::Utc;
use scoped_futures::ScopedFutureExt;
use serde_json::{Value, json};
use uuid::Uuid;

use super::apply::{self, Source};
use super::provider::{Connector, Delivery, Interpreted};
use super::{Provider, Services, manage};
use crate::analytics::versions;
use crate::db::audit::{self, Actor, AuditEntry, RequestMeta};
use crate::db::integrations::{self as rows, IntegrationRow, NewDelivery};
use crate::error::{AppError, AppResult};
use crate::jobs::{self, Handler, Job, JobControl, JobError, NewJob};

/// The job that processes one recorded delivery (payload `{ "delivery": id }`).
pub const DELIVERY_KIND: &str = "connector.webhook";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Received {
    /// Recorded and queued.
    Accepted,
    /// This event id was recorded before: nothing more is done.
    Replayed,
    /// A type that changes nothing here: acknowledged.
    Ignored,
}

#[derive(Debug)]
pub enum Rejected {
    /// No such provider, or no standing integration of it by that id.
    NotFound,
    /// The signature did not hold (said in the audit record, not to the sender).
    Refused,
    Failed(AppError),
}

impl From<AppError> for Rejected {
    fn from(e: AppError) -> Self {
        Rejected::Failed(e)
    }
}

/// Verifies and records a delivery for `integration` of `provider` (as the path names them).
/// PostgreSQL stores no NUL character. A verified delivery that holds one keeps everything else,
/// each NUL replaced by U+FFFD, rather than being refused at every retry of its provider.
fn storable(delivery: &mut Delivery) {
    fn text(s: &mut String) {
        if s.contains('\0') {
            *s = s.replace('\0', "\u{FFFD}");
        }
    }
    // Recursion is bounded: serde_json parses at most 128 levels.
    fn value(v: &mut Value) {
        match v {
            Value::String(s) => text(s),
            Value::Array(items) => items.iter_mut().for_each(value),
            Value::Object(map) => {
                if map.keys().any(|k| k.contains('\0')) {
                    *map = std::mem::take(map)
                        .into_iter()
                        .map(|(mut k, v)| {
                            text(&mut k);
                            (k, v)
                        })
                        .collect();
                }
                map.values_mut().for_each(value);
            }
            _ => {}
        }
    }
    text(&mut delivery.event_id);
    text(&mut delivery.event_type);
    value(&mut delivery.payload);
}

pub async fn receive(
    services: &Services,
    provider: &str,
    integration: &str,
    headers: &axum::http::HeaderMap,
    body: &[u8],
    meta: &RequestMeta,
) -> Result<Received, Rejected> {
    let provider = Provider::from_slug(provider).ok_or(Rejected::NotFound)?;
    let id: Uuid = integration.parse().map_err(|_| Rejected::NotFound)?;
    let tenant = services
        .db
        .outside_tenants(|conn| async move { rows::tenant_of(conn, id).await }.scope_boxed())
        .await?
        .ok_or(Rejected::NotFound)?;
    let row = services
        .db
        .tenant(tenant, |conn| {
            async move { IntegrationRow::find(conn, id).await }.scope_boxed()
        })
        .await?
        .filter(|r| r.provider == provider.stored())
        .ok_or(Rejected::NotFound)?;
    let connector = manage::connector(services, &row)?;
    let mut delivery = match connector.verify(headers, body).await {
        Ok(d) => d,
        Err(refusal) => {
            services
                .db
                .tenant(tenant, |conn| {
                    async move {
                        audit::record(
                            conn,
                            meta,
                            AuditEntry {
                                tenant_id: Some(tenant),
                                actor: Actor::Anonymous,
                                action: "webhook.rejected",
                                target_type: Some("Integration"),
                                target_id: Some(id.to_string()),
                                details: json!({ "provider": provider.stored(), "reason": refusal.0 }),
                            },
                        )
                        .await
                    }
                    .scope_boxed()
                })
                .await?;
            return Err(Rejected::Refused);
        }
    };
    storable(&mut delivery);
    let delivery = &delivery;
    let received = services
        .db
        .tenant(tenant, |conn| {
            async move {
                let delivery_id = Uuid::now_v7();
                let empty = json!({});
                let fresh = rows::record_delivery(
                    conn,
                    &NewDelivery {
                        id: delivery_id,
                        tenant_id: tenant,
                        integration_id: id,
                        event_id: &delivery.event_id,
                        event_type: &delivery.event_type,
                        payload: if delivery.handled {
                            &delivery.payload
                        } else {
                            &empty
                        },
                        outcome: (!delivery.handled).then_some("ignored"),
                    },
                )
                .await?;
                if !fresh {
                    return Ok(Received::Replayed);
                }
                if !delivery.handled {
                    return Ok(Received::Ignored);
                }
                let job = NewJob::new(
                    DELIVERY_KIND,
                    Some(tenant),
                    json!({ "delivery": delivery_id.to_string() }),
                );
                jobs::enqueue(conn, job).await?;
                Ok(Received::Accepted)
            }
            .scope_boxed()
        })
        .await?;
    Ok(received)
}

pub struct ProcessDelivery(pub Services);

/// Observations of the same moment as the state applied are fetched again from the provider:
/// two states of one second cannot be ordered by their time alone.
async fn settle_ties(
    s: &Services,
    tenant: Uuid,
    integration: Uuid,
    connector: &Arc<dyn Connector>,
    observations: Vec<super::provider::Observation>,
) -> Result<Vec<super::provider::Observation>, JobError> {
    let ids: Vec<String> = observations.iter().map(|o| o.object_id.clone()).collect();
    let ids = &ids;
    let known =
        s.db.tenant(tenant, |conn| {
            async move { apply::observed(conn, integration, ids).await }.scope_boxed()
        })
        .await?;
    let mut out = Vec::with_capacity(observations.len());
    for o in observations {
        if known.get(&o.object_id) == Some(&o.seen_at) {
            match connector.fetch(&o.object_id).await {
                Ok(Some(mut fetched)) => {
                    fetched.seen_at = o.seen_at;
                    out.push(fetched);
                }
                Ok(None) => out.push(o),
                Err(e) => return Err(JobError::retry(e)),
            }
        } else {
            out.push(o);
        }
    }
    Ok(out)
}

#[async_trait::async_trait]
impl Handler for ProcessDelivery {
    fn kind(&self) -> &'static str {
        DELIVERY_KIND
    }

    async fn run(&self, job: &Job, _ctl: &JobControl) -> Result<(), JobError> {
        let (tenant, delivery_id) = job.tenant_and_id("delivery")?;
        let s = &self.0;
        let found =
            s.db.tenant(tenant, |conn| {
                async move {
                    let Some(d) = rows::delivery(conn, delivery_id).await? else {
                        return Ok(None);
                    };
                    let row = IntegrationRow::find(conn, d.integration_id).await?;
                    Ok(row.map(|r| (d, r)))
                }
                .scope_boxed()
            })
            .await?;
        let Some((delivery, row)) = found else {
            return Ok(());
        };
        if delivery.processed_at.is_some() || row.status == "DISCONNECTED" {
            return Ok(());
        }
        let integration = row.id;
        let connector = manage::connector(s, &row)?;
        let envelope = super::provider::Delivery {
            event_id: delivery.provider_event_id.clone(),
            event_type: delivery.event_type.clone(),
            handled: true,
            payload: delivery.payload.clone(),
        };
        let interpreted = connector.interpret(&envelope).await.map_err(|e| {
            if e.is_transient() {
                JobError::retry(e)
            } else {
                JobError::permanent(e)
            }
        })?;
        let observations = match interpreted {
            Interpreted::Observations(o) => {
                settle_ties(s, tenant, integration, &connector, o).await?
            }
            Interpreted::Nothing(why) => {
                finish(s, tenant, delivery_id, &format!("nothing to do: {why}")).await?;
                return Ok(());
            }
        };
        let observations = &observations;
        let (outcome, version) =
            s.db.tenant(tenant, |conn| {
                async move {
                    let outcome = apply::apply(
                        conn,
                        tenant,
                        integration,
                        observations,
                        Source::Webhook,
                        Utc::now(),
                    )
                    .await?;
                    let text = if outcome.stale > 0 && outcome.applied == 0 {
                        "stale: a newer state was applied before"
                    } else {
                        "applied"
                    };
                    rows::finish_delivery(conn, delivery_id, text).await?;
                    let version = outcome.bump(conn, tenant).await?;
                    Ok((outcome, version))
                }
                .scope_boxed()
            })
            .await?;
        if let Some(version) = version {
            versions::announce(s.mirror.as_ref(), tenant, version).await;
        }
        tracing::debug!(
            applied = outcome.applied,
            stale = outcome.stale,
            "delivery processed"
        );
        Ok(())
    }
}

async fn finish(s: &Services, tenant: Uuid, delivery: Uuid, outcome: &str) -> AppResult<()> {
    s.db.tenant(tenant, |conn| {
        async move { rows::finish_delivery(conn, delivery, outcome).await }.scope_boxed()
    })
    .await
}
