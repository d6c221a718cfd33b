//! A subscription's MRR over time, from one PayPal subscription and the plan it is billed at,
//! as Fahwa defines it: a piecewise-constant amount that starts when the first REGULAR billing
//! cycle does (after any trial cycles), changes where a later REGULAR cycle takes over, and
//! stops when the subscription is cancelled or expires, or its last finite cycle is done.
//! Amounts stay exact until one rounding per step, so that yearly or weekly prices spread over
//! months do not drift. What is not MRR (a suspended subscription, a trial's price...) is said
//! in `left_out` rather than dropped in silence; what the payloads lack is an `Incomplete`, so
//! that the caller can fetch again instead of storing a wrong amount.

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;

use super::subscription::{BillingCycle, Money, Plan, PricingTier, Subscription};

use crate::connectors::interval::{Interval, round_minor};
pub use crate::connectors::timeline::{Step, Timeline as Derived, amount_at};

/// The currencies PayPal's REST API accepts payments in (developer.paypal.com, "Currency
/// codes"), each with its number of decimals: HUF, JPY and TWD "do not support decimals".
const CURRENCIES: [(&str, u32); 25] = [
    ("AUD", 2),
    ("BRL", 2),
    ("CAD", 2),
    ("CHF", 2),
    ("CNY", 2),
    ("CZK", 2),
    ("DKK", 2),
    ("EUR", 2),
    ("GBP", 2),
    ("HKD", 2),
    ("HUF", 0),
    ("ILS", 2),
    ("JPY", 0),
    ("MXN", 2),
    ("MYR", 2),
    ("NOK", 2),
    ("NZD", 2),
    ("PHP", 2),
    ("PLN", 2),
    ("RUB", 2),
    ("SEK", 2),
    ("SGD", 2),
    ("THB", 2),
    ("TWD", 0),
    ("USD", 2),
];

/// The payloads lack what is needed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Incomplete {
    /// The plan given is not the one the subscription is billed at: its id is not the
    /// subscription's `plan_id`, or the subscription overrides its plan (`plan_overridden`)
    /// and carries no inline `plan`. Fetch the plan, or the subscription with `fields=plan`.
    NoPlan,
    /// The subscriber has neither `payer_id` nor `email_address`: fetch the subscription.
    NoCustomer,
    /// A counted subscription with neither `start_time` nor `create_time`.
    NoStart,
}

/// The subscription's MRR as steps. `plan` is the plan `plan_id` names; an inline `plan`
/// (from `fields=plan`) is preferred to it, as it is what this subscription is billed at.
pub fn derive(sub: &Subscription, plan: &Plan) -> Result<Derived, Incomplete> {
    let plan = billed_plan(sub, plan)?;
    let customer = sub.customer_id().ok_or(Incomplete::NoCustomer)?.to_owned();
    let currency = currency_of(sub, plan);
    let mut left_out = Vec::new();
    let mut steps = Vec::new();
    if let Some(window) = counted(sub, &mut left_out)? {
        let exponent = exponent(sub, &currency, &mut left_out);
        let quantity = quantity(sub, &mut left_out);
        if let (Some(exponent), Some(quantity)) = (exponent, quantity) {
            let priced = Priced {
                sub,
                currency: &currency,
                exponent,
                quantity,
            };
            steps = schedule(&priced, plan, window, &mut left_out);
        }
    }
    Ok(Derived {
        customer,
        currency,
        steps,
        left_out,
    })
}

fn billed_plan<'a>(sub: &'a Subscription, plan: &'a Plan) -> Result<&'a Plan, Incomplete> {
    if let Some(inline) = &sub.plan {
        return Ok(inline);
    }
    if sub.plan_overridden == Some(true) || plan.id != sub.plan_id {
        return Err(Incomplete::NoPlan);
    }
    Ok(plan)
}

