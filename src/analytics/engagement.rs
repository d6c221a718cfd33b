//! Active users, new users and event counts.
//!
//! Whole local days come from the rollups: `active_transitions` answers "distinct users active in
//! days [a, b]" as the users whose previous active day is before `a`, and `event_counts_daily`
//! holds counts. Filters and breakdowns on tracked keys, and active users of one event name, come
//! from the segment rollup (`segments`). The parts of a range that cut a day, hourly buckets, and
//! other property filters are read from the events themselves. Every number is exact.

use chrono::{DateTime, NaiveDate, Utc};
use diesel::QueryResult;
use diesel::pg::Pg;
use diesel::query_builder::{AstPass, BoxedSqlQuery, Query, QueryFragment, QueryId, SqlQuery};
use diesel::sql_types::Untyped;
use diesel::sql_types::{
    Array, BigInt, Date, Integer, Nullable, Text, Timestamptz, Uuid as SqlUuid,
};
use diesel_async::RunQueryDsl;
use uuid::Uuid;

use super::rows::{PlanRow, RawRow, points_of};
use super::{EventFilter, Measure, Point, Series};
use crate::calendar;
use crate::calendar::sql::Base;
use crate::calendar::{Granularity, Window};
use crate::db::Conn;
use crate::db::binds::Binds;
use crate::error::AppResult;

/// One aggregate of the rollup statement: `kind` says which, `bucket` its 0-based bucket (none
/// for the whole range).
#[derive(diesel::QueryableByName)]
struct RollupRow {
    #[diesel(sql_type = Integer)]
    kind: i32,
    #[diesel(sql_type = Nullable<Integer>)]
    bucket: Option<i32>,
    #[diesel(sql_type = BigInt)]
    v1: i64,
    #[diesel(sql_type = BigInt)]
    v2: i64,
}

/// Whole-day numbers per span (the buckets, then the whole range last), assembled from the
/// rollup statement's aggregates.
struct DayTotals {
    users: Vec<i64>,
    new_users: Vec<i64>,
    events: Vec<i64>,
}

impl DayTotals {
    fn of(rows: &[RollupRow], spans: usize) -> DayTotals {
        let whole = spans - 1;
        let mut out = DayTotals {
            users: vec![0; spans],
            new_users: vec![0; spans],
            events: vec![0; spans],
        };
        for r in rows {
            let at = match r.bucket.map(usize::try_from) {
                None => whole,
                Some(Ok(i)) if i < whole => i,
                Some(_) => continue,
            };
            match (r.kind, at == whole) {
                // The whole range's users are its first visits (FIRST_VISITS) instead.
                (ACTIVITY, in_whole) => {
                    if !in_whole {
                        out.users[at] += r.v1;
                    }
                    out.new_users[at] = r.v2;
                }
                (EVENTS, _) => out.events[at] = r.v1,
                (REPEATS, _) => out.users[at] -= r.v1,
                (FIRST_VISITS, _) => out.users[at] += r.v1,
                _ => {}
            }
        }
        out
    }

    fn value(&self, measure: Measure, at: usize) -> i64 {
        match measure {
            Measure::ActiveUsers => self.users[at],
            Measure::NewUsers => self.new_users[at],
            Measure::Events => self.events[at],
        }
    }
}

#[derive(diesel::QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

/// Whether the rollups answer this series (whole days; no property filter or breakdown; event
/// names only for event counts).
pub fn uses_rollups(
    window: &Window,
    measure: Measure,
    filter: &EventFilter,
    breakdown: Option<&str>,
) -> bool {
    window.granularity != Granularity::Hour
        && filter.properties.is_empty()
        && breakdown.is_none()
        && (measure != Measure::ActiveUsers || filter.name.is_none())
}

/// The series of one measure. `breakdown` splits events by a property's value; `tracked` is
/// the property keys the segment rollup holds.
pub async fn series(
    conn: &mut Conn,
    tenant: Uuid,
    window: &Window,
    tracked: &[String],
    measure: Measure,
    filter: &EventFilter,
    breakdown: Option<&str>,
) -> AppResult<Series> {
    if uses_rollups(window, measure, filter, breakdown) {
        let mut all =
            from_rollups(conn, tenant, window, &[measure], filter.name.as_deref()).await?;
        Ok(all.remove(0).1)
    } else if super::segments::serves(tracked, measure, filter, breakdown) {
        super::segments::series(conn, tenant, window, tracked, measure, filter, breakdown).await
    } else {
        raw_series(conn, tenant, window, measure, filter, breakdown).await
    }
}

