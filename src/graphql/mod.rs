//! The GraphQL schema: root types merged per domain, limits, and per-request data.

pub mod admission;
mod analytics;
mod auth;
pub mod cost;
pub mod errors;
mod flat_list;
mod ingest;
mod integrations;
mod live;
pub mod loaders;
pub mod pagination;
mod reports;
mod revenue;
mod series;
pub mod tenant;
pub mod trusted;

use async_graphql::{Context, MergedObject, MergedSubscription, Schema, SchemaBuilder};

use crate::accounts::Caller;
use crate::app::App;
use crate::auth::Principal;
use crate::config::Config;
use crate::db::audit::RequestMeta;

#[derive(MergedObject, Default)]
pub struct Query(
    auth::AuthQuery,
    tenant::TenantQuery,
    analytics::AnalyticsQuery,
    reports::ReportQuery,
    integrations::IntegrationQuery,
);

#[derive(MergedObject, Default)]
pub struct Mutation(
    auth::AuthMutation,
    tenant::TenantMutation,
    ingest::IngestMutation,
    reports::ReportMutation,
    integrations::IntegrationMutation,
);

#[derive(MergedSubscription, Default)]
pub struct Subscription(live::LiveSubscription, reports::ReportSubscription);

pub type FahwaSchema = Schema<Query, Mutation, Subscription>;

fn builder(config: &Config) -> SchemaBuilder<Query, Mutation, Subscription> {
    let builder = Schema::build(
        Query::default(),
        Mutation::default(),
        Subscription::default(),
    )
    .limit_depth(config.max_query_depth)
    .limit_complexity(config.max_query_complexity)
    .extension(errors::ErrorCodes {
        max_aliases: config.max_query_aliases,
    })
    .extension(cost::Cost);
    if config.introspection {
        builder
    } else {
        builder.disable_introspection()
    }
}

/// The schema the server runs, with the application attached.
pub fn build_schema(app: &App) -> FahwaSchema {
    builder(&app.config).data(app.clone()).finish()
}

/// The SDL of the schema (what `schema.graphql` holds).
pub fn sdl() -> String {
    builder(&Config::default()).finish().sdl()
}

pub(crate) fn app<'a>(ctx: &Context<'a>) -> &'a App {
    ctx.data_unchecked::<App>()
}

pub(crate) fn caller<'a>(ctx: &Context<'a>) -> Caller<'a> {
    static NO_META: std::sync::LazyLock<RequestMeta> =
        std::sync::LazyLock::new(RequestMeta::default);
    Caller {
        app: app(ctx),
        principal: crate::auth::guards::principal(ctx),
        meta: ctx.data_opt::<RequestMeta>().unwrap_or(&NO_META),
    }
}

/// Everything one request carries into the schema.
pub fn request_data(app: &App, principal: Principal, meta: RequestMeta) -> async_graphql::Data {
    let mut data = async_graphql::Data::default();
    data.insert(loaders::Loaders::new(app, &principal));
    data.insert(principal);
    data.insert(meta);
    data
}