/// The currency of the first REGULAR cycle's price (fixed, else first tier); without one,
/// that of the last payment.
fn currency_of(sub: &Subscription, plan: &Plan) -> String {
    regular_cycles(plan)
        .into_iter()
        .find_map(cycle_money)
        .or_else(|| Some(&sub.billing_info.as_ref()?.last_payment.as_ref()?.amount))
        .map(|money| money.currency_code.to_uppercase())
        .unwrap_or_default()
}

fn cycle_money(cycle: &BillingCycle) -> Option<&Money> {
    let scheme = cycle.pricing_scheme.as_ref()?;
    scheme
        .fixed_price
        .as_ref()
        .or_else(|| scheme.tiers.first().map(|tier| &tier.amount))
}

fn regular_cycles(plan: &Plan) -> Vec<&BillingCycle> {
    plan.billing_cycles
        .iter()
        .filter(|cycle| cycle.tenure_type == "REGULAR")
        .collect()
}

/// Minor units per major unit: only currencies PayPal takes payments in are counted, so that
/// an exponent is never guessed.
fn exponent(sub: &Subscription, currency: &str, left_out: &mut Vec<String>) -> Option<u32> {
    let found = CURRENCIES
        .iter()
        .find(|(code, _)| *code == currency)
        .map(|(_, exponent)| *exponent);
    if found.is_none() {
        left_out.push(format!(
            "{}: its currency {currency:?} is not one PayPal takes payments in: not counted in MRR",
            sub.id
        ));
    }
    found
}

/// `quantity`, a decimal string; 1 when absent (a plan without `quantity_supported`).
fn quantity(sub: &Subscription, left_out: &mut Vec<String>) -> Option<Decimal> {
    let Some(text) = sub.quantity.as_deref() else {
        return Some(Decimal::ONE);
    };
    match text.parse::<Decimal>() {
        Ok(quantity) if quantity >= Decimal::ZERO => Some(quantity),
        _ => {
            left_out.push(format!(
                "{}: its quantity {text:?} is not a number: not counted in MRR",
                sub.id
            ));
            None
        }
    }
}

// ---- When it counts ----

/// From when (the subscription's start) until when (`None`: no end) it counts.
#[derive(Debug, Clone, Copy)]
struct Window {
    from: DateTime<Utc>,
    until: Option<DateTime<Utc>>,
}

/// The window, or `None` (with a sentence) when the subscription does not count at all:
/// `APPROVAL_PENDING` and `APPROVED` have not started billing; `SUSPENDED` is paused and
/// bills nothing (PayPal keeps no record of since when, so none of it counts); a status
/// Fahwa does not know is not guessed at. `ACTIVE` counts from its start on; `CANCELLED`
/// and `EXPIRED` until `status_update_time` (else `update_time`).
fn counted(sub: &Subscription, left_out: &mut Vec<String>) -> Result<Option<Window>, Incomplete> {
    let reason = match sub.status.as_str() {
        "APPROVAL_PENDING" => "it awaits the subscriber's approval",
        "APPROVED" => "it is approved but not yet active",
        "SUSPENDED" => "it is suspended: paused, billed nothing",
        "ACTIVE" | "CANCELLED" | "EXPIRED" => "",
        _ => "its status is unknown",
    };
    if !reason.is_empty() {
        left_out.push(format!(
            "{}: {reason} ({}): not counted in MRR",
            sub.id, sub.status
        ));
        return Ok(None);
    }
    let from = sub
        .start_time
        .or(sub.create_time)
        .ok_or(Incomplete::NoStart)?;
    if sub.status == "ACTIVE" {
        return Ok(Some(Window { from, until: None }));
    }
    let Some(until) = sub.status_update_time.or(sub.update_time) else {
        left_out.push(format!(
            "{}: it is {} but says neither status_update_time nor update_time: not counted in MRR",
            sub.id, sub.status
        ));
        return Ok(None);
    };
    Ok(Some(Window {
        from,
        until: Some(until),
    }))
}

// ---- The cycles in time ----

/// What prices a REGULAR cycle for this subscription.
struct Priced<'a> {
    sub: &'a Subscription,
    currency: &'a str,
    exponent: u32,
    quantity: Decimal,
}

