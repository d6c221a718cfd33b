//! Checks on user input that several operations share. Each error names the field.

use chrono::{DateTime, Duration, NaiveDate, Utc};

use crate::error::{AppError, AppResult};

/// How far ahead of the server's clock data may be stamped (clients' clocks drift).
pub const CLOCK_DRIFT: Duration = Duration::hours(1);
/// The first instant data may be about, and the furthest an analytics range may reach: wide
/// enough for any product's history and plans, narrow enough that calendar arithmetic near its
/// ends never leaves chrono's range.
pub const FIRST_DAY: NaiveDate = NaiveDate::from_ymd_opt(1970, 1, 1).expect("a valid date");
pub const LAST_RANGE_DAY: NaiveDate = NaiveDate::from_ymd_opt(2200, 1, 1).expect("a valid date");

fn start_of(day: NaiveDate) -> DateTime<Utc> {
    day.and_time(chrono::NaiveTime::MIN).and_utc()
}

/// When an ingested item happened: from 1970 to an hour from now. `field` names it.
pub fn occurred_at(at: DateTime<Utc>, now: DateTime<Utc>, field: &str) -> AppResult<()> {
    if at > now + CLOCK_DRIFT {
        return Err(AppError::bad_input(format!(
            "{field}: {at} is more than an hour in the future"
        )));
    }
    if at < start_of(FIRST_DAY) {
        return Err(AppError::bad_input(format!("{field}: {at} is before 1970")));
    }
    Ok(())
}

/// A day data can be about (an exchange rate's): the days `occurred_at` accepts.
pub fn data_day(day: NaiveDate, now: DateTime<Utc>, field: &str) -> AppResult<()> {
    let last = (now + CLOCK_DRIFT).date_naive();
    if day < FIRST_DAY || day > last {
        return Err(AppError::bad_input(format!(
            "{field}: {day} is outside {FIRST_DAY} to {last}, the days events may be stamped with"
        )));
    }
    Ok(())
}

/// An analytics range: ordered, and within 1970 to 2200.
pub fn range(from: DateTime<Utc>, to: DateTime<Utc>) -> AppResult<()> {
    if from >= to {
        return Err(AppError::bad_input("range: `from` must be before `to`"));
    }
    if from < start_of(FIRST_DAY) || to > start_of(LAST_RANGE_DAY) {
        return Err(AppError::bad_input(format!(
            "range: must lie between {FIRST_DAY} and {LAST_RANGE_DAY}"
        )));
    }
    Ok(())
}

pub fn email(value: &str, field: &str) -> AppResult<String> {
    let trimmed = value.trim().to_lowercase();
    if trimmed.len() > 254
        || !email_address::EmailAddress::is_valid(&trimmed)
        || !trimmed.contains('.')
    {
        return Err(AppError::bad_input(format!(
            "{field}: '{}' is not a valid email address",
            truncate(value)
        )));
    }
    Ok(trimmed)
}

pub fn name(value: &str, field: &str) -> AppResult<String> {
    let trimmed = value.trim();
    if trimmed.is_empty() || trimmed.chars().count() > 200 || trimmed.chars().any(char::is_control)
    {
        return Err(AppError::bad_input(format!(
            "{field}: must be 1 to 200 printable characters"
        )));
    }
    Ok(trimmed.to_string())
}

pub const MAX_TRACKED_PROPERTIES: usize = 5;

/// Up to five distinct property keys, each 1 to 200 bytes of printable text.
pub fn tracked_properties(keys: Vec<String>, field: &str) -> AppResult<Vec<String>> {
    if keys.len() > MAX_TRACKED_PROPERTIES {
        return Err(AppError::bad_input(format!(
            "{field}: at most {MAX_TRACKED_PROPERTIES} keys, got {}",
            keys.len()
        )));
    }
    let mut out: Vec<String> = Vec::with_capacity(keys.len());
    for (i, key) in keys.into_iter().enumerate() {
        if key.is_empty() || key.len() > 200 || key.chars().any(char::is_control) {
            return Err(AppError::bad_input(format!(
                "{field}[{i}]: must be 1 to 200 bytes of printable text"
            )));
        }
        if out.contains(&key) {
            return Err(AppError::bad_input(format!(
                "{field}[{i}]: '{key}' is listed twice"
            )));
        }
        out.push(key);
    }
    Ok(out)
}

pub fn slug(value: &str, field: &str) -> AppResult<String> {
    let ok = (2..=63).contains(&value.len())
        && value
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !value.starts_with('-');
    if !ok {
        return Err(AppError::bad_input(format!(
            "{field}: must be 2 to 63 characters of a-z, 0-9 and '-', not starting with '-'"
        )));
    }
    Ok(value.to_string())
}

