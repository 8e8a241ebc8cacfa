//! The subscription state machine as a pure function: what an input does
//! to a subscription's stored state, or why it may change nothing. No
//! database, no clock: `apply.rs` locks, calls this, saves and recomputes.
//!
//! The rules:
//! - Everything is ordered on Stripe's clock, never this host's: a payload
//!   by its event's `created`, where equal seconds are not stale (a checkout
//!   fires several events in one second); a state read from Stripe by its
//!   stamp, the newest Stripe time known to precede the read (its own
//!   timestamps, the event it was read for, the newest event recorded
//!   before it). A reconciliation's read is older than an applied event
//!   created in or after its stamp's second: webhooks are the first source
//!   of truth. No read moves the read time backwards.
//! - Nothing revives a terminal status (`canceled`, `incomplete_expired`).
//! - Dunning belongs to an invoice: its failure starts it, a newer
//!   invoice's failure starts it afresh, and only a payment of that invoice
//!   or a newer one ends it, as does any state other than `past_due` no
//!   older than the dunning. A failure older than a payment is stale.
//! - A state naming another organization than the stored one moves the
//!   subscription; the one it leaves is recomputed too.

use std::cmp::Ordering;

use crate::event::InvoiceObject;
use crate::kinds::SubscriptionStatus;
use crate::snapshot::SubscriptionSnapshot;
use crate::store::subscriptions::SubscriptionRow;

/// What a subscription state comes from: an event, or a reconciliation.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Source<'a> {
    /// The event, named in the history of any change it causes; none for
    /// a reconciliation.
    pub id: Option<&'a str>,
    /// When the state held (unix seconds).
    pub created: i64,
}

/// What may change a subscription.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Input<'a> {
    /// Its full state, from an event's payload or, with `read_at_ms`, as
    /// read from Stripe's API; `org_id` is the organization it belongs to,
    /// as far as anything tells.
    State {
        state: &'a SubscriptionSnapshot,
        source: Source<'a>,
        read_at_ms: Option<i64>,
        org_id: Option<&'a str>,
    },
    /// One of its invoices failed to be paid, in an event created at `at`.
    PaymentFailed {
        invoice: &'a InvoiceObject,
        at: i64,
        org_id: Option<&'a str>,
    },
    /// One of its invoices was paid.
    Paid {
        invoice: &'a InvoiceObject,
        at: i64,
        org_id: Option<&'a str>,
    },
}

/// The state to store, and the organization the subscription left.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Next {
    pub row: SubscriptionRow,
    pub left: Option<String>,
}

/// Why an input changes nothing: the event is `stale`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Refusal(pub String);

/// What `input` does to the subscription stored as `current`.
pub(crate) fn transition(current: &SubscriptionRow, input: Input<'_>) -> Result<Next, Refusal> {
    let mut row = current.clone();
    let mut left = None;
    match input {
        Input::State {
            state,
            source,
            read_at_ms,
            org_id,
        } => {
            if let Some(reason) = staleness(current, source, read_at_ms, &state.status) {
                return Err(Refusal(reason));
            }
            if let Some(org_id) = org_id {
                left = current.org_id.clone().filter(|stored| stored != org_id);
                row.org_id = Some(org_id.to_owned());
            }
            let not_older = |since: i64| read_at_ms.is_some() || since <= source.created;
            if state.status != SubscriptionStatus::PastDue
                && row.past_due_since.is_some_and(not_older)
            {
                end_dunning(&mut row);
            }
            take_state(
                &mut row,
                state,
                (source.created, source.id.is_some()),
                read_at_ms,
            );
        }
        Input::PaymentFailed {
            invoice,
            at,
            org_id,
        } => {
            if row.last_paid_at.is_some_and(|paid| paid >= at) {
                return Err(Refusal("a later payment already ended this dunning".into()));
            }
            match dunning_order(&row, invoice, at) {
                Ordering::Equal => {
                    row.past_due_since = row.past_due_since.map(|since| since.min(at));
                }
                Ordering::Greater => {
                    row.past_due_since = Some(at);
                    row.dunning_invoice = Some(invoice.id.clone());
                    row.dunning_invoice_created = invoice.created;
                }
                Ordering::Less => {
                    return Err(Refusal("a newer invoice is already in dunning".into()));
                }
            }
            link(&mut row, org_id);
        }
        Input::Paid {
            invoice,
            at,
            org_id,
        } => {
            row.last_paid_at = Some(row.last_paid_at.map_or(at, |paid| paid.max(at)));
            if row.past_due_since.is_some() && dunning_order(&row, invoice, at).is_ge() {
                end_dunning(&mut row);
            }
            link(&mut row, org_id);
        }
    }
    Ok(Next { row, left })
}

