//! Lenient views of Stripe events: only the fields the service uses are
//! read, unknown fields are ignored, and both API shapes are accepted.

use std::collections::HashMap;

use serde::{Deserialize, Deserializer};

use crate::kinds::{EventKind, SubscriptionStatus};

/// The envelope of every Stripe event.
#[derive(Debug, Clone, Deserialize)]
pub struct Event {
    /// `evt_...`, unique per event; deliveries of one event share it.
    pub id: String,
    /// For example `customer.subscription.updated`.
    #[serde(rename = "type")]
    pub kind: EventKind,
    /// When Stripe created the event (unix seconds, one-second resolution).
    #[serde(default)]
    pub created: i64,
    /// Whether the event comes from live mode.
    #[serde(default)]
    pub livemode: bool,
    /// The object the event is about.
    #[serde(default)]
    pub data: EventData,
}

/// `data` of an event.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct EventData {
    /// The object as it was when the event happened.
    #[serde(default)]
    pub object: serde_json::Value,
}

/// Why a body is not an event.
#[derive(Debug, thiserror::Error)]
pub enum EventError {
    /// Not JSON, or missing `id` or `type`.
    #[error("{0}")]
    Malformed(String),
}

impl Event {
    /// Parses a webhook body, requiring a non-empty `id` and `type`.
    pub fn parse(body: &[u8]) -> Result<Self, EventError> {
        // No database stores NUL in text, and Stripe never sends one.
        if body.windows(6).any(|w| w.eq_ignore_ascii_case(b"\\u0000")) {
            return Err(EventError::Malformed(
                "event contains a NUL character".into(),
            ));
        }
        let event: Event = serde_json::from_slice(body)
            .map_err(|e| EventError::Malformed(format!("not a Stripe event: {e}")))?;
        if event.id.is_empty() || event.kind.as_str().is_empty() {
            return Err(EventError::Malformed(
                "event has an empty id or type".into(),
            ));
        }
        Ok(event)
    }

    /// Reads `data.object` as `T`.
    pub fn object<T: for<'de> Deserialize<'de>>(&self) -> Result<T, String> {
        T::deserialize(&self.data.object).map_err(|e| format!("data.object: {e}"))
    }

    /// The customer its object names: its own `customer` (an id or
    /// expanded), or a dispute's expanded charge's.
    pub fn customer(&self) -> Option<&str> {
        let object = &self.data.object;
        let customer = &object["customer"];
        customer
            .as_str()
            .or_else(|| customer["id"].as_str())
            .or_else(|| object["charge"]["customer"].as_str())
    }
}

/// A Stripe subscription, as far as entitlements need it.
#[derive(Debug, Clone, Deserialize)]
pub struct SubscriptionObject {
    /// `sub_...`.
    pub id: String,
    /// The customer id (or the expanded customer).
    #[serde(default, deserialize_with = "id_or_object")]
    pub customer: Option<String>,
    /// `active`, `trialing`, `past_due`, ...
    pub status: SubscriptionStatus,
    /// Canceled, effective at the period end.
    #[serde(default, deserialize_with = "null_as_default")]
    pub cancel_at_period_end: bool,
    /// Period start on the subscription (API versions before 2025-03-31).
    #[serde(default)]
    pub current_period_start: Option<i64>,
    /// Period end on the subscription (API versions before 2025-03-31).
    #[serde(default)]
    pub current_period_end: Option<i64>,
    /// Our `org_id` and `plan`, set at checkout.
    #[serde(default, deserialize_with = "null_as_default")]
    pub metadata: Metadata,
    /// What the subscription buys.
    #[serde(default, deserialize_with = "null_as_default")]
    pub items: List<SubscriptionItemObject>,
}

/// A Stripe list object.
#[derive(Debug, Clone, Deserialize)]
pub struct List<T> {
    /// The page of objects.
    #[serde(default = "Vec::new")]
    pub data: Vec<T>,
}

impl<T> Default for List<T> {
    fn default() -> Self {
        Self { data: Vec::new() }
    }
}

