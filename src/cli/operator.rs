//! `fahwa create-operator`: platform operators see every tenant (`tenants`).

use scoped_futures::ScopedFutureExt;
use serde_json::json;
use uuid::Uuid;

use crate::App;
use crate::accounts::sessions::{self, SignUpOwner};
use crate::auth::password;
use crate::db::audit::{self, Actor, AuditEntry};
use crate::db::members::{MemberRow, NewMember};
use crate::db::schema::members;

pub const OPERATOR_TENANT: &str = "fahwa-operators";

pub async fn create(
    app: &App,
    slug: &str,
    name: &str,
    email: &str,
    pass: &str,
) -> anyhow::Result<()> {
    let email = crate::validate::email(email, "--email")?;
    password::validate(pass, "--password")?;
    let owner = SignUpOwner {
        name,
        email: &email,
        password: pass,
    };
    let (tenant_id, _) = sessions::ensure_tenant(app, slug, "Fahwa operators", owner).await?;
    let meta = sessions::request_meta_for_cli();
    let hash = password::hash(pass).await?;
    let meta = &meta;
    let email_ref = &email;
    app.db
        .tenant(tenant_id, |conn| {
            async move {
                use diesel::prelude::*;
                use diesel_async::RunQueryDsl;
                let email = email_ref;
                let member = match MemberRow::find_active_by_email(conn, email).await? {
                    Some(m) => m,
                    None => {
                        MemberRow::insert(
                            conn,
                            &NewMember {
                                id: Uuid::new_v4(),
                                tenant_id,
                                email,
                                name,
                                password_hash: &hash,
                                role: "OWNER",
                                is_operator: true,
                            },
                        )
                        .await?
                    }
                };
                diesel::update(members::table.find(member.id))
                    .set((
                        members::is_operator.eq(true),
                        members::password_hash.eq(&hash),
                    ))
                    .execute(conn)
                    .await?;
                audit::record(
                    conn,
                    meta,
                    AuditEntry {
                        tenant_id: Some(tenant_id),
                        actor: Actor::System,
                        action: "member.grant_operator",
                        target_type: Some("Member"),
                        target_id: Some(member.id.to_string()),
                        details: json!({ "email": email }),
                    },
                )
                .await
            }
            .scope_boxed()
        })
        .await?;
    println!("operator ready: log in with tenantSlug \"{slug}\" and email {email}");
    Ok(())
}
