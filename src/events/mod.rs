//! Events in: validation, idempotent batched writes, and the rollups kept in the same transaction.

pub mod ingest;
pub mod partitions;
pub mod retention;
pub mod rollups;

pub use ingest::{NewEvent, ingest_events};