/// A subscription item.
#[derive(Debug, Clone, Deserialize)]
pub struct SubscriptionItemObject {
    /// `si_...`.
    pub id: String,
    /// The price id (or the expanded price).
    #[serde(default, deserialize_with = "id_or_object")]
    pub price: Option<String>,
    /// Legacy plan object, carrying the same id as the price.
    #[serde(default, deserialize_with = "id_or_object")]
    pub plan: Option<String>,
    /// Units bought; absent for metered prices.
    #[serde(default)]
    pub quantity: Option<i64>,
    /// Period start on the item (API versions from 2025-03-31).
    #[serde(default)]
    pub current_period_start: Option<i64>,
    /// Period end on the item (API versions from 2025-03-31).
    #[serde(default)]
    pub current_period_end: Option<i64>,
}

impl SubscriptionObject {
    /// The period end wherever this API version puts it.
    pub fn period_end(&self) -> Option<i64> {
        self.current_period_end.or_else(|| {
            self.items
                .data
                .iter()
                .filter_map(|i| i.current_period_end)
                .max()
        })
    }

    /// The period start wherever this API version puts it.
    pub fn period_start(&self) -> Option<i64> {
        self.current_period_start.or_else(|| {
            self.items
                .data
                .iter()
                .filter_map(|i| i.current_period_start)
                .min()
        })
    }
}

/// The organization id `metadata` holds under the first of `keys` it has
/// (`stripe.org_id_keys`: `org_id`, then `orgId`, unless configured).
pub fn org_id_in<'a>(metadata: &'a Metadata, keys: &[String]) -> Option<&'a str> {
    keys.iter()
        .filter_map(|key| metadata.get(key))
        .map(String::as_str)
        .find(|s| !s.is_empty())
}

/// An invoice, as far as dunning needs it.
#[derive(Debug, Clone, Deserialize)]
pub struct InvoiceObject {
    /// `in_...`.
    pub id: String,
    /// When the invoice was created (unix seconds).
    #[serde(default)]
    pub created: Option<i64>,
    /// The customer id (or the expanded customer).
    #[serde(default, deserialize_with = "id_or_object")]
    pub customer: Option<String>,
    /// The subscription, in API versions before 2025-03-31.
    #[serde(default, deserialize_with = "id_or_object")]
    pub subscription: Option<String>,
    /// Where newer API versions put the subscription.
    #[serde(default, deserialize_with = "null_as_default")]
    pub parent: InvoiceParent,
}

/// `invoice.parent`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct InvoiceParent {
    /// Set when a subscription billed the invoice.
    #[serde(default)]
    pub subscription_details: Option<SubscriptionDetails>,
}

/// `invoice.parent.subscription_details`.
#[derive(Debug, Clone, Deserialize)]
pub struct SubscriptionDetails {
    /// The subscription id (or the expanded subscription).
    #[serde(default, deserialize_with = "id_or_object")]
    pub subscription: Option<String>,
}

impl InvoiceObject {
    /// The subscription that billed this invoice, in either API shape.
    pub fn subscription_id(&self) -> Option<&str> {
        self.subscription.as_deref().or_else(|| {
            self.parent
                .subscription_details
                .as_ref()
                .and_then(|d| d.subscription.as_deref())
        })
    }
}

/// A charge or a dispute: what attributes it to an organization.
#[derive(Debug, Clone, Deserialize)]
pub struct PaymentObject {
    /// `ch_...` or `dp_...`.
    pub id: String,
    /// The customer (charges carry it).
    #[serde(default, deserialize_with = "id_or_object")]
    pub customer: Option<String>,
    /// The charge of a dispute; when expanded it names the customer.
    #[serde(default)]
    pub charge: Option<serde_json::Value>,
    /// Amount in the smallest currency unit.
    #[serde(default)]
    pub amount: Option<i64>,
    /// Refunded amount of a charge.
    #[serde(default)]
    pub amount_refunded: Option<i64>,
    /// Three-letter currency code.
    #[serde(default)]
    pub currency: Option<String>,
    /// Our `org_id`, if the charge carries it.
    #[serde(default, deserialize_with = "null_as_default")]
    pub metadata: Metadata,
    /// The payment intent the charge or dispute belongs to.
    #[serde(default, deserialize_with = "id_or_object")]
    pub payment_intent: Option<String>,
    /// Whether a charge is refunded in full.
    #[serde(default)]
    pub refunded: Option<bool>,
    /// A dispute's status: `won`, `lost`, `warning_closed`, ...
    #[serde(default)]
    pub status: Option<String>,
}

