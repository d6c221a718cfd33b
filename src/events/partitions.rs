//! Monthly partitions of `events`, created ahead of time and on demand for backfills.

use chrono::{DateTime, Duration, Utc};
use diesel::sql_types::{Integer, Timestamptz};
use diesel_async::RunQueryDsl;
use scoped_futures::ScopedFutureExt;

use crate::db::{Conn, Db, Scope};
use crate::error::AppResult;

#[derive(diesel::QueryableByName)]
struct Created {
    #[diesel(sql_type = Integer)]
    created: i32,
}

/// Makes sure partitions cover `[from, to]`; returns how many were created.
pub async fn ensure(conn: &mut Conn, from: DateTime<Utc>, to: DateTime<Utc>) -> AppResult<i32> {
    let row: Created = diesel::sql_query("SELECT fahwa_ensure_event_partitions($1, $2) AS created")
        .bind::<Timestamptz, _>(from)
        .bind::<Timestamptz, _>(to)
        .get_result(conn)
        .await?;
    Ok(row.created)
}

/// The months around now, so that live ingestion never waits on DDL.
pub async fn ensure_ahead(db: &Db) -> AppResult<i32> {
    let now = Utc::now();
    db.scoped(Scope::Anonymous, |conn| {
        async move { ensure(conn, now - Duration::days(31), now + Duration::days(93)).await }
            .scope_boxed()
    })
    .await
}
