//! Row-level security, read from the catalog so that a table added later is covered without
//! editing this file: every table the server's role can read that holds a `tenant_id` is behind
//! a forced `tenant_isolation` policy, and the policy's tenant check is one the planner uses
//! for the tenant's index (not a filter evaluated row by row).

use crate::harness::TestApp;

/// Tables the server's role reads that hold no tenant's rows, and why.
const SHARED: &[(&str, &str)] = &[
    (
        "tenants",
        "its own policy: a tenant sees its own row (by id)",
    ),
    ("fahwa_replaceable", "the digest of the SQL layer"),
    ("__diesel_schema_migrations", "applied migrations"),
    (
        "trusted_documents",
        "the deployment's allow-list of operations",
    ),
];

/// The tables the server's role can read that are neither behind a forced tenant policy nor
/// shared; and how many were checked.
async fn unguarded(pg: &tokio_postgres::Client) -> (Vec<String>, usize) {
    let rows = pg
        .query(
            "SELECT c.relname, c.relrowsecurity, c.relforcerowsecurity,
                    EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid
                            AND a.attname = 'tenant_id' AND NOT a.attisdropped) AS has_tenant,
                    EXISTS (SELECT 1 FROM pg_policies p WHERE p.schemaname = 'public'
                            AND p.tablename = c.relname AND p.policyname = 'tenant_isolation'
                            AND p.qual LIKE '%fahwa_current_tenant()%') AS has_policy
             FROM pg_class c
             WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'p')
               -- A partition is read through its parent, whose policy applies.
               AND NOT c.relispartition
               AND has_table_privilege('fahwa_app', c.oid, 'SELECT')
             ORDER BY 1",
            &[],
        )
        .await
        .unwrap();
    let mut out = Vec::new();
    for r in &rows {
        let (name, rls, forced, tenant, policy): (String, bool, bool, bool, bool) =
            (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4));
        let guarded = tenant && rls && forced && policy;
        if !guarded && !SHARED.iter().any(|(n, _)| *n == name) {
            out.push(format!(
                "{name} (tenant_id {tenant}, rls {rls}, forced {forced}, policy {policy})"
            ));
        }
    }
    (out, rows.len())
}

#[tokio::test]
async fn every_table_with_tenant_rows_is_behind_a_forced_tenant_policy() {
    let t = TestApp::spawn().await;
    let pg = t.pg().await;
    let (loose, checked) = unguarded(&pg).await;
    assert!(
        checked > 20,
        "the catalog lists the server's tables ({checked})"
    );
    assert!(
        loose.is_empty(),
        "tables the server reads without a tenant policy: {loose:?}"
    );
    // A table added without its policy is caught.
    pg.batch_execute(
        "CREATE TABLE probe_without_policy (tenant_id uuid NOT NULL, x int);
         GRANT SELECT ON probe_without_policy TO fahwa_app;",
    )
    .await
    .unwrap();
    let (loose, _) = unguarded(&pg).await;
    assert_eq!(loose.len(), 1, "{loose:?}");
    assert!(loose[0].starts_with("probe_without_policy"), "{loose:?}");
    // No partition is readable on its own, around its parent's policy.
    let loose: i64 = pg
        .query_one(
            "SELECT count(*) FROM pg_class c WHERE c.relnamespace = 'public'::regnamespace
               AND c.relispartition AND has_table_privilege('fahwa_app', c.oid, 'SELECT')
               AND NOT c.relrowsecurity",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(loose, 0, "partitions readable without a policy");
}

/// The policy's check is a comparison with a stable function of the transaction's setting, so
/// the planner turns it into an index condition on `tenant_id`, not a per-row filter.
#[tokio::test]
async fn the_tenant_check_is_an_index_condition() {
    let t = TestApp::spawn().await;
    let owner = t.sign_up("acme").await;
    let pg = t.pg().await;
    let tables = [
        ("reports", "reports_tenant_id_idx"),
        ("integrations", "integrations_tenant_id_idx"),
        ("api_keys", ""),
    ];
    pg.batch_execute("BEGIN; SET LOCAL ROLE fahwa_app; SET LOCAL enable_seqscan = off")
        .await
        .unwrap();
    pg.query(
        "SELECT set_config('fahwa.tenant_id', $1, true)",
        &[&owner.tenant_id],
    )
    .await
    .unwrap();
    for (table, index) in tables {
        let plan: Vec<String> = pg
            .query(&format!("EXPLAIN SELECT * FROM {table}"), &[])
            .await
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
        let plan = plan.join("\n");
        // `fahwa_current_tenant()` is inlined: the setting itself is the index key.
        assert!(
            plan.contains("Index Cond: (tenant_id = (NULLIF(current_setting('fahwa.tenant_id'"),
            "{table}: {plan}"
        );
        assert!(plan.contains(index), "{table}: {plan}");
        assert!(
            !plan
                .lines()
                .any(|l| l.contains("Filter:") && l.contains("tenant_id")),
            "{table}: {plan}"
        );
    }
    pg.batch_execute("ROLLBACK").await.unwrap();
}
