//! What a report is made of, checked: widgets (at most 50, each a metric over a relative range),
//! names and descriptions. Everything is checked before anything is written.

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use uuid::Uuid;

use super::{RelativeRange, Stored, range};
use crate::calendar::Granularity;
use crate::db::reports::WidgetRow;
use crate::error::{AppError, AppResult};
use crate::live::message::MetricKey;
use crate::validate;

pub const MAX_WIDGETS: usize = 50;
pub const MAX_DESCRIPTION_CHARS: usize = 2_000;

/// What a widget's data depends on: the key of its data in a request's loader.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct WidgetQuery {
    pub metric: MetricKey,
    pub granularity: Granularity,
    pub range: RelativeRange,
    /// Only events of this name (`EVENTS` only).
    pub event_name: Option<String>,
}

impl WidgetQuery {
    pub fn of(row: &WidgetRow) -> AppResult<WidgetQuery> {
        Ok(WidgetQuery {
            metric: MetricKey::from_stored(&row.metric)?,
            granularity: Granularity::from_stored(&row.granularity)?,
            range: RelativeRange::from_stored(&row.range)?,
            event_name: row.event_name.clone(),
        })
    }
}

#[derive(Debug, Clone)]
pub struct WidgetSpec {
    pub title: String,
    pub query: WidgetQuery,
}

/// The widgets as given, checked; `tz` and `now` decide whether a granularity fits its range.
pub fn widgets(given: Vec<WidgetSpec>, tz: Tz, now: DateTime<Utc>) -> AppResult<Vec<WidgetSpec>> {
    if given.is_empty() {
        return Err(AppError::bad_input(
            "input.widgets: give at least one widget",
        ));
    }
    if given.len() > MAX_WIDGETS {
        return Err(AppError::bad_input(format!(
            "input.widgets: at most {MAX_WIDGETS} widgets, got {}",
            given.len()
        )));
    }
    given
        .into_iter()
        .enumerate()
        .map(|(i, mut w)| {
            let at = |field: &str| format!("input.widgets[{i}].{field}");
            w.title = validate::name(&w.title, &at("title"))?;
            if let Some(name) = &w.query.event_name {
                if w.query.metric != MetricKey::Events {
                    return Err(AppError::bad_input(format!(
                        "{}: only EVENTS widgets take an event name",
                        at("eventName")
                    )));
                }
                if name.is_empty() || name.len() > 200 || name.contains('\0') {
                    return Err(AppError::bad_input(format!(
                        "{}: must be 1 to 200 bytes, without NUL",
                        at("eventName")
                    )));
                }
            }
            range::window(w.query.range, w.query.granularity, tz, now).map_err(|e| match e {
                AppError::BadInput(msg) => {
                    AppError::bad_input(format!("{}: {msg}", at("granularity")))
                }
                other => other,
            })?;
            Ok(w)
        })
        .collect()
}

/// A report of key figures (the demo's and the benchmark's): engagement and revenue, by day
/// over 90 days and by month over 12 months.
pub fn kpi_widgets() -> Vec<WidgetSpec> {
    use Granularity::{Day, Month};
    use MetricKey::*;
    use RelativeRange::{Last12Months, Last90Days};
    [
        ("Daily active users", ActiveUsers, Day, Last90Days),
        ("New users by day", NewUsers, Day, Last90Days),
        ("Events by day", Events, Day, Last90Days),
        ("MRR by day", Mrr, Day, Last90Days),
        ("Monthly active users", ActiveUsers, Month, Last12Months),
        ("Events by month", Events, Month, Last12Months),
        ("MRR by month", Mrr, Month, Last12Months),
        ("Net new MRR by month", NetNewMrr, Month, Last12Months),
    ]
    .into_iter()
    .map(|(title, metric, granularity, range)| WidgetSpec {
        title: title.to_string(),
        query: WidgetQuery {
            metric,
            granularity,
            range,
            event_name: None,
        },
    })
    .collect()
}

/// Rows for `widgets` of `report`, in their order.
pub fn widget_rows(tenant: Uuid, report: Uuid, widgets: &[WidgetSpec]) -> Vec<WidgetRow> {
    widgets
        .iter()
        .enumerate()
        .map(|(i, w)| WidgetRow {
            id: Uuid::now_v7(),
            tenant_id: tenant,
            report_id: report,
            position: i as i32,
            title: w.title.clone(),
            metric: w.query.metric.stored().to_string(),
            granularity: w.query.granularity.stored().to_string(),
            range: w.query.range.stored().to_string(),
            event_name: w.query.event_name.clone(),
        })
        .collect()
}

/// A description: trimmed, at most 2,000 characters; empty means none.
pub fn description(given: Option<String>) -> AppResult<Option<String>> {
    let Some(text) = given else { return Ok(None) };
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    if text.chars().count() > MAX_DESCRIPTION_CHARS || text.contains('\0') {
        return Err(AppError::bad_input(format!(
            "input.description: at most {MAX_DESCRIPTION_CHARS} characters, without NUL"
        )));
    }
    Ok(Some(text.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(metric: MetricKey, g: Granularity, r: RelativeRange, name: Option<&str>) -> WidgetSpec {
        WidgetSpec {
            title: "Widget".into(),
            query: WidgetQuery {
                metric,
                granularity: g,
                range: r,
                event_name: name.map(str::to_string),
            },
        }
    }

    #[test]
    fn widgets_are_checked_whole() {
        let now = Utc::now();
        let ok = spec(
            MetricKey::Events,
            Granularity::Day,
            RelativeRange::Last7Days,
            Some("x"),
        );
        assert!(widgets(vec![ok.clone()], Tz::UTC, now).is_ok());
        assert!(widgets(vec![], Tz::UTC, now).is_err());
        assert!(widgets(vec![ok.clone(); 51], Tz::UTC, now).is_err());
        assert_eq!(
            widgets(vec![ok.clone(); 50], Tz::UTC, now).unwrap().len(),
            50
        );
        let named_mrr = spec(
            MetricKey::Mrr,
            Granularity::Day,
            RelativeRange::Last7Days,
            Some("x"),
        );
        let err = widgets(vec![ok.clone(), named_mrr], Tz::UTC, now).unwrap_err();
        assert!(
            err.to_string().contains("input.widgets[1].eventName"),
            "{err}"
        );
        let mut long = ok.clone();
        long.title = "x".repeat(201);
        assert!(widgets(vec![long], Tz::UTC, now).is_err());
        let hourly_year = spec(
            MetricKey::Mrr,
            Granularity::Hour,
            RelativeRange::Last12Months,
            None,
        );
        assert!(widgets(vec![hourly_year], Tz::UTC, now).is_err());
    }

    #[test]
    fn descriptions_are_bounded() {
        assert_eq!(description(Some("  ".into())).unwrap(), None);
        assert_eq!(
            description(Some(" a ".into())).unwrap().as_deref(),
            Some("a")
        );
        assert!(description(Some("x".repeat(2_001))).is_err());
    }
}