/// The whole days of a range (the buckets' days are contiguous within them) and the bucket size.
struct DaySpans {
    lo: NaiveDate,
    hi: NaiveDate,
    granularity: Granularity,
    base: Base,
}

impl DaySpans {
    fn of(window: &Window) -> Option<DaySpans> {
        let (lo, hi) = window.whole().full_days?;
        Some(DaySpans {
            lo,
            hi,
            granularity: window.granularity,
            base: Base::of(window),
        })
    }
}

/// Several measures from one rollup query (the dashboard asks for all three at once).
pub async fn from_rollups(
    conn: &mut Conn,
    tenant: Uuid,
    window: &Window,
    measures: &[Measure],
    name: Option<&str>,
) -> AppResult<Vec<(Measure, Series)>> {
    let (spans, _, _) = window.spans();
    let rows: Vec<RollupRow> = match DaySpans::of(window) {
        Some(days) => rollup_query(false, tenant, &days, name).load(conn).await?,
        None => Vec::new(),
    };
    let days = DayTotals::of(&rows, spans.len());
    let mut out = Vec::with_capacity(measures.len());
    for &measure in measures {
        let mut values: Vec<i64> = (0..spans.len()).map(|i| days.value(measure, i)).collect();
        // The cut edges of the range (only the first and last buckets, and the whole, have any).
        for (i, span) in spans.iter().enumerate() {
            let edges = span.edges(window.tz);
            if !edges.is_empty() {
                values[i] +=
                    edge_value(conn, tenant, measure, name, &edges, span.full_days).await?;
            }
        }
        let total = values.pop().unwrap_or(0) as f64;
        let points = window
            .buckets
            .iter()
            .zip(values)
            .map(|(b, v)| Point {
                bucket: b.label,
                value: v as f64,
                group: None,
            })
            .collect();
        out.push((measure, Series { total, points }));
    }
    Ok(out)
}

const ACTIVITY: i32 = 1;
const EVENTS: i32 = 2;
const REPEATS: i32 = 3;
const FIRST_VISITS: i32 = 4;

/// One pass over each rollup for all whole days of the range, summed per bucket (numbered by
/// arithmetic on the tenant-local day) and over everything (grouping sets). A bucket's distinct
/// users are its days' users less the repeat visits whose previous day is in the bucket too (kind
/// 3, only for buckets of several days). The whole range's are its first visits: the transitions
/// whose previous day is before the range, new users' `-infinity` included (kind 4), the few that
/// cross into the range rather than the many inside it (702 against 10,895 rows for 12 months of
/// the 10M-event bench tenant). One probe per bucket and table, as before, cost more than the
/// rows themselves. The text depends on the granularity only (the bucket base is a parameter),
/// so each connection prepares at most three. Each parameter appears once (in `p`), so that
/// diesel can number them as it writes them.
fn rollup_body(granularity: Granularity) -> String {
    let bucket = |day: &str| calendar::sql::number(granularity, day, "p.b", "p.m");
    let mut sql = format!(
        "SELECT 1 AS kind, {} AS bucket, \
           coalesce(sum(a.users), 0)::int8 AS v1, coalesce(sum(a.new_users), 0)::int8 AS v2 \
         FROM p JOIN daily_activity a ON a.tenant_id = p.t AND a.day BETWEEN p.lo AND p.hi \
         GROUP BY GROUPING SETS ((2), ()) \
       UNION ALL \
       SELECT 2, {}, coalesce(sum(c.events), 0)::int8, 0 \
         FROM p JOIN event_counts_daily c ON c.tenant_id = p.t AND c.day BETWEEN p.lo AND p.hi \
           AND (p.n IS NULL OR c.name = p.n) \
         GROUP BY GROUPING SETS ((2), ()) \
       UNION ALL \
       SELECT 4, NULL, coalesce(sum(t.users), 0)::int8, 0 \
         FROM p JOIN active_transitions t ON t.tenant_id = p.t AND t.day BETWEEN p.lo AND p.hi \
           AND t.prev_day < p.lo",
        bucket("a.day"),
        bucket("c.day"),
    );
    if granularity != Granularity::Day {
        // The previous day is in the day's own period (and in the range: the first bucket may
        // start after its period does), compared as a gap: date_trunc per row was most of this
        // part's time.
        sql.push_str(&format!(
            " UNION ALL \
             SELECT 3, {}, sum(t.users)::int8, 0 \
             FROM p JOIN active_transitions t ON t.tenant_id = p.t AND t.day BETWEEN p.lo AND p.hi \
               AND t.prev_day >= p.lo \
             WHERE t.day - t.prev_day <= {} GROUP BY 2",
            bucket("t.day"),
            calendar::sql::days_into_period(granularity, "t.day"),
        ));
    }
    sql
}

