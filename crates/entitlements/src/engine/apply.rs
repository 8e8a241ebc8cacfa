//! What each event type does to the state, inside the event's transaction.
//!
//! Lock order everywhere: the subscription row, then the organization rows
//! (two when a subscription moves, in name order), so that concurrent
//! events of one organization apply one at a time and never deadlock.

use super::{Engine, Fresh, conclude};
use std::cmp::Ordering;

use crate::Error;
use crate::compute::TERMINAL_STATUSES;
use crate::db::Conn;
use crate::event::{
    CheckoutSessionObject, Event, InvoiceObject, PaymentObject, SubscriptionObject,
};
use crate::org::{ORG_ID_RULE, is_valid_org_id};
use crate::receipt::{Outcome, Receipt};
use crate::store::subscriptions::{ItemInput, SubscriptionRow};
use crate::store::{organizations, subscriptions};

const CHECKOUT_COMPLETED: &str = "checkout.session.completed";
const INVOICE_PAID: &str = "invoice.paid";
const INVOICE_PAYMENT_FAILED: &str = "invoice.payment_failed";
const CHARGE_REFUNDED: &str = "charge.refunded";
const DISPUTE_CREATED: &str = "charge.dispute.created";

/// Subscription event types that carry the subscription's full state.
pub const SUBSCRIPTION_EVENTS: [&str; 5] = [
    "customer.subscription.created",
    "customer.subscription.updated",
    "customer.subscription.deleted",
    "customer.subscription.paused",
    "customer.subscription.resumed",
];

/// Every event type the service acts on: enable exactly these on the
/// Stripe webhook endpoint.
pub const HANDLED_EVENTS: [&str; 10] = [
    CHECKOUT_COMPLETED,
    SUBSCRIPTION_EVENTS[0],
    SUBSCRIPTION_EVENTS[1],
    SUBSCRIPTION_EVENTS[2],
    SUBSCRIPTION_EVENTS[3],
    SUBSCRIPTION_EVENTS[4],
    INVOICE_PAID,
    INVOICE_PAYMENT_FAILED,
    CHARGE_REFUNDED,
    DISPUTE_CREATED,
];

/// What a subscription state comes from: an event, or a reconciliation.
#[derive(Debug, Clone, Copy)]
pub(super) struct Source<'a> {
    /// The event, named in the history of any change it causes.
    pub id: Option<&'a str>,
    /// When the state held (unix seconds).
    pub created: i64,
}

impl<'a> Source<'a> {
    fn of(event: &'a Event) -> Self {
        Self {
            id: Some(&event.id),
            created: event.created,
        }
    }
}

/// The subscription whose current state applying `event` needs, when the
/// service re-reads subscriptions from Stripe (refetch mode).
pub fn needs_subscription(event: &Event) -> Option<String> {
    match event.kind.as_str() {
        CHECKOUT_COMPLETED => event.object::<CheckoutSessionObject>().ok()?.subscription,
        kind if SUBSCRIPTION_EVENTS.contains(&kind) => {
            Some(event.object::<SubscriptionObject>().ok()?.id)
        }
        _ => None,
    }
}

impl Engine {
    pub(super) async fn apply(
        &self,
        conn: &mut Conn<'_>,
        event: &Event,
        fresh: Option<&Fresh>,
        now: i64,
    ) -> Result<Receipt, Error> {
        if event.livemode != self.livemode {
            return Ok(Receipt::new(Outcome::Rejected).detail(format!(
                "event livemode is {} but the service runs in {} mode",
                event.livemode,
                if self.livemode { "live" } else { "test" }
            )));
        }
        match event.kind.as_str() {
            CHECKOUT_COMPLETED => self.apply_checkout(conn, event, fresh, now).await,
            kind if SUBSCRIPTION_EVENTS.contains(&kind) => match (fresh, event.object()) {
                (Some(fresh), _) => {
                    self.apply_subscription(
                        conn,
                        Source::of(event),
                        &fresh.subscription,
                        Some(fresh),
                        now,
                    )
                    .await
                }
                (None, Ok(sub)) => {
                    self.apply_subscription(conn, Source::of(event), &sub, None, now)
                        .await
                }
                (None, Err(reason)) => Ok(Receipt::invalid(reason)),
            },
            INVOICE_PAID | INVOICE_PAYMENT_FAILED => self.apply_invoice(conn, event, now).await,
            CHARGE_REFUNDED | DISPUTE_CREATED => self.apply_payment(conn, event).await,
            _ => Ok(Receipt::new(Outcome::Ignored)),
        }
    }

