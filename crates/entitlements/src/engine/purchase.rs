//! One-time purchases: a payment-mode checkout records one, and refunds
//! and disputes of its payment withdraw or restore it, in either order.
//!
//! Lock order: the payment's row (when the event names a payment intent),
//! then the organization's row.

use super::Engine;
use super::apply::{link_customer, org_from_payload, session_org};
use super::receive::conclude;
use crate::Error;
use crate::catalog::PlanMode;
use crate::clock;
use crate::db::Conn;
use crate::event::{CheckoutSessionObject, Event, PaymentObject};
use crate::kinds::EventKind;
use crate::receipt::{Outcome, Receipt};
use crate::store::purchases::{self, FAILED, PAID, PENDING, PaymentRow, PurchaseRow, Reterm};
use crate::store::{Cause, organizations};

/// The most units one purchase buys.
const MAX_QUANTITY: i64 = 10_000;

impl Engine {
    /// A payment-mode session's completion or its delayed payment's
    /// result: records the purchase (paid, pending or failed) and
    /// recomputes its organization.
    pub(super) async fn apply_purchase(
        &self,
        conn: &mut Conn<'_>,
        event: &Event,
        session: &CheckoutSessionObject,
        now: i64,
    ) -> Result<Receipt, Error> {
        let org_id = match session_org(session, &self.org_id_keys) {
            Ok(org_id) => org_id,
            Err(invalid) => return Ok(invalid),
        };
        let invalid = |why: String| Ok(Receipt::invalid(why).org(Some(org_id.clone())));
        let Some(plan) = session.metadata.get("plan").filter(|p| !p.is_empty()) else {
            return invalid("a payment checkout without metadata.plan".into());
        };
        let quantity = match session.metadata.get("quantity") {
            None => 1,
            Some(text) => match text.parse::<i64>() {
                Ok(n) if (1..=MAX_QUANTITY).contains(&n) => n,
                _ => {
                    return invalid(format!(
                        "metadata.quantity {text:?} is not a whole number from 1 to {MAX_QUANTITY}"
                    ));
                }
            },
        };
        let status = match (&event.kind, session.payment_status.as_deref()) {
            (EventKind::CheckoutSessionAsyncPaymentFailed, _) => FAILED,
            (EventKind::CheckoutSessionAsyncPaymentSucceeded, _) => PAID,
            (_, Some("paid" | "no_payment_required")) => PAID,
            _ => PENDING,
        };
        let payment = match &session.payment_intent {
            Some(intent) => Some(purchases::lock_payment(conn, intent, now).await?),
            None => None,
        };
        let now = organizations::lock(conn, &org_id, now).await?;
        let receipt = Receipt::new(Outcome::Applied).org(Some(org_id.clone()));
        let mut receipt =
            link_customer(conn, receipt, &org_id, session.customer.as_deref(), now).await?;
        let current = purchases::get(conn, &session.id).await?;
        let settled = current.as_ref().filter(|row| row.status != PENDING);
        if let Some(stored) = settled.filter(|row| row.status != status) {
            return Ok(Receipt::new(Outcome::Stale)
                .org(Some(stored.org_id.clone()))
                .detail(format!(
                    "purchase {} is already {}",
                    session.id, stored.status
                )));
        }
        let paid_at = match current.as_ref().and_then(|row| row.paid_at) {
            Some(first) => Some(first),
            None => (status == PAID).then_some(event.created),
        };
        let row = PurchaseRow {
            id: session.id.clone(),
            org_id: current
                .as_ref()
                .map_or(org_id.clone(), |row| row.org_id.clone()),
            customer_id: session.customer.clone(),
            payment_intent_id: session.payment_intent.clone(),
            plan: plan.clone(),
            quantity,
            status: status.to_owned(),
            paid_at,
            last_event_created: event.created,
            updated_at: now,
            // Sold with today's terms; later catalog edits do not reach it.
            terms: current.and_then(|row| row.terms).or_else(|| {
                self.catalog
                    .plan(plan)
                    .map(|plan| purchases::write_terms(&plan.terms(quantity)))
            }),
        };
        purchases::save(conn, &row).await?;
        if self.catalog.plan(plan).is_none() {
            receipt = receipt.note(format!(
                "plan {plan:?} is in no catalog; the purchase grants nothing until it is"
            ));
        }
        receipt = receipt.note(format!("purchase {} {status}", session.id));
        if let Some(payment) = payment.filter(|p| p.refunded || p.disputed) {
            let what = if payment.refunded {
                "refunded in full"
            } else {
                "disputed"
            };
            receipt = receipt.note(format!(
                "its payment {} was {what} before: no access",
                payment.payment_intent_id
            ));
        }
        let recomputed = self
            .recompute(conn, &row.org_id, Cause::Event(&event.id), now)
            .await?;
        Ok(conclude(receipt, recomputed))
    }

