//! A subscription's MRR over time, from one Stripe payload, as Fahwa defines it: a
//! piecewise-constant amount that changes when the subscription starts counting (after any
//! trial), when a discount starts or ends, and when it stops. Amounts stay exact until one
//! rounding per step, so that yearly or weekly prices spread over months do not drift. What is
//! not MRR (usage billing, paused collection...) is said in `left_out` rather than dropped in
//! silence; what the payload lacks is an `Incomplete`, so that the caller can fetch the
//! subscription again instead of storing a wrong amount.

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;

use crate::connectors::interval::{Interval, add_months, round_minor};
pub use crate::connectors::timeline::{Step, Timeline as Derived, amount_at};

use super::subscription::{
    Coupon, Discount, Expandable, Item, Price, Subscription, Tier, TransformQuantity,
};

/// `expand[]` for retrieving one subscription complete: tiers are left out of payloads unless
/// asked for, and `discounts` holds ids unless expanded.
pub const EXPAND_ONE: &[&str] = &["items.data.price.tiers", "discounts"];

/// `expand[]` for listing subscriptions. Stripe allows four levels and counts the list's
/// `data`, so `data.items.data.price.tiers` (five) is refused: a tiered price in a listed
/// subscription comes out as `Incomplete::TiersNotExpanded`, and the caller retrieves that
/// subscription with `EXPAND_ONE` (or the price with `expand[]=tiers`).
pub const EXPAND_LIST: &[&str] = &["data.discounts"];

/// From API version 2025-09-30 a discount's coupon is an id unless this is expanded too. Kept
/// apart from `EXPAND_ONE` because older versions have no `source` and refuse to expand it.
pub const EXPAND_COUPON_ONE: &str = "discounts.source.coupon";

/// `EXPAND_COUPON_ONE` for lists: four levels, the most Stripe allows.
pub const EXPAND_COUPON_LIST: &str = "data.discounts.source.coupon";

/// The payload lacks what is needed: the caller fetches the subscription again with
/// `EXPAND_ONE` (or the item list, the price, the coupon named).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Incomplete {
    /// `items.has_more`: the embedded list is only the first page.
    ItemsNotAll,
    /// A tiered price without its tiers; the price's id.
    TiersNotExpanded(String),
    /// A discount given by id only; the discount's id.
    DiscountNotExpanded(String),
    /// A discount whose coupon is given by id only; the coupon's id.
    CouponNotExpanded(String),
    /// An item with neither `price` nor `plan`; the item's id.
    NoPrice(String),
}

/// The subscription's MRR as steps, in the currency of its first item's price.
pub fn derive(sub: &Subscription) -> Result<Derived, Incomplete> {
    let mut left_out = Vec::new();
    let currency = currency_of(sub);
    let mut steps = Vec::new();
    if let Some((from, until)) = counted(sub, &mut left_out) {
        let base = base(sub, &currency, &mut left_out)?;
        let discounts = discounts(sub, &base, &currency, &mut left_out)?;
        steps = breakpoints(&base, &discounts, from, until);
    }
    Ok(Derived {
        customer: sub.customer_id().to_owned(),
        currency,
        steps,
        left_out,
    })
}

/// Stripe gives every item of a subscription the same currency; should they differ, the
/// first item's is the subscription's (the others are left out by `base`).
fn currency_of(sub: &Subscription) -> String {
    sub.items
        .data
        .iter()
        .find_map(|item| item.effective_price().map(|price| price.currency.clone()))
        .or_else(|| sub.currency.clone())
        .unwrap_or_default()
        .to_uppercase()
}

// ---- When it counts ----

/// From when until when the subscription counts, or `None` (with a sentence) when it does not
/// count at all: `incomplete` and `incomplete_expired` never paid; `paused`, or
/// `pause_collection` set, bills nothing; a status Fahwa does not know is not guessed at.
/// `active`, `past_due`, `unpaid`, `trialing` and `canceled` count within their window.
fn counted(
    sub: &Subscription,
    left_out: &mut Vec<String>,
) -> Option<(DateTime<Utc>, Option<DateTime<Utc>>)> {
    let reason = match sub.status.as_str() {
        "incomplete" | "incomplete_expired" => Some("its first payment never succeeded".into()),
        "paused" => Some("it is paused".into()),
        _ if sub.pause_collection.is_some() => Some("its collection is paused".into()),
        "canceled" if sub.ended_at.or(sub.canceled_at).is_none() => {
            Some("it is canceled but says neither ended_at nor canceled_at".into())
        }
        "active" | "past_due" | "unpaid" | "trialing" | "canceled" => None,
        other => Some(format!("its status {other} is unknown")),
    };
    if let Some(reason) = reason {
        left_out.push(format!("{}: {reason}: not counted in MRR", sub.id));
        return None;
    }
    Some((counted_from(sub), counted_until(sub)))
}

/// From `start_date`, or from `trial_end` when there was a trial: trials are not revenue.
fn counted_from(sub: &Subscription) -> DateTime<Utc> {
    let start = match sub.trial_end {
        Some(trial_end) if trial_end > sub.start_date => trial_end,
        _ => sub.start_date,
    };
    time(start)
}

/// Until `ended_at`; for a canceled subscription without it, `canceled_at`. One set to be
/// canceled counts until `cancel_at`, or, with `cancel_at_period_end`, until the current
/// period's end (the subscription's, or in newer API versions its items' latest); that may be
/// in the future, and the caller drops what is. A `cancel_at` without `cancel_at_period_end`
/// ends it too: Stripe will cancel it then either way.
fn counted_until(sub: &Subscription) -> Option<DateTime<Utc>> {
    let end = if sub.ended_at.is_some() {
        sub.ended_at
    } else if sub.status == "canceled" {
        sub.canceled_at
    } else if sub.cancel_at.is_some() {
        sub.cancel_at
    } else if sub.cancel_at_period_end {
        period_end(sub)
    } else {
        None
    };
    end.map(time)
}

