//! What each notification endpoint has been sent: how far it has taken in
//! the change feed, and per organization the newest version to send and
//! the last one sent.

use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use crate::Error;
use crate::db::schema::notify_endpoints as endpoints;
use crate::db::schema::notify_progress as progress;
use crate::db::{Conn, Prepared, run};

/// How far the endpoint has taken in the feed; a new endpoint starts at
/// the feed's end, with the changes made from now on.
pub(crate) async fn endpoint_position(conn: &mut Conn<'_>, name: &str) -> Result<i64, Error> {
    let end = super::feed::newest(conn).await?;
    let insert = diesel::insert_into(endpoints::table)
        .values((endpoints::name.eq(name), endpoints::feed_position.eq(end)))
        .on_conflict(endpoints::name)
        .do_nothing()
        .cached();
    run!(conn, |c| insert.execute(c).await)?;
    Ok(taken_in(conn, name).await?.unwrap_or(end))
}

/// How far the endpoint has taken in the feed, if it has started.
pub(crate) async fn taken_in(conn: &mut Conn<'_>, name: &str) -> Result<Option<i64>, Error> {
    let query = endpoints::table.find(name).select(endpoints::feed_position);
    Ok(run!(conn, |c| query.first(c).await.optional())?)
}

/// The endpoint has taken in the feed up to `position`.
pub(crate) async fn advance(conn: &mut Conn<'_>, name: &str, position: i64) -> Result<(), Error> {
    let query = diesel::update(endpoints::table.find(name))
        .set(endpoints::feed_position.eq(position))
        .cached();
    run!(conn, |c| query.execute(c).await)?;
    Ok(())
}

/// The endpoint must be sent the organization's `version`, after what it
/// was sent before (from this version on, for an organization new to it).
pub(crate) async fn want(
    conn: &mut Conn<'_>,
    endpoint: &str,
    org_id: &str,
    version: i64,
) -> Result<(), Error> {
    let query = diesel::insert_into(progress::table)
        .values((
            progress::endpoint.eq(endpoint),
            progress::org_id.eq(org_id),
            progress::wanted_version.eq(version),
            progress::sent_version.eq(version - 1),
        ))
        .on_conflict((progress::endpoint, progress::org_id))
        .do_update()
        .set(progress::wanted_version.eq(version))
        .cached();
    run!(conn, |c| query.execute(c).await)?;
    Ok(())
}

/// An organization with a version to send.
#[derive(Debug, Clone, Queryable)]
pub(crate) struct Pending {
    pub org_id: String,
    pub sent_version: i64,
    pub attempts: i32,
    pub failing_since: Option<i64>,
}

/// Up to `limit` organizations with a version due for the endpoint at
/// `now_ms` that no sender holds, earliest due first.
pub(crate) async fn due(
    conn: &mut Conn<'_>,
    endpoint: &str,
    now_ms: i64,
    limit: i64,
) -> Result<Vec<Pending>, Error> {
    let query = progress::table
        .filter(progress::endpoint.eq(endpoint))
        .filter(progress::wanted_version.gt(progress::sent_version))
        .filter(progress::next_attempt_at.le(now_ms))
        .filter(progress::leased_until.lt(now_ms))
        .order(progress::next_attempt_at)
        .limit(limit)
        .select((
            progress::org_id,
            progress::sent_version,
            progress::attempts,
            progress::failing_since,
        ));
    Ok(run!(conn, |c| query.load(c).await)?)
}

/// Holds the organization's next version for this sender until
/// `until_ms`, unless another sender holds it or has sent past
/// `sent_version` since it was read; returns whether it does.
pub(crate) async fn lease(
    conn: &mut Conn<'_>,
    endpoint: &str,
    pending: &Pending,
    now_ms: i64,
    until_ms: i64,
) -> Result<bool, Error> {
    let query = diesel::update(
        progress::table
            .find((endpoint, &pending.org_id))
            .filter(progress::sent_version.eq(pending.sent_version))
            .filter(progress::leased_until.lt(now_ms)),
    )
    .set(progress::leased_until.eq(until_ms))
    .cached();
    Ok(run!(conn, |c| query.execute(c).await)? == 1)
}

/// A progress row filtered to its holder's version and lease.
type HeldRow<'a> = diesel::dsl::Filter<
    diesel::dsl::Filter<
        diesel::dsl::Find<progress::table, (&'a str, &'a str)>,
        diesel::dsl::Eq<progress::sent_version, i64>,
    >,
    diesel::dsl::Eq<progress::leased_until, i64>,
>;

/// An organization's next version, as one sender holds it: a report of
/// its fate changes nothing once the lease passed to another sender.
pub(crate) struct Held<'a> {
    pub endpoint: &'a str,
    pub org_id: &'a str,
    pub version: i64,
    pub until_ms: i64,
}

impl Held<'_> {
    /// The organization's progress row while it is still held so.
    fn row(&self) -> HeldRow<'_> {
        progress::table
            .find((self.endpoint, self.org_id))
            .filter(progress::sent_version.eq(self.version - 1))
            .filter(progress::leased_until.eq(self.until_ms))
    }
}

/// The held version was sent (or given up): the next one goes now,
/// unheld. False when another sender holds it now.
pub(crate) async fn sent(conn: &mut Conn<'_>, held: &Held<'_>) -> Result<bool, Error> {
    let query = diesel::update(held.row())
        .set((
            progress::sent_version.eq(held.version),
            progress::attempts.eq(0),
            progress::failing_since.eq(None::<i64>),
            progress::last_error.eq(None::<String>),
            progress::next_attempt_at.eq(0),
            progress::leased_until.eq(0),
        ))
        .cached();
    Ok(run!(conn, |c| query.execute(c).await)? == 1)
}

/// An attempt at the held version failed: it goes again at `retry_at_ms`
/// (unless another sender holds it now).
pub(crate) async fn failed(
    conn: &mut Conn<'_>,
    held: &Held<'_>,
    failure: &Failure<'_>,
) -> Result<(), Error> {
    let query = diesel::update(held.row())
        .set((
            progress::attempts.eq(failure.attempts),
            progress::failing_since.eq(failure.failing_since),
            progress::last_error.eq(failure.error),
            progress::next_attempt_at.eq(failure.retry_at_ms),
            progress::leased_until.eq(0),
        ))
        .cached();
    run!(conn, |c| query.execute(c).await)?;
    Ok(())
}

/// A failed attempt, as stored.
pub(crate) struct Failure<'a> {
    pub attempts: i32,
    pub failing_since: i64,
    pub error: &'a str,
    pub retry_at_ms: i64,
}

/// Organizations with a version waiting to be sent to the endpoint.
pub(crate) async fn backlog(conn: &mut Conn<'_>, endpoint: &str) -> Result<i64, Error> {
    let query = progress::table
        .filter(progress::endpoint.eq(endpoint))
        .filter(progress::wanted_version.gt(progress::sent_version))
        .count();
    Ok(run!(conn, |c| query.get_result(c).await)?)
}
