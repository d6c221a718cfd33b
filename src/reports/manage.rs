//! Creating, editing and deleting reports. ANALYSTs edit their own reports, ADMINs and OWNERs
//! any; each change is checked whole, written in one transaction with its audit record, and
//! acts on the member's role as the database knows it then.

use chrono::Utc;
use scoped_futures::ScopedFutureExt;
use serde_json::json;
use uuid::Uuid;

use super::data::zone;
use super::spec::{self, WidgetQuery, WidgetSpec};
use super::{Acting, ReportFormat, Stored, access, schedule};
use crate::analytics::versions;
use crate::auth::{MemberClaims, Role, acting};
use crate::db::Conn;
use crate::db::audit::{self, Actor, AuditEntry, RequestMeta};
use crate::db::members::MemberRow;
use crate::db::reports::{ReportEntry, ReportRow, ScheduleRow, WidgetRow};
use crate::db::tenants::TenantRow;
use crate::error::{AppError, AppResult};
use crate::validate;

pub struct NewReport {
    pub name: String,
    pub description: Option<String>,
    pub widgets: Vec<WidgetSpec>,
    pub schedule: Option<ScheduleSpec>,
}

/// A schedule as given: a cron expression in the tenant's zone, the file's format, and the
/// members who receive it.
pub struct ScheduleSpec {
    pub cron: String,
    pub format: ReportFormat,
    pub recipients: Vec<String>,
}

pub const MAX_RECIPIENTS: usize = 50;

/// What an edit changes; `None` leaves a field as it is.
#[derive(Default)]
pub struct ReportChanges {
    pub name: Option<String>,
    /// `Some(None)` clears the description.
    pub description: Option<Option<String>>,
    pub widgets: Option<Vec<WidgetSpec>>,
    /// `Some(None)` removes the schedule.
    pub schedule: Option<Option<ScheduleSpec>>,
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

pub async fn create(acting: &Acting<'_>, new: NewReport) -> AppResult<ReportEntry> {
    let actor = acting.principal.member_at_least(Role::Analyst)?.clone();
    let name = validate::name(&new.name, "input.name")?;
    let description = spec::description(new.description)?;
    let meta = acting.meta;
    let tenant = actor.tenant_id;
    let entry = acting
        .services
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
                let scheduled = new.schedule.is_some();
                if let Some(given) = new.schedule {
                    let revenue = widgets.iter().any(|w| w.query.metric.is_revenue());
                    set_schedule(conn, tenant, row.id, tz, revenue, given).await?;
                }
                let details =
                    json!({ "name": row.name, "widgets": widgets.len(), "scheduled": scheduled });
                record(conn, meta, &actor, "report.create", row.id, details).await?;
                changed_version(conn, tenant).await?;
                ReportEntry::find(conn, row.id).await
            }
            .scope_boxed()
        })
        .await?;
    announce(acting, &entry).await;
    Ok(entry)
}

