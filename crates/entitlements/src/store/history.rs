//! An organization's timeline: its events, its entitlement changes and
//! operators' notes, newest first, one page at a time.

use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use crate::Error;
use crate::catalog::Features;
use crate::db::schema::{
    entitlement_changes as changes, history_notes as notes, webhook_events as events,
};
use crate::db::{Conn, run};
use crate::history::HistoryEntry;

/// Where a page starts: entries before this position of the
/// organization's history. Events, changes and notes share one sequence of
/// positions per organization, taken under its lock as each is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor(pub(crate) i64);

/// A recorded event.
#[derive(Debug, Clone, Queryable)]
pub struct EventEntry {
    /// Stripe's event id.
    pub id: String,
    /// Its type, as Stripe names it.
    pub event_type: String,
    /// What applying it did.
    pub outcome: String,
    /// Why, or what was noticed.
    pub detail: Option<String>,
    /// The subscription it concerned.
    pub subscription_id: Option<String>,
    /// When it was recorded (unix seconds).
    pub received_at: i64,
    /// Its place in the organization's history.
    pub position: i64,
}

/// A change of an organization's entitlements; the features are read
/// beside it.
#[derive(Debug, Clone, Queryable)]
pub struct ChangeEntry {
    /// The new version.
    pub version: i64,
    /// The event that caused it; none when time alone or the catalog did.
    pub event_id: Option<String>,
    /// The plan afterwards.
    pub plan: String,
    /// The status afterwards.
    pub status: String,
    /// When it changed (unix seconds).
    pub changed_at: i64,
    /// Its place in the organization's history.
    pub position: i64,
    /// The grant that caused it.
    pub grant_id: Option<String>,
}

/// Something an operator did.
#[derive(Debug, Clone, Queryable)]
pub struct NoteEntry {
    /// What: `replay`, `grant_created`, `grant_revoked`, `grant_expired`.
    pub action: String,
    /// The event it concerned.
    pub event_id: Option<String>,
    /// What came of it.
    pub detail: String,
    /// When (unix seconds).
    pub noted_at: i64,
    /// Its place in the organization's history.
    pub position: i64,
    /// The grant it concerned.
    pub grant_id: Option<String>,
}

/// Up to `limit` rows of one history table older than `before`, newest
/// first.
macro_rules! older {
    ($conn:expr, $table:ident, $columns:expr, $org_id:expr, $before:expr, $limit:expr) => {{
        let query = $table::table
            .filter($table::org_id.eq($org_id))
            .filter($table::position.lt($before))
            .select($columns)
            .order($table::position.desc())
            .limit($limit);
        run!($conn, |c| query.load(c).await)
    }};
}

/// Up to `limit` entries of each kind older than `before`, newest first
/// within each kind.
pub(crate) async fn before(
    conn: &mut Conn<'_>,
    org_id: &str,
    before: Option<&Cursor>,
    limit: i64,
) -> Result<Vec<Vec<HistoryEntry>>, Error> {
    let before = before.map_or(i64::MAX, |cursor| cursor.0);
    let event_columns = (
        events::id,
        events::event_type,
        events::outcome,
        events::detail,
        events::subscription_id,
        events::received_at,
        events::position.assume_not_null(),
    );
    let events: Vec<EventEntry> = older!(conn, events, event_columns, org_id, before, limit)?;
    let change_columns = (
        (
            changes::version,
            changes::event_id,
            changes::plan,
            changes::status,
            changes::changed_at,
            changes::position,
            changes::grant_id,
        ),
        changes::features,
    );
    let changes: Vec<(ChangeEntry, String)> =
        older!(conn, changes, change_columns, org_id, before, limit)?;
    let note_columns = (
        notes::action,
        notes::event_id,
        notes::detail,
        notes::noted_at,
        notes::position,
        notes::grant_id,
    );
    let notes: Vec<NoteEntry> = older!(conn, notes, note_columns, org_id, before, limit)?;
    let changes = changes
        .into_iter()
        .map(|(change, features)| {
            let features: Features = serde_json::from_str(&features)?;
            Ok(HistoryEntry::EntitlementChange(change, features))
        })
        .collect::<Result<_, Error>>()?;
    Ok(vec![
        events.into_iter().map(HistoryEntry::Event).collect(),
        changes,
        notes.into_iter().map(HistoryEntry::Note).collect(),
    ])
}
