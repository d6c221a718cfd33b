//! Series filtered or broken down by tracked property keys, and active users filtered by event
//! name, from the segment rollups. Active users of one tracked key's value come from that
//! segment's transitions (`segment_transitions`), like unfiltered ones; other active-user filters
//! count distinct users over `segment_days` (per local day, event name, tracked values and user:
//! the events); event counts sum `segment_counts_all` (per day and tracked values), or
//! `segment_counts_daily` (per name too) when an event name is filtered. Whole days of a span
//! come from these; the cut edges of a span (and hourly buckets) from the events. Every number
//! is exact.

use chrono::{DateTime, NaiveDate, Utc};
use diesel::pg::Pg;
use diesel::query_builder::{BoxedSqlQuery, SqlQuery};
use diesel::sql_types::{Array, Date, Integer, Nullable, Text, Timestamptz, Uuid as SqlUuid};
use diesel_async::RunQueryDsl;
use uuid::Uuid;

use super::rows::{PlanRow, RawRow, points_of};
use super::{EventFilter, Measure, Series};
use crate::calendar;
use crate::calendar::Window;
use crate::calendar::sql::Base;
use crate::db::Conn;
use crate::db::binds::Binds;
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

/// SQL for the 1-based bucket of a whole local `day` of `window` (statements here are not
/// prepared, so the base is written as literals).
fn bucket_index(window: &Window, day: &str) -> String {
    let (base, month) = Base::of(window).literals();
    format!(
        "({} + 1)::int4",
        calendar::sql::number(window.granularity, day, &base, &month)
    )
}

/// Where each bucket's numbers come from: the whole local days of the range (each rollup row
/// finds its bucket by arithmetic on its day) and the buckets' cut edges (non-empty intervals,
/// each tagged with its bucket's 1-based index).
struct Sources {
    /// The first and last whole day of all buckets, if any bucket has one.
    days: Option<(NaiveDate, NaiveDate)>,
    edge_from: Vec<DateTime<Utc>>,
    edge_to: Vec<DateTime<Utc>>,
    edge_bucket: Vec<i32>,
    /// SQL for the bucket of a rollup row's day (`r.day`).
    day_index: String,
}

impl Sources {
    fn of(window: &Window) -> Sources {
        let mut whole = window.buckets.iter().filter_map(|b| b.full_days);
        let first = whole.next();
        let last = whole.next_back().or(first);
        let mut out = Sources {
            days: first.zip(last).map(|((s, _), (_, e))| (s, e)),
            day_index: bucket_index(window, "r.day"),
            edge_from: Vec::new(),
            edge_to: Vec::new(),
            edge_bucket: Vec::new(),
        };
        for (i, bucket) in window.buckets.iter().enumerate() {
            for (lo, hi) in bucket.edges(window.tz) {
                out.edge_from.push(lo);
                out.edge_to.push(hi);
                out.edge_bucket.push(i as i32 + 1);
            }
        }
        out
    }
}

/// The 1-based place of `key` among the rollup's tracked keys (its index into `dims`).
fn position(tracked: &[String], key: &str) -> Option<usize> {
    tracked.iter().position(|t| t == key).map(|i| i + 1)
}

/// The positions (filtered, broken down) when the per-pair counts answer: events of all names
/// filtered by one tracked key and broken down by another.
fn pair_of(
    tracked: &[String],
    measure: Measure,
    filter: &EventFilter,
    breakdown: Option<&str>,
) -> Option<(usize, usize)> {
    let ([(key, _)], Some(b)) = (filter.properties.as_slice(), breakdown) else {
        return None;
    };
    let (pa, pb) = (position(tracked, key)?, position(tracked, b)?);
    (measure == Measure::Events && filter.name.is_none() && pa != pb).then_some((pa, pb))
}

