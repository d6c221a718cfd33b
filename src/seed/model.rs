//! A deterministic model of how a SaaS product is used: sign-ups spread over the period with
//! weekday seasonality, heavy-tailed activity (a few users do most things), churn, upgrades,
//! and per-user plan, country and platform.

use chrono::{DateTime, Datelike, Duration, Utc, Weekday};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};

pub struct UserModel {
    pub id: String,
    pub signup: DateTime<Utc>,
    /// Last moment the user is active (churned users stop early).
    pub active_until: DateTime<Utc>,
    pub weight: f64,
    pub plan: &'static str,
    pub country: &'static str,
    pub platform: &'static str,
}

#[derive(Debug, Clone)]
pub struct SeedEvent {
    pub name: &'static str,
    pub user: usize,
    pub at: DateTime<Utc>,
    pub properties: Value,
}

const COUNTRIES: [(&str, u32); 8] = [
    ("US", 35),
    ("DE", 12),
    ("GB", 10),
    ("FR", 8),
    ("IN", 12),
    ("BR", 9),
    ("JP", 6),
    ("PT", 8),
];
const PLATFORMS: [(&str, u32); 3] = [("web", 60), ("ios", 22), ("android", 18)];
const PLANS: [(&str, u32); 3] = [("free", 70), ("pro", 25), ("enterprise", 5)];
/// What users do once signed up, by weight.
const ACTIONS: [(&str, u32); 4] = [
    ("login", 18),
    ("page_view", 50),
    ("feature_used", 26),
    ("invite_sent", 6),
];

fn pick<T: Copy>(rng: &mut StdRng, table: &[(T, u32)]) -> T {
    let total: u32 = table.iter().map(|(_, w)| w).sum();
    let mut r = rng.random_range(0..total);
    for (v, w) in table {
        if r < *w {
            return *v;
        }
        r -= w;
    }
    table[0].0
}

fn weekday_factor(at: DateTime<Utc>) -> f64 {
    match at.weekday() {
        Weekday::Sat | Weekday::Sun => 0.45,
        _ => 1.0,
    }
}

/// A time in `[from, to)` with fewer weekend and night hits.
fn seasonal_time(rng: &mut StdRng, from: DateTime<Utc>, to: DateTime<Utc>) -> DateTime<Utc> {
    let span = (to - from).num_seconds().max(1);
    loop {
        let at = from + Duration::seconds(rng.random_range(0..span));
        let hour = at.hour_of_day();
        let hour_factor = if (8..22).contains(&hour) { 1.0 } else { 0.35 };
        if rng.random::<f64>() < weekday_factor(at) * hour_factor {
            return at;
        }
    }
}

trait HourOfDay {
    fn hour_of_day(&self) -> u32;
}

impl HourOfDay for DateTime<Utc> {
    fn hour_of_day(&self) -> u32 {
        use chrono::Timelike;
        self.hour()
    }
}

pub struct Model {
    pub users: Vec<UserModel>,
    /// Events per user, summing to the requested total.
    pub counts: Vec<u64>,
    pub(super) seed: u64,
}

impl Model {
    pub fn new(
        seed: u64,
        users: usize,
        events: u64,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    ) -> Self {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut list = Vec::with_capacity(users);
        for i in 0..users {
            let signup = seasonal_time(&mut rng, start, end);
            // Pareto(alpha = 1.3): heavy-tailed activity, capped so one user cannot dominate.
            let u: f64 = rng.random_range(f64::EPSILON..1.0);
            let weight = u.powf(-1.0 / 1.3).min(200.0);
            // Half the users churn after an exponential lifetime (mean 45 days).
            let active_until = if rng.random::<bool>() {
                let days = -45.0 * rng.random_range(f64::EPSILON..1.0f64).ln();
                (signup + Duration::seconds((days * 86_400.0) as i64)).min(end)
            } else {
                end
            };
            list.push(UserModel {
                id: format!("user-{i:07}"),
                signup,
                active_until: active_until.max(signup + Duration::seconds(1)),
                weight,
                plan: pick(&mut rng, &PLANS),
                country: pick(&mut rng, &COUNTRIES),
                platform: pick(&mut rng, &PLATFORMS),
            });
        }
        // Longer-lived users do more; every user has at least their sign-up.
        let scores: Vec<f64> = list
            .iter()
            .map(|u| u.weight * ((u.active_until - u.signup).num_hours().max(1) as f64).sqrt())
            .collect();
        let total: f64 = scores.iter().sum();
        let base = events.min(users as u64);
        let extra = events - base;
        let mut counts: Vec<u64> = scores
            .iter()
            .enumerate()
            .map(|(i, s)| u64::from((i as u64) < base) + (extra as f64 * s / total).floor() as u64)
            .collect();
        let mut assigned: u64 = counts.iter().sum();
        let mut i = 0;
        let len = counts.len();
        while assigned < events && len > 0 {
            counts[i % len] += 1;
            assigned += 1;
            i += 1;
        }
        Self {
            users: list,
            counts,
            seed,
        }
    }

    /// The events of user `i`, sign-up first; deterministic per (seed, user).
    pub fn events_of(&self, i: usize) -> Vec<SeedEvent> {
        let u = &self.users[i];
        let n = self.counts[i] as usize;
        let mut rng =
            StdRng::seed_from_u64(self.seed ^ (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let mut out = Vec::with_capacity(n);
        let mut plan = u.plan;
        let upgrade_at =
            (plan == "free" && rng.random::<f64>() < 0.15 && n > 3).then(|| rng.random_range(2..n));
        let mut times: Vec<DateTime<Utc>> = (1..n)
            .map(|_| seasonal_time(&mut rng, u.signup, u.active_until))
            .collect();
        times.sort();
        for (j, at) in std::iter::once(u.signup).chain(times).enumerate() {
            let name = if j == 0 {
                "signup"
            } else if Some(j) == upgrade_at {
                plan = "pro";
                "upgrade"
            } else {
                pick(&mut rng, &ACTIONS)
            };
            out.push(SeedEvent {
                name,
                user: i,
                at,
                properties: json!({ "plan": plan, "country": u.country, "platform": u.platform }),
            });
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_totals_deterministic_and_heavy_tailed() {
        let end: DateTime<Utc> = "2026-11-01T00:00:00Z".parse().unwrap();
        let start = end - Duration::days(90);
        let a = Model::new(7, 1_000, 50_000, start, end);
        let b = Model::new(7, 1_000, 50_000, start, end);
        assert_eq!(a.counts.iter().sum::<u64>(), 50_000);
        assert_eq!(a.counts, b.counts);
        let ea = a.events_of(17);
        let eb = b.events_of(17);
        assert_eq!(ea.len(), a.counts[17] as usize);
        assert_eq!(
            ea.iter().map(|e| e.at).collect::<Vec<_>>(),
            eb.iter().map(|e| e.at).collect::<Vec<_>>()
        );
        assert_eq!(ea[0].name, "signup");
        assert!(ea.iter().all(|e| e.at >= start && e.at < end));
        // The busiest tenth of users does far more than a tenth of the events.
        let mut sorted = a.counts.clone();
        sorted.sort_unstable_by(|x, y| y.cmp(x));
        let top: u64 = sorted[..100].iter().sum();
        assert!(top > 50_000 / 4, "top 10% did only {top}");
        let c = Model::new(8, 1_000, 50_000, start, end);
        assert_ne!(a.counts, c.counts);
    }
}
