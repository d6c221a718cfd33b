//! A widget's relative range as a window of the tenant's calendar. Every range ends at the
//! end of today (local), so that it is the same window all day long and the metric cache
//! answers repeated loads.

use chrono::{DateTime, Datelike, Duration, Months, NaiveDate, Utc};
use chrono_tz::Tz;

use super::RelativeRange;
use crate::calendar::{Granularity, Window, local_date, local_midnight};
use crate::error::{AppError, AppResult};

/// The first and the day after the last local day of `range` on `today`.
pub fn days(range: RelativeRange, today: NaiveDate) -> (NaiveDate, NaiveDate) {
    let end = today + Duration::days(1);
    let first_of_month = today.with_day(1).unwrap_or(today);
    let start = match range {
        RelativeRange::Last7Days => end - Duration::days(7),
        RelativeRange::Last30Days => end - Duration::days(30),
        RelativeRange::Last90Days => end - Duration::days(90),
        RelativeRange::Last12Months => first_of_month
            .checked_sub_months(Months::new(11))
            .unwrap_or(first_of_month),
        RelativeRange::MonthToDate => first_of_month,
        RelativeRange::YearToDate => first_of_month.with_month(1).unwrap_or(first_of_month),
    };
    (start, end)
}

/// The window of `range` at `now`, bucketed by `granularity` in `tz`.
pub fn window(
    range: RelativeRange,
    granularity: Granularity,
    tz: Tz,
    now: DateTime<Utc>,
) -> AppResult<Window> {
    let (start, end) = days(range, local_date(tz, now));
    Window::new(
        local_midnight(tz, start),
        local_midnight(tz, end),
        granularity,
        tz,
    )
    .map_err(|e| match e {
        AppError::BadInput(msg) => AppError::bad_input(format!(
            "granularity: too fine for the range ({})",
            msg.trim_start_matches("range: ")
        )),
        other => other,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).unwrap()
    }

    #[test]
    fn ranges_end_with_today() {
        let today = d(2026, 3, 15);
        assert_eq!(
            days(RelativeRange::Last7Days, today),
            (d(2026, 3, 9), d(2026, 3, 16))
        );
        assert_eq!(
            days(RelativeRange::Last30Days, today),
            (d(2026, 2, 14), d(2026, 3, 16))
        );
        assert_eq!(days(RelativeRange::Last90Days, today).0, d(2025, 12, 16));
        assert_eq!(
            days(RelativeRange::Last12Months, today),
            (d(2025, 4, 1), d(2026, 3, 16))
        );
        assert_eq!(
            days(RelativeRange::MonthToDate, today),
            (d(2026, 3, 1), d(2026, 3, 16))
        );
        assert_eq!(
            days(RelativeRange::YearToDate, d(2026, 1, 1)),
            (d(2026, 1, 1), d(2026, 1, 2))
        );
    }

    #[test]
    fn windows_follow_the_tenant_zone() {
        let tz: Tz = "America/New_York".parse().unwrap();
        // 03:00 UTC on the 15th is still the 14th in New York.
        let now = DateTime::parse_from_rfc3339("2026-03-15T03:00:00Z")
            .unwrap()
            .to_utc();
        let w = window(RelativeRange::Last7Days, Granularity::Day, tz, now).unwrap();
        assert_eq!(w.buckets.len(), 7);
        assert_eq!(w.to, local_midnight(tz, d(2026, 3, 15)));
        // Hourly over a year is more buckets than a series may hold.
        assert!(window(RelativeRange::Last12Months, Granularity::Hour, tz, now).is_err());
    }
}
