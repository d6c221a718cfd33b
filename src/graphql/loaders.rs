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
