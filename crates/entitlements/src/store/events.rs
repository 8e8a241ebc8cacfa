//! The record of received webhook events.

use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use crate::Error;
use crate::db::schema::webhook_events as events;
use crate::db::{Conn, Prepared, run};
use crate::event::Event;
use crate::receipt::Receipt;

#[derive(Insertable)]
#[diesel(table_name = events)]
struct NewEvent<'a> {
    id: &'a str,
    event_type: &'a str,
    created: i64,
    livemode: bool,
    outcome: &'a str,
    payload: &'a str,
    received_at: i64,
}

/// Records the event unless it is already recorded; returns whether it was
/// new. A concurrent delivery of the same event waits on the primary key and
/// then sees it as recorded.
pub(crate) async fn insert_new(
    conn: &mut Conn<'_>,
    event: &Event,
    payload: &str,
    now: i64,
) -> Result<bool, Error> {
    let row = NewEvent {
        id: &event.id,
        event_type: event.kind.as_str(),
        created: event.created,
        livemode: event.livemode,
        outcome: "received",
        payload,
        received_at: now,
    };
    let query = diesel::insert_into(events::table)
        .values(&row)
        .on_conflict(events::id)
        .do_nothing()
        .cached();
    Ok(run!(conn, |c| query.execute(c).await)? == 1)
}

/// Where an event stands in its organization's history, and when it was
/// recorded there.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Placement {
    pub position: i64,
    pub at: i64,
}

/// Stores what applying the event did, and its place in its
/// organization's history when given.
pub(crate) async fn record_outcome(
    conn: &mut Conn<'_>,
    id: &str,
    receipt: &Receipt,
    placement: Option<Placement>,
) -> Result<(), Error> {
    let outcome = (
        events::outcome.eq(receipt.outcome.as_str()),
        events::detail.eq(receipt.detail.as_deref()),
        events::org_id.eq(receipt.org_id.as_deref()),
        events::subscription_id.eq(receipt.subscription_id.as_deref()),
    );
    let target = events::table.find(id);
    match placement {
        Some(Placement { position, at }) => {
            let query = diesel::update(target)
                .set((
                    outcome,
                    events::position.eq(position),
                    events::received_at.eq(at),
                ))
                .cached();
            run!(conn, |c| query.execute(c).await)?
        }
        None => {
            let query = diesel::update(target).set(outcome).cached();
            run!(conn, |c| query.execute(c).await)?
        }
    };
    Ok(())
}

/// The organization a recorded event concerns: `None` when no event has
/// this id, `Some(None)` when it concerns none.
pub(crate) async fn org_of(conn: &mut Conn<'_>, id: &str) -> Result<Option<Option<String>>, Error> {
    let query = events::table.find(id).select(events::org_id);
    Ok(run!(conn, |c| query.first(c).await.optional())?)
}

/// Whether an event with this id is recorded.
pub(crate) async fn exists(conn: &mut Conn<'_>, id: &str) -> Result<bool, Error> {
    let query = events::table.find(id).select(events::id);
    let found: Option<String> = run!(conn, |c| query.first(c).await.optional())?;
    Ok(found.is_some())
}
