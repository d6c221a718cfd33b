//! The buckets of a query: aligned to the tenant's time zone (days of 23 or 25 hours across
//! daylight-saving changes), weeks from Monday, cut to the half-open range `[from, to)`.

use chrono::{DateTime, Datelike, Duration, LocalResult, NaiveDate, TimeZone, Utc};
use chrono_tz::Tz;

use crate::error::{AppError, AppResult};

#[derive(
    async_graphql::Enum,
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    serde::Serialize,
    serde::Deserialize,
)]
pub enum Granularity {
    Hour,
    Day,
    Week,
    Month,
}

pub const MAX_BUCKETS: usize = 2_000;

/// One bucket, as far as it lies inside the range.
#[derive(Debug, Clone, PartialEq)]
pub struct Bucket {
    /// The bucket's nominal start (local midnight, or the hour), reported to clients.
    pub label: DateTime<Utc>,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    /// Local days wholly inside both the bucket and the range (inclusive), for rollups.
    pub full_days: Option<(NaiveDate, NaiveDate)>,
}

impl Bucket {
    /// The first local day of the period of `granularity` this bucket is, when the range holds
    /// all of it (the whole day, week or month); None for hours and for buckets the range cuts.
    pub fn whole_period(&self, granularity: Granularity, tz: Tz) -> Option<NaiveDate> {
        if granularity == Granularity::Hour {
            return None;
        }
        let first = bucket_start_date(granularity, local_date(tz, self.label));
        let last = shift(next_bucket_date(granularity, first), -1);
        (self.full_days == Some((first, last))).then_some(first)
    }

    /// Parts of the bucket not covered by whole days: read from raw events.
    pub fn edges(&self, tz: Tz) -> Vec<(DateTime<Utc>, DateTime<Utc>)> {
        match self.full_days {
            None => vec![(self.start, self.end)],
            Some((first, last)) => {
                let covered_from = local_midnight(tz, first);
                let covered_to = local_midnight(tz, shift(last, 1));
                let mut out = Vec::new();
                if self.start < covered_from {
                    out.push((self.start, covered_from));
                }
                if covered_to < self.end {
                    out.push((covered_to, self.end));
                }
                out
            }
        }
    }
}

#[derive(Debug, Clone)]
pub struct Window {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub granularity: Granularity,
    pub tz: Tz,
    pub buckets: Vec<Bucket>,
}

/// The instant a local date begins; where midnight does not exist (a spring-forward at
/// midnight), the first instant of that date.
pub fn local_midnight(tz: Tz, date: NaiveDate) -> DateTime<Utc> {
    let mut t = date.and_hms_opt(0, 0, 0).unwrap_or_default();
    for _ in 0..8 {
        match tz.from_local_datetime(&t) {
            LocalResult::Single(d) => return d.with_timezone(&Utc),
            LocalResult::Ambiguous(a, _) => return a.with_timezone(&Utc),
            LocalResult::None => match t.checked_add_signed(Duration::minutes(30)) {
                Some(later) => t = later,
                None => break,
            },
        }
    }
    Utc.from_utc_datetime(&date.and_hms_opt(0, 0, 0).unwrap_or_default())
}

pub fn local_date(tz: Tz, at: DateTime<Utc>) -> NaiveDate {
    at.with_timezone(&tz).date_naive()
}

/// `days` later (earlier when negative), or the calendar's end: ranges are bounded well inside
/// it (`validate::range`), so this only keeps arithmetic from panicking.
fn shift(d: NaiveDate, days: i64) -> NaiveDate {
    let fallback = if days < 0 {
        NaiveDate::MIN
    } else {
        NaiveDate::MAX
    };
    d.checked_add_signed(Duration::days(days))
        .unwrap_or(fallback)
}

pub fn bucket_start_date(g: Granularity, d: NaiveDate) -> NaiveDate {
    match g {
        Granularity::Hour | Granularity::Day => d,
        Granularity::Week => shift(d, -i64::from(d.weekday().num_days_from_monday())),
        Granularity::Month => d.with_day(1).unwrap_or(d),
    }
}

fn next_bucket_date(g: Granularity, d: NaiveDate) -> NaiveDate {
    match g {
        Granularity::Hour | Granularity::Day => shift(d, 1),
        Granularity::Week => shift(d, 7),
        Granularity::Month => d
            .checked_add_months(chrono::Months::new(1))
            .unwrap_or(NaiveDate::MAX),
    }
}

/// An empty day span (start after end) that PostgreSQL can represent.
pub fn no_days() -> (NaiveDate, NaiveDate) {
    let d = |y| NaiveDate::from_ymd_opt(y, 1, 1).unwrap_or_default();
    (d(9999), d(1))
}

impl Window {
    /// Every bucket, then the whole range as one more span, with their whole-day bounds.
    pub fn spans(&self) -> (Vec<Bucket>, Vec<NaiveDate>, Vec<NaiveDate>) {
        let mut spans: Vec<Bucket> = self.buckets.clone();
        spans.push(self.whole());
        let (starts, ends) = spans
            .iter()
            .map(|b| b.full_days.unwrap_or_else(no_days))
            .unzip();
        (spans, starts, ends)
    }