/// The cycles in `sequence` order from the window's start: a TRIAL cycle lasts
/// `total_cycles` × its frequency and counts 0 (a trial's price is not MRR); a REGULAR cycle
/// counts its monthly amount for `total_cycles` × its frequency (0: for ever), and 0 after
/// the last one ends. Then cut at the window's end.
fn schedule(priced: &Priced, plan: &Plan, window: Window, left_out: &mut Vec<String>) -> Vec<Step> {
    let mut cycles: Vec<&BillingCycle> = plan.billing_cycles.iter().collect();
    cycles.sort_by_key(|cycle| cycle.sequence);
    if !cycles.iter().any(|cycle| cycle.tenure_type == "REGULAR") {
        left_out.push(format!(
            "{}: plan {} has no REGULAR billing cycle: not counted in MRR",
            priced.sub.id, plan.id
        ));
        return Vec::new();
    }
    let mut steps = Vec::new();
    let mut at = window.from;
    for cycle in cycles {
        let Some(interval) = Interval::parse(
            &cycle.frequency.interval_unit,
            cycle.frequency.interval_count,
        ) else {
            left_out.push(format!(
                "{}: billing cycle {} is billed every {}, a unit Fahwa does not know: not counted in MRR",
                priced.sub.id, cycle.sequence, cycle.frequency.interval_unit
            ));
            return Vec::new();
        };
        let amount = match cycle.tenure_type.as_str() {
            "REGULAR" => monthly_minor(priced, cycle, interval, left_out),
            _ => {
                left_out_trial(priced.sub, cycle, left_out);
                0
            }
        };
        steps.push(Step {
            at,
            amount_minor: amount,
        });
        if cycle.total_cycles == 0 {
            break;
        }
        at = interval.after(at, cycle.total_cycles);
        steps.push(Step {
            at,
            amount_minor: 0,
        });
    }
    normalize(cut(steps, window.until))
}

/// A trial that charges is said, not counted; a free one (no price, or 0) needs no sentence.
fn left_out_trial(sub: &Subscription, cycle: &BillingCycle, left_out: &mut Vec<String>) {
    let price = cycle
        .pricing_scheme
        .as_ref()
        .and_then(|scheme| scheme.fixed_price.as_ref())
        .filter(|money| {
            money
                .value
                .parse::<Decimal>()
                .is_ok_and(|value| !value.is_zero())
        });
    if let Some(price) = price {
        left_out.push(format!(
            "{}: trial cycle {} charges {} {}: trials are not counted in MRR",
            sub.id, cycle.sequence, price.value, price.currency_code
        ));
    }
}

/// Nothing from `until` on: the steps before it, then 0.
fn cut(mut steps: Vec<Step>, until: Option<DateTime<Utc>>) -> Vec<Step> {
    if let Some(until) = until {
        steps.retain(|step| step.at < until);
        steps.push(Step {
            at: until,
            amount_minor: 0,
        });
    }
    steps
}

/// Sorted by time; at one instant the last step written wins; consecutive equal amounts
/// collapse into the first; leading zeros go.
fn normalize(mut steps: Vec<Step>) -> Vec<Step> {
    steps.sort_by_key(|step| step.at);
    let mut out: Vec<Step> = Vec::with_capacity(steps.len());
    for step in steps {
        match out.last_mut() {
            Some(last) if last.at == step.at => last.amount_minor = step.amount_minor,
            _ => out.push(step),
        }
    }
    let mut kept: Vec<Step> = Vec::with_capacity(out.len());
    for step in out {
        let previous = kept.last().map_or(0, |last| last.amount_minor);
        if step.amount_minor != previous {
            kept.push(step);
        }
    }
    kept
}

// ---- A REGULAR cycle's amount ----

