use async_graphql::connection::{Connection, Edge};
use async_graphql::{Context, ID, Object, Result};
use scoped_futures::ScopedFutureExt;

use super::types::{Report, ReportRun};
use crate::auth::guards::principal;
use crate::db::members::MemberRow;
use crate::db::reports::{ReportEntry, RunRow};
use crate::graphql::app;
use crate::graphql::loaders::Loaders;
use crate::graphql::pagination::{decode_id, encode_id, page_cost, page_size};
use crate::graphql::tenant::types::TotalCount;
use crate::validate;

#[derive(Default)]
pub struct ReportQuery;

#[Object]
impl ReportQuery {
    /// The tenant's saved reports, newest first. Members of any role and READ API keys.
    // A page and its relations are one statement, so a report's plain fields weigh a quarter
    // of a field elsewhere; widgets' data weighs more (`Widget.data`).
    #[graphql(complexity = "page_cost(first) * child_complexity / 4 + 2")]
    async fn reports(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
    ) -> Result<Connection<String, Report, TotalCount>> {
        let tenant = principal(ctx).reading_tenant()?;
        let limit = page_size(first)?;
        let before = after.map(|c| decode_id("report", &c)).transpose()?;
        // The page, its relations and its owners in one transaction of two statements.
        let ((entries, total), owners) = app(ctx)
            .db
            .tenant(tenant, |conn| {
                async move {
                    let page = ReportEntry::page(conn, before, limit + 1).await?;
                    let mut ids: Vec<_> = page.0.iter().map(|e| e.report.owner_id).collect();
                    ids.sort();
                    ids.dedup();
                    let owners = MemberRow::find_many(conn, &ids).await?;
                    Ok((page, owners))
                }
                .scope_boxed()
            })
            .await?;
        let loaders = ctx.data_unchecked::<Loaders>();
        loaders
            .report_owners
            .feed_many(owners.into_iter().map(|m| (m.id, m)))
            .await;
        let has_next = entries.len() as i64 > limit;
        let mut connection = Connection::with_additional_fields(
            before.is_some(),
            has_next,
            TotalCount { total_count: total },
        );
        for entry in entries.into_iter().take(limit as usize) {
            let cursor = encode_id("report", entry.report.id);
            connection
                .edges
                .push(Edge::new(cursor, Report::fed(ctx, entry).await));
        }
        Ok(connection)
    }

    /// One report of the caller's tenant (`NOT_FOUND` for any other).
    async fn report(&self, ctx: &Context<'_>, id: ID) -> Result<Report> {
        let tenant = principal(ctx).reading_tenant()?;
        let id = validate::uuid(&id, "id")?;
        let entry = app(ctx)
            .db
            .tenant(tenant, |conn| {
                async move { ReportEntry::find(conn, id).await }.scope_boxed()
            })
            .await?;
        Ok(Report::fed(ctx, entry).await)
    }

    /// One run of the caller's tenant (`NOT_FOUND` for any other).
    async fn report_run(&self, ctx: &Context<'_>, id: ID) -> Result<ReportRun> {
        Ok(ReportRun(find_run(ctx, &id).await?))
    }
}

/// A run of the caller's tenant.
pub async fn find_run(ctx: &Context<'_>, id: &str) -> Result<RunRow, crate::error::AppError> {
    let tenant = principal(ctx).reading_tenant()?;
    let id = validate::uuid(id, "id")?;
    app(ctx)
        .db
        .tenant(tenant, |conn| {
            async move { RunRow::find(conn, id).await }.scope_boxed()
        })
        .await
}
