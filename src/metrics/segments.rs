//! Series filtered or broken down by tracked property keys, and active users filtered by event
//! name, from the segment rollup: `segment_days` holds, per local day, event name, values of the
//! tracked keys and end user, the number of events. Whole days of a span come from it; the cut
//! edges of a span (and hourly buckets) from the events. Every number is exact.

use chrono::{DateTime, NaiveDate, Utc};
use diesel::pg::Pg;
use diesel::query_builder::{BoxedSqlQuery, SqlQuery};
use diesel::sql_types::{Array, Date, Text, Timestamptz, Uuid as SqlUuid};
use diesel_async::RunQueryDsl;
use uuid::Uuid;

use super::engagement::{Measure, RawRow, no_days, points_of};
use super::window::{Bucket, Window};
use super::{EventFilter, Series};
use crate::db::Conn;
use crate::error::AppResult;

/// Whether the segment rollup answers this series: every filtered and broken-down key is one
/// the rollup holds (`tracked`, in its order). New users are people, not events.
pub fn serves(
    tracked: &[String],
    measure: Measure,
    filter: &EventFilter,
    breakdown: Option<&str>,
) -> bool {
    measure != Measure::NewUsers
        && filter.properties.iter().all(|(k, _)| tracked.contains(k))
        && breakdown.is_none_or(|b| tracked.iter().any(|t| t == b))
}

/// A span's whole local days and up to two cut edges (empty intervals when absent).
struct SpanBounds {
    first_day: Vec<NaiveDate>,
    last_day: Vec<NaiveDate>,
    edge_from: [Vec<DateTime<Utc>>; 2],
    edge_to: [Vec<DateTime<Utc>>; 2],
    any_edge: bool,
}

fn bounds(spans: &[Bucket], window: &Window) -> SpanBounds {
    let mut b = SpanBounds {
        first_day: Vec::with_capacity(spans.len()),
        last_day: Vec::with_capacity(spans.len()),
        edge_from: [Vec::new(), Vec::new()],
        edge_to: [Vec::new(), Vec::new()],
        any_edge: false,
    };
    for span in spans {
        let (s, e) = span.full_days.unwrap_or_else(no_days);
        b.first_day.push(s);
        b.last_day.push(e);
        let edges = span.edges(window.tz);
        b.any_edge |= !edges.is_empty();
        for k in 0..2 {
            let (lo, hi) = edges.get(k).copied().unwrap_or((span.start, span.start));
            b.edge_from[k].push(lo);
            b.edge_to[k].push(hi);
        }
    }
    b
}

/// The statement: rollup rows of whole days, plus event rows of the edges when there are any,
/// counted per span and group. Tracked positions are written into the text (they are indexes
/// into the tenant's own key list); every value is a bound parameter.
fn statement(
    tracked: &[String],
    measure: Measure,
    filter: &EventFilter,
    breakdown: Option<&str>,
    with_edges: bool,
) -> String {
    let position = |k: &str| tracked.iter().position(|t| t == k).map_or(0, |i| i + 1);
    // $1 tenant, $2..$7 span bounds, then the name, the filter values and the breakdown key.
    let mut next = 8;
    let mut rollup_where = String::new();
    let mut event_where = String::new();
    if filter.name.is_some() {
        rollup_where.push_str(&format!(" AND r.name = ${next}"));
        event_where.push_str(&format!(" AND e.name = ${next}"));
        next += 1;
    }
    for (k, _) in &filter.properties {
        rollup_where.push_str(&format!(" AND r.dims[{}] = ${next}", position(k)));
        event_where.push_str(&format!(" AND e.properties ->> ${} = ${next}", next + 1));
        next += 2;
    }
    let (rollup_group, event_group) = match breakdown {
        Some(b) => (
            format!("r.dims[{}]", position(b)),
            format!("e.properties ->> ${next}"),
        ),
        None => ("NULL::text".to_string(), "NULL::text".to_string()),
    };
    let value = match measure {
        Measure::ActiveUsers => "count(DISTINCT m.user_id)",
        _ => "sum(m.events)",
    };
    let edges = if with_edges {
        format!(
            " UNION ALL SELECT b.idx, {event_group}, e.user_id, 1::int8 FROM b JOIN events e \
               ON e.tenant_id = $1 AND ((e.occurred_at >= b.lo1 AND e.occurred_at < b.hi1) \
                                     OR (e.occurred_at >= b.lo2 AND e.occurred_at < b.hi2)) \
             WHERE true{event_where}"
        )
    } else {
        String::new()
    };
    format!(
        "WITH b AS (SELECT * FROM unnest($2::date[], $3::date[], $4::timestamptz[], \
                    $5::timestamptz[], $6::timestamptz[], $7::timestamptz[]) \
                    WITH ORDINALITY AS b(s, e, lo1, hi1, lo2, hi2, idx)), \
         m AS (SELECT b.idx, {rollup_group} AS grp, r.user_id, r.events::int8 AS events \
               FROM b JOIN segment_days r ON r.tenant_id = $1 AND r.day BETWEEN b.s AND b.e \
               WHERE true{rollup_where}{edges}) \
         SELECT m.idx::int4 AS idx, m.grp, {value}::int8 AS value FROM m GROUP BY 1, 2"
    )
}