/// The cycle's amount per billing interval × the quantity (fixed price), or as the tiers
/// price that quantity; normalised to a month and rounded once to minor units, half away from
/// zero. A cycle without a readable price in the subscription's currency counts 0, said.
fn monthly_minor(
    priced: &Priced,
    cycle: &BillingCycle,
    interval: Interval,
    left_out: &mut Vec<String>,
) -> i64 {
    match per_interval(priced, cycle) {
        Ok(amount) => to_minor(interval.per_month(amount), priced.exponent),
        Err(reason) => {
            left_out.push(format!(
                "{}: billing cycle {} {reason}: not counted in MRR",
                priced.sub.id, cycle.sequence
            ));
            0
        }
    }
}

fn per_interval(priced: &Priced, cycle: &BillingCycle) -> Result<Decimal, String> {
    let scheme = cycle
        .pricing_scheme
        .as_ref()
        .ok_or("has no pricing scheme")?;
    if let Some(model) = scheme.pricing_model.as_deref() {
        return tiered(priced, model, &scheme.tiers);
    }
    let price = scheme.fixed_price.as_ref().ok_or("has no fixed price")?;
    Ok(major(price, priced.currency)? * priced.quantity)
}

/// PayPal's tiered plans, with per-unit tier amounts: `VOLUME` bills every unit at the rate
/// of the tier the quantity falls in; `TIERED` bills each tier's units at its own rate.
fn tiered(priced: &Priced, model: &str, tiers: &[PricingTier]) -> Result<Decimal, String> {
    let tiers = read_tiers(tiers, priced.currency)?;
    let quantity = priced.quantity;
    match model {
        "VOLUME" => tiers
            .iter()
            .find(|tier| tier.start <= quantity && tier.end.is_none_or(|end| quantity <= end))
            .map(|tier| tier.unit * quantity)
            .ok_or_else(|| format!("has no {model} tier for quantity {quantity}")),
        "TIERED" => Ok(tiers
            .iter()
            .map(|tier| tier.units_of(quantity) * tier.unit)
            .sum()),
        other => Err(format!(
            "has pricing model {other}, which Fahwa does not know"
        )),
    }
}

struct Tier {
    start: Decimal,
    end: Option<Decimal>,
    unit: Decimal,
}

impl Tier {
    /// The units of `quantity` within this tier, whose first unit is `starting_quantity`:
    /// tiers of 1–10 and 11–20 hold 10 and 5 of a quantity of 15.
    fn units_of(&self, quantity: Decimal) -> Decimal {
        let below = (self.start - Decimal::ONE).max(Decimal::ZERO);
        let top = self.end.map_or(quantity, |end| end.min(quantity));
        (top - below).max(Decimal::ZERO)
    }
}

fn read_tiers(tiers: &[PricingTier], currency: &str) -> Result<Vec<Tier>, String> {
    if tiers.is_empty() {
        return Err("has a pricing model but no tiers".into());
    }
    tiers
        .iter()
        .map(|tier| {
            let end = match tier.ending_quantity.as_deref() {
                Some(text) => Some(number(text)?),
                None => None,
            };
            Ok(Tier {
                start: number(&tier.starting_quantity)?,
                end,
                unit: major(&tier.amount, currency)?,
            })
        })
        .collect()
}

/// An amount in major units, refused in another currency than the subscription's.
fn major(money: &Money, currency: &str) -> Result<Decimal, String> {
    if !money.currency_code.eq_ignore_ascii_case(currency) {
        return Err(format!(
            "is priced in {}, not {currency}",
            money.currency_code.to_uppercase()
        ));
    }
    number(&money.value)
}

fn number(text: &str) -> Result<Decimal, String> {
    text.parse::<Decimal>()
        .map_err(|_| format!("has {text:?} where a number belongs"))
}

