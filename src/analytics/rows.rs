//! What the series statements return, and how their rows become a series' points.

use diesel::sql_types::{BigInt, Integer, Nullable, Text};

use super::Point;
use crate::calendar::Window;

/// One bucket's (1-based `idx`) value for one group.
#[derive(diesel::QueryableByName)]
pub struct RawRow {
    #[diesel(sql_type = Integer)]
    pub idx: i32,
    #[diesel(sql_type = Nullable<Text>)]
    pub grp: Option<String>,
    #[diesel(sql_type = BigInt)]
    pub value: i64,
}

#[derive(diesel::QueryableByName)]
pub struct PlanRow {
    #[diesel(sql_type = diesel::sql_types::Json)]
    #[diesel(column_name = "QUERY PLAN")]
    pub plan: serde_json::Value,
}

/// Every bucket once per group seen (or once, without groups), zero where no row says otherwise.
pub fn points_of(window: &Window, rows: &[RawRow], grouped: bool) -> Vec<Point> {
    let mut groups: Vec<Option<String>> = rows.iter().map(|r| r.grp.clone()).collect();
    groups.sort();
    groups.dedup();
    if groups.is_empty() {
        groups.push(None);
    }
    let found: std::collections::HashMap<(i32, &Option<String>), i64> =
        rows.iter().map(|r| ((r.idx, &r.grp), r.value)).collect();
    let mut points = Vec::with_capacity(window.buckets.len() * groups.len());
    for (i, b) in window.buckets.iter().enumerate() {
        for g in &groups {
            let value = found.get(&(i as i32 + 1, g)).copied().unwrap_or(0);
            points.push(Point {
                bucket: b.label,
                value: value as f64,
                group: if grouped { g.clone() } else { None },
            });
        }
    }
    points
}
