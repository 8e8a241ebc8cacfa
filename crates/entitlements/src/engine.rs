//! Applying Stripe events: each event is recorded once and applied in one
//! transaction together with the subscription state and the recomputed
//! entitlements of its organization.

use std::sync::Arc;

use crate::Error;
use crate::catalog::Catalog;
use crate::compute::{Computed, Policy, TERMINAL_STATUSES, compute, default_entitlement};
use crate::db::{Conn, Database};
use crate::event::{CheckoutSessionObject, Event, SubscriptionObject};
use crate::receipt::{Delivery, Outcome, Receipt};
use crate::store::materialized::EntitlementRow;
use crate::store::subscriptions::{ItemInput, SubscriptionRow};
use crate::store::{events, materialized, organizations, subscriptions};
use crate::view::EntitlementView;

/// Subscription event types that carry the subscription's full state.
pub const SUBSCRIPTION_EVENTS: [&str; 5] = [
    "customer.subscription.created",
    "customer.subscription.updated",
    "customer.subscription.deleted",
    "customer.subscription.paused",
    "customer.subscription.resumed",
];

/// Completed Checkout Sessions link an organization to its customer.
pub const CHECKOUT_COMPLETED: &str = "checkout.session.completed";

/// The domain service: owns the database, the catalog and the rules.
#[derive(Clone)]
pub struct Engine {
    db: Database,
    catalog: Arc<Catalog>,
    policy: Policy,
    livemode: bool,
}

impl Engine {
    /// An engine applying events of the given mode (live or test).
    pub fn new(db: Database, catalog: Arc<Catalog>, policy: Policy, livemode: bool) -> Self {
        Self {
            db,
            catalog,
            policy,
            livemode,
        }
    }

    /// The database the engine writes to.
    pub fn database(&self) -> &Database {
        &self.db
    }

    /// The plan catalog.
    pub fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    /// Records a verified event once and applies it, all in one transaction.
    #[tracing::instrument(skip_all, fields(event_id = %event.id, event_type = %event.kind))]
    pub async fn receive(&self, event: &Event, payload: &str) -> Result<Delivery, Error> {
        let now = now();
        let mut pooled = self.db.get().await?;
        let mut conn = pooled.conn();
        conn.begin_write().await?;
        let result = self.receive_in(&mut conn, event, payload, now).await;
        let delivery = conn.finish(result).await?;
        if let Delivery::Recorded(receipt) = &delivery {
            tracing::info!(
                outcome = receipt.outcome.as_str(),
                org_id = receipt.org_id.as_deref(),
                detail = receipt.detail.as_deref(),
                "event recorded"
            );
        }
        Ok(delivery)
    }

    async fn receive_in(
        &self,
        conn: &mut Conn<'_>,
        event: &Event,
        payload: &str,
        now: i64,
    ) -> Result<Delivery, Error> {
        if !events::insert_new(conn, event, payload, now).await? {
            return Ok(Delivery::Duplicate);
        }
        let receipt = self.apply(conn, event, now).await?;
        events::record_outcome(conn, &event.id, &receipt).await?;
        Ok(Delivery::Recorded(receipt))
    }

    async fn apply(&self, conn: &mut Conn<'_>, event: &Event, now: i64) -> Result<Receipt, Error> {
        if event.livemode != self.livemode {
            return Ok(Receipt::new(Outcome::Rejected).detail(format!(
                "event livemode is {} but the service runs in {} mode",
                event.livemode,
                if self.livemode { "live" } else { "test" }
            )));
        }
        match event.kind.as_str() {
            CHECKOUT_COMPLETED => self.apply_checkout(conn, event, now).await,
            kind if SUBSCRIPTION_EVENTS.contains(&kind) => {
                self.apply_subscription(conn, event, now).await
            }
            _ => Ok(Receipt::new(Outcome::Ignored)),
        }
    }

