//! An organization's timeline: its events and its entitlement changes,
//! newest first, one page at a time.

use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use crate::Error;
use crate::db::schema::{entitlement_changes as changes, webhook_events as events};
use crate::db::{Conn, run};

/// Where a page starts: entries before this position of the
/// organization's history. Events and changes share one sequence of
/// positions per organization, taken under its lock as each is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor(pub(crate) i64);

/// A recorded event as the history shows it.
#[derive(Debug, Clone, Queryable)]
pub(crate) struct EventEntry {
    pub id: String,
    pub event_type: String,
    pub outcome: String,
    pub detail: Option<String>,
    pub subscription_id: Option<String>,
    pub received_at: i64,
    pub position: i64,
}

/// An entitlement change as the history shows it.
#[derive(Debug, Clone, Queryable)]
pub(crate) struct ChangeEntry {
    pub version: i64,
    pub event_id: Option<String>,
    pub plan: String,
    pub status: String,
    pub features: String,
    pub changed_at: i64,
    pub position: i64,
}

/// Up to `limit` events older than `before`, newest first.
pub(crate) async fn events_before(
    conn: &mut Conn<'_>,
    org_id: &str,
    before: Option<&Cursor>,
    limit: i64,
) -> Result<Vec<EventEntry>, Error> {
    let columns = (
        events::id,
        events::event_type,
        events::outcome,
        events::detail,
        events::subscription_id,
        events::received_at,
        events::position.assume_not_null(),
    );
    let before = before.map_or(i64::MAX, |cursor| cursor.0);
    let query = events::table
        .filter(events::org_id.eq(org_id))
        .filter(events::position.lt(before))
        .select(columns)
        .order(events::position.desc())
        .limit(limit);
    Ok(run!(conn, |c| query.load(c).await)?)
}

/// Up to `limit` changes older than `before`, newest first.
pub(crate) async fn changes_before(
    conn: &mut Conn<'_>,
    org_id: &str,
    before: Option<&Cursor>,
    limit: i64,
) -> Result<Vec<ChangeEntry>, Error> {
    let columns = (
        changes::version,
        changes::event_id,
        changes::plan,
        changes::status,
        changes::features,
        changes::changed_at,
        changes::position,
    );
    let before = before.map_or(i64::MAX, |cursor| cursor.0);
    let query = changes::table
        .filter(changes::org_id.eq(org_id))
        .filter(changes::position.lt(before))
        .select(columns)
        .order(changes::position.desc())
        .limit(limit);
    Ok(run!(conn, |c| query.load(c).await)?)
}
