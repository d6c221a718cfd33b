//! Batch loaders, created per request with that request's scope, so that one batch never mixes
//! tenants and no list costs one query per row.

use std::collections::HashMap;
use std::sync::Arc;

use async_graphql::dataloader::{DataLoader, HashMapCache, Loader};
use scoped_futures::ScopedFutureExt;
use uuid::Uuid;

use crate::analytics::Series;
use crate::app::App;
use crate::auth::Principal;
use crate::db::members::MemberRow;
use crate::db::reports::{ReportRow, RunRow, ScheduleRow, WidgetRow};
use crate::db::tenants::TenantRow;
use crate::db::{Db, Scope};
use crate::error::AppError;
use crate::reports::spec::WidgetQuery;

pub struct Loaders {
    pub tenants: DataLoader<TenantLoader>,
    pub members: DataLoader<MemberLoader>,
    pub member_counts: DataLoader<MemberCountLoader>,
    pub event_counts: DataLoader<EventCountLoader>,
    /// Reports' loaders keep what they loaded (or were fed) for the request: a list page feeds
    /// them what its one statement read.
    pub reports: DataLoader<ReportLoader, HashMapCache>,
    pub report_owners: DataLoader<MemberLoader, HashMapCache>,
    pub report_widgets: DataLoader<WidgetsLoader, HashMapCache>,
    pub last_runs: DataLoader<LastRunLoader, HashMapCache>,
    pub schedules: DataLoader<ScheduleLoader, HashMapCache>,
    pub widget_data: DataLoader<WidgetDataLoader, HashMapCache>,
    pub run_pages: DataLoader<RunPageLoader, HashMapCache>,
}

impl Loaders {
    pub fn new(app: &App, principal: &Principal) -> Self {
        let base = LoaderBase {
            db: app.db.clone(),
            scope: principal.loader_scope(),
        };
        let cached = HashMapCache::default;
        Self {
            reports: DataLoader::with_cache(ReportLoader(base.clone()), tokio::spawn, cached()),
            report_owners: DataLoader::with_cache(
                MemberLoader(base.clone()),
                tokio::spawn,
                cached(),
            ),
            report_widgets: DataLoader::with_cache(
                WidgetsLoader(base.clone()),
                tokio::spawn,
                cached(),
            ),
            last_runs: DataLoader::with_cache(LastRunLoader(base.clone()), tokio::spawn, cached()),
            schedules: DataLoader::with_cache(ScheduleLoader(base.clone()), tokio::spawn, cached()),
            run_pages: DataLoader::with_cache(RunPageLoader(base.clone()), tokio::spawn, cached()),
            widget_data: DataLoader::with_cache(
                WidgetDataLoader {
                    app: app.clone(),
                    tenant: principal.reading_tenant().ok(),
                },
                tokio::spawn,
                cached(),
            ),
            tenants: DataLoader::new(TenantLoader(base.clone()), tokio::spawn),
            members: DataLoader::new(MemberLoader(base.clone()), tokio::spawn),
            member_counts: DataLoader::new(MemberCountLoader(base.clone()), tokio::spawn),
            event_counts: DataLoader::new(EventCountLoader(base), tokio::spawn),
        }
    }
}

#[derive(Clone)]
pub struct LoaderBase {
    db: Db,
    scope: Scope,
}

/// A loader that reads one batch of keys in the request's scope.
macro_rules! scoped_loader {
    ($name:ident, $value:ty, |$conn:ident, $keys:ident| $load:expr, |$row:ident| $entry:expr) => {
        pub struct $name(LoaderBase);

        impl Loader<Uuid> for $name {
            type Value = $value;
            type Error = Arc<AppError>;

            async fn load(&self, $keys: &[Uuid]) -> Result<HashMap<Uuid, $value>, Self::Error> {
                let rows = self
                    .0
                    .db
                    .scoped(self.0.scope, |$conn| {
                        async move { $load.await }.scope_boxed()
                    })
                    .await?;
                Ok(rows.into_iter().map(|$row| $entry).collect())
            }
        }
    };
}

scoped_loader!(
    TenantLoader,
    TenantRow,
    |conn, keys| TenantRow::find_many(conn, keys),
    |r| (r.id, r)
);
scoped_loader!(
    MemberLoader,
    MemberRow,
    |conn, keys| MemberRow::find_many(conn, keys),
    |r| (r.id, r)
);
scoped_loader!(
    MemberCountLoader,
    i64,
    |conn, keys| TenantRow::member_counts(conn, keys),
    |r| r
);
scoped_loader!(
    EventCountLoader,
    i64,
    |conn, keys| TenantRow::event_counts(conn, keys),
    |r| r
);
scoped_loader!(
    ReportLoader,
    ReportRow,
    |conn, keys| ReportRow::find_many(conn, keys),
    |r| (r.id, r)
);

