//! A sync on the job queue: pages pulled from the provider from the integration's checkpoint,
//! each page applied and the next checkpoint saved in one transaction, so that a sync that
//! stops anywhere (a killed process, a lost lease) resumes at the page it was on and writes
//! nothing twice. When the last page is in, the integration is CONNECTED again and says when.

use std::sync::Arc;

use chrono::Utc;
use scoped_futures::ScopedFutureExt;
use serde_json::json;
use uuid::Uuid;

use super::Services;
use super::api::ApiError;
use super::apply::{self, Source};
use super::manage::{self, SYNC_KIND};
use super::reconcile;
use crate::analytics::versions;
use crate::db::audit::{self, Actor, AuditEntry, RequestMeta};
use crate::db::integrations::{self as rows, IntegrationRow};
use crate::jobs::{Handler, Job, JobControl, JobError};

pub struct SyncIntegration(pub Services);

/// What a member reads in `lastError` (never a credential: provider messages are about the
/// request, and ours name no secret).
fn member_message(e: &ApiError) -> String {
    match e {
        ApiError::Unauthorized { provider } => {
            format!("{provider} refused the credentials; connect again with a valid key")
        }
        other => other.to_string(),
    }
}

async fn set_error(s: &Services, tenant: Uuid, id: Uuid, message: &str) {
    let result =
        s.db.tenant(tenant, |conn| {
            async move { IntegrationRow::set_status(conn, id, "ERROR", Some(message)).await }
                .scope_boxed()
        })
        .await;
    if let Err(e) = result {
        tracing::warn!(error = %e, integration = %id, "could not record a sync's error");
    }
}

#[async_trait::async_trait]
impl Handler for SyncIntegration {
    fn kind(&self) -> &'static str {
        SYNC_KIND
    }

    async fn run(&self, job: &Job, ctl: &JobControl) -> Result<(), JobError> {
        let (tenant, id) = job.tenant_and_id("integration")?;
        let s = &self.0;
        let Some(row) =
            s.db.tenant(tenant, |conn| {
                async move { IntegrationRow::find(conn, id).await }.scope_boxed()
            })
            .await?
        else {
            return Ok(());
        };
        if row.status == "DISCONNECTED" {
            return Ok(());
        }
        let connector = manage::connector(s, &row)?;
        let mut checkpoint = row.checkpoint.clone();
        let (mut pages, mut objects, mut changes) = (0u64, 0usize, 0i64);
        loop {
            if ctl.is_lost() {
                return Ok(());
            }
            let page = match connector.pull(checkpoint.as_ref()).await {
                Ok(page) => page,
                Err(e) => {
                    let message = member_message(&e);
                    if !e.is_transient() || job.is_last_attempt() {
                        set_error(s, tenant, id, &message).await;
                        return Err(JobError::permanent(anyhow::anyhow!(message)));
                    }
                    return Err(JobError::retry(anyhow::anyhow!(message)));
                }
            };
            let next = page.next.clone();
            let observations = page.observations;
            let attempt = job.attempt;
            let job_id = job.id;
            let (outcome, version) =
                s.db.tenant(tenant, |conn| {
                    let (observations, next) = (&observations, &next);
                    async move {
                        // A lease taken over: the newer attempt owns the checkpoint.
                        if !crate::jobs::queue::holds(conn, job_id, attempt).await? {
                            return Ok((apply::Outcome::default(), None));
                        }
                        let outcome =
                            apply::apply(conn, tenant, id, observations, Source::Sync, Utc::now())
                                .await?;
                        IntegrationRow::save_checkpoint(conn, id, next.as_ref()).await?;
                        let version = outcome.bump(conn, tenant).await?;
                        Ok((outcome, version))
                    }
                    .scope_boxed()
                })
                .await?;
            if let Some(version) = version {
                versions::announce(s.mirror.as_ref(), tenant, version).await;
            }
            pages += 1;
            objects += outcome.applied;
            changes += outcome.revenue.inserted;
            tracing::info!(integration = %id, pages, objects, "sync page applied");
            checkpoint = next;
            if checkpoint.is_none() {
                break;
            }
        }
        let checked =
            s.db.tenant(tenant, |conn| {
                async move {
                    let now = Utc::now();
                    IntegrationRow::finish_sync(conn, id, now).await?;
                    let check = reconcile::stored(conn, id, now).await?;
                    let waiting = rows::waiting_customers(conn, id).await?;
                    let unexplained: Vec<String> = check
                        .differences
                        .iter()
                        .filter(|d| !waiting.contains(&d.customer))
                        .map(ToString::to_string)
                        .collect();
                    if let Some(first) = unexplained.first() {
                        let message = format!(
                            "after the sync, {} customer(s) differ from the provider, e.g. {first}",
                            unexplained.len()
                        );
                        IntegrationRow::set_status(conn, id, "CONNECTED", Some(&message)).await?;
                    }
                    audit::record(
                        conn,
                        &RequestMeta::default(),
                        AuditEntry {
                            tenant_id: Some(tenant),
                            actor: Actor::System,
                            action: "integration.synced",
                            target_type: Some("Integration"),
                            target_id: Some(id.to_string()),
                            details: json!({
                                "pages": pages,
                                "objects": objects,
                                "revenueChanges": changes,
                                "customersReconciled": check.customers,
                                "differences": unexplained.len(),
                            }),
                        },
                    )
                    .await?;
                    Ok(unexplained)
                }
                .scope_boxed()
            })
            .await?;
        if !checked.is_empty() {
            tracing::warn!(integration = %id, differences = checked.len(), "a sync's revenue differs from what it read");
        }
        Ok(())
    }

    async fn failed(&self, job: &Job, error: &str) {
        if let Ok((tenant, id)) = job.tenant_and_id("integration") {
            set_error(&self.0, tenant, id, error).await;
        }
    }
}

/// Adds the connectors' handlers to a worker's registry.
pub fn register(registry: &mut crate::jobs::Registry, services: &Services) {
    registry.register(Arc::new(SyncIntegration(services.clone())));
    registry.register(Arc::new(super::webhooks::ProcessDelivery(services.clone())));
}