    async fn apply_checkout(
        &self,
        conn: &mut Conn<'_>,
        event: &Event,
        now: i64,
    ) -> Result<Receipt, Error> {
        let session: CheckoutSessionObject = match event.object() {
            Ok(session) => session,
            Err(reason) => return Ok(Receipt::new(Outcome::Invalid).detail(reason)),
        };
        if session.mode.as_deref() != Some("subscription") {
            return Ok(Receipt::new(Outcome::Ignored).detail("not a subscription checkout"));
        }
        let Some(org_id) = session.org_id().map(str::to_owned) else {
            return Ok(Receipt::new(Outcome::Invalid)
                .detail("neither metadata.org_id nor client_reference_id names an organization"));
        };
        // Lock order everywhere: subscription row, then organization row.
        let sub = match &session.subscription {
            Some(id) => {
                Some(subscriptions::lock(conn, id, session.customer.as_deref(), now).await?)
            }
            None => None,
        };
        organizations::lock(conn, &org_id, now).await?;
        let mut receipt = Receipt::new(Outcome::Applied).org(Some(org_id.clone()));
        if let Some(customer) = &session.customer {
            match organizations::org_of_customer(conn, customer).await? {
                Some(owner) if owner != org_id => {
                    receipt = receipt.detail(format!(
                        "customer {customer} belongs to organization {owner}"
                    ));
                }
                Some(_) => {}
                None => {
                    organizations::set_customer_if_unset(conn, &org_id, customer, now).await?;
                }
            }
            subscriptions::link_customer(conn, customer, &org_id).await?;
        }
        if let Some(mut sub) = sub {
            receipt = receipt.subscription(&sub.id);
            sub.org_id = Some(org_id.clone());
            subscriptions::save(conn, &sub).await?;
        }
        let computed = self.recompute(conn, &org_id, &event.id, now).await?;
        Ok(with_unknown_prices(receipt, &computed))
    }

    async fn apply_subscription(
        &self,
        conn: &mut Conn<'_>,
        event: &Event,
        now: i64,
    ) -> Result<Receipt, Error> {
        let sub: SubscriptionObject = match event.object() {
            Ok(sub) => sub,
            Err(reason) => return Ok(Receipt::new(Outcome::Invalid).detail(reason)),
        };
        let mut row = subscriptions::lock(conn, &sub.id, sub.customer.as_deref(), now).await?;
        if let Some(reason) = staleness(&row, event.created, &sub.status) {
            return Ok(Receipt::new(Outcome::Stale)
                .org(row.org_id)
                .subscription(&sub.id)
                .detail(reason));
        }
        let org_id = match (sub.org_id(), &row.org_id, &sub.customer) {
            (Some(org), _, _) => Some(org.to_owned()),
            (None, Some(org), _) => Some(org.clone()),
            (None, None, Some(customer)) => organizations::org_of_customer(conn, customer).await?,
            (None, None, None) => None,
        };
        if let Some(org) = &org_id {
            organizations::lock(conn, org, now).await?;
        }
        update_row(&mut row, &sub, event.created, org_id.clone(), now);
        subscriptions::save(conn, &row).await?;
        subscriptions::replace_items(conn, &sub.id, &items_of(&sub)).await?;

        let receipt = Receipt::new(Outcome::Applied)
            .org(org_id.clone())
            .subscription(&sub.id);
        let Some(org_id) = org_id else {
            return Ok(Receipt {
                outcome: Outcome::Unlinked,
                ..receipt
            }
            .detail("no organization known yet; the checkout event will link it"));
        };
        let computed = self.recompute(conn, &org_id, &event.id, now).await?;
        Ok(with_unknown_prices(receipt, &computed))
    }

