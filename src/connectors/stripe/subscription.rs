//! Stripe's subscription payloads, read as tolerantly as Stripe's API versions require: a
//! connected account may pin any version, so one field can have several shapes. The period
//! end moved from the subscription to each item; the single `discount` became `discounts`
//! (ids unless expanded); a discount's coupon moved from `coupon` to `source.coupon` (no
//! longer expanded by default); the legacy `plan` sits next to `price` on items; an invoice
//! names its subscription at `subscription` or at `parent.subscription_details.subscription`.
//! Only the fields MRR needs are read; every other field is ignored, so that a field Stripe
//! adds tomorrow cannot make a payload unreadable.

use std::borrow::Cow;
use std::str::FromStr;

use rust_decimal::Decimal;
use serde::de::{DeserializeOwned, Error as _};
use serde::{Deserialize, Deserializer};
use serde_json::Value;

/// An expandable field: an id, or the object itself when the request asked for it.
#[derive(Debug, Clone)]
pub enum Expandable<T> {
    Id(String),
    Object(T),
}

// Not `#[serde(untagged)]`: untagged enums buffer numbers in a way that breaks under
// serde_json's `arbitrary_precision` (which any crate in the build may turn on), and their
// errors do not say which shape failed. Going through a `Value` keeps numbers intact.
impl<'de, T: DeserializeOwned> Deserialize<'de> for Expandable<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        match Value::deserialize(deserializer)? {
            Value::String(id) => Ok(Expandable::Id(id)),
            other => serde_json::from_value(other)
                .map(Expandable::Object)
                .map_err(D::Error::custom),
        }
    }
}

/// Any object of which only the id matters here (an expanded customer, subscription...).
#[derive(Deserialize, Debug, Clone)]
pub struct Identified {
    pub id: String,
}

impl Expandable<Identified> {
    pub fn id(&self) -> &str {
        match self {
            Expandable::Id(id) => id,
            Expandable::Object(object) => &object.id,
        }
    }
}

/// `subscription.discount` and each entry of `subscription.discounts`.
pub type DiscountRef = Expandable<Discount>;

#[derive(Deserialize, Debug, Clone)]
pub struct Subscription {
    pub id: String,
    pub customer: Expandable<Identified>,
    pub status: String,
    pub start_date: i64,
    pub created: i64,
    pub trial_start: Option<i64>,
    pub trial_end: Option<i64>,
    pub ended_at: Option<i64>,
    pub canceled_at: Option<i64>,
    pub cancel_at: Option<i64>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub cancel_at_period_end: bool,
    /// Absent from API versions where it moved to the items.
    pub current_period_end: Option<i64>,
    pub pause_collection: Option<Value>,
    pub currency: Option<String>,
    pub items: ItemList,
    /// Older API versions: the one discount, as an object.
    pub discount: Option<DiscountRef>,
    /// Newer API versions: ids unless `discounts` was expanded.
    #[serde(default, deserialize_with = "null_as_default")]
    pub discounts: Vec<DiscountRef>,
}

impl Subscription {
    pub fn customer_id(&self) -> &str {
        self.customer.id()
    }
}

#[derive(Deserialize, Debug, Clone)]
pub struct ItemList {
    #[serde(default, deserialize_with = "null_as_default")]
    pub data: Vec<Item>,
    /// True when the embedded list is only the first page of the items.
    #[serde(default, deserialize_with = "null_as_default")]
    pub has_more: bool,
}

#[derive(Deserialize, Debug, Clone)]
pub struct Item {
    pub id: String,
    pub quantity: Option<u64>,
    pub price: Option<Price>,
    pub plan: Option<Plan>,
    /// Newer API versions only.
    pub current_period_end: Option<i64>,
    /// Discounts on this item alone (not on the whole subscription).
    #[serde(default, deserialize_with = "null_as_default")]
    pub discounts: Vec<DiscountRef>,
}

impl Item {
    /// The item's price, or its legacy plan seen as a price when there is no `price`.
    pub fn effective_price(&self) -> Option<Cow<'_, Price>> {
        match (&self.price, &self.plan) {
            (Some(price), _) => Some(Cow::Borrowed(price)),
            (None, Some(plan)) => Some(Cow::Owned(plan.to_price())),
            (None, None) => None,
        }
    }
}

