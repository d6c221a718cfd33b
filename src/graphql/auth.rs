//! Sign-up, sessions and the current user.

use async_graphql::{Context, InputObject, Object, Result};
use chrono::{DateTime, Utc};
use scoped_futures::ScopedFutureExt;

use crate::accounts::sessions::{self, SessionGrant};
use crate::auth::guards::principal;
use crate::db::members::MemberRow;
use crate::graphql::tenant::types::{Tenant, User};
use crate::graphql::{app, caller};

#[derive(InputObject)]
pub struct SignUpInput {
    pub tenant_name: String,
    /// Lower-case letters, digits and dashes; made from the name when absent.
    pub tenant_slug: Option<String>,
    pub name: String,
    pub email: String,
    /// At least 10 characters.
    pub password: String,
}

#[derive(InputObject)]
pub struct LogInInput {
    pub tenant_slug: String,
    pub email: String,
    pub password: String,
}

/// A signed-in session: a short-lived access token and a single-use refresh token.
pub struct Session(SessionGrant);

#[Object]
impl Session {
    /// Send as `Authorization: Bearer <accessToken>`; valid for at most 15 minutes.
    async fn access_token(&self) -> &str {
        &self.0.access.token
    }

    /// Single use: `refreshSession` returns a new pair; presenting it twice ends the session.
    async fn refresh_token(&self) -> &str {
        &self.0.refresh_token
    }

    async fn access_token_expires_at(&self) -> DateTime<Utc> {
        self.0.access.expires_at
    }

    async fn user(&self) -> User {
        User {
            row: self.0.member.clone(),
            is_viewer: true,
        }
    }

    async fn tenant(&self) -> Tenant {
        Tenant(self.0.tenant.clone())
    }
}

#[derive(Default)]
pub struct AuthQuery;

#[Object]
impl AuthQuery {
    /// The signed-in member.
    async fn me(&self, ctx: &Context<'_>) -> Result<User> {
        let claims = principal(ctx).member()?.clone();
        let row = app(ctx)
            .db
            .tenant(claims.tenant_id, |conn| {
                async move { MemberRow::find_active(conn, claims.member_id).await }.scope_boxed()
            })
            .await?;
        Ok(User {
            row,
            is_viewer: true,
        })
    }
}

#[derive(Default)]
pub struct AuthMutation;

#[Object]
impl AuthMutation {
    /// Creates a tenant with the caller as its OWNER, and signs them in.
    async fn sign_up(&self, ctx: &Context<'_>, input: SignUpInput) -> Result<Session> {
        let grant = sessions::sign_up(
            &caller(ctx),
            sessions::SignUp {
                tenant_name: input.tenant_name,
                tenant_slug: input.tenant_slug,
                name: input.name,
                email: input.email,
                password: input.password,
            },
        )
        .await?;
        Ok(Session(grant))
    }

    async fn log_in(&self, ctx: &Context<'_>, input: LogInInput) -> Result<Session> {
        let grant = sessions::log_in(
            &caller(ctx),
            &input.tenant_slug,
            &input.email,
            &input.password,
        )
        .await?;
        Ok(Session(grant))
    }

    /// Trades a refresh token for a new pair.
    async fn refresh_session(&self, ctx: &Context<'_>, refresh_token: String) -> Result<Session> {
        Ok(Session(
            sessions::refresh(&caller(ctx), &refresh_token).await?,
        ))
    }

    /// Ends the session that `refreshToken` belongs to.
    async fn log_out(&self, ctx: &Context<'_>, refresh_token: String) -> Result<bool> {
        Ok(sessions::log_out(&caller(ctx), &refresh_token).await?)
    }
}
