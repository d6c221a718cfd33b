//! Integrations with providers: connect, list, sync, disconnect (ADMIN and above). Credentials
//! go in and never come out.

use async_graphql::{Context, ID, InputObject, Json, Object, Result};
use chrono::{DateTime, Utc};

use crate::connectors::{IntegrationStatus, Provider, manage};
use crate::db::integrations::{IntegrationRow, Listed, Waiting};
use crate::graphql::caller;

#[derive(InputObject)]
pub struct ConnectIntegrationInput {
    pub provider: Provider,
    /// Stripe: `{ "apiKey": "sk_…" }` (a restricted key that reads subscriptions and invoices
    /// is enough); PayPal: `{ "clientId": "…", "clientSecret": "…" }` of a REST app with
    /// subscriptions and transaction search. Stored sealed, never returned.
    pub credentials: Json<serde_json::Value>,
    /// Stripe: the endpoint's signing secret (`whsec_…`); PayPal: the webhook's id. Webhook
    /// deliveries are verified with it. Stored sealed, never returned.
    pub webhook_secret: Option<String>,
}

pub struct Integration {
    row: IntegrationRow,
    waiting: Option<Waiting>,
}

impl From<Listed> for Integration {
    fn from(l: Listed) -> Self {
        Integration {
            row: l.row,
            waiting: l.waiting,
        }
    }
}

#[Object]
impl Integration {
    async fn id(&self) -> ID {
        ID(self.row.id.to_string())
    }

    async fn provider(&self) -> Provider {
        Provider::from_stored(&self.row.provider).unwrap_or(Provider::Stripe)
    }

    async fn status(&self) -> IntegrationStatus {
        manage::status_of(&self.row)
    }

    /// When the last sync finished.
    async fn last_sync_at(&self) -> Option<DateTime<Utc>> {
        self.row.last_sync_at
    }

    /// Why the last sync failed, or what waits (revenue changes in a currency with no exchange
    /// rate for their day).
    async fn last_error(&self) -> Option<String> {
        match (&self.row.last_error, &self.waiting) {
            (Some(e), Some(w)) => Some(format!("{e}; {w}")),
            (Some(e), None) => Some(e.clone()),
            (None, Some(w)) => Some(w.to_string()),
            (None, None) => None,
        }
    }

    /// The URL to paste into the provider's webhook settings.
    async fn webhook_url(&self, ctx: &Context<'_>) -> String {
        let services = &caller(ctx).app.connectors;
        let provider = Provider::from_stored(&self.row.provider).unwrap_or(Provider::Stripe);
        services.webhook_url(provider, self.row.id)
    }
}

#[derive(Default)]
pub struct IntegrationQuery;

#[Object]
impl IntegrationQuery {
    /// The tenant's integrations, oldest first (ADMIN+).
    async fn integrations(&self, ctx: &Context<'_>) -> Result<Vec<Integration>> {
        let list = manage::list(&caller(ctx).connectors()).await?;
        Ok(list.into_iter().map(Integration::from).collect())
    }
}

#[derive(Default)]
pub struct IntegrationMutation;

#[Object]
impl IntegrationMutation {
    /// ADMIN+. Checks the credentials with the provider, stores them sealed, and starts the
    /// first sync (every subscription, with its history).
    async fn connect_integration(
        &self,
        ctx: &Context<'_>,
        input: ConnectIntegrationInput,
    ) -> Result<Integration> {
        let row = manage::connect(
            &caller(ctx).connectors(),
            input.provider,
            input.credentials.0,
            input.webhook_secret,
        )
        .await?;
        Ok(Integration { row, waiting: None })
    }

    /// ADMIN+. Starts a sync unless one is under way.
    async fn sync_integration(&self, ctx: &Context<'_>, id: ID) -> Result<Integration> {
        let row = manage::sync(&caller(ctx).connectors(), &id).await?;
        Ok(Integration { row, waiting: None })
    }

    /// ADMIN+. Erases the credentials and stops accepting deliveries; synced revenue stays.
    async fn disconnect_integration(&self, ctx: &Context<'_>, id: ID) -> Result<bool> {
        Ok(manage::disconnect(&caller(ctx).connectors(), &id).await?)
    }
}
