//! Relay cursors: opaque to clients, base64 of a kind tag and the sort key.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::error::{AppError, AppResult};

pub const DEFAULT_PAGE: i64 = 20;
pub const MAX_PAGE: i64 = 100;

/// `first` as a row limit: 20 when absent, capped at 100.
pub fn page_size(first: Option<i32>) -> AppResult<i64> {
    match first {
        None => Ok(DEFAULT_PAGE),
        Some(n) if n < 0 => Err(AppError::bad_input("first: must not be negative")),
        Some(n) => Ok(i64::from(n).min(MAX_PAGE)),
    }
}

/// Upper bound used by the complexity estimate.
pub fn page_cost(first: Option<i32>) -> usize {
    first.map_or(DEFAULT_PAGE, |n| i64::from(n).clamp(0, MAX_PAGE)) as usize
}

pub fn encode_time_id(kind: &str, at: DateTime<Utc>, id: Uuid) -> String {
    URL_SAFE_NO_PAD.encode(format!("{kind}:{}:{id}", at.timestamp_micros()))
}

pub fn decode_time_id(kind: &str, cursor: &str) -> AppResult<(DateTime<Utc>, Uuid)> {
    let bad = || AppError::bad_input("after: not a cursor from this list");
    let raw = URL_SAFE_NO_PAD.decode(cursor).map_err(|_| bad())?;
    let text = String::from_utf8(raw).map_err(|_| bad())?;
    let mut parts = text.splitn(3, ':');
    if parts.next() != Some(kind) {
        return Err(bad());
    }
    let micros: i64 = parts.next().and_then(|p| p.parse().ok()).ok_or_else(bad)?;
    let id: Uuid = parts.next().and_then(|p| p.parse().ok()).ok_or_else(bad)?;
    let at = DateTime::from_timestamp_micros(micros).ok_or_else(bad)?;
    Ok((at, id))
}

pub fn encode_id(kind: &str, id: Uuid) -> String {
    URL_SAFE_NO_PAD.encode(format!("{kind}:{id}"))
}

pub fn decode_id(kind: &str, cursor: &str) -> AppResult<Uuid> {
    let bad = || AppError::bad_input("after: not a cursor from this list");
    let raw = URL_SAFE_NO_PAD.decode(cursor).map_err(|_| bad())?;
    let text = String::from_utf8(raw).map_err(|_| bad())?;
    let (k, id) = text.split_once(':').ok_or_else(bad)?;
    if k != kind {
        return Err(bad());
    }
    id.parse().map_err(|_| bad())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_reject_foreign_ones() {
        let at = DateTime::from_timestamp_micros(1_700_000_000_123_456).unwrap();
        let id = Uuid::new_v4();
        let c = encode_time_id("member", at, id);
        assert_eq!(decode_time_id("member", &c).unwrap(), (at, id));
        assert!(decode_time_id("tenant", &c).is_err());
        assert!(decode_time_id("member", "garbage!").is_err());
        let c = encode_id("audit", id);
        assert_eq!(decode_id("audit", &c).unwrap(), id);
        assert!(decode_id("member", &c).is_err());
    }

    #[test]
    fn page_size_defaults_and_caps() {
        assert_eq!(page_size(None).unwrap(), 20);
        assert_eq!(page_size(Some(500)).unwrap(), 100);
        assert_eq!(page_size(Some(0)).unwrap(), 0);
        assert!(page_size(Some(-1)).is_err());
    }
}
