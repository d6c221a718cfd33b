//! Sign-up, log-in, refresh and log-out.

use chrono::{Duration, Utc};
use scoped_futures::ScopedFutureExt;
use serde_json::json;
use uuid::Uuid;

use super::Caller;
use crate::app::App;
use crate::auth::throttle::LoginThrottle;
use crate::auth::tokens::IssuedToken;
use crate::auth::{MemberClaims, Role, password, secrets};
use crate::db::audit::{self, Actor, AuditEntry, RequestMeta};
use crate::db::members::{MemberRow, NewMember};
use crate::db::sessions::{NewRefreshToken, RefreshTokenRow};
use crate::db::tenants::TenantRow;
use crate::db::{Conn, Scope};
use crate::error::{AppError, AppResult};
use crate::validate;

pub struct SessionGrant {
    pub access: IssuedToken,
    pub refresh_token: String,
    pub member: MemberRow,
    pub tenant: TenantRow,
}

pub struct SignUp {
    pub tenant_name: String,
    pub tenant_slug: Option<String>,
    pub name: String,
    pub email: String,
    pub password: String,
}

const INVALID_LOGIN: &str = "invalid email or password";

/// Creates the refresh token (in `family`, or a new one) and the access token.
async fn grant(
    conn: &mut Conn,
    app: &App,
    member: MemberRow,
    tenant: TenantRow,
    family: Option<Uuid>,
) -> AppResult<SessionGrant> {
    let refresh_token = secrets::generate(secrets::REFRESH_TOKEN_PREFIX);
    let family_id = family.unwrap_or_else(Uuid::new_v4);
    RefreshTokenRow::insert(
        conn,
        &NewRefreshToken {
            id: Uuid::new_v4(),
            tenant_id: tenant.id,
            member_id: member.id,
            family_id,
            token_hash: &secrets::digest(&refresh_token),
            expires_at: Utc::now() + Duration::days(app.config.refresh_token_ttl_days as i64),
        },
    )
    .await?;
    let claims = MemberClaims {
        member_id: member.id,
        tenant_id: tenant.id,
        role: member.role(),
        operator: member.is_operator,
        family_id,
        expires_at: Utc::now(),
    };
    let access = app.tokens.issue(&claims).map_err(AppError::internal)?;
    Ok(SessionGrant {
        access,
        refresh_token,
        member,
        tenant,
    })
}

pub async fn sign_up(caller: &Caller<'_>, input: SignUp) -> AppResult<SessionGrant> {
    crate::auth::throttle::count_sign_up(
        &caller.app.kv,
        caller.meta.ip.as_deref(),
        caller.app.config.sign_ups_per_address_hour,
    )
    .await?;
    let tenant_name = validate::name(&input.tenant_name, "input.tenantName")?;
    let name = validate::name(&input.name, "input.name")?;
    let email = validate::email(&input.email, "input.email")?;
    password::validate(&input.password, "input.password")?;
    let (slug, explicit) = match input.tenant_slug.as_deref() {
        Some(s) => (validate::slug(s, "input.tenantSlug")?, true),
        None => (validate::slug_from_name(&tenant_name), false),
    };
    let password_hash = password::hash(&input.password).await?;

    // A derived slug that is taken gets a short suffix; an explicit one is the caller's to change.
    let mut attempt = 0;
    loop {
        let slug = if attempt == 0 {
            slug.clone()
        } else {
            format!("{slug}-{}", &hex::encode(rand::random::<[u8; 3]>())[..5])
        };
        let tenant = TenantRow {
            id: Uuid::new_v4(),
            name: tenant_name.clone(),
            slug: slug.clone(),
            timezone: "UTC".into(),
            currency: "USD".into(),
            created_at: Utc::now(),
            retention_months: None,
            tracked_properties: Vec::new(),
            rollup_properties: Vec::new(),
        };
        let result = create_tenant_with_owner(caller, tenant, &name, &email, &password_hash).await;
        match result {
            Err(SignUpError::SlugTaken) if !explicit && attempt < 5 => attempt += 1,
            Err(SignUpError::SlugTaken) => {
                return Err(AppError::bad_input(format!(
                    "input.tenantSlug: '{slug}' is already taken"
                )));
            }
            Err(SignUpError::Other(e)) => return Err(e),
            Ok(grant) => return Ok(grant),
        }
    }
}

enum SignUpError {
    SlugTaken,
    Other(AppError),
}

