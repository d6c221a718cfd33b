//! Integration tests: each starts a real server on its own database and speaks HTTP to it.

mod contract;
mod harness;

mod analytics;
mod audit;
mod auth_flow;
mod calendar;
mod cli;
mod fake_paypal;
mod fake_stripe;
mod hostile_input;
mod http_surface;
mod ingest;
mod integrations;
mod jobs;
mod limits;
mod live;
mod loaders;
mod migrations;
mod own_postgres;
mod paypal;
mod persisted_queries;
mod plans;
mod rbac;
mod report_runs;
mod report_schedules;
mod reports;
mod revenue;
mod revenue_metrics;
mod row_security;
mod smtp_sink;
mod stale_tokens;
mod tenancy;
mod trusted;
mod ws_protocol;