    async fn apply_checkout(
        &self,
        conn: &mut Conn<'_>,
        event: &Event,
        fresh: Option<&Fresh>,
        now: i64,
    ) -> Result<Receipt, Error> {
        let session: CheckoutSessionObject = match event.object() {
            Ok(session) => session,
            Err(reason) => return Ok(Receipt::invalid(reason)),
        };
        if session.mode.as_deref() != Some("subscription") {
            return Ok(Receipt::new(Outcome::Ignored).detail("not a subscription checkout"));
        }
        let org_id = match org_from_payload(session.org_id()) {
            Ok(Some(org_id)) => org_id,
            Ok(None) => {
                return Ok(Receipt::invalid(
                    "neither metadata.org_id nor client_reference_id names an organization",
                ));
            }
            Err(invalid) => return Ok(invalid),
        };
        let sub = match &session.subscription {
            Some(id) => {
                Some(subscriptions::lock(conn, id, session.customer.as_deref(), now).await?)
            }
            None => None,
        };
        let now = organizations::lock(conn, &org_id, now).await?;
        let mut receipt = Receipt::new(Outcome::Applied).org(Some(org_id.clone()));
        if let Some(customer) = &session.customer {
            match organizations::org_of_customer(conn, customer).await? {
                Some(owner) if owner != org_id => {
                    receipt = receipt.note(format!(
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
            if let Some(fresh) = fresh.filter(|f| f.subscription.id == sub.id) {
                let read_at = Some(fresh.read_at_ms);
                let status = &fresh.subscription.status;
                match staleness(&sub, Source::of(event), read_at, status) {
                    Some(reason) => {
                        receipt = receipt.note(format!("state not applied: {reason}"));
                    }
                    None => {
                        update_row(&mut sub, &fresh.subscription, event.created, read_at, now);
                        let items = items_of(&fresh.subscription);
                        subscriptions::replace_items(conn, &sub.id, &items).await?;
                    }
                }
            }
            subscriptions::save(conn, &sub).await?;
        }
        let recomputed = self.recompute(conn, &org_id, Some(&event.id), now).await?;
        Ok(conclude(receipt, recomputed))
    }

    pub(super) async fn apply_subscription(
        &self,
        conn: &mut Conn<'_>,
        event: Source<'_>,
        sub: &SubscriptionObject,
        fresh: Option<&Fresh>,
        now: i64,
    ) -> Result<Receipt, Error> {
        let named_org = match org_from_payload(sub.org_id()) {
            Ok(org) => org,
            Err(invalid) => return Ok(invalid.subscription(&sub.id)),
        };
        let mut row = subscriptions::lock(conn, &sub.id, sub.customer.as_deref(), now).await?;
        let read_at = fresh.map(|f| f.read_at_ms);
        if let Some(reason) = staleness(&row, event, read_at, &sub.status) {
            return Ok(Receipt::new(Outcome::Stale)
                .org(row.org_id)
                .subscription(&sub.id)
                .detail(reason));
        }
        let org_id = match named_org {
            Some(org) => Some(org),
            None => self.org_of(conn, &row, sub.customer.as_deref()).await?,
        };
        // Moved to another organization (its metadata changed in the
        // Dashboard): the one it leaves is recomputed too.
        let left = row
            .org_id
            .clone()
            .filter(|_| row.org_id != org_id && org_id.is_some());
        let mut orgs: Vec<&String> = org_id.iter().chain(&left).collect();
        orgs.sort();
        let mut now = now;
        for org in orgs {
            now = organizations::lock(conn, org, now).await?;
        }
        if org_id.is_some() {
            row.org_id = org_id.clone();
        }
        // A state other than past_due, no older than the dunning, ends it:
        // the next past_due starts its grace period afresh.
        if sub.status != "past_due"
            && row
                .past_due_since
                .is_some_and(|since| read_at.is_some() || since <= event.created)
        {
            end_dunning(&mut row);
        }
        update_row(&mut row, sub, event.created, read_at, now);
        subscriptions::save(conn, &row).await?;
        subscriptions::replace_items(conn, &sub.id, &items_of(sub)).await?;

        let mut receipt = Receipt::new(Outcome::Applied)
            .org(org_id.clone())
            .subscription(&sub.id);
        if let Some(left) = &left {
            self.recompute(conn, left, event.id, now).await?;
            receipt = receipt.note(format!("moved from organization {left}"));
        }
        let Some(org_id) = org_id else {
            return Ok(Receipt {
                outcome: Outcome::Unlinked,
                ..receipt
            }
            .detail("no organization known yet; the checkout event will link it"));
        };
        let recomputed = self.recompute(conn, &org_id, event.id, now).await?;
        Ok(conclude(receipt, recomputed))
    }

    /// `invoice.payment_failed` starts dunning for its invoice (the grace
    /// period counts from that invoice's first failure); a newer invoice's
    /// failure starts it anew. `invoice.paid` of that invoice or a newer one
    /// ends it. Each orders itself by its `created`, so delivery order does
    /// not matter.
    async fn apply_invoice(
        &self,
        conn: &mut Conn<'_>,
        event: &Event,
        now: i64,
    ) -> Result<Receipt, Error> {
        let invoice: InvoiceObject = match event.object() {
            Ok(invoice) => invoice,
            Err(reason) => return Ok(Receipt::invalid(reason)),
        };
        let Some(sub_id) = invoice.subscription_id().map(str::to_owned) else {
            return Ok(
                Receipt::new(Outcome::Ignored).detail("the invoice belongs to no subscription")
            );
        };
        let mut row = subscriptions::lock(conn, &sub_id, invoice.customer.as_deref(), now).await?;
        let t = event.created;
        if event.kind == INVOICE_PAYMENT_FAILED {
            if row.last_paid_at.is_some_and(|paid| paid >= t) {
                return Ok(Receipt::new(Outcome::Stale)
                    .org(row.org_id)
                    .subscription(&sub_id)
                    .detail("a later payment already ended this dunning"));
            }
            match dunning_order(&row, &invoice, t) {
                Ordering::Equal => {
                    row.past_due_since = row.past_due_since.map(|since| since.min(t));
                }
                Ordering::Greater => {
                    row.past_due_since = Some(t);
                    row.dunning_invoice = Some(invoice.id.clone());
                    row.dunning_invoice_created = invoice.created;
                }
                Ordering::Less => {
                    return Ok(Receipt::new(Outcome::Stale)
                        .org(row.org_id)
                        .subscription(&sub_id)
                        .detail("a newer invoice is already in dunning"));
                }
            }
        } else {
            row.last_paid_at = Some(row.last_paid_at.map_or(t, |paid| paid.max(t)));
            if row.past_due_since.is_some() && dunning_order(&row, &invoice, t).is_ge() {
                end_dunning(&mut row);
            }
        }
        let org_id = self.org_of(conn, &row, invoice.customer.as_deref()).await?;
        let now = match &org_id {
            Some(org) => organizations::lock(conn, org, now).await?,
            None => now,
        };
        row.org_id = org_id.clone().or(row.org_id);
        row.updated_at = now;
        subscriptions::save(conn, &row).await?;
        let receipt = Receipt::new(Outcome::Applied)
            .org(org_id.clone())
            .subscription(&sub_id);
        match org_id {
            Some(org) => {
                let recomputed = self.recompute(conn, &org, Some(&event.id), now).await?;
                Ok(conclude(receipt, recomputed))
            }
            None => Ok(Receipt {
                outcome: Outcome::Unlinked,
                ..receipt
            }
            .detail("no organization known yet; dunning is kept on the subscription")),
        }
    }

    /// Refunds and disputes change no entitlement; they are recorded against
    /// the organization so that its history shows them.
    async fn apply_payment(&self, conn: &mut Conn<'_>, event: &Event) -> Result<Receipt, Error> {
        let payment: PaymentObject = match event.object() {
            Ok(payment) => payment,
            Err(reason) => return Ok(Receipt::invalid(reason)),
        };
        let named_org = match org_from_payload(payment.org_id()) {
            Ok(org) => org,
            Err(invalid) => return Ok(invalid),
        };
        let org_id = match (named_org, payment.customer_id()) {
            (Some(org), _) => Some(org),
            (None, Some(customer)) => organizations::org_of_customer(conn, customer).await?,
            (None, None) => None,
        };
        let amount = payment
            .amount_refunded
            .filter(|_| event.kind == CHARGE_REFUNDED)
            .or(payment.amount);
        let detail = match (amount, &payment.currency) {
            (Some(amount), Some(currency)) => format!("{} {amount} {currency}", payment.id),
            _ => payment.id.clone(),
        };
        Ok(match org_id {
            Some(org) => Receipt::new(Outcome::Applied).org(Some(org)).detail(detail),
            None => Receipt::new(Outcome::Unlinked)
                .detail(format!("{detail}; no organization known for it")),
        })
    }

    /// The organization a subscription belongs to: its stored link, else
    /// the organization of its customer.
    async fn org_of(
        &self,
        conn: &mut Conn<'_>,
        row: &SubscriptionRow,
        customer: Option<&str>,
    ) -> Result<Option<String>, Error> {
        match (&row.org_id, customer.or(row.customer_id.as_deref())) {
            (Some(org), _) => Ok(Some(org.clone())),
            (None, Some(customer)) => organizations::org_of_customer(conn, customer).await,
            (None, None) => Ok(None),
        }
    }
}

/// How `invoice` (of an event created at `t`) stands to the invoice in
/// dunning: the same one, newer (or no dunning at all), or older. Invoices
/// order by their `created`; without it, by when their events happened.
fn dunning_order(row: &SubscriptionRow, invoice: &InvoiceObject, t: i64) -> Ordering {
    let Some(current) = &row.dunning_invoice else {
        return Ordering::Greater;
    };
    if *current == invoice.id {
        return Ordering::Equal;
    }
    match (invoice.created, row.dunning_invoice_created) {
        (Some(created), Some(current)) => created.cmp(&current).then(Ordering::Greater),
        _ => match row.past_due_since {
            Some(since) if since > t => Ordering::Less,
            _ => Ordering::Greater,
        },
    }
}

fn end_dunning(row: &mut SubscriptionRow) {
    row.past_due_since = None;
    row.dunning_invoice = None;
    row.dunning_invoice_created = None;
}

/// An organization id an event names, refused (`invalid`) unless it is one
/// the API would accept, so that no row is stored that nobody can query.
fn org_from_payload(org_id: Option<&str>) -> Result<Option<String>, Receipt> {
    match org_id {
        Some(org_id) if !is_valid_org_id(org_id) => Err(Receipt::invalid(format!(
            "organization id {org_id:?} is not valid: {ORG_ID_RULE}"
        ))),
        org_id => Ok(org_id.map(str::to_owned)),
    }
}

/// Why an event may not change a subscription, if it may not. A state read
/// from Stripe is ordered by when it was read; a payload by the event's
/// `created`, where equal seconds are not stale. A reconciliation's read is
/// also older than any event applied since its second began (webhooks are
/// the first source of truth). No state revives a canceled subscription.
fn staleness(
    row: &SubscriptionRow,
    source: Source<'_>,
    read_at_ms: Option<i64>,
    status: &str,
) -> Option<String> {
    let created = source.created;
    if let Some(current) = row
        .status
        .as_deref()
        .filter(|s| TERMINAL_STATUSES.contains(s) && *s != status)
    {
        return Some(format!(
            "subscription is already {current}, which no event revives"
        ));
    }
    match (read_at_ms, row.state_read_at, row.last_event_created) {
        (Some(read), Some(last_read), _) if read < last_read => {
            Some("a newer read of the subscription was already applied".to_owned())
        }
        (Some(read), _, Some(last)) if source.id.is_none() && last >= read.div_euclid(1000) => {
            Some(format!(
                "an event created at {last} was applied since this state was read"
            ))
        }
        (None, _, Some(last)) if created < last => Some(format!(
            "event created at {created} is older than the applied one of {last}"
        )),
        _ => None,
    }
}

fn update_row(
    row: &mut SubscriptionRow,
    sub: &SubscriptionObject,
    created: i64,
    read_at_ms: Option<i64>,
    now: i64,
) {
    if sub.customer.is_some() {
        row.customer_id = sub.customer.clone();
    }
    row.status = Some(sub.status.clone());
    row.current_period_start = sub.period_start();
    row.current_period_end = sub.period_end();
    row.cancel_at_period_end = sub.cancel_at_period_end;
    row.last_event_created = Some(
        row.last_event_created
            .map_or(created, |last| last.max(created)),
    );
    if let Some(read) = read_at_ms {
        row.state_read_at = Some(row.state_read_at.map_or(read, |last| last.max(read)));
    }
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
