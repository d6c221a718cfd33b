//! Every migration runs up, down, and up again, and the schema comes back the same, function
//! bodies included; and every SQL function is written once in the tree, in the replaceable
//! layer, but for the helpers policies and indexes depend on.

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
        "SELECT pg_get_functiondef(p.oid) FROM pg_proc p WHERE p.pronamespace = 'public'::regnamespace AND p.prokind = 'f' ORDER BY p.proname",
        "SELECT pg_get_triggerdef(t.oid) FROM pg_trigger t WHERE NOT t.tgisinternal ORDER BY 1",
        "SELECT pubname || ' ' || schemaname || '.' || tablename FROM pg_publication_tables ORDER BY 1",
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

/// The functions the baseline migration holds: policies and indexes depend on them, so they
/// cannot be dropped and made again with the replaceable layer.
const MIGRATION_HELPERS: [&str; 3] = [
    "fahwa_current_tenant",
    "fahwa_is_operator",
    "fahwa_dims_key",
];

/// The names of the functions a SQL text creates.
fn created_functions(text: &str) -> Vec<String> {
    let lower = text.to_lowercase();
    let mut out = Vec::new();
    for (i, _) in lower.match_indices("function ") {
        let before = lower[..i].trim_end();
        if !(before.ends_with("create") || before.ends_with("or replace")) {
            continue;
        }
        let name: String = lower[i + "function ".len()..]
            .trim_start()
            .trim_start_matches("public.")
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        out.push(name);
    }
    out
}

#[test]
fn every_function_is_written_once_in_the_replaceable_layer() {
    let root = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let mut seen: Vec<(String, String)> = Vec::new();
    for dir in ["migrations", "src/db/functions"] {
        let mut stack = vec![root.join(dir)];
        while let Some(path) = stack.pop() {
            if path.is_dir() {
                stack.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
            } else if path.extension().is_some_and(|e| e == "sql") {
                let text = std::fs::read_to_string(&path).unwrap();
                let where_ = path.strip_prefix(&root).unwrap().display().to_string();
                for name in created_functions(&text) {
                    seen.push((name, where_.clone()));
                }
            }
        }
    }
    for (name, file) in &seen {
        let twice: Vec<&String> = seen
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, f)| f)
            .collect();
        assert_eq!(twice.len(), 1, "{name} is created in {twice:?}");
        if file.starts_with("migrations") {
            assert!(
                MIGRATION_HELPERS.contains(&name.as_str()),
                "{name} is a function in a migration ({file}); it belongs in src/db/functions"
            );
        } else {
            assert_eq!(
                file,
                &format!("src/db/functions/{name}.sql"),
                "each function file holds the function it is named after"
            );
        }
    }
    assert_eq!(
        fahwa::db::replaceable::FUNCTIONS.len(),
        seen.len() - MIGRATION_HELPERS.len()
    );
}

#[tokio::test]
async fn the_database_holds_no_function_but_the_layers_and_the_helpers() {
    let url = fresh_database().await;
    let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    let rows = client
        .query(
            "SELECT proname::text FROM pg_proc WHERE pronamespace = 'public'::regnamespace ORDER BY 1",
            &[],
        )
        .await
        .unwrap();
    let layer: Vec<&str> = fahwa::db::replaceable::FUNCTIONS
        .iter()
        .map(|(n, _)| *n)
        .collect();
    for row in rows {
        let name: String = row.get(0);
        assert!(
            layer.contains(&name.as_str()) || MIGRATION_HELPERS.contains(&name.as_str()),
            "{name} lives in the database but in neither the layer nor the baseline's helpers"
        );
    }
}

#[tokio::test]
async fn every_lock_the_server_takes_has_a_key_and_no_other_does() {
    let url = fresh_database().await;
    let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    let tenant = uuid::Uuid::new_v4().to_string();
    let mut keys = Vec::new();
    for lock in fahwa::db::locks::TenantLock::ALL {
        let key: i64 = client
            .query_one(
                "SELECT fahwa_lock_key($1, $2::text::uuid)",
                &[&lock.name(), &tenant],
            )
            .await
            .unwrap_or_else(|e| panic!("{lock:?}: {e}"))
            .get(0);
        keys.push(key);
    }
    keys.sort();
    keys.dedup();
    assert_eq!(
        keys.len(),
        fahwa::db::locks::TenantLock::ALL.len(),
        "distinct keys"
    );
    let unknown = client
        .query_one("SELECT fahwa_lock_key('nope', NULL)", &[])
        .await;
    assert!(unknown.is_err(), "a name not listed is an error");
}