/// The statement: rollup rows of whole days, each placed in its bucket by arithmetic on its day,
/// plus event rows of the edges, counted per bucket and group and once over everything (the
/// total: distinct users do not add up). Tracked positions are written into the text (indexes
/// into the tenant's own key list); every value is a bound parameter.
fn query<'a>(
    explain: bool,
    tenant: Uuid,
    tracked: &[String],
    measure: Measure,
    filter: &'a EventFilter,
    breakdown: Option<&'a str>,
    sources: &'a Sources,
) -> BoxedSqlQuery<'a, Pg, SqlQuery> {
    // `serves` admitted only tracked keys here.
    let dim = |k: &str| position(tracked, k).unwrap_or(0);
    let mut q = Binds::explaining(explain);
    let (has_days, has_edges) = (sources.days.is_some(), !sources.edge_bucket.is_empty());
    let pair = pair_of(tracked, measure, filter, breakdown);
    if !has_days && !has_edges {
        return q.finish("SELECT 0::int4 AS idx, NULL::text AS grp, 0::int8 AS value");
    }
    let mut parts = Vec::new();
    let t = q.bind::<SqlUuid, _>(tenant);
    let name = filter.name.as_deref().map(|n| q.bind::<Text, _>(n));
    let values: Vec<String> = filter
        .properties
        .iter()
        .map(|(_, v)| q.bind::<Text, _>(v.as_str()))
        .collect();
    if let Some((first, last)) = sources.days {
        let (lo, hi) = (q.bind::<Date, _>(first), q.bind::<Date, _>(last));
        let index = &sources.day_index;
        if let Some((pa, pb)) = pair {
            let v = &values[0];
            parts.push(format!(
                "SELECT {index} AS idx, r.vb AS grp, NULL::text, r.events::int8 AS events \
                 FROM segment_pair_counts r WHERE r.tenant_id = {t} AND r.pa = {pa} AND r.pb = {pb} \
                   AND md5(r.va) = md5({v}) AND r.va = {v} AND r.day BETWEEN {lo} AND {hi}"
            ));
        } else {
            let mut cond = String::new();
            if let Some(n) = &name {
                cond.push_str(&format!(" AND r.name = {n}"));
            }
            for ((k, _), v) in filter.properties.iter().zip(&values) {
                cond.push_str(&format!(" AND r.dims[{}] = {v}", dim(k)));
            }
            let group =
                breakdown.map_or("NULL::text".to_string(), |b| format!("r.dims[{}]", dim(b)));
            // Event counts need no users: the per-day counts are far fewer rows.
            let (table, user) = match measure {
                Measure::ActiveUsers => ("segment_days", "r.user_id"),
                _ if filter.name.is_none() => ("segment_counts_all", "NULL::text"),
                _ => ("segment_counts_daily", "NULL::text"),
            };
            parts.push(format!(
                "SELECT {index} AS idx, {group} AS grp, {user}, r.events::int8 AS events \
                 FROM {table} r WHERE r.tenant_id = {t} AND r.day BETWEEN {lo} AND {hi}{cond}"
            ));
        }
    }
    if has_edges {
        let from = q.bind::<Array<Timestamptz>, _>(&sources.edge_from);
        let to = q.bind::<Array<Timestamptz>, _>(&sources.edge_to);
        let idx = q.bind::<Array<Integer>, _>(&sources.edge_bucket);
        let mut cond = String::new();
        if let Some(n) = &name {
            cond.push_str(&format!(" AND e.name = {n}"));
        }
        for ((k, _), v) in filter.properties.iter().zip(&values) {
            let k = q.bind::<Text, _>(k.as_str());
            cond.push_str(&format!(" AND e.properties ->> {k} = {v}"));
        }
        let group = match breakdown {
            Some(b) => format!("e.properties ->> {}", q.bind::<Text, _>(b)),
            None => "NULL::text".to_string(),
        };
        parts.push(format!(
            "SELECT x.idx, {group}, e.user_id, 1::int8 \
             FROM unnest({from}::timestamptz[], {to}::timestamptz[], {idx}::int4[]) AS x(lo, hi, idx) \
             JOIN events e ON e.tenant_id = {t} AND e.occurred_at >= x.lo AND e.occurred_at < x.hi \
             WHERE true{cond}"
        ));
    }
    let value = match measure {
        Measure::ActiveUsers => "count(DISTINCT m.user_id)",
        _ => "sum(m.events)",
    };
    let sql = format!(
        "WITH m(idx, grp, user_id, events) AS ({}) \
         SELECT coalesce(m.idx, 0)::int4 AS idx, m.grp, coalesce({value}, 0)::int8 AS value \
         FROM m GROUP BY GROUPING SETS ((m.idx, m.grp), ())",
        parts.join(" UNION ALL ")
    );
    q.finish(&sql)
}

