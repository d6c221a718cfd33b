//! `analytics.revenue` (contract `analytics.graphql`): the object and its movements.

use async_graphql::{Object, ScalarType, Value};

use super::flat_list::{Flat, FlatList};
use super::series::MetricSeries;
use crate::revenue::report::{Movement, Report};

/// Revenue over the range, in the tenant's currency (`tenant.currency`). A customer's changes
/// inside one bucket net out: 0 to 50 to 0 is no movement.
pub struct RevenueAnalytics(pub Report);

#[Object]
impl RevenueAnalytics {
    /// Monthly recurring revenue at the end of each bucket; `total` at the end of the range.
    async fn mrr(&self) -> MetricSeries {
        self.0.mrr.clone().into()
    }

    /// 12 × MRR.
    async fn arr(&self) -> MetricSeries {
        self.0.arr.clone().into()
    }

    /// Customers with MRR above 0 at the end of each bucket.
    async fn paying_customers(&self) -> MetricSeries {
        self.0.paying_customers.clone().into()
    }

    /// MRR / paying customers.
    async fn arpu(&self) -> MetricSeries {
        self.0.arpu.clone().into()
    }

    /// Customers churned in the bucket / paying customers at its start.
    async fn customer_churn_rate(&self) -> MetricSeries {
        self.0.customer_churn_rate.clone().into()
    }

    /// (Churned + contraction MRR) / MRR at the bucket's start.
    async fn revenue_churn_rate(&self) -> MetricSeries {
        self.0.revenue_churn_rate.clone().into()
    }

    /// ARPU at the end of the range / the range's customer churn as a monthly rate; null when
    /// no customer churned in the range.
    async fn ltv(&self) -> Option<f64> {
        self.0.ltv
    }

    /// One entry per bucket, oldest first.
    async fn mrr_movements(&self) -> FlatList<Movement> {
        FlatList(self.0.movements.clone())
    }
}

impl Flat for Movement {
    fn field(name: &str) -> Option<usize> {
        [
            "bucket",
            "newMrr",
            "expansionMrr",
            "contractionMrr",
            "churnedMrr",
            "reactivationMrr",
            "netNewMrr",
        ]
        .iter()
        .position(|f| *f == name)
    }

    fn value(&self, field: usize) -> Value {
        match field {
            0 => ScalarType::to_value(&self.bucket),
            1 => ScalarType::to_value(&self.new_mrr),
            2 => ScalarType::to_value(&self.expansion_mrr),
            3 => ScalarType::to_value(&self.contraction_mrr),
            4 => ScalarType::to_value(&self.churned_mrr),
            5 => ScalarType::to_value(&self.reactivation_mrr),
            _ => ScalarType::to_value(&self.net_new_mrr),
        }
    }
}
