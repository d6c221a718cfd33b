//! Batch loaders, created per request with that request's scope, so that one batch never mixes
//! tenants and no list costs one query per row.

use std::collections::HashMap;
use std::sync::Arc;

use async_graphql::dataloader::{DataLoader, Loader};
use scoped_futures::ScopedFutureExt;
use uuid::Uuid;

use crate::db::members::MemberRow;
use crate::db::tenants::TenantRow;
use crate::db::{Db, Scope};
use crate::error::AppError;

pub struct Loaders {
    pub tenants: DataLoader<TenantLoader>,
    pub members: DataLoader<MemberLoader>,
    pub member_counts: DataLoader<MemberCountLoader>,
    pub event_counts: DataLoader<EventCountLoader>,
}

impl Loaders {
    pub fn new(db: &Db, scope: Scope) -> Self {
        let base = LoaderBase {
            db: db.clone(),
            scope,
        };
        Self {
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

pub struct TenantLoader(LoaderBase);
pub struct MemberLoader(LoaderBase);
pub struct MemberCountLoader(LoaderBase);
pub struct EventCountLoader(LoaderBase);

impl Loader<Uuid> for TenantLoader {
    type Value = TenantRow;
    type Error = Arc<AppError>;

    async fn load(&self, keys: &[Uuid]) -> Result<HashMap<Uuid, TenantRow>, Self::Error> {
        let rows = self
            .0
            .db
            .scoped(self.0.scope, |conn| {
                async move { TenantRow::find_many(conn, keys).await }.scope_boxed()
            })
            .await?;
        Ok(rows.into_iter().map(|r| (r.id, r)).collect())
    }
}

impl Loader<Uuid> for MemberLoader {
    type Value = MemberRow;
    type Error = Arc<AppError>;

    async fn load(&self, keys: &[Uuid]) -> Result<HashMap<Uuid, MemberRow>, Self::Error> {
        let rows = self
            .0
            .db
            .scoped(self.0.scope, |conn| {
                async move { MemberRow::find_many(conn, keys).await }.scope_boxed()
            })
            .await?;
        Ok(rows.into_iter().map(|r| (r.id, r)).collect())
    }
}

impl Loader<Uuid> for MemberCountLoader {
    type Value = i64;
    type Error = Arc<AppError>;

    async fn load(&self, keys: &[Uuid]) -> Result<HashMap<Uuid, i64>, Self::Error> {
        let rows = self
            .0
            .db
            .scoped(self.0.scope, |conn| {
                async move { TenantRow::member_counts(conn, keys).await }.scope_boxed()
            })
            .await?;
        Ok(rows.into_iter().collect())
    }
}

impl Loader<Uuid> for EventCountLoader {
    type Value = i64;
    type Error = Arc<AppError>;

    async fn load(&self, keys: &[Uuid]) -> Result<HashMap<Uuid, i64>, Self::Error> {
        let rows = self
            .0
            .db
            .scoped(self.0.scope, |conn| {
                async move { TenantRow::event_counts(conn, keys).await }.scope_boxed()
            })
            .await?;
        Ok(rows.into_iter().collect())
    }
}