fn query<'a>(
    sql: String,
    tenant: Uuid,
    b: &'a SpanBounds,
    filter: &'a EventFilter,
    breakdown: Option<&'a str>,
) -> BoxedSqlQuery<'a, Pg, SqlQuery> {
    let mut q = diesel::sql_query(sql)
        .into_boxed()
        .bind::<SqlUuid, _>(tenant)
        .bind::<Array<Date>, _>(&b.first_day)
        .bind::<Array<Date>, _>(&b.last_day)
        .bind::<Array<Timestamptz>, _>(&b.edge_from[0])
        .bind::<Array<Timestamptz>, _>(&b.edge_to[0])
        .bind::<Array<Timestamptz>, _>(&b.edge_from[1])
        .bind::<Array<Timestamptz>, _>(&b.edge_to[1]);
    if let Some(name) = &filter.name {
        q = q.bind::<Text, _>(name.as_str());
    }
    for (k, v) in &filter.properties {
        q = q.bind::<Text, _>(v.as_str()).bind::<Text, _>(k.as_str());
    }
    if let Some(key) = breakdown {
        q = q.bind::<Text, _>(key);
    }
    q
}

/// The bounds of the spans a measure needs, and the statement over them. The spans are every
/// bucket, and for distinct users the whole range as one more (event counts add up; distinct
/// users do not).
fn prepare(
    window: &Window,
    tracked: &[String],
    measure: Measure,
    filter: &EventFilter,
    breakdown: Option<&str>,
) -> (SpanBounds, String) {
    let mut spans = window.buckets.clone();
    if measure == Measure::ActiveUsers {
        spans.push(window.whole());
    }
    let b = bounds(&spans, window);
    let sql = statement(tracked, measure, filter, breakdown, b.any_edge);
    (b, sql)
}

pub async fn series(
    conn: &mut Conn,
    tenant: Uuid,
    window: &Window,
    tracked: &[String],
    measure: Measure,
    filter: &EventFilter,
    breakdown: Option<&str>,
) -> AppResult<Series> {
    let (b, sql) = prepare(window, tracked, measure, filter, breakdown);
    let rows: Vec<RawRow> = query(sql, tenant, &b, filter, breakdown).load(conn).await?;
    let buckets = window.buckets.len();
    let total = match measure {
        Measure::ActiveUsers => rows
            .iter()
            .filter(|r| r.idx as usize == buckets + 1)
            .map(|r| r.value)
            .sum::<i64>(),
        _ => rows.iter().map(|r| r.value).sum(),
    };
    let in_buckets: Vec<RawRow> = rows
        .into_iter()
        .filter(|r| r.idx as usize <= buckets)
        .collect();
    Ok(Series {
        total: total as f64,
        points: points_of(window, &in_buckets, breakdown.is_some()),
    })
}

/// The plan of the statement `series` runs (for tests that keep dashboards off raw events).
pub async fn explain(
    conn: &mut Conn,
    tenant: Uuid,
    window: &Window,
    tracked: &[String],
    measure: Measure,
    filter: &EventFilter,
    breakdown: Option<&str>,
) -> AppResult<serde_json::Value> {
    let (b, sql) = prepare(window, tracked, measure, filter, breakdown);
    let sql = format!("EXPLAIN (FORMAT JSON) {sql}");
    let row: super::engagement::PlanRow = query(sql, tenant, &b, filter, breakdown)
        .get_result(conn)
        .await?;
    Ok(row.plan)
}