/// The spans of `window` (buckets, then the whole range) as whole-day bounds and up to two edges
/// each (empty intervals when absent); whether any span has an edge.
struct Spans {
    first_day: Vec<NaiveDate>,
    last_day: Vec<NaiveDate>,
    edges: [Vec<DateTime<Utc>>; 4],
    any_edge: bool,
}

impl Spans {
    fn of(window: &Window) -> Spans {
        let (spans, first_day, last_day) = window.spans();
        let mut edges: [Vec<DateTime<Utc>>; 4] = Default::default();
        let mut any_edge = false;
        for span in &spans {
            let cut = span.edges(window.tz);
            any_edge |= !cut.is_empty();
            for k in 0..2 {
                let (lo, hi) = cut.get(k).copied().unwrap_or((span.start, span.start));
                edges[2 * k].push(lo);
                edges[2 * k + 1].push(hi);
            }
        }
        Spans {
            first_day,
            last_day,
            edges,
            any_edge,
        }
    }
}

/// Whether the segment transitions answer this series: active users of one tracked key's value.
fn one_segment(tracked: &[String], measure: Measure, filter: &EventFilter) -> bool {
    measure == Measure::ActiveUsers
        && filter.name.is_none()
        && filter.properties.len() == 1
        && tracked.contains(&filter.properties[0].0)
}

