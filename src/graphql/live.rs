//! Subscriptions (contract `live.graphql`): each one is an inbox in this instance's hub, fed by
//! the broker; the role and tenant are checked when it starts.

use std::sync::Arc;

use async_graphql::{Context, ID, Json, Result, SimpleObject, Subscription};
use chrono::{DateTime, Utc};
use futures_util::Stream;
use futures_util::stream::{self, StreamExt};

use crate::auth::Principal;
use crate::auth::guards::{may_read_revenue, principal};
use crate::calendar::Granularity;
use crate::error::AppError;
use crate::graphql::app;
use crate::live::hub::{Delivery, Inbox, Topic};
use crate::live::message::{LiveEvent, MetricKey};

#[derive(SimpleObject)]
pub struct MetricUpdate {
    pub metric: MetricKey,
    /// Start of the newest bucket, in the tenant's time zone.
    pub bucket: DateTime<Utc>,
    pub value: f64,
    pub updated_at: DateTime<Utc>,
}

#[derive(SimpleObject)]
#[graphql(name = "LiveEvent")]
pub struct LiveEventView {
    pub id: ID,
    pub name: String,
    pub user_id: String,
    pub occurred_at: DateTime<Utc>,
    pub properties: Json<serde_json::Value>,
}

impl From<LiveEvent> for LiveEventView {
    fn from(e: LiveEvent) -> Self {
        LiveEventView {
            id: ID(e.id),
            name: e.name,
            user_id: e.user_id,
            occurred_at: e.occurred_at,
            properties: Json(e.properties),
        }
    }
}

#[derive(SimpleObject)]
pub struct LiveEventBatch {
    /// Events this subscriber did not receive since the last batch, because it fell behind.
    pub dropped: i64,
    pub events: Vec<LiveEventView>,
}

/// Revenue follows `analytics.revenue`. API keys need the READ scope for any topic, which
/// `open` checks.
fn may_follow(principal: &Principal, metric: MetricKey) -> Result<(), AppError> {
    if metric.is_revenue() {
        may_read_revenue(principal)?;
    }
    Ok(())
}

async fn open(ctx: &Context<'_>, topic: Topic) -> Result<Arc<Inbox>, AppError> {
    let tenant = principal(ctx).reading_tenant()?;
    let app = app(ctx);
    let inbox = app.live.hub().subscribe(tenant, topic.clone());
    // Marked now, not at the next refresh, so that the first change after this already counts.
    crate::live::watch::mark(&app.kv, &[(tenant, topic)]).await;
    Ok(inbox)
}

fn deliveries(inbox: Arc<Inbox>) -> impl Stream<Item = Delivery> {
    stream::unfold(inbox, |inbox| async move {
        let next = inbox.next().await;
        Some((next, inbox))
    })
}

#[derive(Default)]
pub struct LiveSubscription;

#[Subscription]
impl LiveSubscription {
    /// The newest bucket of `metric` each time new data changes it. Revenue metrics need the
    /// ANALYST role or higher (or a READ API key).
    async fn metric_updated(
        &self,
        ctx: &Context<'_>,
        metric: MetricKey,
        granularity: Granularity,
    ) -> Result<impl Stream<Item = MetricUpdate>> {
        may_follow(principal(ctx), metric)?;
        let inbox = open(ctx, Topic::Metric(metric, granularity)).await?;
        // The current value first, so a widget has something to show before the next change;
        // a newer value that arrives meanwhile wins by its version.
        let (tenant, app) = (principal(ctx).reading_tenant()?, app(ctx));
        let now = Utc::now();
        match crate::live::capture::values::newest(
            &app.db,
            tenant,
            &[(metric, granularity)],
            now,
            &[],
        )
        .await
        {
            Ok((version, values)) => {
                for value in values {
                    inbox.offer(&value.message(now, version));
                }
            }
            Err(e) => e.report("live: the current value for a new subscriber"),
        }
        Ok(deliveries(inbox).filter_map(|d| async move {
            match d {
                Delivery::Metric(v) => Some(MetricUpdate {
                    metric: v.metric,
                    bucket: v.bucket,
                    value: v.value,
                    updated_at: v.updated_at,
                }),
                _ => None,
            }
        }))
    }

    /// The tenant's events as they land (only those named `name`, if given). A subscriber that
    /// falls behind gets the newest events and the count of those it missed.
    async fn live_events(
        &self,
        ctx: &Context<'_>,
        name: Option<String>,
    ) -> Result<impl Stream<Item = LiveEventBatch>> {
        let inbox = open(ctx, Topic::Events { name }).await?;
        Ok(deliveries(inbox).filter_map(|d| async move {
            match d {
                Delivery::Events { events, dropped } => Some(LiveEventBatch {
                    dropped: i64::try_from(dropped).unwrap_or(i64::MAX),
                    events: events.into_iter().map(Into::into).collect(),
                }),
                _ => None,
            }
        }))
    }
}