/// The rollup statement as a query diesel prepares once per connection. Raw `sql_query` text is
/// never cached, and planning was about a fifth of this statement's time (EXPLAIN ANALYZE at 10M
/// events: 0.8–0.9 ms planning against 3–4 ms execution).
struct RollupQuery<'a> {
    explain: bool,
    tenant: Uuid,
    days: &'a DaySpans,
    name: Option<&'a str>,
    body: String,
}

impl QueryId for RollupQuery<'_> {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl Query for RollupQuery<'_> {
    type SqlType = Untyped;
}

impl QueryFragment<Pg> for RollupQuery<'_> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        if self.explain {
            out.push_sql("EXPLAIN (FORMAT JSON) ");
        }
        out.push_sql("WITH p AS (SELECT ");
        out.push_bind_param::<SqlUuid, _>(&self.tenant)?;
        out.push_sql("::uuid AS t, ");
        out.push_bind_param::<Date, _>(&self.days.base.day)?;
        out.push_sql("::date AS b, ");
        out.push_bind_param::<Integer, _>(&self.days.base.month)?;
        out.push_sql("::int4 AS m, ");
        out.push_bind_param::<Date, _>(&self.days.lo)?;
        out.push_sql("::date AS lo, ");
        out.push_bind_param::<Date, _>(&self.days.hi)?;
        out.push_sql("::date AS hi, ");
        out.push_bind_param::<Nullable<Text>, _>(&self.name)?;
        out.push_sql("::text AS n) ");
        out.push_sql(&self.body);
        Ok(())
    }
}

fn rollup_query<'a>(
    explain: bool,
    tenant: Uuid,
    days: &'a DaySpans,
    name: Option<&'a str>,
) -> RollupQuery<'a> {
    RollupQuery {
        explain,
        tenant,
        days,
        name,
        body: rollup_body(days.granularity),
    }
}

/// The plans of the statements a rollup-served series runs (for tests that keep dashboards off
/// the raw events table): the rollup query, then one per cut edge.
pub async fn explain_rollup(
    conn: &mut Conn,
    tenant: Uuid,
    window: &Window,
    measure: Measure,
    name: Option<&str>,
) -> AppResult<Vec<serde_json::Value>> {
    let (spans, _, _) = window.spans();
    let mut plans = Vec::new();
    if let Some(days) = DaySpans::of(window) {
        let rows: Vec<PlanRow> = rollup_query(true, tenant, &days, name).load(conn).await?;
        plans.extend(rows.into_iter().map(|r| r.plan));
    }
    for span in &spans {
        let edges = span.edges(window.tz);
        if !edges.is_empty() {
            let rows: Vec<PlanRow> =
                edge_query(true, tenant, measure, name, &edges, span.full_days)
                    .load(conn)
                    .await?;
            plans.extend(rows.into_iter().map(|r| r.plan));
        }
    }
    Ok(plans)
}

/// What the edge windows add to a span whose whole days came from rollups. For active users,
/// only those not already active on one of the span's whole days count.
async fn edge_value(
    conn: &mut Conn,
    tenant: Uuid,
    measure: Measure,
    name: Option<&str>,
    edges: &[(DateTime<Utc>, DateTime<Utc>)],
    full_days: Option<(NaiveDate, NaiveDate)>,
) -> AppResult<i64> {
    let count: Count = edge_query(false, tenant, measure, name, edges, full_days)
        .get_result(conn)
        .await?;
    Ok(count.n)
}

