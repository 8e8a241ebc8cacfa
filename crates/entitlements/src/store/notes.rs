//! What operators did to an organization, as entries of its history.

use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use crate::Error;
use crate::db::schema::history_notes as notes;
use crate::db::{Conn, run};
use crate::store::history::Cursor;
use crate::store::organizations;

/// A note as the history shows it.
#[derive(Debug, Clone, Queryable)]
pub(crate) struct NoteEntry {
    pub action: String,
    pub event_id: Option<String>,
    pub detail: String,
    pub noted_at: i64,
    pub position: i64,
}

/// Adds a note at the organization's next history position. The caller
/// holds the organization's lock.
pub(crate) async fn add(
    conn: &mut Conn<'_>,
    org_id: &str,
    action: &str,
    event_id: Option<&str>,
    detail: &str,
    now: i64,
) -> Result<(), Error> {
    let position = organizations::next_position(conn, org_id, now).await?;
    let query = diesel::insert_into(notes::table).values((
        notes::org_id.eq(org_id),
        notes::position.eq(position),
        notes::action.eq(action),
        notes::event_id.eq(event_id),
        notes::detail.eq(detail),
        notes::noted_at.eq(now),
    ));
    run!(conn, |c| query.execute(c).await)?;
    Ok(())
}

/// Up to `limit` notes older than `before`, newest first.
pub(crate) async fn before(
    conn: &mut Conn<'_>,
    org_id: &str,
    before: Option<&Cursor>,
    limit: i64,
) -> Result<Vec<NoteEntry>, Error> {
    let before = before.map_or(i64::MAX, |cursor| cursor.0);
    let query = notes::table
        .filter(notes::org_id.eq(org_id))
        .filter(notes::position.lt(before))
        .select((
            notes::action,
            notes::event_id,
            notes::detail,
            notes::noted_at,
            notes::position,
        ))
        .order(notes::position.desc())
        .limit(limit);
    Ok(run!(conn, |c| query.load(c).await)?)
}
