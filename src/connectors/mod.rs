//! Connectors to providers: one trait every provider implements (`provider`), the HTTP client
//! they share (retries, `Retry-After`, a request budget: `api`), connections and their sealed
//! credentials (`manage`), syncs and webhook deliveries on the job queue (`sync`, `webhooks`),
//! and what both write: subscriptions' MRR over time, applied to revenue (`apply`). Each
//! provider's wire formats live in its own module.

pub mod api;
pub mod apply;
pub mod interval;
pub mod manage;
pub mod paypal;
pub mod provider;
pub mod reconcile;
pub mod stripe;
pub mod sync;
pub mod timeline;
pub mod webhooks;

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::db::Db;
use crate::kv::Kv;
use crate::vault::Vault;

#[derive(async_graphql::Enum, Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[graphql(name = "Provider")]
pub enum Provider {
    Stripe,
    Paypal,
    Salesforce,
    Hubspot,
    Mixpanel,
    Amplitude,
    GoogleAds,
    FacebookAds,
}

impl Provider {
    const NAMES: &'static [(Provider, &'static str, &'static str)] = &[
        (Provider::Stripe, "STRIPE", "stripe"),
        (Provider::Paypal, "PAYPAL", "paypal"),
        (Provider::Salesforce, "SALESFORCE", "salesforce"),
        (Provider::Hubspot, "HUBSPOT", "hubspot"),
        (Provider::Mixpanel, "MIXPANEL", "mixpanel"),
        (Provider::Amplitude, "AMPLITUDE", "amplitude"),
        (Provider::GoogleAds, "GOOGLE_ADS", "google-ads"),
        (Provider::FacebookAds, "FACEBOOK_ADS", "facebook-ads"),
    ];

    /// As stored and as GraphQL names it.
    pub fn stored(self) -> &'static str {
        Self::NAMES.iter().find(|n| n.0 == self).map_or("", |n| n.1)
    }

    /// As webhook paths name it.
    pub fn slug(self) -> &'static str {
        Self::NAMES.iter().find(|n| n.0 == self).map_or("", |n| n.2)
    }

    pub fn from_stored(name: &str) -> Option<Provider> {
        Self::NAMES.iter().find(|n| n.1 == name).map(|n| n.0)
    }

    pub fn from_slug(slug: &str) -> Option<Provider> {
        Self::NAMES.iter().find(|n| n.2 == slug).map(|n| n.0)
    }
}

#[derive(async_graphql::Enum, Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum IntegrationStatus {
    Connected,
    Syncing,
    Error,
    Disconnected,
}

impl IntegrationStatus {
    pub fn from_stored(name: &str) -> IntegrationStatus {
        match name {
            "CONNECTED" => IntegrationStatus::Connected,
            "SYNCING" => IntegrationStatus::Syncing,
            "DISCONNECTED" => IntegrationStatus::Disconnected,
            _ => IntegrationStatus::Error,
        }
    }
}

/// Providers' API addresses: configuration (tests point them at local servers), never a
/// tenant's input, so that no request goes where a tenant chose.
#[derive(Clone, Debug)]
pub struct Endpoints {
    pub stripe: String,
    pub paypal: String,
}

/// What connectors work with, handed over by the application at start.
#[derive(Clone)]
pub struct Services {
    pub db: Db,
    pub vault: Arc<Vault>,
    pub http: reqwest::Client,
    pub endpoints: Endpoints,
    /// The server's public URL, for the webhook URLs members paste into providers.
    pub public_url: String,
    /// Where writes announce new data versions (the response cache's store, when it is on).
    pub mirror: Option<Kv>,
    /// Requests per second to one provider account.
    pub budget: Arc<api::Budgets>,
    /// Access tokens (PayPal's OAuth2) per integration.
    pub tokens: Arc<api::Tokens>,
    pub retry: api::RetryPolicy,
}

impl Services {
    pub fn webhook_url(&self, provider: Provider, integration: uuid::Uuid) -> String {
        format!(
            "{}/api/v1/webhooks/{}/{integration}",
            self.public_url,
            provider.slug()
        )
    }
}

/// A member acting on integrations in one request.
pub struct Acting<'a> {
    pub services: &'a Services,
    pub principal: &'a crate::auth::Principal,
    pub meta: &'a crate::db::audit::RequestMeta,
}
