//! What a request costs, in points, in the spirit of GitHub's and Shopify's GraphQL budgets:
//! a query by its size (async-graphql's complexity: a field counts one, a page its size, an
//! analytics range its length), a change more than a read, ingestion more still, opening a
//! subscription as a change. An answer served from the response cache costs one.

/// Complexity bought by one point.
pub const COMPLEXITY_PER_POINT: u64 = 10;
/// What a change costs before its size.
pub const MUTATION: u64 = 10;
/// What an ingestion request costs before its items.
pub const INGESTION: u64 = 20;
/// Items ingested for one point.
pub const ITEMS_PER_POINT: u64 = 100;
/// What opening a subscription costs before its size.
pub const SUBSCRIPTION: u64 = 10;
/// An answer served from the response cache.
pub const CACHED: u64 = 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Query,
    Mutation,
    /// A mutation that ingests events or revenue changes, of so many items.
    Ingestion {
        items: usize,
    },
    Subscription,
}

/// The root fields whose mutations are ingestion.
pub const INGESTION_FIELDS: [&str; 2] = ["ingestEvents", "ingestRevenueChanges"];

/// Points for an operation of `kind` whose complexity is `complexity`.
pub fn points(kind: Kind, complexity: usize) -> u64 {
    let size = (complexity as u64).div_ceil(COMPLEXITY_PER_POINT);
    match kind {
        Kind::Query => size.max(1),
        Kind::Mutation => MUTATION + size,
        Kind::Ingestion { items } => INGESTION + size + (items as u64).div_ceil(ITEMS_PER_POINT),
        Kind::Subscription => SUBSCRIPTION + size,
    }
}

/// Points for a REST ingestion request of `items` events or changes (it has no complexity).
pub fn rest_ingestion(items: usize) -> u64 {
    points(Kind::Ingestion { items }, 0)
}

/// How many times an analytics range weighs more than a short one: one more for each 90 days,
/// up to nine times for two years or more.
pub fn range_weight(days: i64) -> usize {
    1 + (days.clamp(0, 730) / 90) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_cost_more_than_reads_of_the_same_size_and_ingestion_more_still() {
        assert_eq!(points(Kind::Query, 0), 1);
        assert_eq!(points(Kind::Query, 25), 3);
        assert!(points(Kind::Mutation, 25) > points(Kind::Query, 25));
        assert!(points(Kind::Ingestion { items: 0 }, 25) > points(Kind::Mutation, 25));
        assert_eq!(
            points(Kind::Ingestion { items: 10_000 }, 5),
            INGESTION + 1 + 100
        );
        assert_eq!(points(Kind::Subscription, 5), SUBSCRIPTION + 1);
    }

    #[test]
    fn rest_ingestion_costs_by_its_items() {
        assert_eq!(rest_ingestion(1), INGESTION + 1);
        assert_eq!(rest_ingestion(10_000), INGESTION + 100);
    }

    #[test]
    fn long_ranges_weigh_more_up_to_a_bound() {
        assert_eq!(range_weight(7), 1);
        assert_eq!(range_weight(90), 2);
        assert_eq!(range_weight(365), 5);
        assert_eq!(range_weight(10_000), 9);
        assert_eq!(range_weight(-5), 1);
    }
}
