//! A report as a file: one row per widget and bucket, rendered widget by widget into chunks that
//! go to storage as they are made, so that a report of any size is never whole in memory.

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde_json::json;

use super::ReportFormat;
use crate::analytics::Series;
use crate::db::reports::WidgetRow;
use crate::error::{AppError, AppResult};

pub const CSV_HEADER: [&str; 8] = [
    "widget",
    "metric",
    "granularity",
    "range",
    "event_name",
    "bucket",
    "bucket_utc",
    "value",
];

/// What the file says about its report.
pub struct Heading<'a> {
    pub report_id: uuid::Uuid,
    pub name: &'a str,
    pub tz: Tz,
    pub generated_at: DateTime<Utc>,
}

pub struct Renderer {
    format: ReportFormat,
    tz: Tz,
    rows: u64,
}

/// A spreadsheet runs a cell that starts like a formula; text from users never does.
fn cell(text: &str) -> String {
    match text.chars().next() {
        Some('=' | '+' | '-' | '@' | '\t' | '\r') => format!("'{text}"),
        _ => text.to_string(),
    }
}

fn csv_line(fields: &[&str]) -> AppResult<Vec<u8>> {
    let mut w = csv::WriterBuilder::new()
        .has_headers(false)
        .terminator(csv::Terminator::CRLF)
        .from_writer(Vec::with_capacity(128));
    w.write_record(fields).map_err(AppError::internal)?;
    w.into_inner()
        .map_err(|e| AppError::internal(anyhow::anyhow!("{e}")))
}

impl Renderer {
    /// The renderer and the file's first bytes.
    pub fn begin(format: ReportFormat, heading: &Heading<'_>) -> AppResult<(Renderer, Vec<u8>)> {
        let start = match format {
            // The byte-order mark tells spreadsheets the file is UTF-8.
            ReportFormat::Csv => [b"\xEF\xBB\xBF".to_vec(), csv_line(&CSV_HEADER)?].concat(),
            ReportFormat::Json => {
                let report = json!({
                    "id": heading.report_id,
                    "name": heading.name,
                    "timeZone": heading.tz.name(),
                    "generatedAt": heading.generated_at,
                });
                format!("{{\"report\":{report},\"rows\":[").into_bytes()
            }
        };
        let renderer = Renderer {
            format,
            tz: heading.tz,
            rows: 0,
        };
        Ok((renderer, start))
    }

    /// One widget's rows.
    pub fn widget(&mut self, widget: &WidgetRow, series: &Series) -> AppResult<Vec<u8>> {
        let mut out = Vec::with_capacity(series.points.len() * 96);
        for p in &series.points {
            let local = p.bucket.with_timezone(&self.tz);
            match self.format {
                ReportFormat::Csv => {
                    let title = cell(&widget.title);
                    let event = widget.event_name.as_deref().map(cell).unwrap_or_default();
                    let bucket = local.format("%Y-%m-%d %H:%M:%S").to_string();
                    let utc = p.bucket.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
                    let value = p.value.to_string();
                    out.extend(csv_line(&[
                        &title,
                        &widget.metric,
                        &widget.granularity,
                        &widget.range,
                        &event,
                        &bucket,
                        &utc,
                        &value,
                    ])?);
                }
                ReportFormat::Json => {
                    if self.rows > 0 {
                        out.push(b',');
                    }
                    let row = json!({
                        "widgetId": widget.id,
                        "widget": widget.title,
                        "metric": widget.metric,
                        "granularity": widget.granularity,
                        "range": widget.range,
                        "eventName": widget.event_name,
                        "bucket": local.to_rfc3339(),
                        "value": p.value,
                    });
                    serde_json::to_writer(&mut out, &row).map_err(AppError::internal)?;
                }
            }
            self.rows += 1;
        }
        Ok(out)
    }

    /// The file's last bytes and how many rows it holds.
    pub fn finish(self) -> (Vec<u8>, u64) {
        let end = match self.format {
            ReportFormat::Csv => Vec::new(),
            ReportFormat::Json => b"]}".to_vec(),
        };
        (end, self.rows)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analytics::Point;

    fn widget(title: &str) -> WidgetRow {
        WidgetRow {
            id: uuid::Uuid::nil(),
            tenant_id: uuid::Uuid::nil(),
            report_id: uuid::Uuid::nil(),
            position: 0,
            title: title.into(),
            metric: "EVENTS".into(),
            granularity: "DAY".into(),
            range: "LAST_7_DAYS".into(),
            event_name: None,
        }
    }

    fn series() -> Series {
        let at = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().to_utc();
        Series {
            total: 3.0,
            points: vec![
                Point {
                    bucket: at("2026-03-01T05:00:00Z"),
                    value: 1.0,
                    group: None,
                },
                Point {
                    bucket: at("2026-03-02T05:00:00Z"),
                    value: 2.5,
                    group: None,
                },
            ],
        }
    }

    fn render(format: ReportFormat, title: &str) -> (String, u64) {
        let heading = Heading {
            report_id: uuid::Uuid::nil(),
            name: "R",
            tz: "America/New_York".parse().unwrap(),
            generated_at: Utc::now(),
        };
        let (mut r, mut out) = Renderer::begin(format, &heading).unwrap();
        out.extend(r.widget(&widget(title), &series()).unwrap());
        out.extend(r.widget(&widget("second"), &series()).unwrap());
        let (end, rows) = r.finish();
        out.extend(end);
        (String::from_utf8(out).unwrap(), rows)
    }

    #[test]
    fn csv_opens_as_is_in_a_spreadsheet() {
        let (text, rows) = render(ReportFormat::Csv, "=HYPERLINK(\"x\"), \"quoted\"");
        assert_eq!(rows, 4);
        let text = text.strip_prefix('\u{feff}').expect("a byte-order mark");
        let lines: Vec<&str> = text.split("\r\n").collect();
        assert_eq!(lines[0], CSV_HEADER.join(","));
        assert_eq!(
            lines[1],
            "\"'=HYPERLINK(\"\"x\"\"), \"\"quoted\"\"\",EVENTS,DAY,LAST_7_DAYS,,2026-03-01 00:00:00,2026-03-01T05:00:00Z,1"
        );
        assert!(lines[2].ends_with(",2.5"));
        assert_eq!(
            lines.len(),
            6,
            "four rows, a header and the final line break"
        );
        let mut reader = csv::Reader::from_reader(text.as_bytes());
        assert_eq!(reader.records().count(), 4);
    }

    #[test]
    fn json_is_one_document() {
        let (text, rows) = render(ReportFormat::Json, "Events");
        let doc: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(rows, 4);
        assert_eq!(doc["report"]["timeZone"], "America/New_York");
        assert_eq!(doc["rows"].as_array().unwrap().len(), 4);
        assert_eq!(doc["rows"][1]["value"], 2.5);
        assert_eq!(doc["rows"][0]["bucket"], "2026-03-01T00:00:00-05:00");
    }
}
