//! The operations the benchmark sends: the contract's dashboard queries.

use chrono::{DateTime, Duration, Utc};
use serde_json::{Value, json};

pub const ENGAGEMENT: &str = "query Engagement($range: TimeRangeInput!, $granularity: Granularity!) { analytics(range: $range, granularity: $granularity) { activeUsers { total points { bucket value } } newUsers { total points { bucket value } } events { total points { bucket value } } } }";
pub const FILTERED: &str = "query FilteredActivity($range: TimeRangeInput!, $granularity: Granularity!, $filter: EventFilter, $breakdownBy: String) { analytics(range: $range, granularity: $granularity) { activeUsers(filter: $filter) { total points { bucket value } } events(filter: $filter, breakdownBy: $breakdownBy) { total points { bucket value group } } } }";
pub const RETENTION: &str = "query Retention($range: TimeRangeInput!, $granularity: Granularity!, $periods: Int!) { analytics(range: $range, granularity: $granularity) { retention(periods: $periods) { cohorts { cohortStart size retained } } } }";
pub const FUNNEL: &str = "query Funnel($range: TimeRangeInput!, $steps: [String!]!, $windowHours: Int!) { analytics(range: $range, granularity: DAY) { funnel(steps: $steps, conversionWindowHours: $windowHours) { steps { name users conversionRate } } } }";

/// The contract's Overview: engagement and revenue, what an ANALYST's dashboard sends.
pub const OVERVIEW: &str = "fragment Series on MetricSeries { total points { bucket value } } query Overview($range: TimeRangeInput!, $granularity: Granularity!) { analytics(range: $range, granularity: $granularity) { activeUsers { ...Series } newUsers { ...Series } events { ...Series } revenue { mrr { ...Series } arr { ...Series } payingCustomers { ...Series } arpu { ...Series } customerChurnRate { ...Series } revenueChurnRate { ...Series } ltv mrrMovements { bucket newMrr expansionMrr contractionMrr churnedMrr reactivationMrr netNewMrr } } } }";

pub struct Scenario {
    pub name: &'static str,
    pub body: Value,
}

fn range(end: DateTime<Utc>, days: i64) -> Value {
    json!({ "from": (end - Duration::days(days)).to_rfc3339(), "to": end.to_rfc3339() })
}

/// `end` is a UTC midnight (the bench tenant's zone is UTC), so ranges cover whole days.
pub fn all(end: DateTime<Utc>) -> Vec<Scenario> {
    vec![
        Scenario {
            name: "Engagement 90 days by DAY",
            body: json!({ "query": ENGAGEMENT, "variables": { "range": range(end, 90), "granularity": "DAY" } }),
        },
        Scenario {
            name: "Engagement 12 months by WEEK",
            body: json!({ "query": ENGAGEMENT, "variables": { "range": range(end, 364), "granularity": "WEEK" } }),
        },
        Scenario {
            name: "FilteredActivity 90 days by DAY",
            body: json!({ "query": FILTERED, "variables": {
                "range": range(end, 90), "granularity": "DAY",
                "filter": { "properties": [{ "key": "plan", "equals": "pro" }] }, "breakdownBy": "country",
            } }),
        },
        Scenario {
            name: "FilteredActivity 12 months by WEEK",
            body: json!({ "query": FILTERED, "variables": {
                "range": range(end, 364), "granularity": "WEEK",
                "filter": { "properties": [{ "key": "plan", "equals": "pro" }] }, "breakdownBy": "country",
            } }),
        },
        Scenario {
            name: "Overview 90 days by DAY",
            body: json!({ "query": OVERVIEW, "variables": { "range": range(end, 90), "granularity": "DAY" } }),
        },
        Scenario {
            name: "Overview 24 months by MONTH",
            body: json!({ "query": OVERVIEW, "variables": { "range": range(end, 730), "granularity": "MONTH" } }),
        },
        Scenario {
            name: "Retention 12 weeks",
            body: json!({ "query": RETENTION, "variables": { "range": range(end, 84), "granularity": "WEEK", "periods": 12 } }),
        },
        Scenario {
            name: "Funnel of 3 steps, 90 days",
            body: json!({ "query": FUNNEL, "variables": {
                "range": range(end, 90), "steps": ["signup", "login", "feature_used"], "windowHours": 72,
            } }),
        },
    ]
}
