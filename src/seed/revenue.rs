//! Revenue that fits the seeded users: paying-plan users (and a few free ones) start a trial at
//! sign-up, most convert two weeks later, monthly or yearly (a yearly plan counts a twelfth of
//! its price a month), change seats now and then, churn when the user stops being active, and
//! some come back. Prices are in the customer's currency; rates for every day convert them.

use anyhow::Context;
use chrono::{DateTime, Duration, NaiveDate, Utc};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rust_decimal::Decimal;
use uuid::Uuid;

use super::model::Model;

/// A customer's MRR from `at` on, in minor units of `currency`.
#[derive(Debug, Clone, PartialEq)]
pub struct SeedChange {
    pub user: usize,
    pub step: usize,
    pub at: DateTime<Utc>,
    pub amount_minor: i64,
    pub currency: &'static str,
    pub plan: &'static str,
}

/// (currency, decimal places, the seat price per month in its minor units, the starting rate
/// into USD).
const CURRENCIES: [(&str, u32, i64, &str); 4] = [
    ("USD", 2, 1_200, "1"),
    ("EUR", 2, 1_100, "1.08"),
    ("GBP", 2, 950, "1.27"),
    ("JPY", 0, 1_800, "0.0067"),
];

fn currency_of(country: &str) -> usize {
    match country {
        "DE" | "FR" | "PT" => 1,
        "GB" => 2,
        "JP" => 3,
        _ => 0,
    }
}

/// The revenue changes of user `i`, in time order; none for most free users.
pub fn changes_of(model: &Model, i: usize, end: DateTime<Utc>) -> Vec<SeedChange> {
    let u = &model.users[i];
    let mut rng = StdRng::seed_from_u64(
        model.seed ^ 0x5EED_0FC0_FFEE ^ (i as u64).wrapping_mul(0x2545_F491_4F6C_DD1D),
    );
    let pays = match u.plan {
        "free" => rng.random::<f64>() < 0.12,
        _ => true,
    };
    if !pays {
        return Vec::new();
    }
    let c = currency_of(u.country);
    let (currency, _, seat_price, _) = CURRENCIES[c];
    let yearly = rng.random::<f64>() < 0.3;
    let plan = match (u.plan, yearly) {
        ("enterprise", true) => "enterprise-yearly",
        ("enterprise", false) => "enterprise-monthly",
        (_, true) => "pro-yearly",
        (_, false) => "pro-monthly",
    };
    // A yearly plan costs ten months' price, counted as a twelfth of it each month.
    let price = |seats: i64| {
        let monthly = seat_price * seats;
        if yearly { monthly * 10 / 12 } else { monthly }
    };
    let mut seats: i64 = if u.plan == "enterprise" {
        rng.random_range(20..200)
    } else {
        rng.random_range(1..8)
    };
    let mut out = Vec::new();
    let mut push = |at: DateTime<Utc>, amount_minor: i64, plan: &'static str| {
        out.push(SeedChange {
            user: i,
            step: out.len(),
            at,
            amount_minor,
            currency,
            plan,
        })
    };
    push(u.signup, 0, "trial");
    let converts_at = u.signup + Duration::days(14);
    if rng.random::<f64>() > 0.75 || converts_at >= u.active_until || converts_at >= end {
        return out;
    }
    push(converts_at, price(seats), plan);
    let mut at = converts_at;
    loop {
        at += Duration::seconds(
            (-25.0 * 86_400.0 * rng.random_range(f64::EPSILON..1.0f64).ln()) as i64,
        );
        if at >= u.active_until || at >= end {
            break;
        }
        seats = (seats + rng.random_range(-3..=4)).max(1);
        push(at, price(seats), plan);
    }
    if u.active_until < end {
        push(u.active_until, 0, plan);
        let back = u.active_until + Duration::days(rng.random_range(10..90));
        if rng.random::<f64>() < 0.2 && back < end {
            push(back, price(seats), plan);
        }
    }
    out
}

