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
mod tests {
    use super::*;

    const T: i64 = 1_800_000_000;

    fn row() -> SubscriptionRow {
        SubscriptionRow {
            id: "sub_1".into(),
            org_id: Some("acme".into()),
            customer_id: Some("cus_1".into()),
            status: Some("active".into()),
            current_period_start: Some(T - 100),
            current_period_end: Some(T + 1000),
            cancel_at_period_end: false,
            past_due_since: None,
            dunning_invoice: None,
            last_paid_at: None,
            last_event_created: Some(T),
            state_read_at: None,
            updated_at: T,
            dunning_invoice_created: None,
        }
    }

    fn state(status: &str, org: Option<&str>) -> SubscriptionSnapshot {
        SubscriptionSnapshot {
            id: "sub_1".into(),
            customer: Some("cus_1".into()),
            status: SubscriptionStatus::parse(status),
            cancel_at_period_end: false,
            current_period_start: Some(T),
            current_period_end: Some(T + 2000),
            metadata: org
                .map(|org| [("org_id".to_owned(), org.to_owned())].into())
                .unwrap_or_default(),
            items: Vec::new(),
        }
    }

    fn invoice(id: &str, created: Option<i64>) -> InvoiceObject {
        serde_json::from_value(serde_json::json!({"id": id, "created": created}))
            .expect("an invoice")
    }