impl PaymentObject {
    /// The customer of the charge, or of a dispute's expanded charge.
    pub fn customer_id(&self) -> Option<&str> {
        self.customer
            .as_deref()
            .or_else(|| self.charge.as_ref()?.get("customer")?.as_str())
    }

    /// The organization id its metadata holds under one of `keys`.
    pub fn org_id(&self, keys: &[String]) -> Option<&str> {
        org_id_in(&self.metadata, keys)
    }
}

impl SubscriptionItemObject {
    /// The price id, from the price or else the legacy plan.
    pub fn price_id(&self) -> Option<&str> {
        self.price.as_deref().or(self.plan.as_deref())
    }
}

/// A Checkout Session, as far as linking an organization needs it.
#[derive(Debug, Clone, Deserialize)]
pub struct CheckoutSessionObject {
    /// `cs_...`.
    pub id: String,
    /// `subscription`, `payment` or `setup`.
    #[serde(default)]
    pub mode: Option<String>,
    /// The organization id we passed.
    #[serde(default)]
    pub client_reference_id: Option<String>,
    /// The customer id (or the expanded customer).
    #[serde(default, deserialize_with = "id_or_object")]
    pub customer: Option<String>,
    /// The subscription id (or the expanded subscription).
    #[serde(default, deserialize_with = "id_or_object")]
    pub subscription: Option<String>,
    /// Our `org_id` and `plan` (and a purchase's `quantity`).
    #[serde(default, deserialize_with = "null_as_default")]
    pub metadata: Metadata,
    /// `paid`, `unpaid` (a delayed payment method) or
    /// `no_payment_required`.
    #[serde(default)]
    pub payment_status: Option<String>,
    /// The payment intent of a payment-mode session.
    #[serde(default, deserialize_with = "id_or_object")]
    pub payment_intent: Option<String>,
}

impl CheckoutSessionObject {
    /// The organization id its metadata holds under one of `keys`, else
    /// `client_reference_id`.
    pub fn org_id(&self, keys: &[String]) -> Option<&str> {
        org_id_in(&self.metadata, keys).or_else(|| {
            self.client_reference_id
                .as_deref()
                .filter(|s| !s.is_empty())
        })
    }
}

/// Stripe metadata: string keys to string values.
pub type Metadata = HashMap<String, String>;

/// Reads an id that Stripe sends either as a string or, when expanded, as
/// an object with an `id`.
fn id_or_object<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<String>, D::Error> {
    Ok(match serde_json::Value::deserialize(deserializer)? {
        serde_json::Value::String(id) => Some(id),
        serde_json::Value::Object(map) => {
            map.get("id").and_then(|id| id.as_str()).map(str::to_owned)
        }
        _ => None,
    })
}