    pub fn new(
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        granularity: Granularity,
        tz: Tz,
    ) -> AppResult<Self> {
        crate::validate::range(from, to)?;
        if to - from > Duration::days(366 * 10) {
            return Err(AppError::bad_input("range: at most 10 years"));
        }
        let mut buckets = Vec::new();
        if granularity == Granularity::Hour {
            // Local hours: in zones with half-hour offsets they start at :30 UTC.
            let first = from.with_timezone(&tz);
            let offset_secs = (first.naive_local() - first.naive_utc()).num_seconds();
            let hour = 3600;
            let local_secs = from.timestamp() + offset_secs;
            let mut start =
                DateTime::from_timestamp(local_secs - local_secs.rem_euclid(hour) - offset_secs, 0)
                    .unwrap_or(from);
            while start < to {
                let end = start
                    .checked_add_signed(Duration::hours(1))
                    .unwrap_or(DateTime::<Utc>::MAX_UTC);
                buckets.push(Bucket {
                    label: start,
                    start: start.max(from),
                    end: end.min(to),
                    full_days: None,
                });
                if buckets.len() > MAX_BUCKETS {
                    return Err(too_many());
                }
                start = end;
            }
        } else {
            let mut date = bucket_start_date(granularity, local_date(tz, from));
            loop {
                let label = local_midnight(tz, date);
                if label >= to {
                    break;
                }
                let next = next_bucket_date(granularity, date);
                if next <= date {
                    return Err(AppError::bad_input("range: beyond the calendar"));
                }
                let end = local_midnight(tz, next);
                let start = label.max(from);
                let stop = end.min(to);
                // Whole local days inside [start, stop).
                let mut first = local_date(tz, start);
                if local_midnight(tz, first) < start {
                    first = shift(first, 1);
                }
                let mut last = local_date(tz, stop);
                while local_midnight(tz, shift(last, 1)) > stop && last >= first {
                    last = shift(last, -1);
                }
                buckets.push(Bucket {
                    label,
                    start,
                    end: stop,
                    full_days: (first <= last).then_some((first, last)),
                });
                if buckets.len() > MAX_BUCKETS {
                    return Err(too_many());
                }
                date = next;
            }
        }
        Ok(Self {
            from,
            to,
            granularity,
            tz,
            buckets,
        })
    }

    /// The one bucket of `granularity` that contains `now`, whole.
    pub fn current(now: DateTime<Utc>, granularity: Granularity, tz: Tz) -> AppResult<Self> {
        let (from, to) = if granularity == Granularity::Hour {
            let probe = Window::new(now, now + Duration::seconds(1), granularity, tz)?;
            let label = probe.buckets.first().map_or(now, |b| b.label);
            (label, label + Duration::hours(1))
        } else {
            let start = bucket_start_date(granularity, local_date(tz, now));
            (
                local_midnight(tz, start),
                local_midnight(tz, next_bucket_date(granularity, start)),
            )
        };
        Window::new(from, to, granularity, tz)
    }

    /// The whole range as one bucket (for totals).
    pub fn whole(&self) -> Bucket {
        let days: Vec<(NaiveDate, NaiveDate)> =
            self.buckets.iter().filter_map(|b| b.full_days).collect();
        // Full days of adjacent buckets are contiguous except where an hour bucket has none.
        let full_days = match (days.first(), days.last()) {
            (Some(f), Some(l)) if self.granularity != Granularity::Hour => Some((f.0, l.1)),
            _ => None,
        };
        Bucket {
            label: self.from,
            start: self.from,
            end: self.to,
            full_days,
        }
    }
}

