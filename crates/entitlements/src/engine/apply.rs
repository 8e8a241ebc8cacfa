//! The shell around the state machine: for each event type, lock what it
//! touches, ask [`transition`] what changes, save it and recompute the
//! organizations concerned, all inside the event's transaction.
//!
//! Lock order everywhere: the subscription row, then the organization rows
//! (two when a subscription moves, in name order), so that concurrent
//! events of one organization apply one at a time and never deadlock.

use super::Engine;
use super::receive::conclude;
use super::transition::{Input, Refusal, Source, transition};
use crate::Error;
use crate::db::Conn;
use crate::event::{CheckoutSessionObject, Event, InvoiceObject, SubscriptionObject};
use crate::kinds::EventKind;
use crate::org::{ORG_ID_RULE, is_valid_org_id};
use crate::receipt::{Outcome, Receipt};
use crate::source::SubscriptionRead;
use crate::store::subscriptions::SubscriptionRow;
use crate::store::{Cause, organizations, subscriptions};

/// An event being applied: the event, the subscription state read for it
/// (refetch mode) and the time it arrived.
#[derive(Clone, Copy)]
pub(super) struct Arrival<'a> {
    pub event: &'a Event,
    pub fresh: Option<&'a SubscriptionRead>,
    pub now: i64,
}

impl<'a> Source<'a> {
    pub(super) fn of(event: &'a Event) -> Self {
        Self {
            id: Some(&event.id),
            created: event.created,
        }
    }

    /// A subscription as Stripe's API listed it: no event, as of its read.
    pub(super) fn listed(fresh: &SubscriptionRead) -> Self {
        Self {
            id: None,
            created: fresh.read_at_ms.div_euclid(1000),
        }
    }
}

/// The subscription whose current state applying `event` needs, when the
/// service re-reads subscriptions from Stripe (refetch mode).
pub(super) fn subscription_to_read(event: &Event) -> Option<String> {
    match &event.kind {
        EventKind::CheckoutSessionCompleted => {
            event.object::<CheckoutSessionObject>().ok()?.subscription
        }
        kind if kind.carries_subscription() => Some(event.object::<SubscriptionObject>().ok()?.id),
        _ => None,
    }
}

impl Engine {
    pub(super) async fn apply(
        &self,
        conn: &mut Conn<'_>,
        arrival: Arrival<'_>,
    ) -> Result<Receipt, Error> {
        let Arrival { event, now, .. } = arrival;
        if let Some(rejected) = self.other_mode(event) {
            return Ok(rejected);
        }
        match &event.kind {
            EventKind::CheckoutSessionCompleted
            | EventKind::CheckoutSessionAsyncPaymentSucceeded
            | EventKind::CheckoutSessionAsyncPaymentFailed => {
                self.apply_checkout(conn, arrival).await
            }
            // Applied set-wise (see `setwise`), never here.
            EventKind::SubscriptionCreated
            | EventKind::SubscriptionUpdated
            | EventKind::SubscriptionDeleted
            | EventKind::SubscriptionPaused
            | EventKind::SubscriptionResumed => Err(Error::Corrupt(format!(
                "{} applies set-wise, not event by event",
                event.kind
            ))),
            EventKind::InvoicePaid | EventKind::InvoicePaymentFailed => {
                self.apply_invoice(conn, event, now).await
            }
            EventKind::ChargeRefunded
            | EventKind::ChargeDisputeCreated
            | EventKind::ChargeDisputeClosed => self.apply_payment(conn, event, now).await,
            EventKind::Other(_) => Ok(Receipt::new(Outcome::Ignored)),
        }
    }

    /// The receipt of an event of the other mode (live or test) than the
    /// service's: `rejected`.
    pub(super) fn other_mode(&self, event: &Event) -> Option<Receipt> {
        (event.livemode != self.livemode).then(|| {
            Receipt::new(Outcome::Rejected).detail(format!(
                "event livemode is {} but the service runs in {} mode",
                event.livemode,
                if self.livemode { "live" } else { "test" }
            ))
        })
    }

