//! Connectors to providers (issue 16 builds the framework: the trait every provider
//! implements, sync jobs, webhooks). Each provider's wire formats live in its own module.

pub mod stripe;