fn period_end(sub: &Subscription) -> Option<i64> {
    sub.current_period_end.or_else(|| {
        sub.items
            .data
            .iter()
            .filter_map(|item| item.current_period_end)
            .max()
    })
}

// ---- The amount before discounts ----

/// The subscription's monthly amount before discounts, exact, with the billing interval of
/// its first counted price (which an `amount_off` coupon is spread over).
struct Base {
    monthly: Decimal,
    interval: Option<Interval>,
}

/// The sum of the items' monthly amounts. Items in another currency than the first, metered
/// prices, and discounts on single items are left out, each with a sentence.
fn base(
    sub: &Subscription,
    currency: &str,
    left_out: &mut Vec<String>,
) -> Result<Base, Incomplete> {
    if sub.items.has_more {
        return Err(Incomplete::ItemsNotAll);
    }
    let mut base = Base {
        monthly: Decimal::ZERO,
        interval: None,
    };
    for item in &sub.items.data {
        let price = item
            .effective_price()
            .ok_or_else(|| Incomplete::NoPrice(item.id.clone()))?;
        if !price.currency.eq_ignore_ascii_case(currency) {
            left_out.push(format!(
                "{}: price {} is in {}, not {currency} like the first item: not counted in MRR",
                item.id,
                price.id,
                price.currency.to_uppercase()
            ));
            continue;
        }
        if let Some((monthly, interval)) = item_monthly(item, &price, left_out)? {
            base.monthly += monthly;
            base.interval.get_or_insert(interval);
        }
        left_out_item_discounts(item, left_out);
    }
    Ok(base)
}

/// An item's amount per month: the amount per billing interval (`per_unit` or `tiered`),
/// normalised to a month. Metered prices are billed on usage, so they are not MRR.
fn item_monthly(
    item: &Item,
    price: &Price,
    left_out: &mut Vec<String>,
) -> Result<Option<(Decimal, Interval)>, Incomplete> {
    let Some(interval) = price
        .recurring
        .as_ref()
        .and_then(|r| Interval::parse(&r.interval, r.interval_count))
    else {
        left_out.push(format!(
            "{}: price {} has no recurring interval Fahwa knows: not counted in MRR",
            item.id, price.id
        ));
        return Ok(None);
    };
    if is_metered(price) {
        left_out.push(format!(
            "{}: price {} is metered: billed on usage, not counted in MRR",
            item.id, price.id
        ));
        return Ok(None);
    }
    // Stripe leaves `quantity` out only for metered prices; a licensed item is one seat.
    let quantity = item.quantity.unwrap_or(1);
    let amount = match price.billing_scheme.as_deref() {
        Some("tiered") => tiered(quantity, price)?,
        _ => per_unit(quantity, price),
    };
    match amount {
        Some(amount) => Ok(Some((interval.per_month(amount), interval))),
        None => {
            left_out.push(format!(
                "{}: price {} at quantity {quantity} has no amount Fahwa can read: not counted in MRR",
                item.id, price.id
            ));
            Ok(None)
        }
    }
}

fn is_metered(price: &Price) -> bool {
    price
        .recurring
        .as_ref()
        .and_then(|recurring| recurring.usage_type.as_deref())
        == Some("metered")
}

/// Per unit: the unit amount (`unit_amount_decimal`, else `unit_amount`) × the quantity,
/// the quantity first divided by `transform_quantity.divide_by` and rounded up or down.
/// `None` when the price has no unit amount (a customer-chosen amount).
fn per_unit(quantity: u64, price: &Price) -> Option<Decimal> {
    let unit = exact(price.unit_amount_decimal.as_deref(), price.unit_amount)?;
    let quantity = transformed(quantity, price.transform_quantity.as_ref());
    Some(unit * Decimal::from(quantity))
}

fn transformed(quantity: u64, transform: Option<&TransformQuantity>) -> u64 {
    match transform {
        Some(transform) if transform.divide_by > 0 => {
            if transform.round == "up" {
                quantity.div_ceil(transform.divide_by)
            } else {
                quantity / transform.divide_by
            }
        }
        _ => quantity,
    }
}

/// Tiered: volume or graduated over the price's tiers, which must be in the payload.
fn tiered(quantity: u64, price: &Price) -> Result<Option<Decimal>, Incomplete> {
    let tiers = price
        .tiers
        .as_deref()
        .ok_or_else(|| Incomplete::TiersNotExpanded(price.id.clone()))?;
    Ok(match price.tiers_mode.as_deref() {
        Some("volume") => volume(quantity, tiers),
        Some("graduated") => Some(graduated(quantity, tiers)),
        _ => None,
    })
}

/// Volume: every unit at the rate of the first tier whose `up_to` (inclusive, `null` for no
/// bound) reaches the quantity, plus that tier's flat amount: quantity × unit + flat.
fn volume(quantity: u64, tiers: &[Tier]) -> Option<Decimal> {
    let tier = tiers
        .iter()
        .find(|tier| tier.up_to.is_none_or(|up_to| up_to >= quantity))?;
    Some(tier_unit(tier) * Decimal::from(quantity) + tier_flat(tier))
}

