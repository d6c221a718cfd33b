//! Embedded migrations, the replaceable layer applied after them, and database creation.

use anyhow::Context;
use diesel::migration::MigrationSource;
use diesel_async::{
    AsyncConnection, AsyncMigrationHarness, AsyncPgConnection, SimpleAsyncConnection,
};
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};

pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations");

/// Creates the database named in `url` if it does not exist yet.
pub async fn create_database_if_missing(url: &str) -> anyhow::Result<()> {
    let config: tokio_postgres::Config = url.parse().context("invalid database URL")?;
    let name = config
        .get_dbname()
        .context("the database URL names no database")?
        .to_string();
    let mut admin = config.clone();
    admin.dbname("postgres");
    let (client, connection) = admin
        .connect(tokio_postgres::NoTls)
        .await
        .context("cannot connect to PostgreSQL")?;
    let driver = tokio::spawn(connection);
    let exists = client
        .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&name])
        .await?
        .is_some();
    if !exists {
        let quoted = format!("\"{}\"", name.replace('"', "\"\""));
        match client
            .batch_execute(&format!("CREATE DATABASE {quoted}"))
            .await
        {
            Ok(()) => tracing::info!(database = %name, "created database"),
            // Another instance created it in the meantime.
            Err(e) if e.code() == Some(&tokio_postgres::error::SqlState::DUPLICATE_DATABASE) => {}
            Err(e) => return Err(e).context("cannot create the database"),
        }
    }
    drop(client);
    driver.abort();
    Ok(())
}

/// Runs every pending migration, as the connecting (owner) role, then applies the replaceable
/// layer (`db::replaceable`) and makes the event partitions around now. Returns how many
/// migrations ran.
pub async fn run_pending(url: &str) -> anyhow::Result<usize> {
    let conn = AsyncPgConnection::establish(url)
        .await
        .context("cannot connect to PostgreSQL")?;
    let (ran, mut conn) = tokio::task::spawn_blocking(move || {
        let mut harness = AsyncMigrationHarness::new(conn);
        refuse_unknown_versions(&mut harness)?;
        let ran = harness
            .run_pending_migrations(MIGRATIONS)
            .map(|done| done.len())
            .map_err(|e| anyhow::anyhow!("migration failed: {e}"))?;
        Ok::<_, anyhow::Error>((ran, harness.into_inner()))
    })
    .await??;
    if super::replaceable::apply(&mut conn).await? {
        tracing::info!("applied the SQL functions");
    }
    // Ingestion makes the partitions a batch needs, and `serve` keeps them ahead; rows written
    // straight into `events` need this month's to exist too.
    conn.batch_execute(
        "SELECT fahwa_ensure_event_partitions(now() - interval '1 month', now() + interval '3 months')",
    )
    .await?;
    Ok(ran)
}

/// A database migrated by a build this one does not descend from (the 22 migrations before the
/// baseline of 2026-12-03) would get the baseline on top of its tables: refused, plainly.
fn refuse_unknown_versions(
    harness: &mut AsyncMigrationHarness<AsyncPgConnection>,
) -> anyhow::Result<()> {
    let known: Vec<String> = MigrationSource::<diesel::pg::Pg>::migrations(&MIGRATIONS)
        .map_err(|e| anyhow::anyhow!("{e}"))?
        .iter()
        .map(|m| m.name().version().to_string())
        .collect();
    let applied = harness
        .applied_migrations()
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    if let Some(unknown) = applied.iter().find(|v| !known.contains(&v.to_string())) {
        anyhow::bail!(
            "this database holds migration {unknown}, which this build does not know: it was made \
             by a build from before the schema's baseline (2026-12-03) or after this one. Migrate \
             it with that build, or start from a new database"
        );
    }
    Ok(())
}

/// Reverts every migration (for the up-down-up test and `fahwa migrate --revert-all`), the
/// replaceable layer first.
pub async fn revert_all(url: &str) -> anyhow::Result<usize> {
    let mut conn = AsyncPgConnection::establish(url)
        .await
        .context("cannot connect to PostgreSQL")?;
    super::replaceable::remove(&mut conn).await?;
    tokio::task::spawn_blocking(move || {
        let mut harness = AsyncMigrationHarness::new(conn);
        harness
            .revert_all_migrations(MIGRATIONS)
            .map(|done| done.len())
            .map_err(|e| anyhow::anyhow!("revert failed: {e}"))
    })
    .await?
}
