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
    serde_json::from_value(serde_json::json!({"id": id, "created": created})).expect("an invoice")
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
    let paid =
        |row: &SubscriptionRow, id: &str, created: i64, at: i64| settle(row, true, id, created, at);
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
