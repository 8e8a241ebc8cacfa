//! Lenient views of Stripe events: only the fields the service uses are
//! read, unknown fields are ignored, and both API shapes are accepted.

use std::collections::HashMap;

use serde::{Deserialize, Deserializer};

/// The envelope of every Stripe event.
#[derive(Debug, Clone, Deserialize)]
pub struct Event {
    /// `evt_...`, unique per event; deliveries of one event share it.
    pub id: String,
    /// For example `customer.subscription.updated`.
    #[serde(rename = "type")]
    pub kind: String,
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
        let event: Event = serde_json::from_slice(body)
            .map_err(|e| EventError::Malformed(format!("not a Stripe event: {e}")))?;
        if event.id.is_empty() || event.kind.is_empty() {
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
    pub status: String,
    /// Canceled, effective at the period end.
    #[serde(default, deserialize_with = "null_as_default")]
    pub cancel_at_period_end: bool,
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

    /// `metadata.org_id`, when set.
    pub fn org_id(&self) -> Option<&str> {
        self.metadata
            .get("org_id")
            .map(String::as_str)
            .filter(|s| !s.is_empty())
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
    /// Our `org_id` and `plan`.
    #[serde(default, deserialize_with = "null_as_default")]
    pub metadata: Metadata,
}

impl CheckoutSessionObject {
    /// `metadata.org_id`, else `client_reference_id`.
    pub fn org_id(&self) -> Option<&str> {
        self.metadata
            .get("org_id")
            .or(self.client_reference_id.as_ref())
            .map(String::as_str)
            .filter(|s| !s.is_empty())
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

    #[test]
    fn an_event_without_an_id_or_type_is_malformed() {
        assert!(Event::parse(b"{\"type\": \"x\"}").is_err());
        assert!(Event::parse(b"{\"id\": \"evt_1\"}").is_err());
        assert!(Event::parse(b"{\"id\": \"\", \"type\": \"x\"}").is_err());
        assert!(Event::parse(b"not json").is_err());
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
    fn checkout_prefers_metadata_over_client_reference() {
        let session: CheckoutSessionObject = serde_json::from_value(json!({
            "id": "cs_1", "client_reference_id": "ref", "metadata": {"org_id": "acme"}
        }))
        .unwrap();
        assert_eq!(session.org_id(), Some("acme"));
        let session: CheckoutSessionObject =
            serde_json::from_value(json!({"id": "cs_1", "client_reference_id": "ref"})).unwrap();
        assert_eq!(session.org_id(), Some("ref"));
    }
}
