//! Billing intervals as providers state them (a unit and a count), what an amount per interval
//! is per month, and where a number of intervals ends; and the one rounding of a month's amount
//! to minor units. Stripe and PayPal bill by the same calendar.

use chrono::{DateTime, Months, TimeDelta, Utc};
use rust_decimal::prelude::ToPrimitive;
use rust_decimal::{Decimal, RoundingStrategy};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Day,
    Week,
    Month,
    Year,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Interval {
    pub unit: Unit,
    pub count: u32,
}

impl Interval {
    /// `day`, `week`, `month` or `year` in any case (Stripe writes them lower, PayPal upper);
    /// a count below 1 is 1.
    pub fn parse(unit: &str, count: u32) -> Option<Interval> {
        let unit = match unit.to_ascii_lowercase().as_str() {
            "day" => Unit::Day,
            "week" => Unit::Week,
            "month" => Unit::Month,
            "year" => Unit::Year,
            _ => return None,
        };
        Some(Interval {
            unit,
            count: count.max(1),
        })
    }

    /// An amount per interval as an amount per month: month ÷ count; year ÷ (12 × count);
    /// week × 52 ÷ 12 ÷ count; day × 365 ÷ 12 ÷ count.
    pub fn per_month(self, amount: Decimal) -> Decimal {
        let count = Decimal::from(self.count);
        let twelve = Decimal::from(12);
        match self.unit {
            Unit::Month => amount / count,
            Unit::Year => amount / (twelve * count),
            Unit::Week => amount * Decimal::from(52) / twelve / count,
            Unit::Day => amount * Decimal::from(365) / twelve / count,
        }
    }

    /// `cycles` intervals after `at`: months and years on the calendar from `at`, clamped to the
    /// month's last day (as providers bill a subscription started on the 31st), so that cycles
    /// do not drift.
    pub fn after(self, at: DateTime<Utc>, cycles: u32) -> DateTime<Utc> {
        let n = self.count.saturating_mul(cycles);
        match self.unit {
            Unit::Month => add_months(at, n),
            Unit::Year => add_months(at, n.saturating_mul(12)),
            Unit::Week => add_days(at, i64::from(n) * 7),
            Unit::Day => add_days(at, i64::from(n)),
        }
    }
}

/// Past chrono's range is the end of time: such a moment never comes, rather than panics.
pub fn add_months(at: DateTime<Utc>, months: u32) -> DateTime<Utc> {
    at.checked_add_months(Months::new(months))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

fn add_days(at: DateTime<Utc>, days: i64) -> DateTime<Utc> {
    TimeDelta::try_days(days)
        .and_then(|delta| at.checked_add_signed(delta))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// A month's amount in minor units, exact until here, rounded once, half away from zero.
pub fn round_minor(amount: Decimal) -> i64 {
    amount
        .round_dp_with_strategy(0, RoundingStrategy::MidpointAwayFromZero)
        .to_i64()
        .unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals_read_either_case_and_end_on_the_calendar() {
        let month = Interval::parse("MONTH", 1).unwrap();
        assert_eq!(Interval::parse("month", 0), Some(month));
        assert_eq!(Interval::parse("fortnight", 1), None);
        let jan31: DateTime<Utc> = "2026-01-31T00:00:00Z".parse().unwrap();
        assert_eq!(
            month.after(jan31, 1).to_rfc3339(),
            "2026-02-28T00:00:00+00:00"
        );
        let weekly = Interval::parse("week", 2).unwrap();
        assert_eq!(weekly.per_month(Decimal::from(1200)), Decimal::from(2600));
        assert_eq!(round_minor(Decimal::new(25, 1)), 3);
        assert_eq!(round_minor(Decimal::new(-25, 1)), -3);
    }
}
