//! Stripe: what its documented formats ask of us.

pub mod connector;
pub mod mrr;
pub mod signature;
pub mod subscription;

pub use connector::Stripe;