/// Graduated: each tier's units at its own rate, plus the flat amount of every tier reached
/// (one where at least one unit falls; a quantity of 0 reaches none).
fn graduated(quantity: u64, tiers: &[Tier]) -> Decimal {
    let mut total = Decimal::ZERO;
    let mut below = 0u64;
    for tier in tiers {
        let top = tier.up_to.map_or(quantity, |up_to| up_to.min(quantity));
        let units = top.saturating_sub(below);
        if units > 0 {
            total += tier_unit(tier) * Decimal::from(units) + tier_flat(tier);
        }
        match tier.up_to {
            Some(up_to) if up_to < quantity => below = up_to,
            _ => break,
        }
    }
    total
}

fn tier_unit(tier: &Tier) -> Decimal {
    exact(tier.unit_amount_decimal.as_deref(), tier.unit_amount).unwrap_or_default()
}

fn tier_flat(tier: &Tier) -> Decimal {
    exact(tier.flat_amount_decimal.as_deref(), tier.flat_amount).unwrap_or_default()
}

/// Stripe's `*_decimal` string where it reads, else the integer beside it.
fn exact(decimal: Option<&str>, whole: Option<i64>) -> Option<Decimal> {
    decimal
        .and_then(|text| text.parse::<Decimal>().ok())
        .or(whole.map(Decimal::from))
}

/// Discounts that Stripe attaches to one item reduce that item only; Fahwa does not model
/// them yet, so it says so rather than overstate in silence.
fn left_out_item_discounts(item: &Item, left_out: &mut Vec<String>) {
    if item.discounts.is_empty() {
        return;
    }
    let ids: Vec<&str> = item.discounts.iter().map(discount_id).collect();
    left_out.push(format!(
        "{}: its own discounts ({}) are not applied to MRR",
        item.id,
        ids.join(", ")
    ));
}

fn discount_id(discount: &Expandable<Discount>) -> &str {
    match discount {
        Expandable::Id(id) => id,
        Expandable::Object(discount) => discount.id.as_deref().unwrap_or("without id"),
    }
}

// ---- Discounts ----

/// A discount over the time it applies.
struct Applied {
    from: DateTime<Utc>,
    until: Option<DateTime<Utc>>,
    off: Off,
}

enum Off {
    Percent(Decimal),
    /// Minor units per month.
    Amount(Decimal),
}

impl Applied {
    fn applies_at(&self, at: DateTime<Utc>) -> bool {
        self.from <= at && self.until.is_none_or(|until| at < until)
    }
}

/// The subscription's discounts, from `discount` and every entry of `discounts`, each with
/// its coupon and when it applies.
fn discounts(
    sub: &Subscription,
    base: &Base,
    currency: &str,
    left_out: &mut Vec<String>,
) -> Result<Vec<Applied>, Incomplete> {
    let mut applied = Vec::new();
    for discount in expanded_discounts(sub)? {
        let label = discount.id.as_deref().unwrap_or("without id");
        let Some(coupon) = coupon_of(discount)? else {
            left_out.push(format!("discount {label}: no coupon: not applied to MRR"));
            continue;
        };
        let Some(off) = off(coupon, base, currency) else {
            left_out.push(format!(
                "discount {label}: coupon {} is not a percent off nor an amount off in {currency}: not applied to MRR",
                coupon.id
            ));
            continue;
        };
        let from = time(discount.start.unwrap_or(sub.start_date));
        let until = discount_until(discount, coupon, from, base.interval);
        applied.push(Applied { from, until, off });
    }
    Ok(applied)
}

/// The expanded discounts, each once: versions that have both `discount` and `discounts`
/// name the same discount in both, expanded in the first and maybe an id in the second. An
/// id with no expanded discount beside it is `Incomplete`.
fn expanded_discounts(sub: &Subscription) -> Result<Vec<&Discount>, Incomplete> {
    let mut found: Vec<&Discount> = Vec::new();
    let mut ids: Vec<&String> = Vec::new();
    for entry in sub.discount.iter().chain(&sub.discounts) {
        match entry {
            Expandable::Object(discount) => {
                let seen = discount.id.is_some() && found.iter().any(|d| d.id == discount.id);
                if !seen {
                    found.push(discount);
                }
            }
            Expandable::Id(id) => ids.push(id),
        }
    }
    let missing = ids
        .into_iter()
        .find(|id| !found.iter().any(|d| d.id.as_ref() == Some(*id)));
    match missing {
        Some(id) => Err(Incomplete::DiscountNotExpanded(id.clone())),
        None => Ok(found),
    }
}

/// The coupon at `coupon` (before API version 2025-09-30) or at `source.coupon` (after).
fn coupon_of(discount: &Discount) -> Result<Option<&Coupon>, Incomplete> {
    if let Some(coupon) = &discount.coupon {
        return Ok(Some(coupon));
    }
    match discount
        .source
        .as_ref()
        .and_then(|source| source.coupon.as_ref())
    {
        Some(Expandable::Object(coupon)) => Ok(Some(coupon)),
        Some(Expandable::Id(id)) => Err(Incomplete::CouponNotExpanded(id.clone())),
        None => Ok(None),
    }
}

/// `percent_off` takes that percent of the whole amount. `amount_off` is per invoice, in the
/// coupon's currency: spread over a month with the interval of the subscription's first
/// counted price, and not applied in another currency than the subscription's.
fn off(coupon: &Coupon, base: &Base, currency: &str) -> Option<Off> {
    if let Some(percent) = coupon.percent_off {
        return Some(Off::Percent(percent));
    }
    let amount = coupon.amount_off?;
    let same_currency = coupon
        .currency
        .as_deref()
        .is_some_and(|coupon_currency| coupon_currency.eq_ignore_ascii_case(currency));
    if !same_currency {
        return None;
    }
    // Without a counted price the amount is 0 whatever the coupon takes off.
    let interval = base.interval?;
    Some(Off::Amount(interval.per_month(Decimal::from(amount))))
}

