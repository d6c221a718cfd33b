//! Creating, editing and deleting reports. ANALYSTs edit their own reports, ADMINs and OWNERs
//! any; each change is checked whole, written in one transaction with its audit record, and
//! acts on the member's role as the database knows it then.

use chrono::Utc;
use scoped_futures::ScopedFutureExt;
use serde_json::json;
use uuid::Uuid;

use super::data::zone;
use super::spec::{self, WidgetSpec};
use crate::accounts::Caller;
use crate::auth::{MemberClaims, Role, acting};
use crate::db::Conn;
use crate::db::audit::{self, Actor, AuditEntry, RequestMeta};
use crate::db::reports::{ReportEntry, ReportRow, WidgetRow};
use crate::db::tenants::TenantRow;
use crate::error::{AppError, AppResult};
use crate::validate;

pub struct NewReport {
    pub name: String,
    pub description: Option<String>,
    pub widgets: Vec<WidgetSpec>,
}

/// What an edit changes; `None` leaves a field as it is.
#[derive(Default)]
pub struct ReportChanges {
    pub name: Option<String>,
    /// `Some(None)` clears the description.
    pub description: Option<Option<String>>,
    pub widgets: Option<Vec<WidgetSpec>>,
}

async fn tenant_zone(conn: &mut Conn, tenant: Uuid) -> AppResult<chrono_tz::Tz> {
    Ok(zone(&TenantRow::find(conn, tenant).await?.timezone))
}

async fn record(
    conn: &mut Conn,
    meta: &RequestMeta,
    actor: &MemberClaims,
    action: &str,
    report: Uuid,
    details: serde_json::Value,
) -> AppResult<()> {
    audit::record(
        conn,
        meta,
        AuditEntry {
            tenant_id: Some(actor.tenant_id),
            actor: Actor::Member(actor.member_id),
            action,
            target_type: Some("Report"),
            target_id: Some(report.to_string()),
            details,
        },
    )
    .await
}

pub async fn create(caller: &Caller<'_>, new: NewReport) -> AppResult<ReportEntry> {
    let actor = caller.principal.member_at_least(Role::Analyst)?.clone();
    let name = validate::name(&new.name, "input.name")?;
    let description = spec::description(new.description)?;
    let meta = caller.meta;
    let tenant = actor.tenant_id;
    caller
        .app
        .db
        .tenant(tenant, |conn| {
            async move {
                acting::member_at_least(conn, &actor, Role::Analyst).await?;
                let tz = tenant_zone(conn, tenant).await?;
                let widgets = spec::widgets(new.widgets, tz, Utc::now())?;
                let now = Utc::now();
                let row = ReportRow {
                    id: Uuid::now_v7(),
                    tenant_id: tenant,
                    owner_id: actor.member_id,
                    name,
                    description,
                    created_at: now,
                    updated_at: now,
                };
                ReportRow::insert(conn, &row).await?;
                WidgetRow::replace(conn, row.id, &spec::widget_rows(tenant, row.id, &widgets))
                    .await?;
                let details = json!({ "name": row.name, "widgets": widgets.len() });
                record(conn, meta, &actor, "report.create", row.id, details).await?;
                ReportEntry::find(conn, row.id).await
            }
            .scope_boxed()
        })
        .await
}

/// The report, locked, if the member (with the role the database knows now) may change it.
async fn editable(conn: &mut Conn, actor: &MemberClaims, id: Uuid) -> AppResult<ReportRow> {
    let role = acting::member_at_least(conn, actor, Role::Analyst).await?;
    let report = ReportRow::lock(conn, id).await?;
    if report.owner_id != actor.member_id && !role.at_least(Role::Admin) {
        return Err(AppError::forbidden(
            "ANALYSTs change only their own reports; this needs the ADMIN role or higher",
        ));
    }
    Ok(report)
}

pub async fn update(
    caller: &Caller<'_>,
    id: &str,
    changes: ReportChanges,
) -> AppResult<ReportEntry> {
    let actor = caller.principal.member_at_least(Role::Analyst)?.clone();
    let id = validate::uuid(id, "id")?;
    let name = changes
        .name
        .map(|n| validate::name(&n, "input.name"))
        .transpose()?;
    let description = changes.description.map(spec::description).transpose()?;
    let meta = caller.meta;
    let tenant = actor.tenant_id;
    caller
        .app
        .db
        .tenant(tenant, |conn| {
            async move {
                let report = editable(conn, &actor, id).await?;
                let mut changed: Vec<&str> = Vec::new();
                if let Some(given) = changes.widgets {
                    let tz = tenant_zone(conn, tenant).await?;
                    let widgets = spec::widgets(given, tz, Utc::now())?;
                    WidgetRow::replace(conn, id, &spec::widget_rows(tenant, id, &widgets)).await?;
                    changed.push("widgets");
                }
                if name.is_some() {
                    changed.push("name");
                }
                if description.is_some() {
                    changed.push("description");
                }
                let name = name.unwrap_or(report.name);
                let description = description.unwrap_or(report.description);
                ReportRow::rename(conn, id, &name, description.as_deref()).await?;
                let details = json!({ "name": name, "changed": changed });
                record(conn, meta, &actor, "report.update", id, details).await?;
                ReportEntry::find(conn, id).await
            }
            .scope_boxed()
        })
        .await
}

/// Deletes the report with its widgets, schedule and runs; returns the keys of the runs' files,
/// which the caller removes from storage once this has committed.
pub async fn delete(caller: &Caller<'_>, id: &str) -> AppResult<Vec<String>> {
    let actor = caller.principal.member_at_least(Role::Analyst)?.clone();
    let id = validate::uuid(id, "id")?;
    let meta = caller.meta;
    let tenant = actor.tenant_id;
    caller
        .app
        .db
        .tenant(tenant, |conn| {
            async move {
                let report = editable(conn, &actor, id).await?;
                let files = crate::db::reports::RunRow::files_of_report(conn, id).await?;
                ReportRow::delete(conn, id).await?;
                let details = json!({ "name": report.name, "files": files.len() });
                record(conn, meta, &actor, "report.delete", id, details).await?;
                Ok(files)
            }
            .scope_boxed()
        })
        .await
}
