//! The calendar of a tenant: local days in its time zone, periods (days, weeks from Monday,
//! months), the buckets of a range, and the same arithmetic written as SQL (`sql`), whose
//! period is `fahwa_period` in the database. Analytics, revenue and live updates all count
//! time here.

pub mod sql;
mod window;

pub use window::{
    Bucket, Granularity, Window, bucket_start_date, local_date, local_midnight, no_days,
};