/// A discount applies from its `start` (the subscription's start if absent) until: `forever`,
/// no end; `repeating`, its `end`, else `duration_in_months` after its start; `once`, one
/// billing interval of the subscription after its start (the first invoice only).
fn discount_until(
    discount: &Discount,
    coupon: &Coupon,
    from: DateTime<Utc>,
    interval: Option<Interval>,
) -> Option<DateTime<Utc>> {
    match coupon.duration.as_str() {
        "forever" => None,
        "repeating" => discount.end.map(time).or_else(|| {
            coupon
                .duration_in_months
                .map(|months| add_months(from, months))
        }),
        "once" => Some(interval.map_or(from, |interval| interval.after(from, 1))),
        _ => discount.end.map(time),
    }
}

/// Percents first, each on what the previous left, then amounts; never below 0; rounded to a
/// whole minor unit, half away from zero, once, here at the end.
fn discounted(monthly: Decimal, applied: &[&Applied]) -> i64 {
    let hundred = Decimal::from(100);
    let mut amount = monthly;
    for discount in applied {
        if let Off::Percent(percent) = discount.off {
            amount = amount * (hundred - percent) / hundred;
        }
    }
    for discount in applied {
        if let Off::Amount(off) = discount.off {
            amount -= off;
        }
    }
    round_minor(amount.max(Decimal::ZERO))
}

// ---- Steps ----

/// The steps: the amount at the start, at each discount's start and end within the counted
/// time, and 0 at the end; equal consecutive amounts merged and leading zeros dropped.
fn breakpoints(
    base: &Base,
    discounts: &[Applied],
    from: DateTime<Utc>,
    until: Option<DateTime<Utc>>,
) -> Vec<Step> {
    if until.is_some_and(|until| until <= from) {
        return Vec::new();
    }
    let within = |at: DateTime<Utc>| at > from && until.is_none_or(|until| at < until);
    let mut moments = vec![from];
    for discount in discounts {
        moments.extend(
            [Some(discount.from), discount.until]
                .into_iter()
                .flatten()
                .filter(|at| within(*at)),
        );
    }
    moments.sort();
    moments.dedup();
    let mut steps = Vec::new();
    for at in moments {
        let applying: Vec<&Applied> = discounts.iter().filter(|d| d.applies_at(at)).collect();
        push(&mut steps, at, discounted(base.monthly, &applying));
    }
    if let Some(until) = until {
        push(&mut steps, until, 0);
    }
    steps
}

/// Adds a step unless it repeats the amount in force (0 before the first step).
fn push(steps: &mut Vec<Step>, at: DateTime<Utc>, amount_minor: i64) {
    if amount_at(steps, at) != amount_minor {
        steps.push(Step { at, amount_minor });
    }
}

// ---- Time ----