/// Distinct users with events of one tracked key's value. With cut edges, per span (every
/// bucket, and the whole range one more): the segment's transitions of its whole days (as the
/// unfiltered series: users active in days [a, b] are those whose previous active day in the
/// segment is before a), plus the edges' users not already active in the span's whole days.
/// Without, one scan of the segment's transitions in the range: a bucket's users are its first
/// visits (previous day before the bucket's first whole day), the whole range's those whose
/// previous day is before the range. A probe per bucket cost more than the rows.
fn segment_users_query<'a>(
    explain: bool,
    tenant: Uuid,
    window: &Window,
    spans: &'a Spans,
    tracked: &[String],
    filter: &'a EventFilter,
) -> BoxedSqlQuery<'a, Pg, SqlQuery> {
    let (key, value) = &filter.properties[0];
    let mut q = Binds::explaining(explain);
    let t = q.bind::<SqlUuid, _>(tenant);
    let position = q.bind::<Text, _>(position(tracked, key).unwrap_or(0).to_string());
    let value = q.bind::<Text, _>(value.as_str());
    let seg = format!("{position} || ':' || md5({value})");
    let sql = if spans.any_edge {
        let s = q.bind::<Array<Date>, _>(&spans.first_day);
        let e = q.bind::<Array<Date>, _>(&spans.last_day);
        let [lo1, hi1, lo2, hi2] = spans
            .edges
            .each_ref()
            .map(|edge| q.bind::<Array<Timestamptz>, _>(edge));
        let key = q.bind::<Text, _>(key.as_str());
        format!(
            "WITH sp AS (SELECT * FROM unnest({s}::date[], {e}::date[], {lo1}::timestamptz[], \
               {hi1}::timestamptz[], {lo2}::timestamptz[], {hi2}::timestamptz[]) \
               WITH ORDINALITY AS sp(s, e, lo1, hi1, lo2, hi2, idx)), \
             g AS (SELECT {seg} AS seg) \
             SELECT sp.idx::int4 AS idx, NULL::text AS grp, (coalesce((SELECT sum(t.users) \
               FROM segment_transitions t WHERE t.tenant_id = {t} AND t.seg = g.seg \
                 AND t.day BETWEEN sp.s AND sp.e AND t.prev_day < sp.s), 0) \
             + (SELECT count(DISTINCT e.user_id) FROM events e \
               WHERE e.tenant_id = {t} AND e.properties ->> {key} = {value} \
                 AND ((e.occurred_at >= sp.lo1 AND e.occurred_at < sp.hi1) \
                   OR (e.occurred_at >= sp.lo2 AND e.occurred_at < sp.hi2)) \
                 AND NOT EXISTS (SELECT 1 FROM segment_user_days u WHERE u.tenant_id = {t} \
                   AND u.seg = g.seg AND u.user_id = e.user_id \
                   AND u.day BETWEEN sp.s AND sp.e)))::int8 AS value \
             FROM sp, g"
        )
    } else {
        // The whole range is the last span, and whole days.
        let (first, last) = (
            spans.first_day.last().copied(),
            spans.last_day.last().copied(),
        );
        let (lo, hi) = (
            q.bind::<Nullable<Date>, _>(first),
            q.bind::<Nullable<Date>, _>(last),
        );
        let index = bucket_index(window, "t.day");
        let period = calendar::sql::period_start(window.granularity, "t.day");
        format!(
            "WITH g AS (SELECT {seg} AS seg, {lo}::date AS lo, {hi}::date AS hi) \
             SELECT {index} AS idx, NULL::text AS grp, sum(t.users)::int8 AS value \
               FROM g JOIN segment_transitions t ON t.tenant_id = {t} AND t.seg = g.seg \
                 AND t.day BETWEEN g.lo AND g.hi \
               WHERE t.prev_day < greatest({period}, g.lo) GROUP BY 1 \
             UNION ALL \
             SELECT {} AS idx, NULL::text, coalesce(sum(t.users), 0)::int8 \
               FROM g JOIN segment_transitions t ON t.tenant_id = {t} AND t.seg = g.seg \
                 AND t.day BETWEEN g.lo AND g.hi AND t.prev_day < g.lo",
            window.buckets.len() + 1
        )
    };
    q.finish(&sql)
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
    if one_segment(tracked, measure, filter) {
        let spans = Spans::of(window);
        let mut rows: Vec<RawRow> =
            segment_users_query(false, tenant, window, &spans, tracked, filter)
                .load(conn)
                .await?;
        let buckets = window.buckets.len();
        let total = rows
            .iter()
            .find(|r| r.idx as usize == buckets + 1)
            .map_or(0, |r| r.value);
        rows.retain(|r| r.idx as usize <= buckets);
        return Ok(Series {
            total: total as f64,
            points: points_of(window, &rows, false),
        });
    }
    let sources = Sources::of(window);
    let (total, in_buckets): (Vec<RawRow>, Vec<RawRow>) =
        query(false, tenant, tracked, measure, filter, breakdown, &sources)
            .load::<RawRow>(conn)
            .await?
            .into_iter()
            .partition(|r| r.idx == 0);
    Ok(Series {
        total: total.iter().map(|r| r.value).sum::<i64>() as f64,
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
    if one_segment(tracked, measure, filter) {
        let spans = Spans::of(window);
        let row: PlanRow = segment_users_query(true, tenant, window, &spans, tracked, filter)
            .get_result(conn)
            .await?;
        return Ok(row.plan);
    }
    let sources = Sources::of(window);
    let row: PlanRow = query(true, tenant, tracked, measure, filter, breakdown, &sources)
        .get_result(conn)
        .await?;
    Ok(row.plan)
}
