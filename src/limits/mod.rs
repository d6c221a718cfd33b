//! Rate limits. Each caller has a budget of points a minute, by who it is: a member by role, an
//! API key by scope, an anonymous caller by address; budgets are larger off-peak. Each request
//! costs points by what it asks ([`cost`]); budgets are GCRA cells in Redis shared by every
//! instance ([`Kv::spend`]), in process without Redis or while it is down.

pub mod cost;

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use chrono::{DateTime, Timelike, Utc};
use chrono_tz::Tz;
use scoped_futures::ScopedFutureExt;
use serde_json::json;
use uuid::Uuid;

use crate::auth::{ApiKeyScope, Principal, Role};
use crate::config::{OffPeakZone, RateLimits};
use crate::db::Db;
use crate::db::tenants::TenantRow;
use crate::error::AppError;
use crate::kv::{Kv, Rate};

const PERIOD: Duration = Duration::from_secs(60);

/// Who pays: the key of its budget and its points a minute at peak.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payer {
    key: String,
    per_minute: u64,
    /// Whose time zone off-peak hours may be read in.
    tenant: Option<Uuid>,
}

/// What one request cost and what is left.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Charge {
    pub points: u64,
    /// The budget at this hour (larger off-peak).
    pub limit: u64,
    pub remaining: u64,
    /// Seconds until the budget is full again.
    pub reset_secs: u64,
    /// Set when the request was refused: seconds until it would be allowed.
    pub retry_after_secs: Option<u64>,
}

impl Charge {
    pub fn refusal(&self) -> Option<AppError> {
        self.retry_after_secs
            .map(|retry_after_secs| AppError::RateLimited { retry_after_secs })
    }

    /// The `extensions.cost` entry of a GraphQL response.
    pub fn to_json(&self) -> serde_json::Value {
        json!({
            "points": self.points,
            "limit": self.limit,
            "remaining": self.remaining,
            "resetSeconds": self.reset_secs,
            "windowSeconds": PERIOD.as_secs(),
        })
    }
}

pub struct Limiter {
    kv: Kv,
    limits: RateLimits,
    off_peak: (u32, u32, OffPeakZone),
    /// Where tenants' time zones are read, when off-peak hours are each tenant's.
    db: Db,
    /// Tenants' zones, for a while: a zone changed in settings applies within minutes.
    zones: moka::future::Cache<Uuid, Tz>,
}

impl Limiter {
    /// `None` when rate limits are turned off.
    pub fn new(kv: Kv, db: Db, limits: &RateLimits) -> anyhow::Result<Option<Limiter>> {
        if !limits.rate_limits {
            return Ok(None);
        }
        Ok(Some(Limiter {
            kv,
            db,
            off_peak: limits.off_peak()?,
            limits: limits.clone(),
            zones: moka::future::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(Duration::from_secs(300))
                .build(),
        }))
    }

    /// Drops what is remembered of `tenant`'s zone (it changed).
    pub async fn forget_zone(&self, tenant: Uuid) {
        self.zones.invalidate(&tenant).await;
    }

    /// The zone off-peak hours are read in for `payer`.
    async fn zone(&self, payer: &Payer) -> Tz {
        let (OffPeakZone::Tenant, Some(tenant)) = (self.off_peak.2, payer.tenant) else {
            return match self.off_peak.2 {
                OffPeakZone::Fixed(zone) => zone,
                OffPeakZone::Tenant => Tz::UTC,
            };
        };
        let read = self.zones.try_get_with(tenant, async {
            let row = self
                .db
                .tenant(tenant, |conn| {
                    async move { TenantRow::find(conn, tenant).await }.scope_boxed()
                })
                .await?;
            Ok::<Tz, AppError>(row.timezone.parse().unwrap_or(Tz::UTC))
        });
        read.await.unwrap_or(Tz::UTC)
    }

    pub fn payer(&self, principal: &Principal, address: Option<&str>) -> Payer {
        let l = &self.limits;
        match principal {
            Principal::Member(m) => Payer {
                key: format!("rl:m:{}", m.member_id),
                tenant: Some(m.tenant_id),
                per_minute: match m.role {
                    Role::Owner | Role::Admin => l.points_per_minute_admin,
                    Role::Analyst => l.points_per_minute_analyst,
                    Role::Viewer => l.points_per_minute_viewer,
                },
            },
            Principal::ApiKey(k) => Payer {
                key: format!("rl:k:{}", k.key_id),
                tenant: Some(k.tenant_id),
                per_minute: if k.scopes.contains(&ApiKeyScope::Ingest) {
                    l.points_per_minute_ingest_key
                } else {
                    l.points_per_minute_read_key
                },
            },
            Principal::Anonymous | Principal::Rejected(_) => Payer {
                key: format!("rl:a:{}", address.unwrap_or("unknown")),
                tenant: None,
                per_minute: l.points_per_minute_anonymous,
            },
        }
    }