/// Reads `null` as the type's default.
fn null_as_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    proptest::proptest! {
        #![proptest_config(proptest::test_runner::Config::with_cases(512))]

        #[test]
        fn arbitrary_bytes_never_panic_the_parser(body in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..512)) {
            if let Ok(event) = Event::parse(&body) {
                let _ = event.object::<SubscriptionObject>();
                let _ = event.object::<CheckoutSessionObject>();
                let _ = event.object::<InvoiceObject>();
                let _ = event.object::<PaymentObject>();
            }
        }
    }

    #[test]
    fn an_event_without_an_id_or_type_is_malformed() {
        assert!(Event::parse(b"{\"type\": \"x\"}").is_err());
        assert!(Event::parse(b"{\"id\": \"evt_1\"}").is_err());
        assert!(Event::parse(b"{\"id\": \"\", \"type\": \"x\"}").is_err());
        assert!(Event::parse(b"not json").is_err());
        assert!(Event::parse(br#"{"id": "evt_\u0000", "type": "x"}"#).is_err());
        let event = Event::parse(b"{\"id\": \"evt_1\", \"type\": \"x\", \"extra\": 1}").unwrap();
        assert_eq!(
            (event.id.as_str(), event.kind.as_str(), event.created),
            ("evt_1", "x", 0)
        );
    }

    #[test]
    fn both_subscription_shapes_give_the_period_end() {
        let old: SubscriptionObject = serde_json::from_value(json!({
            "id": "sub_1", "status": "active", "customer": "cus_1", "current_period_end": 100,
            "items": {"data": [{"id": "si_1", "price": {"id": "price_1"}, "quantity": 2}]}
        }))
        .unwrap();
        assert_eq!(old.period_end(), Some(100));
        assert_eq!(old.items.data[0].price_id(), Some("price_1"));

        let new: SubscriptionObject = serde_json::from_value(json!({
            "id": "sub_1", "status": "active", "customer": {"id": "cus_1"}, "metadata": null,
            "items": {"data": [{"id": "si_1", "price": "price_1", "current_period_end": 200}]}
        }))
        .unwrap();
        assert_eq!(new.period_end(), Some(200));
        assert_eq!(new.customer.as_deref(), Some("cus_1"));
    }

    #[test]
    fn invoices_name_their_subscription_in_either_shape() {
        let old: InvoiceObject =
            serde_json::from_value(json!({"id": "in_1", "subscription": "sub_1"})).unwrap();
        assert_eq!(old.subscription_id(), Some("sub_1"));
        let new: InvoiceObject = serde_json::from_value(json!({
            "id": "in_1", "subscription": null,
            "parent": {"type": "subscription_details", "subscription_details": {"subscription": "sub_2"}}
        }))
        .unwrap();
        assert_eq!(new.subscription_id(), Some("sub_2"));
        let none: InvoiceObject =
            serde_json::from_value(json!({"id": "in_1", "parent": null})).unwrap();
        assert_eq!(none.subscription_id(), None);
    }

    #[test]
    fn disputes_find_the_customer_on_an_expanded_charge() {
        let dispute: PaymentObject = serde_json::from_value(
            json!({"id": "dp_1", "charge": {"id": "ch_1", "customer": "cus_1"}}),
        )
        .unwrap();
        assert_eq!(dispute.customer_id(), Some("cus_1"));
        let bare: PaymentObject =
            serde_json::from_value(json!({"id": "dp_1", "charge": "ch_1"})).unwrap();
        assert_eq!(bare.customer_id(), None);
    }

    #[test]
    fn checkout_prefers_metadata_over_client_reference() {
        let session: CheckoutSessionObject = serde_json::from_value(json!({
            "id": "cs_1", "client_reference_id": "ref", "metadata": {"org_id": "acme"}
        }))
        .unwrap();
        let keys = ["org_id".to_owned(), "orgId".to_owned()];
        assert_eq!(session.org_id(&keys), Some("acme"));
        let session: CheckoutSessionObject =
            serde_json::from_value(json!({"id": "cs_1", "client_reference_id": "ref"})).unwrap();
        assert_eq!(session.org_id(&keys), Some("ref"));
    }

    #[test]
    fn the_first_configured_key_present_names_the_organization() {
        let keys = ["org_id".to_owned(), "orgId".to_owned()];
        let guide: Metadata = [("orgId", "acme"), ("priceId", "price_1")]
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .into();
        assert_eq!(org_id_in(&guide, &keys), Some("acme"));
        let both: Metadata = [("orgId", "other"), ("org_id", "acme")]
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .into();
        assert_eq!(org_id_in(&both, &keys), Some("acme"));
        let empty: Metadata = [("org_id", ""), ("orgId", "acme")]
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .into();
        assert_eq!(org_id_in(&empty, &keys), Some("acme"));
        let custom = ["organization_id".to_owned()];
        assert_eq!(org_id_in(&guide, &custom), None);
    }
}