// Stripe's timestamps are unix seconds well within chrono's range; one that is not is taken
// as the end of time, so that it never counts rather than panics.
fn time(secs: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(secs, 0).unwrap_or(DateTime::<Utc>::MAX_UTC)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn utc(day: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(&format!("{day}T00:00:00Z"))
            .unwrap()
            .with_timezone(&Utc)
    }

    fn secs(day: &str) -> i64 {
        utc(day).timestamp()
    }

    /// A Price as the API returns it (fields as in Stripe's fixtures), per unit and licensed.
    fn price(id: &str, unit_amount: i64, interval: &str, interval_count: u32) -> Value {
        json!({
            "id": id, "object": "price", "active": true, "billing_scheme": "per_unit",
            "created": 1_700_000_000, "currency": "usd",
            "custom_unit_amount": null, "livemode": false, "lookup_key": null, "metadata": {},
            "nickname": null, "product": "prod_1",
            "recurring": {
                "interval": interval, "interval_count": interval_count, "meter": null,
                "usage_type": "licensed", "trial_period_days": null
            },
            "tax_behavior": "unspecified", "tiers_mode": null, "transform_quantity": null,
            "type": "recurring", "unit_amount": unit_amount,
            "unit_amount_decimal": unit_amount.to_string()
        })
    }

    fn item(id: &str, price: Value, quantity: u64) -> Value {
        json!({
            "id": id, "object": "subscription_item", "billing_thresholds": null,
            "created": secs("2024-01-01"), "discounts": [], "metadata": {}, "price": price,
            "quantity": quantity, "subscription": "sub_1", "tax_rates": []
        })
    }

    /// An active subscription from 2024-01-01 in the pre-2025 shape (period on the
    /// subscription, one `discount`).
    fn subscription(items: Vec<Value>) -> Value {
        json!({
            "id": "sub_1", "object": "subscription", "application": null,
            "billing_cycle_anchor": secs("2024-01-01"), "cancel_at": null,
            "cancel_at_period_end": false, "canceled_at": null,
            "collection_method": "charge_automatically", "created": secs("2024-01-01"),
            "currency": "usd", "current_period_end": secs("2024-02-01"),
            "current_period_start": secs("2024-01-01"), "customer": "cus_1",
            "default_payment_method": null, "discount": null, "discounts": [], "ended_at": null,
            "items": {
                "object": "list", "data": items, "has_more": false,
                "total_count": 1, "url": "/v1/subscription_items?subscription=sub_1"
            },
            "latest_invoice": "in_1", "livemode": false, "metadata": {},
            "pause_collection": null, "schedule": null, "start_date": secs("2024-01-01"),
            "status": "active", "test_clock": null, "trial_end": null, "trial_start": null
        })
    }

    fn monthly(unit_amount: i64, quantity: u64) -> Value {
        subscription(vec![item(
            "si_1",
            price("price_1", unit_amount, "month", 1),
            quantity,
        )])
    }

    fn coupon(duration: &str, percent_off: Option<f64>, amount_off: Option<i64>) -> Value {
        json!({
            "id": "COUPON", "object": "coupon", "amount_off": amount_off,
            "created": 1_700_000_000, "currency": amount_off.map(|_| "usd"),
            "duration": duration,
            "duration_in_months": if duration == "repeating" { Some(3) } else { None },
            "livemode": false, "max_redemptions": null, "metadata": {}, "name": null,
            "percent_off": percent_off, "redeem_by": null, "times_redeemed": 1, "valid": true
        })
    }

    /// A Discount before 2025-09-30: the coupon inline.
    fn discount(id: &str, coupon: Value, end: Option<&str>) -> Value {
        json!({
            "id": id, "object": "discount", "checkout_session": null, "coupon": coupon,
            "customer": "cus_1", "end": end.map(secs), "invoice": null, "invoice_item": null,
            "promotion_code": null, "start": secs("2024-01-01"), "subscription": "sub_1",
            "subscription_item": null
        })
    }

    fn derived(payload: Value) -> Derived {
        derive(&serde_json::from_value(payload).unwrap()).unwrap()
    }

    fn incomplete(payload: Value) -> Incomplete {
        derive(&serde_json::from_value(payload).unwrap()).unwrap_err()
    }

    /// The steps as (day, amount), for short assertions.
    fn steps(payload: Value) -> Vec<(String, i64)> {
        derived(payload)
            .steps
            .iter()
            .map(|step| (step.at.format("%Y-%m-%d").to_string(), step.amount_minor))
            .collect()
    }

    fn from_jan(amount: i64) -> Vec<(String, i64)> {
        vec![("2024-01-01".into(), amount)]
    }

    /// The amount once it has started, for the pricing cases.
    fn mrr(payload: Value) -> i64 {
        amount_at(&derived(payload).steps, utc("2025-01-01"))
    }

    #[test]
    fn monthly_per_unit_is_unit_times_quantity() {
        let result = derived(monthly(2000, 3));
        assert_eq!(result.customer, "cus_1");
        assert_eq!(result.currency, "USD");
        assert_eq!(
            result.steps,
            vec![Step {
                at: utc("2024-01-01"),
                amount_minor: 6000
            }]
        );
        assert!(result.left_out.is_empty());
    }

    #[test]
    fn other_intervals_are_brought_to_a_month() {
        let with = |amount, interval, count| {
            mrr(subscription(vec![item(
                "si_1",
                price("price_1", amount, interval, count),
                1,
            )]))
        };
        assert_eq!(with(120_000, "year", 1), 10_000, "1,200.00 a year");
        assert_eq!(with(120_000, "year", 2), 5_000, "1,200.00 every two years");
        assert_eq!(with(9_000, "month", 3), 3_000, "a quarter");
        assert_eq!(with(1_000, "week", 1), 4_333, "10.00 × 52 / 12 = 43.333…");
        assert_eq!(
            with(1_000, "week", 2),
            2_167,
            "10.00 × 52 / 12 / 2 = 21.666…"
        );
        assert_eq!(with(100, "day", 1), 3_042, "1.00 × 365 / 12 = 30.416…");
    }

    #[test]
    fn rounding_is_once_and_half_away_from_zero() {
        let yearly = |amount| {
            mrr(subscription(vec![item(
                "si_1",
                price("price_1", amount, "year", 1),
                1,
            )]))
        };
        assert_eq!(yearly(1_000), 83, "10.00 a year is 0.8333… a month");
        assert_eq!(
            yearly(990),
            83,
            "82.5 cents: half away from zero, not to even"
        );
        assert_eq!(yearly(6), 1, "0.5 cent");
        // Three items of 0.3333… each: summed exactly, then rounded once (1, not 0).
        let thirds = subscription(
            ["si_1", "si_2", "si_3"]
                .iter()
                .map(|id| item(id, price("price_1", 4, "year", 1), 1))
                .collect(),
        );
        assert_eq!(mrr(thirds), 1);
        let mut fractional = monthly(0, 3);
        fractional["items"]["data"][0]["price"]["unit_amount"] = Value::Null;
        fractional["items"]["data"][0]["price"]["unit_amount_decimal"] = json!("0.5");
        assert_eq!(mrr(fractional), 2, "3 × 0.5 = 1.5");
    }

    #[test]
    fn transform_quantity_divides_then_rounds() {
        let seats = |quantity, round| {
            let mut payload = monthly(1000, quantity);
            payload["items"]["data"][0]["price"]["transform_quantity"] =
                json!({"divide_by": 10, "round": round});
            mrr(payload)
        };
        assert_eq!(seats(25, "up"), 3000);
        assert_eq!(seats(25, "down"), 2000);
        assert_eq!(seats(20, "up"), 2000);
        assert_eq!(seats(20, "down"), 2000);
        assert_eq!(seats(1, "up"), 1000);
    }

    fn tiered(mode: &str, quantity: u64) -> Value {
        let mut price = price("price_t", 0, "month", 1);
        price["billing_scheme"] = json!("tiered");
        price["tiers_mode"] = json!(mode);
        price["unit_amount"] = Value::Null;
        price["unit_amount_decimal"] = Value::Null;
        price["tiers"] = json!([
            {"flat_amount": 500, "flat_amount_decimal": "500", "unit_amount": 1000,
             "unit_amount_decimal": "1000", "up_to": 5},
            {"flat_amount": 1000, "flat_amount_decimal": "1000", "unit_amount": 800,
             "unit_amount_decimal": "800", "up_to": 10},
            {"flat_amount": null, "flat_amount_decimal": null, "unit_amount": 500,
             "unit_amount_decimal": "500", "up_to": null}
        ]);
        subscription(vec![item("si_1", price, quantity)])
    }

    #[test]
    fn volume_tiers_price_every_unit_at_the_tier_reached() {
        let volume = |quantity| mrr(tiered("volume", quantity));
        assert_eq!(volume(0), 500, "the first tier's flat amount alone");
        assert_eq!(volume(1), 1500);
        assert_eq!(volume(5), 5500, "up_to is inclusive");
        assert_eq!(volume(6), 5800);
        assert_eq!(volume(10), 9000);
        assert_eq!(volume(11), 5500, "the unbounded tier, no flat amount");
    }

    #[test]
    fn graduated_tiers_price_each_tier_and_add_flats_of_tiers_reached() {
        let graduated = |quantity| mrr(tiered("graduated", quantity));
        assert_eq!(graduated(0), 0, "no tier reached");
        assert_eq!(graduated(1), 1500);
        assert_eq!(graduated(5), 5500);
        assert_eq!(graduated(6), 5500 + 800 + 1000);
        assert_eq!(graduated(10), 5500 + 4000 + 1000);
        assert_eq!(graduated(11), 10500 + 500);
        assert_eq!(graduated(20), 10500 + 5000);
    }

    #[test]
    fn tiers_missing_from_the_payload_are_incomplete() {
        let mut payload = tiered("graduated", 3);
        payload["items"]["data"][0]["price"]
            .as_object_mut()
            .unwrap()
            .remove("tiers");
        assert_eq!(
            incomplete(payload),
            Incomplete::TiersNotExpanded("price_t".into())
        );
    }

    #[test]
    fn metered_prices_are_left_out_with_a_sentence() {
        let mut metered = price("price_9", 5, "month", 1);
        metered["recurring"]["usage_type"] = json!("metered");
        let mut metered_item = item("si_2", metered, 0);
        metered_item.as_object_mut().unwrap().remove("quantity");
        let result = derived(subscription(vec![
            item("si_1", price("price_1", 2000, "month", 1), 1),
            metered_item,
        ]));
        assert_eq!(result.steps[0].amount_minor, 2000);
        assert_eq!(
            result.left_out,
            vec!["si_2: price price_9 is metered: billed on usage, not counted in MRR"]
        );
    }

    #[test]
    fn items_in_another_currency_are_left_out() {
        let mut euros = price("price_eur", 3000, "month", 1);
        euros["currency"] = json!("eur");
        let result = derived(subscription(vec![
            item("si_1", price("price_1", 2000, "month", 1), 1),
            item("si_2", euros, 1),
        ]));
        assert_eq!(result.currency, "USD");
        assert_eq!(result.steps[0].amount_minor, 2000);
        assert_eq!(result.left_out.len(), 1);
        assert!(result.left_out[0].starts_with("si_2: price price_eur is in EUR"));
    }

    #[test]
    fn a_percent_off_forever_applies_from_the_start() {
        let mut payload = monthly(5000, 1);
        payload["discount"] = discount("di_1", coupon("forever", Some(20.0), None), None);
        assert_eq!(steps(payload), from_jan(4000));
    }

    #[test]
    fn an_amount_off_is_per_invoice_spread_over_a_month() {
        let mut payload = monthly(5000, 1);
        payload["discount"] = discount("di_1", coupon("forever", None, Some(500)), None);
        assert_eq!(steps(payload), from_jan(4500));

        let mut yearly = subscription(vec![item("si_1", price("price_1", 120_000, "year", 1), 1)]);
        yearly["discount"] = discount("di_1", coupon("forever", None, Some(1200)), None);
        assert_eq!(
            steps(yearly),
            from_jan(9900),
            "12.00 off a year is 1.00 a month"
        );

        let mut euros = monthly(5000, 1);
        let mut coupon = coupon("forever", None, Some(500));
        coupon["currency"] = json!("eur");
        euros["discount"] = discount("di_1", coupon, None);
        let result = derived(euros);
        assert_eq!(result.steps[0].amount_minor, 5000);
        assert_eq!(result.left_out.len(), 1, "{:?}", result.left_out);
    }

    #[test]
    fn a_repeating_discount_ends_at_its_end_or_after_its_months() {
        let with_end = {
            let mut payload = monthly(5000, 1);
            payload["discount"] = discount(
                "di_1",
                coupon("repeating", Some(20.0), None),
                Some("2024-04-01"),
            );
            payload
        };
        let without_end = {
            let mut payload = monthly(5000, 1);
            payload["discount"] = discount("di_1", coupon("repeating", Some(20.0), None), None);
            payload
        };
        let expected = vec![("2024-01-01".into(), 4000), ("2024-04-01".into(), 5000)];
        assert_eq!(steps(with_end), expected);
        assert_eq!(steps(without_end), expected);
    }

    #[test]
    fn a_once_discount_covers_one_billing_interval() {
        let mut payload = monthly(5000, 1);
        payload["discount"] = discount("di_1", coupon("once", Some(50.0), None), None);
        assert_eq!(
            steps(payload),
            vec![("2024-01-01".into(), 2500), ("2024-02-01".into(), 5000)]
        );
        let mut yearly = subscription(vec![item("si_1", price("price_1", 120_000, "year", 1), 1)]);
        yearly["discount"] = discount("di_1", coupon("once", Some(50.0), None), None);
        assert_eq!(
            steps(yearly),
            vec![("2024-01-01".into(), 5000), ("2025-01-01".into(), 10_000)]
        );
    }

    #[test]
    fn several_discounts_take_percents_first_then_amounts_and_never_below_zero() {
        let mut payload = monthly(10_000, 1);
        payload["discounts"] = json!([
            discount("di_1", coupon("forever", None, Some(500)), None),
            discount("di_2", coupon("forever", Some(20.0), None), None),
            discount(
                "di_3",
                coupon("repeating", Some(10.0), None),
                Some("2024-04-01")
            ),
        ]);
        assert_eq!(
            steps(payload),
            vec![
                ("2024-01-01".into(), 6700), // 10,000 × 0.8 × 0.9 − 500
                ("2024-04-01".into(), 7500), // 10,000 × 0.8 − 500
            ]
        );

        let mut free_first = monthly(2000, 1);
        free_first["discounts"] = json!([discount(
            "di_1",
            coupon("repeating", None, Some(5000)),
            Some("2024-03-01")
        )]);
        assert_eq!(
            steps(free_first),
            vec![("2024-03-01".into(), 2000)],
            "0 while free: no leading zero"
        );
    }

    #[test]
    fn discounts_given_by_id_are_incomplete_unless_expanded_beside() {
        let mut ids_only = monthly(5000, 1);
        ids_only["discounts"] = json!(["di_1"]);
        assert_eq!(
            incomplete(ids_only),
            Incomplete::DiscountNotExpanded("di_1".into())
        );

        // Versions with both fields: the same discount expanded in one, an id in the other.
        let mut both = monthly(5000, 1);
        both["discount"] = discount("di_1", coupon("forever", Some(20.0), None), None);
        both["discounts"] = json!(["di_1"]);
        assert_eq!(steps(both), from_jan(4000), "counted once");

        let mut coupon_id = monthly(5000, 1);
        let mut newer = discount("di_1", Value::Null, None);
        newer.as_object_mut().unwrap().remove("coupon");
        newer["source"] = json!({"type": "coupon", "coupon": "SUMMER"});
        coupon_id["discounts"] = json!([newer]);
        assert_eq!(
            incomplete(coupon_id),
            Incomplete::CouponNotExpanded("SUMMER".into())
        );
    }

    #[test]
    fn the_newer_shape_gives_what_the_older_gives() {
        let mut older = monthly(5000, 2);
        older["cancel_at_period_end"] = json!(true);
        older["current_period_end"] = json!(secs("2024-06-01"));
        older["discount"] = discount(
            "di_1",
            coupon("repeating", Some(25.5), None),
            Some("2024-04-01"),
        );

        // 2025-09-30 and later: period on the items, `discounts` expanded, coupon in `source`.
        let mut newer = monthly(5000, 2);
        let object = newer.as_object_mut().unwrap();
        for gone in ["current_period_end", "current_period_start", "discount"] {
            object.remove(gone);
        }
        newer["cancel_at_period_end"] = json!(true);
        newer["items"]["data"][0]["current_period_start"] = json!(secs("2024-05-01"));
        newer["items"]["data"][0]["current_period_end"] = json!(secs("2024-06-01"));
        let mut expanded = discount("di_1", Value::Null, Some("2024-04-01"));
        expanded.as_object_mut().unwrap().remove("coupon");
        expanded["source"] = json!({
            "type": "coupon",
            "coupon": coupon("repeating", Some(25.5), None)
        });
        newer["discounts"] = json!([expanded]);

        let expected = vec![
            ("2024-01-01".into(), 7450), // 10,000 × 0.745
            ("2024-04-01".into(), 10_000),
            ("2024-06-01".into(), 0),
        ];
        assert_eq!(steps(older), expected);
        assert_eq!(steps(newer), expected);
    }

    #[test]
    fn a_trial_counts_from_its_end() {
        let mut payload = monthly(2000, 1);
        payload["status"] = json!("trialing");
        payload["trial_start"] = json!(secs("2024-01-01"));
        payload["trial_end"] = json!(secs("2024-01-15"));
        let result = derived(payload);
        assert_eq!(result.steps.len(), 1);
        assert_eq!(amount_at(&result.steps, utc("2024-01-14")), 0);
        assert_eq!(amount_at(&result.steps, utc("2024-01-15")), 2000);
    }

    #[test]
    fn cancellation_at_period_end_steps_to_zero_then() {
        let mut payload = monthly(2000, 1);
        payload["cancel_at_period_end"] = json!(true);
        payload["current_period_end"] = json!(secs("2024-03-01"));
        assert_eq!(
            steps(payload.clone()),
            vec![("2024-01-01".into(), 2000), ("2024-03-01".into(), 0)]
        );
        payload["cancel_at"] = json!(secs("2024-02-15"));
        assert_eq!(
            steps(payload)[1],
            ("2024-02-15".into(), 0),
            "cancel_at first"
        );
    }

    #[test]
    fn a_canceled_subscription_ends_when_it_ended() {
        let mut payload = monthly(2000, 1);
        payload["status"] = json!("canceled");
        payload["canceled_at"] = json!(secs("2024-05-20"));
        payload["ended_at"] = json!(secs("2024-06-01"));
        let expected = vec![("2024-01-01".into(), 2000), ("2024-06-01".into(), 0)];
        assert_eq!(steps(payload.clone()), expected);
        payload["ended_at"] = Value::Null;
        assert_eq!(steps(payload)[1], ("2024-05-20".into(), 0), "canceled_at");

        let mut during_trial = monthly(2000, 1);
        during_trial["status"] = json!("canceled");
        during_trial["trial_end"] = json!(secs("2024-01-15"));
        during_trial["ended_at"] = json!(secs("2024-01-10"));
        assert!(steps(during_trial).is_empty());
    }

    #[test]
    fn past_due_and_unpaid_count() {
        for status in ["past_due", "unpaid"] {
            let mut payload = monthly(2000, 1);
            payload["status"] = json!(status);
            assert_eq!(steps(payload), from_jan(2000), "{status}");
        }
    }

    #[test]
    fn paused_and_incomplete_do_not_count() {
        let mut paused = monthly(2000, 1);
        paused["status"] = json!("paused");
        let mut collection_paused = monthly(2000, 1);
        collection_paused["pause_collection"] =
            json!({"behavior": "mark_uncollectible", "resumes_at": null});
        for payload in [paused, collection_paused] {
            let result = derived(payload);
            assert!(result.steps.is_empty());
            assert_eq!(result.left_out.len(), 1, "{:?}", result.left_out);
        }
        for status in ["incomplete", "incomplete_expired"] {
            let mut payload = monthly(2000, 1);
            payload["status"] = json!(status);
            assert!(derived(payload).steps.is_empty(), "{status}");
        }
    }

    #[test]
    fn unknown_fields_anywhere_are_ignored() {
        let mut payload = monthly(2000, 1);
        payload["billing_mode"] = json!({"type": "flexible", "flexible": {}});
        payload["brand_new"] = json!([1, {"x": null}]);
        payload["customer"] = json!({"id": "cus_1", "object": "customer", "email": null});
        payload["items"]["data"][0]["brand_new"] = json!({"nested": true});
        payload["items"]["data"][0]["price"]["brand_new"] = json!(3.5);
        payload["items"]["data"][0]["price"]["recurring"]["brand_new"] = json!("x");
        let mut coupon = coupon("forever", Some(10.0), None);
        coupon["brand_new"] = json!({});
        coupon["applies_to"] = json!({"products": []});
        payload["discount"] = discount("di_1", coupon, None);
        payload["discount"]["brand_new"] = json!(null);
        // Stripe's fixtures carry the legacy plan beside the price, with other values.
        payload["items"]["data"][0]["plan"] = json!({
            "id": "obj_123", "object": "plan", "amount": null, "amount_decimal": null,
            "billing_scheme": "tiered", "currency": "currency", "interval": "month",
            "interval_count": 797_691_627, "tiers_mode": null, "usage_type": "licensed",
            "transform_usage": {"divide_by": 1_592_560_163, "round": "down"}
        });
        let result = derived(payload);
        assert_eq!(result.customer, "cus_1");
        assert_eq!(
            result.steps,
            vec![Step {
                at: utc("2024-01-01"),
                amount_minor: 1800
            }]
        );
    }

    #[test]
    fn a_legacy_plan_without_price_is_read_as_a_price() {
        let mut payload = monthly(0, 2);
        let item = payload["items"]["data"][0].as_object_mut().unwrap();
        item.remove("price");
        item.insert(
            "plan".into(),
            json!({
                "id": "gold", "object": "plan", "active": true, "aggregate_usage": null,
                "amount": 12_000, "amount_decimal": "12000", "billing_scheme": "per_unit",
                "created": 1_600_000_000, "currency": "usd", "interval": "year",
                "interval_count": 1, "livemode": false, "metadata": {}, "meter": null,
                "nickname": null, "product": "prod_1", "tiers_mode": null,
                "transform_usage": null, "trial_period_days": null, "usage_type": "licensed"
            }),
        );
        assert_eq!(steps(payload), from_jan(2000));
    }

    #[test]
    fn what_the_payload_lacks_is_incomplete() {
        let mut more = monthly(2000, 1);
        more["items"]["has_more"] = json!(true);
        assert_eq!(incomplete(more), Incomplete::ItemsNotAll);
        let mut no_price = monthly(2000, 1);
        no_price["items"]["data"][0]
            .as_object_mut()
            .unwrap()
            .remove("price");
        assert_eq!(incomplete(no_price), Incomplete::NoPrice("si_1".into()));
    }

    #[test]
    fn amount_at_reads_the_step_in_force() {
        let steps = vec![
            Step {
                at: utc("2024-01-01"),
                amount_minor: 2000,
            },
            Step {
                at: utc("2024-04-01"),
                amount_minor: 2500,
            },
            Step {
                at: utc("2024-06-01"),
                amount_minor: 0,
            },
        ];
        assert_eq!(amount_at(&steps, utc("2023-12-31")), 0, "before");
        assert_eq!(amount_at(&steps, utc("2024-01-01")), 2000, "at the first");
        assert_eq!(amount_at(&steps, utc("2024-03-31")), 2000, "between");
        assert_eq!(amount_at(&steps, utc("2024-04-01")), 2500);
        assert_eq!(amount_at(&steps, utc("2030-01-01")), 0, "after the end");
        assert_eq!(amount_at(&[], utc("2024-01-01")), 0);
    }

    #[test]
    fn the_list_expansion_stays_within_four_levels() {
        for path in EXPAND_LIST
            .iter()
            .chain(EXPAND_ONE)
            .chain([&EXPAND_COUPON_ONE, &EXPAND_COUPON_LIST])
        {
            assert!(path.split('.').count() <= 4, "{path}");
        }
    }
}