    /// Recomputes the organization's entitlements from its subscriptions and
    /// stores them, with a new version and a history row, if they changed.
    async fn recompute(
        &self,
        conn: &mut Conn<'_>,
        org_id: &str,
        event_id: &str,
        now: i64,
    ) -> Result<Computed, Error> {
        let subs = subscriptions::of_org(conn, org_id).await?;
        let computed = compute(&self.catalog, &subs, now, self.policy);
        let current = materialized::get(conn, org_id).await?;
        let (unchanged, version) = match &current {
            Some(row) => (row.entitlement()? == computed.entitlement, row.version),
            None => (
                computed.entitlement == default_entitlement(&self.catalog),
                0,
            ),
        };
        if !unchanged {
            let row = EntitlementRow::new(org_id, &computed.entitlement, version + 1, now)?;
            materialized::save_change(conn, &row, Some(event_id)).await?;
        }
        if !computed.unknown_prices.is_empty() {
            tracing::warn!(org_id, prices = ?computed.unknown_prices, "prices in no plan grant nothing");
        }
        Ok(computed)
    }

    /// The organization's current entitlements: the stored ones, or the
    /// default plan at version 0 for an organization no event concerned.
    #[tracing::instrument(skip_all, fields(org_id = %org_id))]
    pub async fn entitlements(&self, org_id: &str) -> Result<EntitlementView, Error> {
        let mut pooled = self.db.get().await?;
        let row = materialized::get(&mut pooled.conn(), org_id).await?;
        Ok(match row {
            Some(row) => EntitlementView::new(
                org_id,
                row.entitlement()?,
                row.version,
                Some(row.updated_at),
            ),
            None => EntitlementView::new(org_id, default_entitlement(&self.catalog), 0, None),
        })
    }

    /// The Stripe customer stored for the organization.
    pub async fn customer_of(&self, org_id: &str) -> Result<Option<String>, Error> {
        let mut pooled = self.db.get().await?;
        organizations::customer_of(&mut pooled.conn(), org_id).await
    }

    /// Stores the organization's Stripe customer unless it has one already,
    /// and returns the one it has afterwards.
    pub async fn remember_customer(&self, org_id: &str, customer: &str) -> Result<String, Error> {
        let mut pooled = self.db.get().await?;
        let mut conn = pooled.conn();
        conn.begin_write().await?;
        let result = organizations::set_customer_if_unset(&mut conn, org_id, customer, now()).await;
        conn.finish(result).await
    }
}

/// Why an event may not change a subscription, if it may not.
fn staleness(row: &SubscriptionRow, created: i64, status: &str) -> Option<String> {
    let last = row.last_event_created?;
    if created < last {
        return Some(format!(
            "event created at {created} is older than the applied one of {last}"
        ));
    }
    match row.status.as_deref() {
        Some(current) if TERMINAL_STATUSES.contains(&current) && current != status => Some(
            format!("subscription is already {current}, which no event revives"),
        ),
        _ => None,
    }
}

fn update_row(
    row: &mut SubscriptionRow,
    sub: &SubscriptionObject,
    created: i64,
    org_id: Option<String>,
    now: i64,
) {
    if org_id.is_some() {
        row.org_id = org_id;
    }
    if sub.customer.is_some() {
        row.customer_id = sub.customer.clone();
    }
    row.past_due_since = match sub.status.as_str() {
        "past_due" => row.past_due_since.or(Some(created)),
        _ => None,
    };
    row.status = Some(sub.status.clone());
    row.current_period_end = sub.period_end();
    row.cancel_at_period_end = sub.cancel_at_period_end;
    row.last_event_created = Some(
        row.last_event_created
            .map_or(created, |last| last.max(created)),
    );
    row.updated_at = now;
}

fn items_of(sub: &SubscriptionObject) -> Vec<ItemInput> {
    sub.items
        .data
        .iter()
        .filter_map(|item| {
            Some(ItemInput {
                id: item.id.clone(),
                price_id: item.price_id()?.to_owned(),
                quantity: item.quantity.unwrap_or(1),
            })
        })
        .collect()
}

fn with_unknown_prices(receipt: Receipt, computed: &Computed) -> Receipt {
    if computed.unknown_prices.is_empty() {
        return receipt;
    }
    let prices = computed.unknown_prices.join(", ");
    let note = format!("prices in no plan grant nothing: {prices}");
    match receipt.detail.clone() {
        Some(existing) => receipt.detail(format!("{existing}; {note}")),
        None => receipt.detail(note),
    }
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}