    fn event(created: i64) -> Source<'static> {
        Source {
            id: Some("evt_1"),
            created,
        }
    }

    fn reconciliation(created: i64) -> Source<'static> {
        Source { id: None, created }
    }

    fn apply_state(
        current: &SubscriptionRow,
        status: &str,
        source: Source<'_>,
        read_at_ms: Option<i64>,
        org: Option<&str>,
    ) -> Result<Next, Refusal> {
        let state = state(status, org);
        transition(
            current,
            Input::State {
                state: &state,
                source,
                read_at_ms,
                org_id: org,
            },
        )
    }

    fn with(change: impl FnOnce(&mut SubscriptionRow)) -> SubscriptionRow {
        let mut row = row();
        change(&mut row);
        row
    }

    /// Each case: the stored row, the input's status, its source, read time
    /// and organization, and `Ok(status stored)` or `Err(part of the reason)`.
    #[test]
    fn states_apply_or_are_refused_as_the_rules_say() {
        type Case = (
            &'static str,
            SubscriptionRow,
            &'static str,
            Source<'static>,
            Option<i64>,
            Result<&'static str, &'static str>,
        );
        let canceled = with(|r| r.status = Some("canceled".into()));
        let read = with(|r| r.state_read_at = Some(T * 1000 + 500));
        let cases: Vec<Case> = vec![
            (
                "a newer payload applies",
                row(),
                "past_due",
                event(T + 1),
                None,
                Ok("past_due"),
            ),
            (
                "the same second applies",
                row(),
                "past_due",
                event(T),
                None,
                Ok("past_due"),
            ),
            (
                "an older payload is stale",
                row(),
                "past_due",
                event(T - 1),
                None,
                Err("older than"),
            ),
            (
                "canceled is never revived",
                canceled.clone(),
                "active",
                event(T + 9),
                None,
                Err("already canceled"),
            ),
            (
                "canceled again is fine",
                canceled,
                "canceled",
                event(T + 9),
                None,
                Ok("canceled"),
            ),
            (
                "a newer read applies",
                read.clone(),
                "unpaid",
                event(T - 5),
                Some(T * 1000 + 600),
                Ok("unpaid"),
            ),
            (
                "an older read is stale",
                read,
                "unpaid",
                event(T + 5),
                Some(T * 1000 + 400),
                Err("newer read"),
            ),
            (
                "a read of a payload's second applies",
                row(),
                "trialing",
                event(T),
                Some(T * 1000 + 1),
                Ok("trialing"),
            ),
            (
                "a page read since an event's second is stale",
                row(),
                "unpaid",
                reconciliation(T),
                Some(T * 1000 + 999),
                Err("was applied since"),
            ),
            (
                "a page read after it applies",
                row(),
                "unpaid",
                reconciliation(T + 1),
                Some(T * 1000 + 1000),
                Ok("unpaid"),
            ),
        ];
        for (name, current, status, source, read_at, expected) in cases {
            let result = apply_state(&current, status, source, read_at, Some("acme"));
            match (result, expected) {
                (Ok(next), Ok(stored)) => {
                    assert_eq!(next.row.status.as_deref(), Some(stored), "{name}")
                }
                (Err(Refusal(reason)), Err(part)) => {
                    assert!(reason.contains(part), "{name}: {reason}")
                }
                (other, expected) => panic!("{name}: {other:?}, expected {expected:?}"),
            }
        }
    }

    #[test]
    fn no_read_moves_the_read_time_backwards() {
        let current = with(|r| {
            r.state_read_at = Some(T * 1000);
            r.last_event_created = None;
        });
        // A page read earlier that is still applied (status unchanged) is
        // refused; a newer one moves the time forward.
        let next = apply_state(&current, "active", event(T), Some(T * 1000 + 7), None).unwrap();
        assert_eq!(next.row.state_read_at, Some(T * 1000 + 7));
        assert!(apply_state(&next.row, "active", event(T), Some(T * 1000 + 3), None).is_err());
    }

    #[test]
    fn a_state_naming_another_organization_moves_the_subscription() {
        let next = apply_state(&row(), "active", event(T + 1), None, Some("beta")).unwrap();
        assert_eq!(
            (next.row.org_id.as_deref(), next.left.as_deref()),
            (Some("beta"), Some("acme"))
        );
        let same = apply_state(&row(), "active", event(T + 1), None, Some("acme")).unwrap();
        assert_eq!(same.left, None);
        let unnamed = apply_state(&row(), "active", event(T + 1), None, None).unwrap();
        assert_eq!(
            (unnamed.row.org_id.as_deref(), unnamed.left),
            (Some("acme"), None)
        );
    }

    #[test]
    fn dunning_belongs_to_its_invoice() {
        let settle = |row: &SubscriptionRow, paid: bool, id: &str, created: i64, at: i64| {
            let invoice = &invoice(id, Some(created));
            let input = match paid {
                false => Input::PaymentFailed {
                    invoice,
                    at,
                    org_id: None,
                },
                true => Input::Paid {
                    invoice,
                    at,
                    org_id: None,
                },
            };
            transition(row, input)
        };
        let failed = |row: &SubscriptionRow, id: &str, created: i64, at: i64| {
            settle(row, false, id, created, at)
        };
        let paid = |row: &SubscriptionRow, id: &str, created: i64, at: i64| {
            settle(row, true, id, created, at)
        };
        let first = failed(&row(), "in_1", T, T + 10).unwrap().row;
        assert_eq!(
            (first.past_due_since, first.dunning_invoice.as_deref()),
            (Some(T + 10), Some("in_1"))
        );
        // A retry of the same invoice keeps the first failure.
        let retry = failed(&first, "in_1", T, T + 50).unwrap().row;
        assert_eq!(retry.past_due_since, Some(T + 10));
        // A newer invoice's failure starts afresh; an older one's is stale.
        let newer = failed(&first, "in_2", T + 100, T + 200).unwrap().row;
        assert_eq!(
            (newer.past_due_since, newer.dunning_invoice.as_deref()),
            (Some(T + 200), Some("in_2"))
        );
        assert!(failed(&newer, "in_0", T - 100, T + 300).is_err());
        // Paying an older invoice leaves it; paying it or a newer one ends it.
        assert_eq!(
            paid(&newer, "in_1", T, T + 400).unwrap().row.past_due_since,
            Some(T + 200)
        );
        assert_eq!(
            paid(&newer, "in_2", T + 100, T + 400)
                .unwrap()
                .row
                .past_due_since,
            None
        );
        assert_eq!(
            paid(&newer, "in_3", T + 300, T + 400)
                .unwrap()
                .row
                .past_due_since,
            None
        );
        // A failure older than a payment is stale.
        let settled = paid(&row(), "in_9", T, T + 500).unwrap().row;
        assert!(failed(&settled, "in_9", T, T + 400).is_err());
    }

    #[test]
    fn a_state_other_than_past_due_ends_dunning_unless_older() {
        let dunning = with(|r| {
            r.past_due_since = Some(T + 10);
            r.dunning_invoice = Some("in_1".into());
        });
        let older = apply_state(&dunning, "active", event(T + 5), None, None)
            .unwrap()
            .row;
        assert_eq!(older.past_due_since, Some(T + 10));
        let newer = apply_state(&dunning, "active", event(T + 10), None, None)
            .unwrap()
            .row;
        assert_eq!((newer.past_due_since, newer.dunning_invoice), (None, None));
        let still = apply_state(&dunning, "past_due", event(T + 20), None, None)
            .unwrap()
            .row;
        assert_eq!(still.past_due_since, Some(T + 10));
    }

    #[test]
    fn an_invoice_links_an_unlinked_subscription_only() {
        let unlinked = with(|r| r.org_id = None);
        let invoice = invoice("in_1", None);
        let input = Input::Paid {
            invoice: &invoice,
            at: T,
            org_id: Some("beta"),
        };
        assert_eq!(
            transition(&unlinked, input).unwrap().row.org_id.as_deref(),
            Some("beta")
        );
        assert_eq!(
            transition(&row(), input).unwrap().row.org_id.as_deref(),
            Some("acme")
        );
    }
}