fn to_minor(monthly: Decimal, exponent: u32) -> i64 {
    round_minor(monthly * Decimal::from(10i64.pow(exponent)))
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    fn utc(day: &str) -> DateTime<Utc> {
        format!("{day}T00:00:00Z").parse().unwrap()
    }

    fn cycle(
        tenure: &str,
        sequence: u32,
        unit: &str,
        count: u32,
        total: u32,
        price: &str,
    ) -> Value {
        json!({
            "frequency": {"interval_unit": unit, "interval_count": count},
            "tenure_type": tenure,
            "sequence": sequence,
            "total_cycles": total,
            "pricing_scheme": {
                "version": 1,
                "fixed_price": {"currency_code": "USD", "value": price},
                "create_time": "2023-12-01T00:00:00Z",
                "update_time": "2023-12-01T00:00:00Z"
            }
        })
    }

    /// Shaped like the "Show plan details" example of billing_subscriptions_v1.
    fn plan_with(cycles: Vec<Value>) -> Value {
        json!({
            "id": "P-5ML4271244454362WXNWU5NQ",
            "product_id": "PROD-XXCD1234QWER65782",
            "name": "Video Streaming Service Plan",
            "description": "Video Streaming Service basic plan",
            "status": "ACTIVE",
            "billing_cycles": cycles,
            "payment_preferences": {
                "auto_bill_outstanding": true,
                "setup_fee": {"value": "10", "currency_code": "USD"},
                "setup_fee_failure_action": "CONTINUE",
                "payment_failure_threshold": 3
            },
            "taxes": {"percentage": "10", "inclusive": false},
            "quantity_supported": true,
            "create_time": "2023-12-01T00:00:00Z",
            "update_time": "2023-12-01T00:00:00Z",
            "links": []
        })
    }

    fn monthly_plan(price: &str) -> Value {
        plan_with(vec![cycle("REGULAR", 1, "MONTH", 1, 0, price)])
    }

    /// Shaped like the "Show subscription details" example, started 2024-01-01.
    fn subscription(status: &str, quantity: &str) -> Value {
        json!({
            "id": "I-BW452GLLEP1G",
            "plan_id": "P-5ML4271244454362WXNWU5NQ",
            "start_time": "2024-01-01T00:00:00Z",
            "quantity": quantity,
            "shipping_amount": {"currency_code": "USD", "value": "0.0"},
            "subscriber": {
                "name": {"given_name": "John", "surname": "Doe"},
                "email_address": "customer@example.com",
                "payer_id": "2J6QB8YJQSJRJ"
            },
            "billing_info": {
                "outstanding_balance": {"currency_code": "USD", "value": "0.0"},
                "cycle_executions": [
                    {"tenure_type": "REGULAR", "sequence": 1, "cycles_completed": 1,
                     "cycles_remaining": 0, "current_pricing_scheme_version": 1, "total_cycles": 0}
                ],
                "last_payment": {
                    "amount": {"currency_code": "USD", "value": "10.00"},
                    "time": "2024-01-01T00:05:00Z"
                },
                "next_billing_time": "2024-02-01T10:00:00Z",
                "failed_payments_count": 0
            },
            "create_time": "2023-12-31T23:50:00Z",
            "update_time": "2024-01-01T00:05:00Z",
            "status": status,
            "status_update_time": "2024-01-01T00:05:00Z",
            "links": []
        })
    }

    fn derived(sub: Value, plan: Value) -> Derived {
        let sub: Subscription = serde_json::from_value(sub).unwrap();
        let plan: Plan = serde_json::from_value(plan).unwrap();
        derive(&sub, &plan).unwrap()
    }

    fn steps(sub: Value, plan: Value) -> Vec<(String, i64)> {
        derived(sub, plan)
            .steps
            .into_iter()
            .map(|step| (step.at.format("%Y-%m-%d").to_string(), step.amount_minor))
            .collect()
    }

    fn incomplete(sub: Value, plan: Value) -> Incomplete {
        let sub: Subscription = serde_json::from_value(sub).unwrap();
        let plan: Plan = serde_json::from_value(plan).unwrap();
        derive(&sub, &plan).unwrap_err()
    }

    fn from_jan(amount: i64) -> Vec<(String, i64)> {
        vec![("2024-01-01".into(), amount)]
    }

    #[test]
    fn the_regular_price_times_the_quantity_counts_from_the_start() {
        let result = derived(subscription("ACTIVE", "3"), monthly_plan("10.00"));
        assert_eq!(result.customer, "2J6QB8YJQSJRJ");
        assert_eq!(result.currency, "USD");
        assert!(result.left_out.is_empty(), "{:?}", result.left_out);
        assert_eq!(
            result.steps,
            vec![Step {
                at: utc("2024-01-01"),
                amount_minor: 3000
            }]
        );
        let mut without_quantity = subscription("ACTIVE", "1");
        without_quantity.as_object_mut().unwrap().remove("quantity");
        assert_eq!(
            steps(without_quantity, monthly_plan("10")),
            from_jan(1000),
            "one by default"
        );
    }

    #[test]
    fn intervals_are_normalised_to_a_month_and_rounded_once() {
        let cases = [
            ("MONTH", 3, "30.00", 1000),
            ("YEAR", 1, "100.00", 833),   // 8.333…
            ("WEEK", 1, "10.00", 4333),   // 10 × 52 / 12 = 43.333…
            ("WEEK", 2, "10.00", 2167),   // 21.666…
            ("DAY", 1, "1.00", 3042),     // 365 / 12 = 30.416…
            ("YEAR", 1, "0.06", 1),       // 0.5 cent: half away from zero
            ("MONTH", 1, "19.995", 2000), // three decimals, rounded once
        ];
        for (unit, count, price, expected) in cases {
            let plan = plan_with(vec![cycle("REGULAR", 1, unit, count, 0, price)]);
            assert_eq!(
                steps(subscription("ACTIVE", "1"), plan),
                from_jan(expected),
                "{unit} × {count} at {price}"
            );
        }
    }

    #[test]
    fn currencies_without_decimals_count_whole_units() {
        let mut plan = plan_with(vec![cycle("REGULAR", 1, "YEAR", 1, 0, "12000")]);
        plan["billing_cycles"][0]["pricing_scheme"]["fixed_price"]["currency_code"] = json!("JPY");
        let result = derived(subscription("ACTIVE", "1"), plan.clone());
        assert_eq!(result.currency, "JPY");
        assert_eq!(result.steps[0].amount_minor, 1000);

        plan["billing_cycles"][0]["pricing_scheme"]["fixed_price"]["currency_code"] = json!("TND");
        let result = derived(subscription("ACTIVE", "1"), plan);
        assert!(result.steps.is_empty());
        assert_eq!(result.left_out.len(), 1, "{:?}", result.left_out);
    }

    #[test]
    fn trial_cycles_come_first_and_do_not_count() {
        // The documented plan: two paid trials (2 × 3 USD, 3 × 6 USD), then 12 months of 10.
        let plan = plan_with(vec![
            cycle("REGULAR", 3, "MONTH", 1, 12, "10"),
            cycle("TRIAL", 1, "MONTH", 1, 2, "3"),
            cycle("TRIAL", 2, "MONTH", 1, 3, "6"),
        ]);
        let result = derived(subscription("ACTIVE", "1"), plan);
        assert_eq!(
            result.steps,
            vec![
                Step {
                    at: utc("2024-06-01"),
                    amount_minor: 1000
                },
                Step {
                    at: utc("2025-06-01"),
                    amount_minor: 0
                },
            ]
        );
        assert_eq!(result.left_out.len(), 2, "{:?}", result.left_out);
        assert!(result.left_out[0].contains("trial cycle 1 charges 3 USD"));

        let mut free = cycle("TRIAL", 1, "WEEK", 1, 2, "0");
        free.as_object_mut().unwrap().remove("pricing_scheme");
        let plan = plan_with(vec![free, cycle("REGULAR", 2, "MONTH", 1, 0, "10")]);
        let result = derived(subscription("ACTIVE", "1"), plan);
        assert_eq!(result.steps[0].at, utc("2024-01-15"));
        assert!(result.left_out.is_empty(), "a free trial needs no sentence");
    }

    #[test]
    fn regular_cycles_apply_in_sequence_each_for_its_cycles() {
        let plan = plan_with(vec![
            cycle("REGULAR", 1, "MONTH", 1, 3, "5"),
            cycle("REGULAR", 2, "MONTH", 1, 0, "10"),
        ]);
        assert_eq!(
            steps(subscription("ACTIVE", "1"), plan),
            vec![("2024-01-01".into(), 500), ("2024-04-01".into(), 1000)]
        );
        let same_price = plan_with(vec![
            cycle("REGULAR", 1, "MONTH", 1, 3, "10"),
            cycle("REGULAR", 2, "YEAR", 1, 0, "120"),
        ]);
        assert_eq!(
            steps(subscription("ACTIVE", "1"), same_price),
            from_jan(1000),
            "equal amounts merge"
        );
    }

    #[test]
    fn months_are_calendar_months_clamped_to_the_last_day() {
        let mut sub = subscription("ACTIVE", "1");
        sub["start_time"] = json!("2024-01-31T10:00:00Z");
        let plan = plan_with(vec![cycle("REGULAR", 1, "MONTH", 1, 1, "10")]);
        let result = derived(sub, plan);
        assert_eq!(
            result.steps[1].at,
            "2024-02-29T10:00:00Z".parse::<DateTime<Utc>>().unwrap()
        );
    }

    #[test]
    fn cancelled_and_expired_end_at_their_status_update() {
        for status in ["CANCELLED", "EXPIRED"] {
            let mut sub = subscription(status, "1");
            sub["status_update_time"] = json!("2024-03-15T12:00:00Z");
            let result = derived(sub, monthly_plan("10"));
            assert_eq!(result.steps.len(), 2, "{status}");
            assert_eq!(
                result.steps[1],
                Step {
                    at: "2024-03-15T12:00:00Z".parse().unwrap(),
                    amount_minor: 0
                }
            );
        }
        let mut during_trial = subscription("CANCELLED", "1");
        during_trial["status_update_time"] = json!("2024-01-10T00:00:00Z");
        let plan = plan_with(vec![
            cycle("TRIAL", 1, "MONTH", 1, 1, "0"),
            cycle("REGULAR", 2, "MONTH", 1, 0, "10"),
        ]);
        assert!(steps(during_trial, plan).is_empty());
    }

    #[test]
    fn pending_approved_and_suspended_do_not_count() {
        for status in ["APPROVAL_PENDING", "APPROVED", "SUSPENDED", "BRAND_NEW"] {
            let result = derived(subscription(status, "1"), monthly_plan("10"));
            assert!(result.steps.is_empty(), "{status}");
            assert_eq!(result.left_out.len(), 1, "{status}");
            assert!(result.left_out[0].contains(status));
        }
        let result = derived(subscription("SUSPENDED", "1"), monthly_plan("10"));
        assert!(result.left_out[0].contains("suspended"));
    }

    #[test]
    fn volume_tiers_price_every_unit_at_the_reached_tier() {
        let plan = tiered_plan("VOLUME");
        assert_eq!(
            steps(subscription("ACTIVE", "15"), plan.clone()),
            from_jan(12_000)
        );
        assert_eq!(steps(subscription("ACTIVE", "5"), plan), from_jan(5000));
    }

    #[test]
    fn graduated_tiers_price_each_tier_at_its_rate() {
        // 10 × 10.00 + 5 × 8.00 = 140.00; 25: 100 + 80 + 5 × 5.00.
        let plan = tiered_plan("TIERED");
        assert_eq!(
            steps(subscription("ACTIVE", "15"), plan.clone()),
            from_jan(14_000)
        );
        assert_eq!(steps(subscription("ACTIVE", "25"), plan), from_jan(20_500));
    }

    #[test]
    fn unknown_or_unreadable_tiers_are_left_out() {
        let mut plan = tiered_plan("STAIRCASE");
        let result = derived(subscription("ACTIVE", "3"), plan.clone());
        assert!(result.steps.is_empty());
        assert!(
            result.left_out[0].contains("STAIRCASE"),
            "{:?}",
            result.left_out
        );
        plan["billing_cycles"][0]["pricing_scheme"]["pricing_model"] = json!("VOLUME");
        plan["billing_cycles"][0]["pricing_scheme"]["tiers"][0]["starting_quantity"] = json!("2");
        let result = derived(subscription("ACTIVE", "1"), plan);
        assert!(result.steps.is_empty(), "no tier for 1");
        assert_eq!(result.left_out.len(), 1);
    }

    fn tiered_plan(model: &str) -> Value {
        let mut regular = cycle("REGULAR", 1, "MONTH", 1, 0, "0");
        regular["pricing_scheme"] = json!({
            "version": 1,
            "pricing_model": model,
            "tiers": [
                {"starting_quantity": "1", "ending_quantity": "10",
                 "amount": {"value": "10", "currency_code": "USD"}},
                {"starting_quantity": "11", "ending_quantity": "20",
                 "amount": {"value": "8", "currency_code": "USD"}},
                {"starting_quantity": "21", "amount": {"value": "5", "currency_code": "USD"}}
            ]
        });
        plan_with(vec![regular])
    }

    #[test]
    fn the_inline_plan_wins_and_a_wrong_or_overridden_plan_is_incomplete() {
        let mut overridden = subscription("ACTIVE", "1");
        overridden["plan_overridden"] = json!(true);
        assert_eq!(
            incomplete(overridden.clone(), monthly_plan("10")),
            Incomplete::NoPlan
        );
        let mut inline = monthly_plan("7.50");
        inline.as_object_mut().unwrap().remove("id");
        overridden["plan"] = inline;
        assert_eq!(steps(overridden, monthly_plan("10")), from_jan(750));

        let mut other = monthly_plan("10");
        other["id"] = json!("P-OTHER");
        assert_eq!(
            incomplete(subscription("ACTIVE", "1"), other),
            Incomplete::NoPlan
        );
    }

    #[test]
    fn what_the_payload_lacks_is_incomplete() {
        let mut no_customer = subscription("ACTIVE", "1");
        no_customer.as_object_mut().unwrap().remove("subscriber");
        assert_eq!(
            incomplete(no_customer, monthly_plan("10")),
            Incomplete::NoCustomer
        );
        let mut no_start = subscription("ACTIVE", "1");
        let object = no_start.as_object_mut().unwrap();
        object.remove("start_time");
        object.remove("create_time");
        assert_eq!(
            incomplete(no_start, monthly_plan("10")),
            Incomplete::NoStart
        );
    }

    #[test]
    fn unknown_fields_and_odd_values_are_tolerated() {
        let mut sub = subscription("ACTIVE", "2");
        sub["brand_new"] = json!({"nested": [1, null]});
        sub["subscriber"]["payment_source"] = json!({"card": {"brand": "VISA"}});
        sub["billing_info"]["cycle_executions"] = Value::Null;
        let mut plan = monthly_plan("10");
        plan["billing_cycles"][0]["brand_new"] = json!(true);
        assert_eq!(steps(sub, plan), from_jan(2000));

        let result = derived(subscription("ACTIVE", "two"), monthly_plan("10"));
        assert!(result.steps.is_empty());
        assert_eq!(result.left_out.len(), 1);
    }

    #[test]
    fn amount_at_reads_the_step_in_force() {
        let steps = vec![
            Step {
                at: utc("2024-01-01"),
                amount_minor: 2000,
            },
            Step {
                at: utc("2024-06-01"),
                amount_minor: 0,
            },
        ];
        assert_eq!(amount_at(&steps, utc("2023-12-31")), 0);
        assert_eq!(amount_at(&steps, utc("2024-01-01")), 2000);
        assert_eq!(amount_at(&steps, utc("2024-05-31")), 2000);
        assert_eq!(amount_at(&steps, utc("2030-01-01")), 0);
    }
}
