//! The calendar is written in Rust (`calendar`) and in SQL (`fahwa_period`, which the bucket
//! statements call): both must name the same periods, and PostgreSQL must inline the SQL one.

use chrono::NaiveDate;
use fahwa::calendar::{Granularity, bucket_start_date, sql};

use crate::harness::fresh_database;

#[tokio::test]
async fn sql_periods_are_the_rust_calendars_and_are_inlined() {
    let url = fresh_database().await;
    let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    for g in [Granularity::Day, Granularity::Week, Granularity::Month] {
        let (start, into) = (
            sql::period_start(g, "d::date"),
            sql::days_into_period(g, "d::date"),
        );
        let rows = client
            .query(
                &format!(
                    "SELECT d::date, {start}, ({into})::int4 \
                     FROM generate_series(DATE '2023-12-20', DATE '2026-03-10', '1 day') d"
                ),
                &[],
            )
            .await
            .unwrap();
        assert_eq!(rows.len(), 812);
        for row in rows {
            let (day, first, into): (NaiveDate, NaiveDate, i32) =
                (row.get(0), row.get(1), row.get(2));
            assert_eq!(first, bucket_start_date(g, day), "{g:?} of {day}");
            assert_eq!(i64::from(into), (day - first).num_days(), "{g:?} of {day}");
        }
        let plan: Vec<String> = client
            .query(
                &format!(
                    "EXPLAIN (VERBOSE, COSTS OFF) SELECT {start} \
                     FROM generate_series(DATE '2024-01-01', DATE '2024-02-01', '1 day') d"
                ),
                &[],
            )
            .await
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
        let plan = plan.join("\n");
        assert!(
            !plan.contains("fahwa_period"),
            "{g:?}: fahwa_period is called per row, not inlined:\n{plan}"
        );
    }
}