fn edge_query<'a>(
    explain: bool,
    tenant: Uuid,
    measure: Measure,
    name: Option<&'a str>,
    edges: &[(DateTime<Utc>, DateTime<Utc>)],
    full_days: Option<(NaiveDate, NaiveDate)>,
) -> BoxedSqlQuery<'a, Pg, SqlQuery> {
    let mut q = Binds::explaining(explain);
    let t = q.bind::<SqlUuid, _>(tenant);
    let time = if measure == Measure::NewUsers {
        "first_seen"
    } else {
        "occurred_at"
    };
    let in_edges = edges
        .iter()
        .map(|&(lo, hi)| {
            let (lo, hi) = (q.bind::<Timestamptz, _>(lo), q.bind::<Timestamptz, _>(hi));
            format!("({time} >= {lo} AND {time} < {hi})")
        })
        .collect::<Vec<_>>()
        .join(" OR ");
    // New users are people, not events: a name filter does not apply.
    let named = match name.filter(|_| measure != Measure::NewUsers) {
        Some(n) => format!(" AND e.name = {}", q.bind::<Text, _>(n)),
        None => String::new(),
    };
    let sql = match measure {
        Measure::ActiveUsers => {
            let (ds, de) = full_days.unwrap_or_else(crate::calendar::no_days);
            let (ds, de) = (q.bind::<Date, _>(ds), q.bind::<Date, _>(de));
            format!(
                "SELECT count(DISTINCT e.user_id)::int8 AS n FROM events e \
                 WHERE e.tenant_id = {t} AND ({in_edges}){named} \
                   AND NOT EXISTS (SELECT 1 FROM user_days u WHERE u.tenant_id = {t} \
                                   AND u.user_id = e.user_id AND u.day BETWEEN {ds} AND {de})"
            )
        }
        Measure::NewUsers => format!(
            "SELECT count(*)::int8 AS n FROM end_users e WHERE e.tenant_id = {t} AND ({in_edges})"
        ),
        Measure::Events => format!(
            "SELECT count(*)::int8 AS n FROM events e WHERE e.tenant_id = {t} AND ({in_edges}){named}"
        ),
    };
    q.finish(&sql)
}

/// Which events count in a raw series, and where they are grouped.
struct RawFilter {
    /// The conditions on `e`, placeholders included.
    conditions: String,
    source: &'static str,
    time: &'static str,
    value: &'static str,
}

impl RawFilter {
    fn bind<'a>(
        q: &mut Binds<'a>,
        tenant: Uuid,
        window: &Window,
        measure: Measure,
        filter: &'a EventFilter,
    ) -> RawFilter {
        let (source, time, value) = match measure {
            Measure::NewUsers => ("end_users e", "first_seen", "count(*)"),
            Measure::ActiveUsers => ("events e", "occurred_at", "count(DISTINCT e.user_id)"),
            Measure::Events => ("events e", "occurred_at", "count(*)"),
        };
        let t = q.bind::<SqlUuid, _>(tenant);
        let (from, to) = (
            q.bind::<Timestamptz, _>(window.from),
            q.bind::<Timestamptz, _>(window.to),
        );
        let mut conditions =
            format!("e.tenant_id = {t} AND e.{time} >= {from} AND e.{time} < {to}");
        // New users are people, not events: a name filter does not apply.
        if let Some(n) = filter
            .name
            .as_deref()
            .filter(|_| measure != Measure::NewUsers)
        {
            conditions.push_str(&format!(" AND e.name = {}", q.bind::<Text, _>(n)));
        }
        for (k, v) in &filter.properties {
            let (k, v) = (q.bind::<Text, _>(k.as_str()), q.bind::<Text, _>(v.as_str()));
            conditions.push_str(&format!(" AND e.properties ->> {k} = {v}"));
        }
        RawFilter {
            conditions,
            source,
            time,
            value,
        }
    }
}

/// Straight from the events, one query for the buckets and one for the total.
async fn raw_series(
    conn: &mut Conn,
    tenant: Uuid,
    window: &Window,
    measure: Measure,
    filter: &EventFilter,
    breakdown: Option<&str>,
) -> AppResult<Series> {
    let starts: Vec<DateTime<Utc>> = window.buckets.iter().map(|b| b.start).collect();
    let mut q = Binds::default();
    let f = RawFilter::bind(&mut q, tenant, window, measure, filter);
    let group = match breakdown {
        Some(key) => format!("e.properties ->> {}", q.bind::<Text, _>(key)),
        None => "NULL::text".to_string(),
    };
    let starts_at = q.bind::<Array<Timestamptz>, _>(&starts);
    let RawFilter {
        conditions,
        source,
        time,
        value,
    } = &f;
    let rows: Vec<RawRow> = q
        .finish(&format!(
            "SELECT width_bucket(e.{time}, {starts_at}::timestamptz[])::int4 AS idx, {group} AS grp, \
               {value}::int8 AS value FROM {source} WHERE {conditions} GROUP BY 1, 2"
        ))
        .load(conn)
        .await?;
    let mut q = Binds::default();
    let f = RawFilter::bind(&mut q, tenant, window, measure, filter);
    let total: Count = q
        .finish(&format!(
            "SELECT {}::int8 AS n FROM {} WHERE {}",
            f.value, f.source, f.conditions
        ))
        .get_result(conn)
        .await?;
    Ok(Series {
        total: total.n as f64,
        points: points_of(window, &rows, breakdown.is_some()),
    })
}
