//! Saved reports (contract `reports.graphql`): the objects, the queries and the mutations.

mod mutation;
mod query;
pub mod types;

pub use mutation::ReportMutation;
pub use query::ReportQuery;