async fn create_tenant_with_owner(
    caller: &Caller<'_>,
    tenant: TenantRow,
    name: &str,
    email: &str,
    password_hash: &str,
) -> Result<SessionGrant, SignUpError> {
    let app = caller.app;
    let meta = caller.meta;
    let tenant_id = tenant.id;
    let outcome = app
        .db
        .tenant(tenant_id, |conn| {
            async move {
                if let Err(e) = TenantRow::insert(conn, &tenant).await {
                    if crate::db::is_unique_violation(&e, "tenants_slug_key") {
                        return Ok(Err(SignUpError::SlugTaken));
                    }
                    return Err(e.into());
                }
                let member = MemberRow::insert(
                    conn,
                    &NewMember {
                        id: Uuid::new_v4(),
                        tenant_id,
                        email,
                        name,
                        password_hash,
                        role: Role::Owner.as_str(),
                        is_operator: false,
                    },
                )
                .await?;
                audit::record(
                    conn,
                    meta,
                    AuditEntry {
                        tenant_id: Some(tenant_id),
                        actor: Actor::Member(member.id),
                        action: "tenant.sign_up",
                        target_type: Some("Tenant"),
                        target_id: Some(tenant_id.to_string()),
                        details: json!({ "slug": tenant.slug, "name": tenant.name, "owner": email }),
                    },
                )
                .await?;
                Ok(Ok(grant(conn, app, member, tenant, None).await?))
            }
            .scope_boxed()
        })
        .await;
    match outcome {
        Ok(inner) => inner,
        Err(e) => Err(SignUpError::Other(e)),
    }
}

pub async fn log_in(
    caller: &Caller<'_>,
    tenant_slug: &str,
    email: &str,
    password_given: &str,
) -> AppResult<SessionGrant> {
    let app = caller.app;
    let meta = caller.meta;
    // Longer values cannot match an account; cutting them keeps throttle keys and audit rows small.
    let email: String = email.trim().to_lowercase().chars().take(254).collect();
    let slug: String = tenant_slug.trim().to_lowercase().chars().take(63).collect();
    let throttle = LoginThrottle::new(&app.kv, &slug, &email, meta.ip.as_deref());
    throttle.check().await?;

    let tenant_id = app
        .db
        .scoped(Scope::Anonymous, |conn| {
            let slug = slug.clone();
            async move { TenantRow::id_by_slug(conn, &slug).await }.scope_boxed()
        })
        .await?;
    let member = match tenant_id {
        Some(tid) => {
            let email = email.clone();
            app.db
                .tenant(tid, |conn| {
                    async move { MemberRow::find_active_by_email(conn, &email).await }.scope_boxed()
                })
                .await?
        }
        None => None,
    };
    // Verify even when there is no such member, so both failures take the same time.
    // No password longer than any we accept can match; it is refused without hashing it.
    let ok = password_given.len() <= password::MAX_LENGTH
        && password::verify(
            password_given,
            member.as_ref().map(|m| m.password_hash.as_str()),
        )
        .await;

    let (Some(tenant_id), Some(member), true) = (tenant_id, member, ok) else {
        throttle.record_failure().await?;
        let scope = tenant_id.map_or(Scope::Anonymous, Scope::Tenant);
        app.db
            .scoped(scope, |conn| {
                async move {
                    audit::record(
                        conn,
                        meta,
                        AuditEntry {
                            tenant_id,
                            actor: Actor::Anonymous,
                            action: "session.login_failed",
                            target_type: Some("Member"),
                            target_id: None,
                            // What was typed is recorded only if it is an email: a password
                            // typed into the wrong field must not reach the audit log.
                            details: json!({
                                "email": crate::validate::email(&email, "email").ok(),
                                "tenantSlug": slug,
                            }),
                        },
                    )
                    .await
                }
                .scope_boxed()
            })
            .await?;
        return Err(AppError::unauthenticated(INVALID_LOGIN));
    };
    throttle.record_success().await?;
    app.db
        .tenant(tenant_id, |conn| {
            async move {
                MemberRow::touch_last_active(conn, member.id).await?;
                let tenant = TenantRow::find(conn, tenant_id).await?;
                audit::record(
                    conn,
                    meta,
                    AuditEntry {
                        tenant_id: Some(tenant_id),
                        actor: Actor::Member(member.id),
                        action: "session.login",
                        target_type: Some("Member"),
                        target_id: Some(member.id.to_string()),
                        details: json!({}),
                    },
                )
                .await?;
                grant(conn, app, member, tenant, None).await
            }
            .scope_boxed()
        })
        .await
}

