//! An organization's timeline: its events and its entitlement changes,
//! newest first, one page at a time.

use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use crate::Error;
use crate::db::schema::{entitlement_changes as changes, webhook_events as events};
use crate::db::{Conn, run};

/// Where a page starts: entries strictly older than this position.
/// Entries sort by time, then changes before events, then id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cursor {
    /// After this event.
    Event {
        /// `received_at` of the event.
        at: i64,
        /// Its id.
        id: String,
    },
    /// After this change.
    Change {
        /// `changed_at` of the change.
        at: i64,
        /// Its row id.
        id: i64,
    },
}

/// A recorded event as the history shows it.
#[derive(Debug, Clone, Queryable)]
pub(crate) struct EventEntry {
    pub id: String,
    pub event_type: String,
    pub outcome: String,
    pub detail: Option<String>,
    pub subscription_id: Option<String>,
    pub received_at: i64,
}

/// An entitlement change as the history shows it.
#[derive(Debug, Clone, Queryable)]
pub(crate) struct ChangeEntry {
    pub id: i64,
    pub version: i64,
    pub event_id: Option<String>,
    pub plan: String,
    pub status: String,
    pub features: String,
    pub changed_at: i64,
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
    );
    Ok(run!(conn, |c| {
        let mut query = events::table
            .filter(events::org_id.eq(org_id))
            .select(columns)
            .order((events::received_at.desc(), events::id.desc()))
            .limit(limit)
            .into_boxed();
        query = match before {
            None => query,
            // Changes sort before events of the same second.
            Some(Cursor::Change { at, .. }) => query.filter(events::received_at.le(*at)),
            Some(Cursor::Event { at, id }) => query.filter(
                events::received_at
                    .lt(*at)
                    .or(events::received_at.eq(*at).and(events::id.lt(id.clone()))),
            ),
        };
        query.load(c).await
    })?)
}

/// Up to `limit` changes older than `before`, newest first.
pub(crate) async fn changes_before(
    conn: &mut Conn<'_>,
    org_id: &str,
    before: Option<&Cursor>,
    limit: i64,
) -> Result<Vec<ChangeEntry>, Error> {
    let columns = (
        changes::id,
        changes::version,
        changes::event_id,
        changes::plan,
        changes::status,
        changes::features,
        changes::changed_at,
    );
    Ok(run!(conn, |c| {
        let mut query = changes::table
            .filter(changes::org_id.eq(org_id))
            .select(columns)
            .order((changes::changed_at.desc(), changes::id.desc()))
            .limit(limit)
            .into_boxed();
        query = match before {
            None => query,
            Some(Cursor::Event { at, .. }) => query.filter(changes::changed_at.lt(*at)),
            Some(Cursor::Change { at, id }) => query.filter(
                changes::changed_at
                    .lt(*at)
                    .or(changes::changed_at.eq(*at).and(changes::id.lt(*id))),
            ),
        };
        query.load(c).await
    })?)
}