/// A loader whose value is a list per key (every key gets one, empty when nothing matches).
macro_rules! grouped_loader {
    ($name:ident, $value:ty, |$conn:ident, $keys:ident| $load:expr, |$row:ident| $key:expr, $fold:expr) => {
        pub struct $name(LoaderBase);

        impl Loader<Uuid> for $name {
            type Value = $value;
            type Error = Arc<AppError>;

            async fn load(&self, $keys: &[Uuid]) -> Result<HashMap<Uuid, $value>, Self::Error> {
                let rows = self
                    .0
                    .db
                    .scoped(self.0.scope, |$conn| {
                        async move { $load.await }.scope_boxed()
                    })
                    .await?;
                let mut out: HashMap<Uuid, $value> =
                    $keys.iter().map(|k| (*k, Default::default())).collect();
                for $row in rows {
                    if let Some(slot) = out.get_mut(&$key) {
                        $fold(slot, $row);
                    }
                }
                Ok(out)
            }
        }
    };
}

grouped_loader!(
    WidgetsLoader,
    Vec<WidgetRow>,
    |conn, keys| WidgetRow::for_reports(conn, keys),
    |row| row.report_id,
    |slot: &mut Vec<WidgetRow>, row| slot.push(row)
);
grouped_loader!(
    LastRunLoader,
    Option<RunRow>,
    |conn, keys| RunRow::last_for_reports(conn, keys),
    |row| row.report_id,
    |slot: &mut Option<RunRow>, row| *slot = Some(row)
);
grouped_loader!(
    ScheduleLoader,
    Option<ScheduleRow>,
    |conn, keys| ScheduleRow::for_reports(conn, keys),
    |row| row.report_id,
    |slot: &mut Option<ScheduleRow>, row| *slot = Some(row)
);

/// Widgets' data: every widget of the request in one batch, so that widgets over the same
/// window share one prefetch and one revenue report.
pub struct WidgetDataLoader {
    app: App,
    /// The tenant the caller reads, if any.
    tenant: Option<Uuid>,
}

impl Loader<WidgetQuery> for WidgetDataLoader {
    /// The series and the data version it was computed at.
    type Value = (Series, i64);
    type Error = Arc<AppError>;

    async fn load(
        &self,
        keys: &[WidgetQuery],
    ) -> Result<HashMap<WidgetQuery, (Series, i64)>, Self::Error> {
        let tenant = self.tenant.ok_or(AppError::NotFound("report"))?;
        let reading = crate::reports::data::Reading {
            db: &self.app.db,
            cache: self.app.config.metric_cache.then_some(&self.app.kv),
            revenue_index: self.app.revenue_index.as_ref(),
        };
        let (version, series) =
            crate::reports::data::series(reading, tenant, keys, chrono::Utc::now()).await?;
        Ok(keys
            .iter()
            .cloned()
            .zip(series.into_iter().map(|s| (s, version)))
            .collect())
    }
}

/// One page of a report's runs: which report, before which run, how many.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RunPage {
    pub report: Uuid,
    pub before: Option<Uuid>,
    pub limit: i64,
}

/// Pages of runs for every report of a list, one statement per distinct page shape.
pub struct RunPageLoader(LoaderBase);

impl Loader<RunPage> for RunPageLoader {
    type Value = Vec<RunRow>;
    type Error = Arc<AppError>;

    async fn load(&self, keys: &[RunPage]) -> Result<HashMap<RunPage, Vec<RunRow>>, Self::Error> {
        let mut shapes: HashMap<(Option<Uuid>, i64), Vec<Uuid>> = HashMap::new();
        for k in keys {
            shapes
                .entry((k.before, k.limit))
                .or_default()
                .push(k.report);
        }
        let shapes = &shapes;
        let rows = self
            .0
            .db
            .scoped(self.0.scope, |conn| {
                async move {
                    let mut out = Vec::new();
                    for ((before, limit), reports) in shapes {
                        let rows = RunRow::pages(conn, reports, *before, *limit).await?;
                        out.push(((*before, *limit), rows));
                    }
                    Ok::<_, AppError>(out)
                }
                .scope_boxed()
            })
            .await?;
        let mut out: HashMap<RunPage, Vec<RunRow>> =
            keys.iter().map(|k| (*k, Vec::new())).collect();
        for ((before, limit), rows) in rows {
            for row in rows {
                let key = RunPage {
                    report: row.report_id,
                    before,
                    limit,
                };
                if let Some(list) = out.get_mut(&key) {
                    list.push(row);
                }
            }
        }
        Ok(out)
    }
}