    /// The budget at `now` in `zone`: off-peak hours multiply it.
    pub fn limit_at(&self, per_minute: u64, now: DateTime<Utc>, zone: Tz) -> u64 {
        let (start, end, _) = self.off_peak;
        let hour = now.with_timezone(&zone).hour();
        let off_peak = if start <= end {
            (start..end).contains(&hour)
        } else {
            hour >= start || hour < end
        };
        if off_peak {
            (per_minute as f64 * self.limits.off_peak_factor).round() as u64
        } else {
            per_minute
        }
    }

    /// Charges `points` to `payer`. A request costing more than a whole budget is charged the
    /// whole budget (so it runs when the budget is full). If the budget cannot be read at all
    /// the request is let through, and the log says so once.
    pub async fn charge(&self, payer: &Payer, points: u64) -> Charge {
        let zone = self.zone(payer).await;
        let limit = self.limit_at(payer.per_minute, Utc::now(), zone);
        let rate = Rate {
            limit,
            period: PERIOD,
        };
        let spent_points = points.min(limit);
        static WARNED: AtomicBool = AtomicBool::new(false);
        match self.kv.spend(&payer.key, spent_points, rate).await {
            Ok(spent) => {
                WARNED.store(false, Ordering::Relaxed);
                Charge {
                    points,
                    limit,
                    remaining: spent.remaining,
                    reset_secs: spent.reset.as_secs_f64().ceil() as u64,
                    retry_after_secs: (!spent.allowed)
                        .then(|| spent.retry_after.as_secs_f64().ceil().max(1.0) as u64),
                }
            }
            Err(e) => {
                if !WARNED.swap(true, Ordering::Relaxed) {
                    tracing::warn!(error = %e, "rate limits cannot be read: requests are let through until they can");
                }
                Charge {
                    points,
                    limit,
                    remaining: limit,
                    reset_secs: 0,
                    retry_after_secs: None,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn limiter(hours: &str, zone: &str) -> Limiter {
        let limits = RateLimits {
            off_peak_hours: hours.into(),
            off_peak_zone: zone.into(),
            ..RateLimits::default()
        };
        let db = Db::new("postgres://nowhere.invalid/none", 2);
        Limiter::new(Kv::memory(), db, &limits).unwrap().unwrap()
    }

    #[tokio::test]
    async fn off_peak_hours_are_read_in_their_zone_and_may_wrap_midnight() {
        let l = limiter("22-6", "America/New_York");
        let zone: Tz = "America/New_York".parse().unwrap();
        // 03:00 UTC is 22:00 in New York in winter.
        let at = |h| Utc.with_ymd_and_hms(2026, 12, 3, h, 0, 0).unwrap();
        assert_eq!(l.limit_at(100, at(3), zone), 200);
        assert_eq!(l.limit_at(100, at(10), zone), 200);
        assert_eq!(l.limit_at(100, at(11), zone), 100);
        assert_eq!(l.limit_at(100, at(2), zone), 100);
        assert_eq!(
            l.limit_at(100, at(3), Tz::UTC),
            200,
            "03:00 UTC is off-peak in UTC"
        );
        assert_eq!(l.limit_at(100, at(12), Tz::UTC), 100);
    }

    #[tokio::test]
    async fn budgets_follow_role_and_scope() {
        let l = limiter("0-0", "UTC");
        let member = |role| {
            Principal::Member(crate::auth::MemberClaims {
                member_id: uuid::Uuid::nil(),
                tenant_id: uuid::Uuid::nil(),
                role,
                operator: false,
                family_id: uuid::Uuid::nil(),
                expires_at: Utc::now(),
            })
        };
        let budget = |p: &Principal| l.payer(p, Some("10.0.0.1")).per_minute;
        assert!(budget(&member(Role::Admin)) > budget(&member(Role::Analyst)));
        assert!(budget(&member(Role::Analyst)) > budget(&member(Role::Viewer)));
        assert_eq!(budget(&member(Role::Owner)), budget(&member(Role::Admin)));
        assert!(budget(&Principal::Anonymous) < budget(&member(Role::Viewer)));
        assert_eq!(
            l.payer(&Principal::Anonymous, Some("10.0.0.1")).key,
            "rl:a:10.0.0.1"
        );
    }

    #[tokio::test]
    async fn a_refused_charge_says_when_to_retry_and_a_huge_one_costs_the_whole_budget() {
        let l = limiter("0-0", "UTC");
        let payer = Payer {
            key: "rl:test".into(),
            per_minute: 60,
            tenant: None,
        };
        let first = l.charge(&payer, 1_000).await;
        assert_eq!(first.retry_after_secs, None);
        assert_eq!((first.points, first.remaining), (1_000, 0));
        let refused = l.charge(&payer, 1).await;
        assert_eq!(refused.retry_after_secs, Some(1));
        assert!(matches!(
            refused.refusal(),
            Some(AppError::RateLimited {
                retry_after_secs: 1
            })
        ));
    }
}
