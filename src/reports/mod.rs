//! Saved reports: definitions (widgets over ranges relative to today), their data through the
//! analytics engine and its cache, runs rendered to files on the job queue, signed links to
//! those files, schedules, and mail.

pub mod access;
pub mod data;
pub mod links;
pub mod manage;
pub mod range;
pub mod render;
pub mod runs;
pub mod schedule;
pub mod spec;
pub mod storage;
pub mod worker;

use std::sync::Arc;

use chrono::Utc;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::db::Db;
use crate::db::reports::RunRow;
use crate::kv::Kv;
use crate::live::Broker;
use crate::mail::Mailer;
use crate::revenue::index::Index;

use crate::calendar::Granularity;
use crate::error::{AppError, AppResult};
use crate::live::message::MetricKey;

/// What reports work with, handed over by the application at start.
#[derive(Clone)]
pub struct Services {
    pub db: Db,
    /// The metric cache, when it is on.
    pub cache: Option<Kv>,
    pub revenue_index: Option<Arc<Index>>,
    pub storage: storage::SharedStorage,
    pub broker: Broker,
    pub links: Links,
    /// `None` when no SMTP server is configured: runs are stored, not mailed.
    pub mailer: Option<Mailer>,
}

impl Services {
    pub fn reading(&self) -> data::Reading<'_> {
        data::Reading {
            db: &self.db,
            cache: self.cache.as_ref(),
            revenue_index: self.revenue_index.as_ref(),
        }
    }
}

/// A member acting on reports in one request: what `manage` and `runs` need of it.
pub struct Acting<'a> {
    pub services: &'a Services,
    pub principal: &'a crate::auth::Principal,
    pub meta: &'a crate::db::audit::RequestMeta,
}

/// How links to report files are made.
#[derive(Clone)]
pub struct Links {
    pub key: [u8; 32],
    /// The server's public URL.
    pub base: String,
    pub ttl: chrono::Duration,
}

impl Links {
    /// A link to the run's file that works for `ttl` from now.
    pub fn url(&self, run: &RunRow) -> String {
        self.url_for(run.id, run.tenant_id)
    }

    pub fn url_for(&self, run: Uuid, tenant: Uuid) -> String {
        links::sign(&self.key, &self.base, run, tenant, Utc::now() + self.ttl)
    }
}

/// Where a widget's range ends and starts, in the tenant's time zone, relative to today.
#[derive(async_graphql::Enum, Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum RelativeRange {
    /// The last 7 local days, today included.
    Last7Days,
    /// The last 30 local days, today included.
    Last30Days,
    /// The last 90 local days, today included.
    Last90Days,
    /// The current calendar month and the 11 before it.
    Last12Months,
    /// From the 1st of this month, today included.
    MonthToDate,
    /// From January 1st, today included.
    YearToDate,
}

#[derive(async_graphql::Enum, Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ReportFormat {
    /// Comma-separated, UTF-8 with a byte-order mark, a header line: spreadsheets open it as is.
    Csv,
    /// One JSON document: the report and its rows.
    Json,
}

#[derive(async_graphql::Enum, Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ReportRunStatus {
    Queued,
    Running,
    Succeeded,
    Failed,
}

/// How a value is stored in a text column: the GraphQL name.
pub trait Stored: Copy + PartialEq + 'static {
    const NAMES: &'static [(Self, &'static str)];

    fn stored(self) -> &'static str {
        Self::NAMES
            .iter()
            .find(|(v, _)| *v == self)
            .map_or("", |(_, n)| n)
    }

    /// A stored name back; the column's check constraint makes an unknown one a bug.
    fn from_stored(text: &str) -> AppResult<Self> {
        Self::NAMES
            .iter()
            .find(|(_, n)| *n == text)
            .map(|(v, _)| *v)
            .ok_or_else(|| AppError::internal(anyhow::anyhow!("unknown stored value {text:?}")))
    }
}

impl Stored for MetricKey {
    const NAMES: &'static [(Self, &'static str)] = &[
        (MetricKey::ActiveUsers, "ACTIVE_USERS"),
        (MetricKey::NewUsers, "NEW_USERS"),
        (MetricKey::Events, "EVENTS"),
        (MetricKey::Mrr, "MRR"),
        (MetricKey::Arr, "ARR"),
        (MetricKey::PayingCustomers, "PAYING_CUSTOMERS"),
        (MetricKey::Arpu, "ARPU"),
        (MetricKey::CustomerChurnRate, "CUSTOMER_CHURN_RATE"),
        (MetricKey::RevenueChurnRate, "REVENUE_CHURN_RATE"),
        (MetricKey::NetNewMrr, "NET_NEW_MRR"),
    ];
}

impl Stored for Granularity {
    const NAMES: &'static [(Self, &'static str)] = &[
        (Granularity::Hour, "HOUR"),
        (Granularity::Day, "DAY"),
        (Granularity::Week, "WEEK"),
        (Granularity::Month, "MONTH"),
    ];
}

impl Stored for RelativeRange {
    const NAMES: &'static [(Self, &'static str)] = &[
        (RelativeRange::Last7Days, "LAST_7_DAYS"),
        (RelativeRange::Last30Days, "LAST_30_DAYS"),
        (RelativeRange::Last90Days, "LAST_90_DAYS"),
        (RelativeRange::Last12Months, "LAST_12_MONTHS"),
        (RelativeRange::MonthToDate, "MONTH_TO_DATE"),
        (RelativeRange::YearToDate, "YEAR_TO_DATE"),
    ];
}

impl Stored for ReportFormat {
    const NAMES: &'static [(Self, &'static str)] =
        &[(ReportFormat::Csv, "CSV"), (ReportFormat::Json, "JSON")];
}

impl ReportFormat {
    pub fn extension(self) -> &'static str {
        match self {
            ReportFormat::Csv => "csv",
            ReportFormat::Json => "json",
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            ReportFormat::Csv => "text/csv; charset=utf-8",
            ReportFormat::Json => "application/json",
        }
    }
}

impl Stored for ReportRunStatus {
    const NAMES: &'static [(Self, &'static str)] = &[
        (ReportRunStatus::Queued, "QUEUED"),
        (ReportRunStatus::Running, "RUNNING"),
        (ReportRunStatus::Succeeded, "SUCCEEDED"),
        (ReportRunStatus::Failed, "FAILED"),
    ];
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trips<T: Stored + std::fmt::Debug>() {
        for (value, name) in T::NAMES {
            assert_eq!(value.stored(), *name);
            assert_eq!(T::from_stored(name).unwrap(), *value);
        }
        assert!(T::from_stored("nonsense").is_err());
    }

    #[test]
    fn stored_names_round_trip() {
        round_trips::<MetricKey>();
        assert_eq!(MetricKey::NAMES.len(), MetricKey::ALL.len());
        round_trips::<Granularity>();
        round_trips::<RelativeRange>();
        round_trips::<ReportFormat>();
        round_trips::<ReportRunStatus>();
    }
}