/// A slug made from a display name ("Acme, Inc." gives "acme-inc").
pub fn slug_from_name(name: &str) -> String {
    let mut out = String::new();
    for c in name.chars().flat_map(char::to_lowercase) {
        if c.is_ascii_alphanumeric() {
            out.push(c);
        } else if !out.ends_with('-') && !out.is_empty() {
            out.push('-');
        }
    }
    let mut slug: String = out.trim_matches('-').chars().take(40).collect();
    while slug.len() < 2 {
        slug.push('x');
    }
    slug.trim_end_matches('-').to_string()
}

pub fn timezone(value: &str, field: &str) -> AppResult<String> {
    value
        .parse::<chrono_tz::Tz>()
        .map(|tz| tz.name().to_string())
        .map_err(|_| {
            AppError::bad_input(format!(
                "{field}: '{}' is not an IANA time zone (e.g. Europe/Berlin)",
                truncate(value)
            ))
        })
}

pub fn currency(value: &str, field: &str) -> AppResult<String> {
    let upper = value.trim().to_uppercase();
    match iso_currency::Currency::from_code(&upper) {
        Some(_) => Ok(upper),
        None => Err(AppError::bad_input(format!(
            "{field}: '{}' is not an ISO 4217 currency code",
            truncate(value)
        ))),
    }
}

/// Longest name or id an ingested item may carry.
pub const MAX_ITEM_TEXT: usize = 200;

/// A name or id of item `index` of an ingested batch (`list`: "events", "changes").
pub fn item_text(value: &str, list: &str, index: usize, field: &str) -> AppResult<()> {
    if value.trim().is_empty() || value.len() > MAX_ITEM_TEXT || value.chars().any(char::is_control)
    {
        return Err(AppError::bad_input(format!(
            "{list}[{index}].{field}: must be 1 to {MAX_ITEM_TEXT} bytes of printable text"
        )));
    }
    Ok(())
}

/// A JSON value's keys and strings, which PostgreSQL stores only without NUL characters;
/// `path` names the value (`events[3].properties`) and the error names the key inside it.
pub fn json_text(value: &serde_json::Value, path: &str) -> AppResult<()> {
    use serde_json::Value;
    // serde_json parses at most 128 levels: a stack of that many frames is bounded.
    let mut stack: Vec<(&Value, String)> = vec![(value, path.to_string())];
    while let Some((value, at)) = stack.pop() {
        match value {
            Value::String(s) if s.contains('\0') => return Err(nul_in(&at)),
            Value::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    stack.push((item, format!("{at}[{i}]")));
                }
            }
            Value::Object(map) => {
                for (key, item) in map {
                    let inner = format!("{at}.{key}");
                    if key.contains('\0') {
                        return Err(nul_in(&inner));
                    }
                    stack.push((item, inner));
                }
            }
            _ => {}
        }
    }
    Ok(())
}

pub fn nul_in(path: &str) -> AppError {
    AppError::bad_input(format!(
        "{path}: contains a NUL character (\\u0000), which cannot be stored"
    ))
}

/// An ID argument (`field` names it). One that is not an ID at all is bad input; one that is
/// but names nothing the caller can see is `NOT_FOUND`, whoever else it may belong to.
pub fn uuid(value: &str, field: &str) -> AppResult<uuid::Uuid> {
    value
        .parse()
        .map_err(|_| AppError::bad_input(format!("{field}: '{}' is not an ID", truncate(value))))
}

fn truncate(value: &str) -> String {
    value.chars().take(80).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checks_common_inputs() {
        assert_eq!(
            email(" Ann@Example.COM ", "email").unwrap(),
            "ann@example.com"
        );
        assert!(email("not-an-email", "email").is_err());
        assert!(email("a@b", "email").is_err());
        assert_eq!(slug_from_name("Acme, Inc."), "acme-inc");
        assert_eq!(slug_from_name("Ö"), "xx");
        assert!(slug("acme-inc", "slug").is_ok());
        assert!(slug("Acme", "slug").is_err());
        assert!(slug("-acme", "slug").is_err());
        assert_eq!(
            timezone("America/Los_Angeles", "tz").unwrap(),
            "America/Los_Angeles"
        );
        assert!(timezone("Mars/Olympus", "tz").is_err());
        assert_eq!(currency("eur", "currency").unwrap(), "EUR");
        assert!(currency("XYZW", "currency").is_err());
        assert!(name("  ", "name").is_err());
    }
}