/// Why a state may not be applied, if it may not.
fn staleness(
    row: &SubscriptionRow,
    source: Source<'_>,
    read_at_ms: Option<i64>,
    status: &SubscriptionStatus,
) -> Option<String> {
    let stored = row.status.as_deref().map(SubscriptionStatus::parse);
    if let Some(current) = stored.filter(|s| s.is_terminal() && s != status) {
        return Some(format!(
            "subscription is already {current}, which no event revives"
        ));
    }
    let reconciling = source.id.is_none();
    match (read_at_ms, row.state_read_at, row.last_event_created) {
        (Some(read), Some(last_read), _) if read < last_read => {
            Some("a newer read of the subscription was already applied".to_owned())
        }
        (Some(read), _, Some(last)) if reconciling && last >= read.div_euclid(1000) => Some(
            format!("an event created at {last} was applied since this state was read"),
        ),
        (None, _, Some(last)) if source.created < last => Some(format!(
            "event created at {} is older than the applied one of {last}",
            source.created
        )),
        (None, Some(last_read), _) if source.created < last_read.div_euclid(1000) => Some(format!(
            "event created at {} is older than the state read at {}",
            source.created,
            last_read.div_euclid(1000)
        )),
        _ => None,
    }
}

/// Stores `state`; `created` is the time of its event (`from_event`) or
/// read, and only an event moves the last event's time: a reconciliation
/// is ordered by its read time alone.
fn take_state(
    row: &mut SubscriptionRow,
    state: &SubscriptionSnapshot,
    (created, from_event): (i64, bool),
    read_at_ms: Option<i64>,
) {
    if state.customer.is_some() {
        row.customer_id = state.customer.clone();
    }
    row.status = Some(state.status.as_str().to_owned());
    row.current_period_start = state.current_period_start;
    row.current_period_end = state.current_period_end;
    row.cancel_at_period_end = state.cancel_at_period_end;
    if from_event {
        row.last_event_created = Some(
            row.last_event_created
                .map_or(created, |last| last.max(created)),
        );
    }
    if let Some(read) = read_at_ms {
        row.state_read_at = Some(row.state_read_at.map_or(read, |last| last.max(read)));
    }
}

/// How `invoice` (of an event created at `at`) stands to the invoice in
/// dunning: the same one, newer (or no dunning at all), or older. Invoices
/// order by their `created`; without it, by when their events happened.
fn dunning_order(row: &SubscriptionRow, invoice: &InvoiceObject, at: i64) -> Ordering {
    let Some(current) = &row.dunning_invoice else {
        return Ordering::Greater;
    };
    if *current == invoice.id {
        return Ordering::Equal;
    }
    match (invoice.created, row.dunning_invoice_created) {
        (Some(created), Some(current)) => created.cmp(&current).then(Ordering::Greater),
        _ => match row.past_due_since {
            Some(since) if since > at => Ordering::Less,
            _ => Ordering::Greater,
        },
    }
}

fn end_dunning(row: &mut SubscriptionRow) {
    row.past_due_since = None;
    row.dunning_invoice = None;
    row.dunning_invoice_created = None;
}

/// An invoice links a subscription that has no organization yet.
fn link(row: &mut SubscriptionRow, org_id: Option<&str>) {
    if row.org_id.is_none() {
        row.org_id = org_id.map(str::to_owned);
    }
}

#[cfg(test)]
mod tests;