#[derive(Deserialize, Debug, Clone)]
pub struct Price {
    pub id: String,
    pub currency: String,
    pub unit_amount: Option<i64>,
    /// Minor units with up to 12 decimals; exact where `unit_amount` is rounded or absent.
    pub unit_amount_decimal: Option<String>,
    /// `per_unit` or `tiered`.
    pub billing_scheme: Option<String>,
    /// `graduated` or `volume`.
    pub tiers_mode: Option<String>,
    /// Only present when expanded (`expand[]=…price.tiers`).
    pub tiers: Option<Vec<Tier>>,
    pub recurring: Option<Recurring>,
    pub transform_quantity: Option<TransformQuantity>,
}

#[derive(Deserialize, Debug, Clone)]
pub struct Recurring {
    /// `day`, `week`, `month` or `year`.
    pub interval: String,
    #[serde(default = "one")]
    pub interval_count: u32,
    /// `licensed` or `metered`.
    pub usage_type: Option<String>,
}

#[derive(Deserialize, Debug, Clone)]
pub struct TransformQuantity {
    pub divide_by: u64,
    /// `up` or `down`.
    pub round: String,
}

#[derive(Deserialize, Debug, Clone)]
pub struct Tier {
    /// Inclusive; `null` for the last, unbounded tier.
    pub up_to: Option<u64>,
    pub unit_amount: Option<i64>,
    pub unit_amount_decimal: Option<String>,
    pub flat_amount: Option<i64>,
    pub flat_amount_decimal: Option<String>,
}

/// The legacy Plan: a Price's fields, flattened and named differently.
#[derive(Deserialize, Debug, Clone)]
pub struct Plan {
    pub id: String,
    pub currency: String,
    pub amount: Option<i64>,
    pub amount_decimal: Option<String>,
    pub interval: String,
    #[serde(default = "one")]
    pub interval_count: u32,
    pub usage_type: Option<String>,
    pub billing_scheme: Option<String>,
    pub tiers_mode: Option<String>,
    pub tiers: Option<Vec<Tier>>,
    pub transform_usage: Option<TransformQuantity>,
}

impl Plan {
    pub fn to_price(&self) -> Price {
        Price {
            id: self.id.clone(),
            currency: self.currency.clone(),
            unit_amount: self.amount,
            unit_amount_decimal: self.amount_decimal.clone(),
            billing_scheme: self.billing_scheme.clone(),
            tiers_mode: self.tiers_mode.clone(),
            tiers: self.tiers.clone(),
            recurring: Some(Recurring {
                interval: self.interval.clone(),
                interval_count: self.interval_count,
                usage_type: self.usage_type.clone(),
            }),
            transform_quantity: self.transform_usage.clone(),
        }
    }
}

#[derive(Deserialize, Debug, Clone)]
pub struct Discount {
    pub id: Option<String>,
    pub start: Option<i64>,
    /// Set for `repeating` coupons only.
    pub end: Option<i64>,
    /// API versions before 2025-09-30: always the whole coupon.
    pub coupon: Option<Coupon>,
    /// 2025-09-30 and later: the coupon's id unless `…source.coupon` was expanded.
    pub source: Option<DiscountSource>,
}

#[derive(Deserialize, Debug, Clone)]
pub struct DiscountSource {
    pub coupon: Option<Expandable<Coupon>>,
}

#[derive(Deserialize, Debug, Clone)]
pub struct Coupon {
    pub id: String,
    /// A JSON number such as 25.5, read exactly (see `decimal_number`).
    #[serde(default, deserialize_with = "decimal_number")]
    pub percent_off: Option<Decimal>,
    /// Minor units of `currency`, per invoice.
    pub amount_off: Option<i64>,
    pub currency: Option<String>,
    /// `once`, `repeating` or `forever`.
    pub duration: String,
    pub duration_in_months: Option<u32>,
}

#[derive(Deserialize, Debug, Clone)]
pub struct Event {
    pub id: String,
    #[serde(rename = "type")]
    pub type_: String,
    pub created: i64,
    pub data: EventData,
    pub api_version: Option<String>,
}

#[derive(Deserialize, Debug, Clone)]
pub struct EventData {
    pub object: Value,
}

