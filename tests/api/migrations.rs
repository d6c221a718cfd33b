//! Every migration runs up, down, and up again, and the schema comes back the same.

use crate::harness::fresh_database;

/// Tables, columns, indexes, policies, functions (and their settings), grants, constraints and
/// storage options, as text.
async fn describe(url: &str) -> String {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    let queries = [
        "SELECT table_name || '.' || column_name || ' ' || data_type || ' ' || is_nullable || ' ' || coalesce(column_default, '') FROM information_schema.columns WHERE table_schema = 'public' ORDER BY 1",
        "SELECT indexdef FROM pg_indexes WHERE schemaname = 'public' ORDER BY 1",
        "SELECT tablename || ' ' || policyname || ' ' || coalesce(qual, '') || ' ' || coalesce(with_check, '') FROM pg_policies WHERE schemaname = 'public' ORDER BY 1",
        "SELECT p.proname || ' ' || pg_get_function_identity_arguments(p.oid) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = 'public' ORDER BY 1",
        "SELECT table_name || ' ' || grantee || ' ' || privilege_type FROM information_schema.role_table_grants WHERE table_schema = 'public' ORDER BY 1",
        "SELECT conrelid::regclass::text || ' ' || conname || ' ' || pg_get_constraintdef(oid) FROM pg_constraint WHERE connamespace = 'public'::regnamespace ORDER BY 1",
        "SELECT relname || ' ' || array_to_string(reloptions, ',') FROM pg_class WHERE relnamespace = 'public'::regnamespace AND reloptions IS NOT NULL ORDER BY 1",
        "SELECT p.proname || ' ' || array_to_string(p.proconfig, ',') FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = 'public' AND p.proconfig IS NOT NULL ORDER BY 1",
    ];
    let mut out = String::new();
    for q in queries {
        for row in client.query(q, &[]).await.unwrap() {
            out.push_str(row.get::<_, &str>(0));
            out.push('\n');
        }
        out.push_str("--\n");
    }
    out
}

#[tokio::test]
async fn migrations_run_up_down_and_up_again() {
    let url = fresh_database().await;
    let migrated = describe(&url).await;
    assert!(migrated.contains("members.email text NO"), "{migrated}");
    // Queue tables are vacuumed after a fixed number of dead rows, not a fraction of their size.
    assert!(
        migrated.contains("pending_segments autovacuum_vacuum_scale_factor=0"),
        "{migrated}"
    );
    // Funnel steps read user and time of a name's events from the index alone.
    assert!(
        migrated.contains(
            "CREATE INDEX events_tenant_name_time_user_idx ON ONLY public.events USING btree (tenant_id, name, occurred_at) INCLUDE (user_id)"
        ),
        "{migrated}"
    );
    // The flush and everything it calls run without JIT.
    assert!(
        migrated.contains("fahwa_flush_rollups plan_cache_mode=force_custom_plan,jit=off"),
        "{migrated}"
    );

    let reverted = fahwa::db::migrate::revert_all(&url).await.unwrap();
    assert!(reverted >= 1);
    let empty = describe(&url).await;
    assert!(
        !empty.contains("members."),
        "down.sql left tables behind:\n{empty}"
    );
    assert!(
        !empty.contains("fahwa_current_tenant"),
        "down.sql left functions behind:\n{empty}"
    );

    let applied = fahwa::db::migrate::run_pending(&url).await.unwrap();
    assert_eq!(applied, reverted);
    assert_eq!(describe(&url).await, migrated);
}
