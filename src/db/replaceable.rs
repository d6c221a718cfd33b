//! The replaceable layer: every SQL function and trigger, one file each in `src/db/functions`
//! holding only its current body, applied after the migrations in one transaction. The
//! functions it applied before are dropped (with their triggers) and all are created again, so
//! that a function changes by a diff of its one file and no body is ever written twice; when
//! the text is the one already applied, nothing is done. Migrations keep tables, indexes,
//! policies and the few helpers policies and indexes depend on.

use diesel::sql_types::{Array, Text};
use diesel_async::{AsyncPgConnection, RunQueryDsl, SimpleAsyncConnection};
use sha2::{Digest, Sha256};

/// `(name, text)` of every file in `src/db/functions`, in name order (made by `build.rs`).
pub const FUNCTIONS: &[(&str, &str)] = include!(concat!(env!("OUT_DIR"), "/functions.rs"));

/// Taken while the layer is applied, so that instances starting together apply it once.
const APPLY_LOCK: i64 = 0x0066_6168_7761_5246;

/// The digest of the layer's whole text: what `fahwa_replaceable` records once it is applied.
pub fn digest() -> String {
    let mut hash = Sha256::new();
    for (name, text) in FUNCTIONS {
        hash.update(name.as_bytes());
        hash.update([0]);
        hash.update(text.as_bytes());
        hash.update([0]);
    }
    hex::encode(hash.finalize())
}

#[derive(diesel::QueryableByName)]
struct Applied {
    #[diesel(sql_type = Text)]
    digest: String,
    #[diesel(sql_type = Array<Text>)]
    names: Vec<String>,
}

/// Applies the layer to the database of `conn` (as its owner) unless this very text is applied
/// already; returns whether it applied it.
pub async fn apply(conn: &mut AsyncPgConnection) -> anyhow::Result<bool> {
    conn.batch_execute("BEGIN").await?;
    match apply_in_transaction(conn).await {
        Ok(applied) => {
            conn.batch_execute("COMMIT").await?;
            Ok(applied)
        }
        Err(e) => {
            let _ = conn.batch_execute("ROLLBACK").await;
            Err(e)
        }
    }
}

async fn apply_in_transaction(conn: &mut AsyncPgConnection) -> anyhow::Result<bool> {
    let digest = digest();
    diesel::sql_query("SELECT pg_advisory_xact_lock($1)")
        .bind::<diesel::sql_types::BigInt, _>(APPLY_LOCK)
        .execute(conn)
        .await?;
    conn.batch_execute(
        "CREATE TABLE IF NOT EXISTS fahwa_replaceable (digest text NOT NULL, names text[] NOT NULL)",
    )
    .await?;
    let applied: Vec<Applied> = diesel::sql_query("SELECT digest, names FROM fahwa_replaceable")
        .load(conn)
        .await?;
    if applied.iter().any(|a| a.digest == digest) {
        return Ok(false);
    }
    // Drop what was applied before and what is about to be (a function created by hand, or by
    // an older schema, under one of these names) with its triggers.
    let mut names: Vec<String> = applied.into_iter().flat_map(|a| a.names).collect();
    names.extend(FUNCTIONS.iter().map(|(n, _)| n.to_string()));
    drop_functions(conn, &names).await?;
    // Bodies refer to each other: none is checked until all exist.
    conn.batch_execute("SET LOCAL check_function_bodies = off")
        .await?;
    for (name, text) in FUNCTIONS {
        conn.batch_execute(text)
            .await
            .map_err(|e| anyhow::anyhow!("src/db/functions/{name}.sql: {e}"))?;
    }
    let current: Vec<&str> = FUNCTIONS.iter().map(|(n, _)| *n).collect();
    conn.batch_execute("DELETE FROM fahwa_replaceable").await?;
    diesel::sql_query("INSERT INTO fahwa_replaceable (digest, names) VALUES ($1, $2)")
        .bind::<Text, _>(&digest)
        .bind::<Array<Text>, _>(&current)
        .execute(conn)
        .await?;
    Ok(true)
}

/// Drops the layer (before the migrations are reverted).
pub async fn remove(conn: &mut AsyncPgConnection) -> anyhow::Result<()> {
    let names: Vec<String> = FUNCTIONS.iter().map(|(n, _)| n.to_string()).collect();
    drop_functions(conn, &names).await?;
    conn.batch_execute("DROP TABLE IF EXISTS fahwa_replaceable")
        .await?;
    Ok(())
}

#[derive(diesel::QueryableByName)]
struct Signature {
    #[diesel(sql_type = Text)]
    signature: String,
}

async fn drop_functions(conn: &mut AsyncPgConnection, names: &[String]) -> anyhow::Result<()> {
    let found: Vec<Signature> = diesel::sql_query(
        "SELECT p.oid::regprocedure::text AS signature FROM pg_proc p \
         WHERE p.pronamespace = 'public'::regnamespace AND p.proname = ANY($1)",
    )
    .bind::<Array<Text>, _>(names)
    .load(conn)
    .await?;
    for f in found {
        conn.batch_execute(&format!("DROP FUNCTION {} CASCADE", f.signature))
            .await?;
    }
    Ok(())
}
