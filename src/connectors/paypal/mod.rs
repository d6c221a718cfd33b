//! PayPal: what its documented formats ask of us.

pub mod connector;
pub mod mrr;
pub mod subscription;

pub use connector::Paypal;
