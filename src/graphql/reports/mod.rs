//! Saved reports (contract `reports.graphql`): the objects, the queries and the mutations.

mod mutation;
mod query;
mod subscription;
pub mod types;

pub use mutation::ReportMutation;
pub use query::ReportQuery;
pub use subscription::ReportSubscription;