enum RefreshOutcome {
    Granted(Box<SessionGrant>),
    Refused(&'static str),
    /// A used token came back: the member's session was ended.
    Ended(Uuid),
}

/// Uses up `token` and returns a new pair. A token used before ends its whole family.
pub async fn refresh(caller: &Caller<'_>, token: &str) -> AppResult<SessionGrant> {
    let app = caller.app;
    let meta = caller.meta;
    let hash = secrets::digest(token.trim());
    let tenant_id = tenant_of_refresh_token(app, &hash)
        .await?
        .ok_or_else(|| AppError::unauthenticated("unknown refresh token"))?;
    let outcome = app
        .db
        .tenant(tenant_id, |conn| {
            async move {
                let Some(row) = RefreshTokenRow::lock_by_hash(conn, &hash).await? else {
                    return Ok(RefreshOutcome::Refused("unknown refresh token"));
                };
                if row.revoked_at.is_some() {
                    return Ok(RefreshOutcome::Refused(
                        "this session has ended; log in again",
                    ));
                }
                if row.used_at.is_some() {
                    let revoked = RefreshTokenRow::revoke_family(conn, row.family_id).await?;
                    audit::record(
                        conn,
                        meta,
                        AuditEntry {
                            tenant_id: Some(tenant_id),
                            actor: Actor::Member(row.member_id),
                            action: "session.refresh_reuse_detected",
                            target_type: Some("Session"),
                            target_id: Some(row.family_id.to_string()),
                            details: json!({ "revokedTokens": revoked }),
                        },
                    )
                    .await?;
                    return Ok(RefreshOutcome::Ended(row.member_id));
                }
                if row.expires_at <= Utc::now() {
                    return Ok(RefreshOutcome::Refused(
                        "refresh token has expired; log in again",
                    ));
                }
                let member = match MemberRow::find_active(conn, row.member_id).await {
                    Ok(m) => m,
                    Err(AppError::NotFound(_)) => {
                        return Ok(RefreshOutcome::Refused("this member has been removed"));
                    }
                    Err(e) => return Err(e),
                };
                RefreshTokenRow::mark_used(conn, row.id).await?;
                MemberRow::touch_last_active(conn, member.id).await?;
                let tenant = TenantRow::find(conn, tenant_id).await?;
                audit::record(
                    conn,
                    meta,
                    AuditEntry {
                        tenant_id: Some(tenant_id),
                        actor: Actor::Member(member.id),
                        action: "session.refresh",
                        target_type: Some("Session"),
                        target_id: Some(row.family_id.to_string()),
                        details: json!({}),
                    },
                )
                .await?;
                let granted = grant(conn, app, member, tenant, Some(row.family_id)).await?;
                Ok(RefreshOutcome::Granted(Box::new(granted)))
            }
            .scope_boxed()
        })
        .await?;
    match outcome {
        RefreshOutcome::Granted(g) => Ok(*g),
        RefreshOutcome::Refused(why) => Err(AppError::unauthenticated(why)),
        RefreshOutcome::Ended(member) => {
            super::end_sessions(app, tenant_id, Some(member)).await;
            Err(AppError::unauthenticated(
                "refresh token was already used; the session has been ended",
            ))
        }
    }
}

/// Ends the session (every token of its family).
pub async fn log_out(caller: &Caller<'_>, token: &str) -> AppResult<bool> {
    let app = caller.app;
    let meta = caller.meta;
    let hash = secrets::digest(token.trim());
    let tenant_id = tenant_of_refresh_token(app, &hash)
        .await?
        .ok_or_else(|| AppError::unauthenticated("unknown refresh token"))?;
    let member = app
        .db
        .tenant(tenant_id, |conn| {
            async move {
                let row = RefreshTokenRow::lock_by_hash(conn, &hash)
                    .await?
                    .ok_or_else(|| AppError::unauthenticated("unknown refresh token"))?;
                let revoked = RefreshTokenRow::revoke_family(conn, row.family_id).await?;
                audit::record(
                    conn,
                    meta,
                    AuditEntry {
                        tenant_id: Some(tenant_id),
                        actor: Actor::Member(row.member_id),
                        action: "session.logout",
                        target_type: Some("Session"),
                        target_id: Some(row.family_id.to_string()),
                        details: json!({ "revokedTokens": revoked }),
                    },
                )
                .await?;
                Ok(row.member_id)
            }
            .scope_boxed()
        })
        .await?;
    super::end_sessions(app, tenant_id, Some(member)).await;
    Ok(true)
}

async fn tenant_of_refresh_token(app: &App, hash: &[u8]) -> AppResult<Option<Uuid>> {
    let hash = hash.to_vec();
    app.db
        .scoped(Scope::Anonymous, |conn| {
            async move { RefreshTokenRow::tenant_of(conn, &hash).await }.scope_boxed()
        })
        .await
}

/// The tenant with `slug`, or a new one whose OWNER is `owner` (CLI set-up: demo, operators,
/// seeding). Returns its id and whether it was created.
pub async fn ensure_tenant(
    app: &App,
    slug: &str,
    tenant_name: &str,
    owner: SignUpOwner<'_>,
) -> AppResult<(Uuid, bool)> {
    let found = app
        .db
        .scoped(Scope::Anonymous, |conn| {
            async move { TenantRow::id_by_slug(conn, slug).await }.scope_boxed()
        })
        .await?;
    if let Some(id) = found {
        return Ok((id, false));
    }
    let meta = request_meta_for_cli();
    let caller = Caller {
        app,
        principal: &crate::auth::Principal::Anonymous,
        meta: &meta,
    };
    let grant = sign_up(
        &caller,
        SignUp {
            tenant_name: tenant_name.to_string(),
            tenant_slug: Some(slug.to_string()),
            name: owner.name.to_string(),
            email: owner.email.to_string(),
            password: owner.password.to_string(),
        },
    )
    .await?;
    Ok((grant.tenant.id, true))
}

pub struct SignUpOwner<'a> {
    pub name: &'a str,
    pub email: &'a str,
    pub password: &'a str,
}

/// Audit metadata for what the command line does.
pub fn request_meta_for_cli() -> RequestMeta {
    RequestMeta {
        ip: None,
        user_agent: Some("fahwa-cli".into()),
        request_id: None,
    }
}