fn too_many() -> AppError {
    AppError::bad_input(format!(
        "range: more than {MAX_BUCKETS} buckets; choose a coarser granularity"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn only_buckets_the_range_holds_whole_are_periods() {
        let tz: Tz = "America/Los_Angeles".parse().unwrap();
        let (from, to) = (utc("2026-02-25T21:00:00Z"), utc("2026-04-20T07:00:00Z"));
        let periods = |g| {
            let w = Window::new(from, to, g, tz).unwrap();
            w.buckets
                .iter()
                .map(|b| b.whole_period(g, tz).map(|d| d.to_string()))
                .collect::<Vec<_>>()
        };
        let month = periods(Granularity::Month);
        assert_eq!(month, [None, Some("2026-03-01".into()), None]);
        let week = periods(Granularity::Week);
        assert_eq!(week.first(), Some(&None));
        // The week of the change to daylight time (Monday 2 March to Sunday 8 March) is whole.
        assert_eq!(week[1].as_deref(), Some("2026-03-02"));
        // The range ends at local midnight on Monday 20 April: the last week is whole.
        assert_eq!(week.last().unwrap().as_deref(), Some("2026-04-13"));
        let day = periods(Granularity::Day);
        assert_eq!(day.first(), Some(&None));
        assert!(day[1..].iter().all(Option::is_some));
        assert!(periods(Granularity::Hour).iter().all(Option::is_none));
    }

    #[test]
    fn the_current_bucket_is_whole_in_the_tenants_zone() {
        let tz: Tz = "America/Los_Angeles".parse().unwrap();
        let now = utc("2026-11-04T10:20:00Z");
        let span = |g| {
            let w = Window::current(now, g, tz).unwrap();
            assert_eq!(w.buckets.len(), 1, "{g:?}");
            assert_eq!(w.buckets[0].label, w.from);
            (w.from, w.to)
        };
        assert_eq!(
            span(Granularity::Hour),
            (utc("2026-11-04T10:00:00Z"), utc("2026-11-04T11:00:00Z"))
        );
        assert_eq!(
            span(Granularity::Day),
            (utc("2026-11-04T08:00:00Z"), utc("2026-11-05T08:00:00Z"))
        );
        // Monday, after the change back to standard time on Sunday the 1st.
        assert_eq!(
            span(Granularity::Week),
            (utc("2026-11-02T08:00:00Z"), utc("2026-11-09T08:00:00Z"))
        );
        // The 1st began in daylight time: the month has 30 days and one hour.
        assert_eq!(
            span(Granularity::Month),
            (utc("2026-11-01T07:00:00Z"), utc("2026-12-01T08:00:00Z"))
        );
    }

    #[test]
    fn days_across_a_dst_change_have_23_and_25_hours() {
        let tz: Tz = "America/Los_Angeles".parse().unwrap();
        let w = Window::new(
            utc("2026-03-07T08:00:00Z"),
            utc("2026-03-10T07:00:00Z"),
            Granularity::Day,
            tz,
        )
        .unwrap();
        let hours: Vec<i64> = w
            .buckets
            .iter()
            .map(|b| (b.end - b.start).num_hours())
            .collect();
        assert_eq!(hours, [24, 23, 24]);
        let w = Window::new(
            utc("2026-10-31T07:00:00Z"),
            utc("2026-11-03T08:00:00Z"),
            Granularity::Day,
            tz,
        )
        .unwrap();
        let hours: Vec<i64> = w
            .buckets
            .iter()
            .map(|b| (b.end - b.start).num_hours())
            .collect();
        assert_eq!(hours, [24, 25, 24]);
        assert!(w.buckets.iter().all(|b| b.full_days.is_some()));
    }

    #[test]
    fn weeks_start_monday_and_cut_buckets_keep_only_their_inside() {
        let w = Window::new(
            utc("2026-11-04T12:00:00Z"),
            utc("2026-11-20T00:00:00Z"),
            Granularity::Week,
            Tz::UTC,
        )
        .unwrap();
        let labels: Vec<String> = w.buckets.iter().map(|b| b.label.to_rfc3339()).collect();
        assert_eq!(
            labels,
            [
                "2026-11-02T00:00:00+00:00",
                "2026-11-09T00:00:00+00:00",
                "2026-11-16T00:00:00+00:00"
            ]
        );
        assert_eq!(w.buckets[0].start, utc("2026-11-04T12:00:00Z"));
        let first_days = w.buckets[0].full_days.unwrap();
        assert_eq!(first_days.0.to_string(), "2026-11-05");
        assert_eq!(
            w.buckets[0].edges(Tz::UTC),
            vec![(utc("2026-11-04T12:00:00Z"), utc("2026-11-05T00:00:00Z"))]
        );
        assert_eq!(w.buckets[2].full_days.unwrap().1.to_string(), "2026-11-19");
        assert!(w.buckets[2].edges(Tz::UTC).is_empty());
    }

    #[test]
    fn hours_follow_half_hour_offsets_and_limits_hold() {
        let tz: Tz = "Asia/Kolkata".parse().unwrap();
        let w = Window::new(
            utc("2026-01-01T00:00:00Z"),
            utc("2026-01-01T03:00:00Z"),
            Granularity::Hour,
            tz,
        )
        .unwrap();
        assert_eq!(w.buckets[0].label, utc("2025-12-31T23:30:00Z"));
        assert_eq!(w.buckets[0].start, utc("2026-01-01T00:00:00Z"));
        assert_eq!(w.buckets.len(), 4);
        assert!(
            Window::new(
                utc("2026-01-02T00:00:00Z"),
                utc("2026-01-01T00:00:00Z"),
                Granularity::Day,
                tz
            )
            .is_err()
        );
        assert!(
            Window::new(
                utc("2020-01-01T00:00:00Z"),
                utc("2026-01-01T00:00:00Z"),
                Granularity::Hour,
                tz
            )
            .is_err()
        );
        let m = Window::new(
            utc("2026-01-15T00:00:00Z"),
            utc("2026-04-01T00:00:00Z"),
            Granularity::Month,
            Tz::UTC,
        )
        .unwrap();
        assert_eq!(m.buckets.len(), 3);
        assert_eq!(m.whole().full_days.unwrap().0.to_string(), "2026-01-15");
    }
}
