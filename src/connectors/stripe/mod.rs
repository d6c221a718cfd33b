//! Stripe: what its documented formats ask of us.

pub mod signature;
