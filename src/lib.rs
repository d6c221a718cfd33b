//! Fahwa: live product and revenue analytics for SaaS companies, behind one GraphQL API.
//! ARCHITECTURE.md at the repository root says where each concern lives.

pub mod accounts;
pub mod analytics;
pub mod app;
pub mod auth;
pub mod background;
pub mod bench;
pub mod calendar;
pub mod cli;
pub mod config;
pub mod connectors;
pub mod db;
pub mod error;
pub mod events;
pub mod graphql;
pub mod http;
pub mod ingestion;
pub mod jobs;
pub mod kv;
pub mod limits;
pub mod live;
pub mod logging;
pub mod mail;
pub mod reports;
pub mod revenue;
pub mod role;
pub mod seed;
pub mod validate;
pub mod vault;

pub use app::App;
pub use config::Config;
