//! `fahwa serve --demo`: a demo tenant with one member per role, with known passwords.

use scoped_futures::ScopedFutureExt;

use crate::App;
use crate::accounts::sessions::{self, SignUpOwner};
use crate::auth::Role;
use crate::db::tenants::TenantRow;

pub const DEMO_SLUG: &str = "demo";

const PEOPLE: [(Role, &str, &str, &str); 4] = [
    (
        Role::Owner,
        "Olivia Owner",
        "owner@demo.fahwa.dev",
        "demo-owner-password",
    ),
    (
        Role::Admin,
        "Adam Admin",
        "admin@demo.fahwa.dev",
        "demo-admin-password",
    ),
    (
        Role::Analyst,
        "Ana Analyst",
        "analyst@demo.fahwa.dev",
        "demo-analyst-password",
    ),
    (
        Role::Viewer,
        "Victor Viewer",
        "viewer@demo.fahwa.dev",
        "demo-viewer-password",
    ),
];

pub async fn ensure(app: &App) -> anyhow::Result<()> {
    let (_, name, email, pass) = PEOPLE[0];
    let owner = SignUpOwner {
        name,
        email,
        password: pass,
    };
    let (tenant_id, _) = sessions::ensure_tenant(app, DEMO_SLUG, "Demo Inc.", owner).await?;
    for (role, name, email, pass) in PEOPLE.iter().skip(1).copied() {
        crate::accounts::members::ensure_with_password(app, tenant_id, role, name, email, pass)
            .await?;
    }
    let events: i64 = app
        .db
        .tenant(tenant_id, |conn| {
            async move { TenantRow::events_total(conn, tenant_id).await }.scope_boxed()
        })
        .await?;
    if events == 0 {
        let opts = crate::seed::SeedOptions {
            tenant: DEMO_SLUG.into(),
            users: 2_000,
            events: 200_000,
            days: 90,
            seed: 42,
            track: crate::seed::DEFAULT_TRACKED
                .iter()
                .map(|k| k.to_string())
                .collect(),
            progress: false,
        };
        let report = crate::seed::seed(app, &opts).await?;
        println!(
            "demo data: {} events and {} revenue changes from {} users over {} days",
            report.events, report.revenue_changes, opts.users, opts.days
        );
    }
    let analyst = PEOPLE[2].2;
    let made = app
        .db
        .tenant(tenant_id, |conn| {
            async move {
                let (_, reports) = crate::db::reports::ReportEntry::page(conn, None, 1).await?;
                let Some(owner) =
                    crate::db::members::MemberRow::find_active_by_email(conn, analyst).await?
                else {
                    return Ok(false);
                };
                if reports > 0 {
                    return Ok(false);
                }
                let widgets = crate::reports::spec::kpi_widgets();
                crate::reports::manage::insert_seeded(
                    conn,
                    tenant_id,
                    owner.id,
                    "Key figures",
                    widgets,
                )
                .await?;
                Ok(true)
            }
            .scope_boxed()
        })
        .await?;
    if made {
        println!("demo report: \"Key figures\", 8 widgets, owned by the ANALYST");
    }
    println!("\nDemo tenant ready. Log in at the playground with tenantSlug \"{DEMO_SLUG}\":");
    for (role, _, email, pass) in PEOPLE {
        println!("  {:<8} {email:<26} {pass}", role.as_str());
    }
    println!();
    Ok(())
}