    /// A refund or a dispute: marks its payment (a full refund withdraws a
    /// purchase, a dispute suspends it until won) and recomputes the
    /// purchase's organization; for any other payment (a subscription's)
    /// it is only recorded against the organization.
    pub(super) async fn apply_payment(
        &self,
        conn: &mut Conn<'_>,
        event: &Event,
        now: i64,
    ) -> Result<Receipt, Error> {
        let payment: PaymentObject = match event.object() {
            Ok(payment) => payment,
            Err(reason) => return Ok(Receipt::invalid(reason)),
        };
        let amount = payment
            .amount_refunded
            .filter(|_| event.kind == EventKind::ChargeRefunded)
            .or(payment.amount);
        let mut detail = match (amount, &payment.currency) {
            (Some(amount), Some(currency)) => format!("{} {amount} {currency}", payment.id),
            _ => payment.id.clone(),
        };
        let purchase = match &payment.payment_intent {
            Some(intent) => {
                let mut row = purchases::lock_payment(conn, intent, now).await?;
                match mark(&mut row, event, &payment) {
                    Ok(Some(what)) => {
                        purchases::save_payment(conn, &row).await?;
                        detail = format!("{detail}; {what}");
                    }
                    Ok(None) => {}
                    Err(stale) => return Ok(Receipt::new(Outcome::Stale).detail(stale)),
                }
                purchases::of_payment(conn, intent).await?
            }
            None => None,
        };
        if let Some(purchase) = purchase {
            let now = organizations::lock(conn, &purchase.org_id, now).await?;
            let receipt = Receipt::new(Outcome::Applied)
                .org(Some(purchase.org_id.clone()))
                .detail(format!("{detail}; purchase {}", purchase.id));
            let recomputed = self
                .recompute(conn, &purchase.org_id, Cause::Event(&event.id), now)
                .await?;
            return Ok(conclude(receipt, recomputed));
        }
        let named_org = match org_from_payload(payment.org_id(&self.org_id_keys)) {
            Ok(org) => org,
            Err(invalid) => return Ok(invalid),
        };
        let org_id = match (named_org, payment.customer_id()) {
            (Some(org), _) => Some(org),
            (None, Some(customer)) => organizations::org_of_customer(conn, customer).await?,
            (None, None) => None,
        };
        Ok(match org_id {
            Some(org) => Receipt::new(Outcome::Applied).org(Some(org)).detail(detail),
            None => Receipt::new(Outcome::Unlinked)
                .detail(format!("{detail}; no organization known for it")),
        })
    }
}

/// What a refund or dispute event does to its payment's marks: a sentence
/// when they change, or why the event is older than the marks.
fn mark(
    row: &mut PaymentRow,
    event: &Event,
    payment: &PaymentObject,
) -> Result<Option<String>, String> {
    match event.kind {
        EventKind::ChargeRefunded if payment.refunded == Some(true) && !row.refunded => {
            row.refunded = true;
            Ok(Some("refunded in full".into()))
        }
        EventKind::ChargeRefunded if payment.refunded == Some(true) => Ok(None),
        EventKind::ChargeRefunded => Ok(Some("refunded in part; access stays".into())),
        _ => {
            let closed = event.kind == EventKind::ChargeDisputeClosed;
            let newer = row
                .dispute_event_created
                .is_none_or(|last| event.created > last || (event.created == last && closed));
            if !newer {
                return Err(format!(
                    "the dispute of {} changed after this event",
                    row.payment_intent_id
                ));
            }
            let won = matches!(payment.status.as_deref(), Some("won" | "warning_closed"));
            row.disputed = !(closed && won);
            row.dispute_event_created = Some(event.created);
            Ok(Some(match (closed, won) {
                (false, _) => "disputed; access suspended".into(),
                (true, true) => "dispute won; access restored".into(),
                (true, false) => "dispute lost; access stays withdrawn".into(),
            }))
        }
    }
}

impl Engine {
    /// Records today's terms for the purchases stored without them (made
    /// before terms were recorded); returns how many. They were granting
    /// by today's catalog already, so no answer changes.
    pub async fn record_missing_terms(&self) -> Result<usize, Error> {
        let mut recorded = 0;
        for plan in self.catalog.plans().filter(|p| p.mode == PlanMode::Payment) {
            recorded += self
                .write(async |conn| {
                    purchases::set_terms(conn, plan, Reterm::Missing, clock::now()).await
                })
                .await?;
        }
        Ok(recorded)
    }

    /// Gives every purchase of `plan` the terms of today's catalog, the one
    /// exception to a purchase keeping what it was sold with, and
    /// recomputes each organization concerned in a transaction of its own;
    /// returns how many organizations and purchases. Running it again
    /// finishes what an interrupted run left.
    pub async fn reterm(&self, plan: &str) -> Result<(usize, usize), Error> {
        let Some(plan) = self
            .catalog
            .plan(plan)
            .filter(|p| p.mode == PlanMode::Payment)
        else {
            return Err(Error::Catalog(format!(
                "plan {plan:?} is no payment plan of the catalog"
            )));
        };
        let orgs = self
            .db
            .read(async |conn| purchases::orgs_of_plan(conn, &plan.name).await)
            .await?;
        let mut retermed = 0;
        for org_id in &orgs {
            retermed += self
                .write(async |conn| {
                    let now = organizations::lock(conn, org_id, clock::now()).await?;
                    let n = purchases::set_terms(conn, plan, Reterm::OfOrg(org_id), now).await?;
                    self.recompute(conn, org_id, Cause::Time, now).await?;
                    Ok(n)
                })
                .await?;
        }
        Ok((orgs.len(), retermed))
    }
}
