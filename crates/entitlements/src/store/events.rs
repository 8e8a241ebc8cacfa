//! The record of received webhook events.

use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use crate::Error;
use crate::db::schema::webhook_events as events;
use crate::db::{Conn, Prepared, run};
use crate::event::Event;
use crate::receipt::Receipt;

/// A `webhook_events` row to record.
#[derive(Insertable)]
#[diesel(table_name = events, treat_none_as_null = true)]
pub(crate) struct NewEvent<'a> {
    id: &'a str,
    event_type: &'a str,
    created: i64,
    livemode: bool,
    org_id: Option<&'a str>,
    subscription_id: Option<&'a str>,
    outcome: &'a str,
    detail: Option<&'a str>,
    payload: &'a str,
    received_at: i64,
    position: Option<i64>,
    customer_id: Option<&'a str>,
}

/// Where an event stands in its organization's history, and when it was
/// recorded there.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Placement {
    pub position: i64,
    pub at: i64,
}

impl<'a> NewEvent<'a> {
    /// The event with what applying it did, and its place in its
    /// organization's history when given; stamped `received_at` otherwise.
    pub(crate) fn new(
        event: &'a Event,
        payload: &'a str,
        receipt: &'a Receipt,
        placement: Option<Placement>,
        received_at: i64,
    ) -> Self {
        Self {
            id: &event.id,
            event_type: event.kind.as_str(),
            created: event.created,
            livemode: event.livemode,
            org_id: receipt.org_id.as_deref(),
            subscription_id: receipt.subscription_id.as_deref(),
            outcome: receipt.outcome.as_str(),
            detail: receipt.detail.as_deref(),
            payload,
            received_at: placement.map_or(received_at, |p| p.at),
            position: placement.map(|p| p.position),
            customer_id: event.customer(),
        }
    }
}

/// Records the event (see [`NewEvent::new`]). Returns whether it was new:
/// `false` when a concurrent delivery of the same event recorded it first
/// (this one waited on the primary key), and then the caller must roll
/// back what it applied.
pub(crate) async fn record(
    conn: &mut Conn<'_>,
    event: &Event,
    payload: &str,
    receipt: &Receipt,
    placement: Option<Placement>,
    received_at: i64,
) -> Result<bool, Error> {
    let row = NewEvent::new(event, payload, receipt, placement, received_at);
    Ok(!record_many(conn, &[row]).await?.is_empty())
}

/// Records each event (of distinct ids) unless one with its id is
/// recorded already (see [`record`]); answers the ids recorded. One
/// statement on PostgreSQL.
pub(crate) async fn record_many(
    conn: &mut Conn<'_>,
    rows: &[NewEvent<'_>],
) -> Result<Vec<String>, Error> {
    let Conn::Postgres(c) = conn else {
        let mut recorded = Vec::with_capacity(rows.len());
        for row in rows {
            let query = diesel::insert_into(events::table)
                .values(row)
                .on_conflict(events::id)
                .do_nothing()
                .cached();
            if run!(conn, |c| query.execute(c).await)? == 1 {
                recorded.push(row.id.to_owned());
            }
        }
        return Ok(recorded);
    };
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let query = diesel::insert_into(events::table)
        .values(rows)
        .on_conflict(events::id)
        .do_nothing()
        .returning(events::id)
        .cached();
    Ok(query.get_results(&mut **c).await?)
}

/// Which of these event ids are recorded.
pub(crate) async fn existing(conn: &mut Conn<'_>, ids: &[&str]) -> Result<Vec<String>, Error> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let query = events::table
        .filter(events::id.eq_any(ids))
        .select(events::id);
    Ok(run!(conn, |c| query.load(c).await)?)
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

/// The newest `created` of any recorded event (unix seconds).
pub(crate) async fn newest_created(conn: &mut Conn<'_>) -> Result<Option<i64>, Error> {
    let query = events::table.select(diesel::dsl::max(events::created));
    let newest: Option<i64> = run!(conn, |c| query.first(c).await)?;
    Ok(newest)
}

/// The ids of the events waiting for an organization whose object names
/// `customer`, oldest first (an index lookup).
pub(crate) async fn unlinked_of(conn: &mut Conn<'_>, customer: &str) -> Result<Vec<String>, Error> {
    let query = events::table
        .filter(events::outcome.eq("unlinked"))
        .filter(events::customer_id.eq(customer))
        .order((events::created, events::id))
        .select(events::id)
        .cached();
    Ok(run!(conn, |c| query.load(c).await)?)
}

/// An event that waited for an organization now belongs to `org_id`, at
/// `position` in its history; what was stored of it is applied.
pub(crate) async fn link(
    conn: &mut Conn<'_>,
    id: &str,
    org_id: &str,
    position: i64,
    detail: &str,
) -> Result<(), Error> {
    let query = diesel::update(events::table.find(id))
        .set((
            events::org_id.eq(org_id),
            events::outcome.eq("applied"),
            events::detail.eq(detail),
            events::position.eq(position),
        ))
        .cached();
    run!(conn, |c| query.execute(c).await)?;
    Ok(())
}

/// How many events wait for an organization.
pub(crate) async fn unlinked_count(conn: &mut Conn<'_>) -> Result<i64, Error> {
    let query = events::table.filter(events::outcome.eq("unlinked")).count();
    Ok(run!(conn, |c| query.get_result(c).await)?)
}

/// Whether some event was created before `before` (Stripe's clock).
pub(crate) async fn prunable(conn: &mut Conn<'_>, before: i64) -> Result<bool, Error> {
    let query = events::table.select(diesel::dsl::min(events::created));
    let oldest: Option<i64> = run!(conn, |c| query.first(c).await)?;
    Ok(oldest.is_some_and(|created| created < before))
}

/// Deletes the oldest events created before `before` (unix seconds), about
/// `limit` of them (all of the last second they reach); returns how many.
pub(crate) async fn prune(conn: &mut Conn<'_>, before: i64, limit: i64) -> Result<usize, Error> {
    let last = events::table
        .filter(events::created.lt(before))
        .order(events::created)
        .offset(limit.saturating_sub(1))
        .select(events::created);
    let last: Option<i64> = run!(conn, |c| last.first(c).await.optional())?;
    let until = last.map_or(before, |last| before.min(last + 1));
    let query = diesel::delete(events::table.filter(events::created.lt(until))).cached();
    Ok(run!(conn, |c| query.execute(c).await)?)
}