pub async fn update(
    acting: &Acting<'_>,
    id: &str,
    changes: ReportChanges,
) -> AppResult<ReportEntry> {
    let actor = acting.principal.member_at_least(Role::Analyst)?.clone();
    let id = validate::uuid(id, "id")?;
    let name = changes
        .name
        .map(|n| validate::name(&n, "input.name"))
        .transpose()?;
    let description = changes.description.map(spec::description).transpose()?;
    let meta = acting.meta;
    let tenant = actor.tenant_id;
    let entry = acting
        .services
        .db
        .tenant(tenant, |conn| {
            async move {
                let report = access::editable(conn, &actor, id).await?;
                let mut changed: Vec<&str> = Vec::new();
                let tz = tenant_zone(conn, tenant).await?;
                if let Some(given) = changes.widgets {
                    let widgets = spec::widgets(given, tz, Utc::now())?;
                    WidgetRow::replace(conn, id, &spec::widget_rows(tenant, id, &widgets)).await?;
                    changed.push("widgets");
                }
                match changes.schedule {
                    None => {}
                    Some(None) => {
                        ScheduleRow::set(conn, id, None).await?;
                        changed.push("schedule");
                    }
                    Some(Some(given)) => {
                        let widgets = WidgetRow::for_reports(conn, &[id]).await?;
                        let mut revenue = false;
                        for w in &widgets {
                            revenue |= WidgetQuery::of(w)?.metric.is_revenue();
                        }
                        set_schedule(conn, tenant, id, tz, revenue, given).await?;
                        changed.push("schedule");
                    }
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
                changed_version(conn, tenant).await?;
                ReportEntry::find(conn, id).await
            }
            .scope_boxed()
        })
        .await?;
    announce(acting, &entry).await;
    Ok(entry)
}

/// Deletes the report with its widgets, schedule and runs, then its runs' files.
pub async fn delete(acting: &Acting<'_>, id: &str) -> AppResult<()> {
    let actor = acting.principal.member_at_least(Role::Analyst)?.clone();
    let id = validate::uuid(id, "id")?;
    let meta = acting.meta;
    let tenant = actor.tenant_id;
    let (files, version) = acting
        .services
        .db
        .tenant(tenant, |conn| {
            async move {
                let report = access::editable(conn, &actor, id).await?;
                let files = crate::db::reports::RunRow::files_of_report(conn, id).await?;
                ReportRow::delete(conn, id).await?;
                let details = json!({ "name": report.name, "files": files.len() });
                record(conn, meta, &actor, "report.delete", id, details).await?;
                let version = changed_version(conn, tenant).await?;
                Ok((files, version))
            }
            .scope_boxed()
        })
        .await?;
    versions::announce(acting.services.cache.as_ref(), tenant, version).await;
    // After the commit: a file left behind by a failure here is still swept by retention.
    for key in files {
        if let Err(e) = acting.services.storage.delete(&key).await {
            e.report("reports: deleting a deleted report's file");
        }
    }
    Ok(())
}

/// Checks and stores a report's schedule: the expression, and recipients who are members of
/// the tenant now and may read everything the report holds.
async fn set_schedule(
    conn: &mut Conn,
    tenant: Uuid,
    report: Uuid,
    tz: chrono_tz::Tz,
    revenue: bool,
    given: ScheduleSpec,
) -> AppResult<()> {
    let field = "input.schedule";
    let cron = schedule::parse(&given.cron, &format!("{field}.cron"))?;
    if given.recipients.is_empty() || given.recipients.len() > MAX_RECIPIENTS {
        return Err(AppError::bad_input(format!(
            "{field}.recipientIds: 1 to {MAX_RECIPIENTS} members"
        )));
    }
    let mut ids = Vec::with_capacity(given.recipients.len());
    for (i, id) in given.recipients.iter().enumerate() {
        ids.push(validate::uuid(id, &format!("{field}.recipientIds[{i}]"))?);
    }
    ids.sort();
    ids.dedup();
    let members = MemberRow::find_many(conn, &ids).await?;
    for id in &ids {
        let member = members
            .iter()
            .find(|m| m.id == *id && m.removed_at.is_none())
            .ok_or_else(|| {
                AppError::bad_input(format!(
                    "{field}.recipientIds: {id} is not a member of this tenant"
                ))
            })?;
        if revenue && !member.role().at_least(Role::Analyst) {
            return Err(AppError::bad_input(format!(
                "{field}.recipientIds: {} is a {} and may not read this report's revenue widgets",
                member.name,
                member.role().as_str()
            )));
        }
    }
    let row = ScheduleRow {
        report_id: report,
        tenant_id: tenant,
        cron: given.cron.trim().to_string(),
        format: given.format.stored().to_string(),
        recipients: ids,
        next_run_at: schedule::next_after(&cron, tz, Utc::now())?,
    };
    ScheduleRow::set(conn, report, Some(&row)).await
}

/// A report written as it is, with no member acting and no audit record: for seeding (the demo
/// tenant, the benchmark), never for requests.
pub async fn insert_seeded(
    conn: &mut Conn,
    tenant: Uuid,
    owner: Uuid,
    name: &str,
    widgets: Vec<WidgetSpec>,
) -> AppResult<Uuid> {
    let now = Utc::now();
    let row = ReportRow {
        id: Uuid::now_v7(),
        tenant_id: tenant,
        owner_id: owner,
        name: name.to_string(),
        description: Some("Engagement and revenue, by day and by month".into()),
        created_at: now,
        updated_at: now,
    };
    ReportRow::insert(conn, &row).await?;
    WidgetRow::replace(conn, row.id, &spec::widget_rows(tenant, row.id, &widgets)).await?;
    Ok(row.id)
}

/// Reports are part of what a cached response shows: a change to one moves the tenant's data
/// version like new data does (last in the transaction, as every bump).
async fn changed_version(conn: &mut Conn, tenant: Uuid) -> AppResult<i64> {
    versions::bump(conn, tenant, versions::Added::Nothing).await
}

/// After the commit, before the change answers: no cached response from before it is served.
async fn announce(acting: &Acting<'_>, entry: &ReportEntry) {
    versions::announce(
        acting.services.cache.as_ref(),
        entry.report.tenant_id,
        entry.data_version,
    )
    .await;
}