/// Stripe's list envelope (`"object": "list"`).
#[derive(Deserialize, Debug, Clone)]
pub struct List<T> {
    pub data: Vec<T>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub has_more: bool,
    pub url: Option<String>,
}

/// The invoice's subscription, from either API shape, expanded or not.
pub fn invoice_subscription_id(invoice: &Value) -> Option<String> {
    invoice.get("subscription").and_then(id_of).or_else(|| {
        invoice
            .pointer("/parent/subscription_details/subscription")
            .and_then(id_of)
    })
}

pub fn invoice_customer_id(invoice: &Value) -> Option<String> {
    invoice.get("customer").and_then(id_of)
}

/// An expandable field's id: the string itself, or the expanded object's `id`.
fn id_of(field: &Value) -> Option<String> {
    match field {
        Value::String(id) => Some(id.clone()),
        Value::Object(object) => object.get("id")?.as_str().map(str::to_owned),
        _ => None,
    }
}

fn one() -> u32 {
    1
}

/// `null` read like an absent field, which Stripe does not always distinguish.
fn null_as_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

// Through the number's own text rather than an f64 so that 33.3 stays 33.3: without
// `arbitrary_precision` that text is the shortest that reads back as the same f64, which is
// what Stripe wrote for any percent it accepts (at most two decimals).
fn decimal_number<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Decimal>, D::Error> {
    let Some(number) = Option::<serde_json::Number>::deserialize(deserializer)? else {
        return Ok(None);
    };
    let text = number.to_string();
    Decimal::from_str(&text)
        .or_else(|_| Decimal::from_scientific(&text))
        .map(Some)
        .map_err(D::Error::custom)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn an_invoice_names_its_subscription_in_either_shape() {
        let old = json!({"object": "invoice", "customer": "cus_1", "subscription": "sub_1"});
        let new = json!({
            "object": "invoice",
            "customer": {"id": "cus_1", "object": "customer"},
            "parent": {
                "type": "subscription_details",
                "quote_details": null,
                "subscription_details": {"metadata": {}, "subscription": "sub_1"}
            }
        });
        let expanded = json!({
            "object": "invoice",
            "customer": "cus_1",
            "subscription": null,
            "parent": {"subscription_details": {"subscription": {"id": "sub_1", "object": "subscription"}}}
        });
        for invoice in [&old, &new, &expanded] {
            assert_eq!(invoice_subscription_id(invoice).as_deref(), Some("sub_1"));
            assert_eq!(invoice_customer_id(invoice).as_deref(), Some("cus_1"));
        }
        let one_off =
            json!({"object": "invoice", "customer": "cus_1", "subscription": null, "parent": null});
        assert_eq!(invoice_subscription_id(&one_off), None);
    }

    #[test]
    fn a_percent_is_read_exactly() {
        let coupon: Coupon = serde_json::from_value(json!({
            "id": "Z4OV52SU", "object": "coupon", "percent_off": 33.3, "amount_off": null,
            "currency": null, "duration": "forever", "duration_in_months": null
        }))
        .unwrap();
        assert_eq!(coupon.percent_off, Some(Decimal::from_str("33.3").unwrap()));
        let whole: Coupon =
            serde_json::from_value(json!({"id": "c", "percent_off": 50, "duration": "once"}))
                .unwrap();
        assert_eq!(whole.percent_off, Some(Decimal::from(50)));
    }

    #[test]
    fn an_event_and_a_list_are_read() {
        let event: Event = serde_json::from_value(json!({
            "id": "evt_1", "object": "event", "api_version": "2025-09-30.clover",
            "created": 1_700_000_000, "livemode": false, "pending_webhooks": 1,
            "request": {"id": null, "idempotency_key": null},
            "type": "customer.subscription.updated",
            "data": {"object": {"id": "sub_1"}, "previous_attributes": {"status": "trialing"}}
        }))
        .unwrap();
        assert_eq!(event.type_, "customer.subscription.updated");
        assert_eq!(event.data.object["id"], "sub_1");
        let list: List<Identified> = serde_json::from_value(json!({
            "object": "list", "data": [{"id": "sub_1"}, {"id": "sub_2"}],
            "has_more": true, "url": "/v1/subscriptions"
        }))
        .unwrap();
        assert_eq!(list.data.len(), 2);
        assert!(list.has_more);
    }
}
