//! What operators did to an organization, as entries of its history.

use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use crate::Error;
use crate::db::schema::history_notes as notes;
use crate::db::{Conn, Prepared, run};
use crate::store::{Cause, organizations};

/// Adds a note at the organization's next history position. The caller
/// holds the organization's lock.
pub(crate) async fn add(
    conn: &mut Conn<'_>,
    org_id: &str,
    action: &str,
    about: Cause<'_>,
    detail: &str,
    now: i64,
) -> Result<(), Error> {
    let position = organizations::next_position(conn, org_id, now).await?;
    add_at(conn, org_id, position, action, about, detail, now).await
}

/// Adds a note at a history position the caller took.
pub(crate) async fn add_at(
    conn: &mut Conn<'_>,
    org_id: &str,
    position: i64,
    action: &str,
    about: Cause<'_>,
    detail: &str,
    now: i64,
) -> Result<(), Error> {
    let (event_id, grant_id) = about.ids();
    let query = diesel::insert_into(notes::table)
        .values((
            notes::org_id.eq(org_id),
            notes::position.eq(position),
            notes::action.eq(action),
            notes::event_id.eq(event_id),
            notes::grant_id.eq(grant_id),
            notes::detail.eq(detail),
            notes::noted_at.eq(now),
        ))
        .cached();
    run!(conn, |c| query.execute(c).await)?;
    Ok(())
}
