//! The change feed's order. A change's id is taken when it is written, but
//! transactions commit in another order, so a reader paging by id would
//! pass a change that commits late and never see it. Instead, changes get
//! their feed position only once committed, from one sequencer at a time,
//! each above every position given before: a reader that has seen
//! position p has seen every change positioned at or below p, for good.

use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use crate::Error;
use crate::db::schema::{entitlement_changes as changes, feed_start};
use crate::db::{Conn, Prepared, run};

/// A change as the feed hands it out: the whole answer at its version.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = changes)]
pub(crate) struct FeedRow {
    pub feed_position: Option<i64>,
    pub org_id: String,
    pub version: i64,
    pub plan: String,
    pub status: String,
    pub features: String,
    pub answer: Option<String>,
    pub changed_at: i64,
}

/// The columns of a [`FeedRow`]: the same on either backend.
fn feed_columns() -> <FeedRow as Selectable<diesel::pg::Pg>>::SelectExpression {
    <FeedRow as Selectable<diesel::pg::Pg>>::construct_selection()
}

/// The key of the PostgreSQL advisory lock the sequencer holds.
const SEQUENCER_LOCK: i64 = 0x6269_6c6c_6665_6564;

/// Positions every committed change that has none, in id order, above
/// every position given so far; returns how many. Within a write
/// transaction: on PostgreSQL an advisory lock keeps sequencers one at a
/// time (SQLite's write lock already does). An organization's changes are
/// written one transaction after another, so when a later version is
/// visible the earlier one is too, with a smaller id: its versions are
/// positioned in order.
pub(crate) async fn sequence(conn: &mut Conn<'_>) -> Result<usize, Error> {
    if let Conn::Postgres(c) = conn {
        diesel::sql_query("SELECT pg_advisory_xact_lock($1)")
            .bind::<diesel::sql_types::BigInt, _>(SEQUENCER_LOCK)
            .cached()
            .execute(&mut **c)
            .await?;
    }
    // One statement, one snapshot: every change without a position that it
    // sees has an id at or above the smallest, so each lands above the
    // largest position given.
    let query = diesel::sql_query(
        "UPDATE entitlement_changes SET feed_position = id \
         + (SELECT COALESCE(MAX(feed_position), 0) + 1 FROM entitlement_changes) \
         - (SELECT MIN(id) FROM entitlement_changes WHERE feed_position IS NULL) \
         WHERE feed_position IS NULL",
    )
    .cached();
    Ok(run!(conn, |c| query.execute(c).await)?)
}

/// Whether some committed change waits for its position.
pub(crate) async fn unsequenced(conn: &mut Conn<'_>) -> Result<bool, Error> {
    let query = changes::table
        .filter(changes::feed_position.is_null())
        .select(changes::id);
    let found: Option<i64> = run!(conn, |c| query.first(c).await.optional())?;
    Ok(found.is_some())
}

/// The feed's newest position (0 before the first change).
pub(crate) async fn newest(conn: &mut Conn<'_>) -> Result<i64, Error> {
    let query = changes::table.select(diesel::dsl::max(changes::feed_position));
    let newest: Option<i64> = run!(conn, |c| query.first(c).await)?;
    Ok(newest.unwrap_or(0))
}

/// Up to `limit` changes positioned after `after` and made at or after
/// `since` (unix seconds), in feed order.
pub(crate) async fn after(
    conn: &mut Conn<'_>,
    after: i64,
    since: i64,
    limit: i64,
) -> Result<Vec<FeedRow>, Error> {
    let query = changes::table
        .filter(changes::feed_position.gt(after))
        .filter(changes::changed_at.ge(since))
        .order(changes::feed_position)
        .limit(limit)
        .select(feed_columns());
    Ok(run!(conn, |c| query.load(c).await)?)
}

/// The change at feed `position`, if one is there.
pub(crate) async fn at_position(
    conn: &mut Conn<'_>,
    position: i64,
) -> Result<Option<FeedRow>, Error> {
    let query = changes::table
        .filter(changes::feed_position.eq(position))
        .select(feed_columns());
    Ok(run!(conn, |c| query.first(c).await.optional())?)
}

/// The organization's change to `version`, if it is stored and positioned.
pub(crate) async fn at_version(
    conn: &mut Conn<'_>,
    org_id: &str,
    version: i64,
) -> Result<Option<FeedRow>, Error> {
    let query = changes::table
        .filter(changes::org_id.eq(org_id))
        .filter(changes::version.eq(version))
        .filter(changes::feed_position.is_not_null())
        .select(feed_columns());
    Ok(run!(conn, |c| query.first(c).await.optional())?)
}

/// The position at or below which every change has been pruned (0: none).
pub(crate) async fn pruned_upto(conn: &mut Conn<'_>) -> Result<i64, Error> {
    let query = feed_start::table.select(feed_start::pruned_upto);
    Ok(run!(conn, |c| query.first(c).await)?)
}

/// The positions and times of the `limit` oldest positioned changes.
async fn oldest(conn: &mut Conn<'_>, limit: i64) -> Result<Vec<(i64, i64)>, Error> {
    let query = changes::table
        .filter(changes::feed_position.is_not_null())
        .order(changes::feed_position)
        .limit(limit)
        .select((
            changes::feed_position.assume_not_null(),
            changes::changed_at,
        ));
    Ok(run!(conn, |c| query.load(c).await)?)
}

/// The last of the oldest changes up to `limit` that [`prune`] deletes:
/// made before `before`, stopping at the first that was not, and never
/// the newest (whose position the next ones count from).
async fn prune_upto(conn: &mut Conn<'_>, before: i64, limit: i64) -> Result<Option<i64>, Error> {
    let oldest = oldest(conn, limit).await?;
    // Only then is the newest asked for.
    if !matches!(oldest.as_slice(), [(_, made), ..] if *made < before) {
        return Ok(None);
    }
    let newest = newest(conn).await?;
    Ok(oldest
        .iter()
        .take_while(|&&(position, made)| made < before && position < newest)
        .last()
        .map(|&(position, _)| position))
}

/// Whether [`prune`] would delete a change made before `before`.
pub(crate) async fn prunable(conn: &mut Conn<'_>, before: i64) -> Result<bool, Error> {
    Ok(prune_upto(conn, before, 1).await?.is_some())
}

/// Deletes the oldest positioned changes, up to `limit`, made before
/// `before` (unix seconds; see [`prune_upto`]) and moves the feed's start
/// past them. Returns how many were deleted.
pub(crate) async fn prune(conn: &mut Conn<'_>, before: i64, limit: i64) -> Result<usize, Error> {
    let Some(upto) = prune_upto(conn, before, limit).await? else {
        return Ok(0);
    };
    let delete = diesel::delete(changes::table.filter(changes::feed_position.le(upto))).cached();
    let deleted = run!(conn, |c| delete.execute(c).await)?;
    let start = diesel::update(feed_start::table.filter(feed_start::pruned_upto.lt(upto)))
        .set(feed_start::pruned_upto.eq(upto))
        .cached();
    run!(conn, |c| start.execute(c).await)?;
    Ok(deleted)
}