    async fn apply_checkout(
        &self,
        conn: &mut Conn<'_>,
        arrival: Arrival<'_>,
    ) -> Result<Receipt, Error> {
        let Arrival { event, fresh, now } = arrival;
        let session: CheckoutSessionObject = match event.object() {
            Ok(session) => session,
            Err(reason) => return Ok(Receipt::invalid(reason)),
        };
        match session.mode.as_deref() {
            Some("payment") => return self.apply_purchase(conn, event, &session, now).await,
            Some("subscription") if event.kind == EventKind::CheckoutSessionCompleted => {}
            Some("subscription") => {
                return Ok(Receipt::new(Outcome::Ignored)
                    .detail("the subscription's own events decide its state"));
            }
            _ => return Ok(Receipt::new(Outcome::Ignored).detail("not a subscription checkout")),
        }
        let org_id = match session_org(&session, &self.org_id_keys) {
            Ok(org_id) => org_id,
            Err(invalid) => return Ok(invalid),
        };
        let sub = match &session.subscription {
            Some(id) => {
                Some(subscriptions::lock(conn, id, session.customer.as_deref(), now).await?)
            }
            None => None,
        };
        let now = organizations::lock(conn, &org_id, now).await?;
        let receipt = Receipt::new(Outcome::Applied).org(Some(org_id.clone()));
        let mut receipt =
            link_customer(conn, receipt, &org_id, session.customer.as_deref(), now).await?;
        if let Some(sub) = sub {
            receipt = receipt.subscription(&sub.id);
            let mut row = sub.clone();
            row.org_id = Some(org_id.clone());
            if let Some(fresh) = fresh.filter(|f| f.subscription.id == sub.id) {
                let input = Input::State {
                    state: &fresh.subscription,
                    source: Source::of(event),
                    read_at_ms: Some(fresh.read_at_ms),
                    org_id: Some(&org_id),
                };
                match transition(&sub, input) {
                    Ok(next) => {
                        row = next.row;
                        let items = &fresh.subscription.items;
                        subscriptions::replace_items(conn, &sub.id, items).await?;
                    }
                    Err(Refusal(reason)) => {
                        receipt = receipt.note(format!("state not applied: {reason}"));
                    }
                }
            }
            row.updated_at = now;
            subscriptions::save(conn, &row).await?;
        }
        let recomputed = self
            .recompute(conn, &org_id, Cause::Event(&event.id), now)
            .await?;
        Ok(conclude(receipt, recomputed))
    }

    /// `invoice.payment_failed` starts dunning and `invoice.paid` ends it
    /// (see [`transition`]); each recomputes the organization.
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
        let row = subscriptions::lock(conn, &sub_id, invoice.customer.as_deref(), now).await?;
        let org_id = self.org_of(conn, &row, invoice.customer.as_deref()).await?;
        let (invoice, at, org) = (&invoice, event.created, org_id.as_deref());
        let input = match event.kind {
            EventKind::InvoicePaymentFailed => Input::PaymentFailed {
                invoice,
                at,
                org_id: org,
            },
            _ => Input::Paid {
                invoice,
                at,
                org_id: org,
            },
        };
        let mut row = match transition(&row, input) {
            Ok(next) => next.row,
            Err(refusal) => return Ok(stale(row, &sub_id, refusal)),
        };
        let now = match &row.org_id {
            Some(org) => organizations::lock(conn, org, now).await?,
            None => now,
        };
        row.updated_at = now;
        subscriptions::save(conn, &row).await?;
        let receipt = Receipt::new(Outcome::Applied)
            .org(row.org_id.clone())
            .subscription(&sub_id);
        match row.org_id {
            Some(org) => {
                let recomputed = self
                    .recompute(conn, &org, Cause::Event(&event.id), now)
                    .await?;
                Ok(conclude(receipt, recomputed))
            }
            None => Ok(Receipt {
                outcome: Outcome::Unlinked,
                ..receipt
            }
            .detail("no organization known yet; dunning is kept on the subscription")),
        }
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

/// Links a checkout's customer to its organization, unless the customer
/// belongs to another one (then the receipt says so), and links the
/// customer's unlinked subscriptions.
pub(super) async fn link_customer(
    conn: &mut Conn<'_>,
    receipt: Receipt,
    org_id: &str,
    customer: Option<&str>,
    now: i64,
) -> Result<Receipt, Error> {
    let Some(customer) = customer else {
        return Ok(receipt);
    };
    let receipt = match organizations::org_of_customer(conn, customer).await? {
        Some(owner) if owner != org_id => receipt.note(format!(
            "customer {customer} belongs to organization {owner}"
        )),
        Some(_) => receipt,
        None => {
            organizations::set_customer_if_unset(conn, org_id, customer, now).await?;
            receipt
        }
    };
    subscriptions::link_customer(conn, customer, org_id).await?;
    Ok(receipt)
}

/// The receipt of an input the state machine refused.
pub(super) fn stale(row: SubscriptionRow, sub_id: &str, Refusal(reason): Refusal) -> Receipt {
    Receipt::new(Outcome::Stale)
        .org(row.org_id)
        .subscription(sub_id)
        .detail(reason)
}

/// The organization a checkout session names, or the `invalid` receipt
/// for a session that names none or an invalid one.
pub(super) fn session_org(
    session: &CheckoutSessionObject,
    keys: &[String],
) -> Result<String, Receipt> {
    org_from_payload(session.org_id(keys))?.ok_or_else(|| {
        Receipt::invalid(format!(
            "neither the metadata ({}) nor client_reference_id names an organization",
            keys.join(", ")
        ))
    })
}

/// An organization id an event names, refused (`invalid`) unless it is one
/// the API would accept, so that no row is stored that nobody can query.
pub(super) fn org_from_payload(org_id: Option<&str>) -> Result<Option<String>, Receipt> {
    valid_org(org_id).map_err(Receipt::invalid)
}

/// `org_id`, unless it is not a valid organization id (the error says why).
pub(super) fn valid_org(org_id: Option<&str>) -> Result<Option<String>, String> {
    match org_id {
        Some(org_id) if !is_valid_org_id(org_id) => Err(format!(
            "organization id {org_id:?} is not valid: {ORG_ID_RULE}"
        )),
        org_id => Ok(org_id.map(str::to_owned)),
    }
}
