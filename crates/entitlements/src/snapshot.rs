//! A subscription's state as Stripe reports it: the one input type that
//! both the webhook parser (from an event's payload) and the Stripe API
//! client (from its typed objects) produce for the engine.

use crate::event::SubscriptionObject;
use crate::kinds::SubscriptionStatus;

/// A subscription's full state at one moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriptionSnapshot {
    /// `sub_...`.
    pub id: String,
    /// Its customer, `cus_...`.
    pub customer: Option<String>,
    /// Its status.
    pub status: SubscriptionStatus,
    /// Canceled by the customer, effective at the period end.
    pub cancel_at_period_end: bool,
    /// Start of the current period (unix seconds).
    pub current_period_start: Option<i64>,
    /// End of the current period (unix seconds).
    pub current_period_end: Option<i64>,
    /// Its metadata, where the organization's id may be (see
    /// [`crate::event::org_id_in`]).
    pub metadata: crate::event::Metadata,
    /// What it buys: items with a price.
    pub items: Vec<SnapshotItem>,
}

/// One item of a subscription: a price and a quantity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotItem {
    /// `si_...`.
    pub id: String,
    /// The Stripe price.
    pub price_id: String,
    /// Units bought (1 for metered prices, which carry none).
    pub quantity: i64,
}

impl From<SubscriptionObject> for SubscriptionSnapshot {
    /// Reads either API shape: the period on the subscription, or on its
    /// items in API versions from 2025-03-31.
    fn from(sub: SubscriptionObject) -> Self {
        let current_period_start = sub.period_start();
        let current_period_end = sub.period_end();
        let items = sub
            .items
            .data
            .iter()
            .filter_map(|item| {
                Some(SnapshotItem {
                    id: item.id.clone(),
                    price_id: item.price_id()?.to_owned(),
                    quantity: item.quantity.unwrap_or(1),
                })
            })
            .collect();
        Self {
            id: sub.id,
            customer: sub.customer,
            status: sub.status,
            cancel_at_period_end: sub.cancel_at_period_end,
            current_period_start,
            current_period_end,
            metadata: sub.metadata,
            items,
        }
    }
}