/// Rates into USD for every day of `[from, to]`, a small random walk per currency.
pub fn rates(seed: u64, from: NaiveDate, to: NaiveDate) -> Vec<(&'static str, NaiveDate, Decimal)> {
    let mut rng = StdRng::seed_from_u64(seed ^ 0x0000_00AA_7E5A);
    let mut out = Vec::new();
    for (currency, _, _, start) in &CURRENCIES[1..] {
        let mut rate: Decimal = start.parse().unwrap_or(Decimal::ONE);
        let mut day = from;
        while day <= to {
            out.push((*currency, day, rate));
            let step = Decimal::new(rng.random_range(-5..=5), 3);
            rate = (rate * (Decimal::ONE + step / Decimal::from(10))).round_dp(6);
            day += Duration::days(1);
        }
    }
    out
}

/// Writes the model's revenue: rates, then every change converted exactly into USD (the
/// tenant's currency must be USD, as a new tenant's is), then each customer's state. Changes
/// carry client ids, so running it again adds nothing. Returns the changes written.
pub async fn write(
    url: &str,
    tenant: Uuid,
    model: &Model,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
) -> anyhow::Result<u64> {
    let (mut client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .context("cannot connect to PostgreSQL")?;
    let driver = tokio::spawn(connection);
    let tx = client.transaction().await?;
    tx.execute(
        "SELECT set_config('fahwa.tenant_id', $1, true)",
        &[&tenant.to_string()],
    )
    .await?;
    let currency: String = tx
        .query_one("SELECT currency FROM tenants WHERE id = $1", &[&tenant])
        .await?
        .get(0);
    anyhow::ensure!(
        currency == "USD",
        "seeded revenue is priced for a tenant reporting in USD, not {currency}"
    );
    let day_rates = rates(
        model.seed,
        start.date_naive() - Duration::days(1),
        end.date_naive() + Duration::days(1),
    );
    let (cur, days, values): (Vec<&str>, Vec<NaiveDate>, Vec<String>) = day_rates
        .iter()
        .map(|(c, d, r)| (*c, *d, r.to_string()))
        .fold(
            (Vec::new(), Vec::new(), Vec::new()),
            |mut acc, (c, d, r)| {
                acc.0.push(c);
                acc.1.push(d);
                acc.2.push(r);
                acc
            },
        );
    tx.execute(
        "INSERT INTO exchange_rates (tenant_id, currency, day, rate) \
         SELECT $1, c, d, r::numeric FROM unnest($2::text[], $3::date[], $4::text[]) AS t(c, d, r) \
         ON CONFLICT DO NOTHING",
        &[&tenant, &cur, &days, &values],
    )
    .await?;
    let by_day: std::collections::HashMap<(&str, NaiveDate), Decimal> =
        day_rates.iter().map(|(c, d, r)| ((*c, *d), *r)).collect();
    let rate_of = |currency: &str, day: NaiveDate| {
        by_day
            .get(&(currency, day))
            .copied()
            .with_context(|| format!("no seeded {currency} rate for {day}"))
    };
    let mut written = 0u64;
    let mut batch: Vec<SeedChange> = Vec::new();
    let mut customers: Vec<String> = Vec::new();
    for i in 0..model.users.len() {
        let changes = changes_of(model, i, end);
        if !changes.is_empty() {
            customers.push(model.users[i].id.clone());
        }
        batch.extend(changes);
        if batch.len() >= 20_000 || (i + 1 == model.users.len() && !batch.is_empty()) {
            let mut ids = Vec::new();
            let mut users = Vec::new();
            let mut times = Vec::new();
            let mut amounts = Vec::new();
            let mut currencies = Vec::new();
            let mut exponents = Vec::new();
            let mut mrr = Vec::new();
            let mut plans = Vec::new();
            for c in batch.drain(..) {
                let (_, exponent, _, _) = CURRENCIES
                    .iter()
                    .find(|(code, ..)| *code == c.currency)
                    .copied()
                    .unwrap_or(CURRENCIES[0]);
                let rate = if c.currency == "USD" {
                    Decimal::ONE
                } else {
                    rate_of(c.currency, c.at.date_naive())?
                };
                ids.push(format!("seed-{}-{}", c.user, c.step));
                users.push(model.users[c.user].id.clone());
                times.push(c.at);
                amounts.push(c.amount_minor);
                currencies.push(c.currency);
                exponents.push(exponent as i16);
                mrr.push(
                    (Decimal::new(c.amount_minor, exponent) * rate)
                        .normalize()
                        .to_string(),
                );
                plans.push(c.plan);
            }
            written += tx
                .execute(
                    "INSERT INTO revenue_changes (tenant_id, client_id, customer_id, occurred_at, \
                     amount_minor, currency, exponent, mrr, plan) \
                     SELECT $1, i, u, t, a, c, e, m::numeric, p FROM unnest($2::text[], $3::text[], \
                     $4::timestamptz[], $5::bigint[], $6::text[], $7::int2[], $8::text[], $9::text[]) \
                     AS x(i, u, t, a, c, e, m, p) ON CONFLICT DO NOTHING",
                    &[&tenant, &ids, &users, &times, &amounts, &currencies, &exponents, &mrr, &plans],
                )
                .await?;
        }
    }
    for chunk in customers.chunks(10_000) {
        tx.execute(
            "SELECT fahwa_recompute_customers($1, $2, '-infinity')",
            &[&tenant, &chunk],
        )
        .await?;
    }
    tx.execute(
        "UPDATE tenant_usage SET revenue_changes_total = revenue_changes_total + $2, \
         data_version = data_version + 1 WHERE tenant_id = $1",
        &[&tenant, &(written as i64)],
    )
    .await?;
    tx.commit().await?;
    drop(client);
    driver.abort();
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn revenue_follows_the_users_and_holds_every_kind_of_change() {
        let end: DateTime<Utc> = "2026-11-01T00:00:00Z".parse().unwrap();
        let start = end - Duration::days(365);
        let model = Model::new(3, 3_000, 30_000, start, end);
        let all: Vec<SeedChange> = (0..3_000)
            .flat_map(|i| changes_of(&model, i, end))
            .collect();
        assert_eq!(
            all,
            (0..3_000)
                .flat_map(|i| changes_of(&model, i, end))
                .collect::<Vec<_>>(),
            "deterministic"
        );
        for c in &all {
            let u = &model.users[c.user];
            assert!(c.at >= u.signup && c.at < end, "{c:?}");
        }
        let kinds = |f: &dyn Fn(&[SeedChange]) -> bool| {
            let mut by_user: std::collections::BTreeMap<usize, Vec<SeedChange>> =
                Default::default();
            for c in &all {
                by_user.entry(c.user).or_default().push(c.clone());
            }
            by_user.values().filter(|v| f(v)).count()
        };
        let converted = kinds(&|v| v.iter().any(|c| c.amount_minor > 0));
        let churned = kinds(&|v| {
            v.len() > 2
                && v.windows(2)
                    .any(|w| w[0].amount_minor > 0 && w[1].amount_minor == 0)
        });
        let reactivated = kinds(&|v| {
            v.windows(3)
                .any(|w| w[0].amount_minor > 0 && w[1].amount_minor == 0 && w[2].amount_minor > 0)
        });
        let yearly = all.iter().filter(|c| c.plan.ends_with("yearly")).count();
        let currencies: std::collections::BTreeSet<&str> = all.iter().map(|c| c.currency).collect();
        assert!(
            converted > 300 && churned > 50 && reactivated > 5,
            "{converted} {churned} {reactivated}"
        );
        assert!(
            yearly > 0 && currencies.len() == 4,
            "{yearly} {currencies:?}"
        );
        // About two changes per user, as the bench's 200,000 changes for 100,000 users.
        let per_user = all.len() as f64 / 3_000.0;
        assert!((1.2..3.5).contains(&per_user), "{per_user}");
    }
}
