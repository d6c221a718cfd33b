//! The calendar as SQL: tenant-local days placed in buckets by arithmetic on the date, and their
//! periods through `fahwa_period` (src/db/functions), which PostgreSQL inlines. `width_bucket`
//! over an array of bucket starts compared dates generically, per row, and was most of the time
//! of the statements that used it (rollup aggregation, segment counts, retention).

use chrono::{Datelike, NaiveDate};

use super::{Granularity, Window, bucket_start_date, local_date};

/// Where a window's bucket numbers start: the first day of its first bucket's period, and that
/// day's year * 12 + month (for months).
pub struct Base {
    pub day: NaiveDate,
    pub month: i32,
}

impl Base {
    pub fn of(window: &Window) -> Base {
        let first = window.buckets[..].first().map_or(window.from, |b| b.label);
        let day = bucket_start_date(window.granularity, local_date(window.tz, first));
        Base {
            day,
            month: day.year() * 12 + day.month() as i32,
        }
    }

    /// The base as SQL literals (our own values), for statements that are not prepared.
    pub fn literals(&self) -> (String, String) {
        (format!("DATE '{}'", self.day), self.month.to_string())
    }
}

/// The 0-based number of the bucket holding `day`, counted from `base` (an SQL date) and
/// `base_month` (an SQL integer, see [`Base`]). Only for days on or after the base.
pub fn number(granularity: Granularity, day: &str, base: &str, base_month: &str) -> String {
    match granularity {
        Granularity::Hour | Granularity::Day => format!("({day} - {base})"),
        Granularity::Week => format!("(({day} - {base}) / 7)"),
        Granularity::Month => format!(
            "(date_part('year', {day})::int4 * 12 + date_part('month', {day})::int4 - {base_month})"
        ),
    }
}

/// The period's letter for `fahwa_period`.
fn grain(granularity: Granularity) -> &'static str {
    match granularity {
        Granularity::Hour | Granularity::Day => "'d'",
        Granularity::Week => "'w'",
        Granularity::Month => "'m'",
    }
}

/// The first day of `day`'s calendar period.
pub fn period_start(granularity: Granularity, day: &str) -> String {
    format!("fahwa_period({}, {day})", grain(granularity))
}

/// How many days `day` is past the first day of its calendar period.
pub fn days_into_period(granularity: Granularity, day: &str) -> String {
    match granularity {
        Granularity::Hour | Granularity::Day => "0".to_string(),
        _ => format!("({day} - {})", period_start(granularity, day)),
    }
}
