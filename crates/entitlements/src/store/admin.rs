//! What the admin console reads beyond the API's own queries, and its
//! sessions.

use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text};
use diesel_async::RunQueryDsl;

use crate::Error;
use crate::admin::{EventSummary, NotifyFailure, Session};
use crate::db::schema::admin_sessions as sessions;
use crate::db::schema::entitlements as answers;
use crate::db::schema::history_notes as notes;
use crate::db::schema::organizations as orgs;
use crate::db::schema::webhook_events as events;
use crate::db::{Conn, Prepared, run};

/// The detail every event with prices in no plan carries.
pub(crate) const UNKNOWN_PRICES: &str = "prices in no plan grant nothing";

pub(crate) async fn open_session(conn: &mut Conn<'_>, session: &Session) -> Result<(), Error> {
    let query = diesel::insert_into(sessions::table).values(session.clone());
    run!(conn, |c| query.execute(c).await)?;
    Ok(())
}

/// The session with this digest, unless it expired by `now`.
pub(crate) async fn session(
    conn: &mut Conn<'_>,
    id_digest: &str,
    now: i64,
) -> Result<Option<Session>, Error> {
    let query = sessions::table
        .find(id_digest)
        .filter(sessions::expires_at.gt(now))
        .select(sessions::all_columns);
    Ok(run!(conn, |c| query.first(c).await.optional())?)
}

/// Ends the session with this digest.
pub(crate) async fn close_session(conn: &mut Conn<'_>, id_digest: &str) -> Result<(), Error> {
    let query = diesel::delete(sessions::table.find(id_digest));
    run!(conn, |c| query.execute(c).await)?;
    Ok(())
}

/// Ends every session of the token named `token_name`.
pub(crate) async fn close_sessions_of(
    conn: &mut Conn<'_>,
    token_name: &str,
) -> Result<usize, Error> {
    let query = diesel::delete(sessions::table.filter(sessions::token_name.eq(token_name)));
    Ok(run!(conn, |c| query.execute(c).await)?)
}

/// Forgets every session expired by `now`.
pub(crate) async fn forget_expired_sessions(conn: &mut Conn<'_>, now: i64) -> Result<(), Error> {
    let query = diesel::delete(sessions::table.filter(sessions::expires_at.le(now)));
    run!(conn, |c| query.execute(c).await)?;
    Ok(())
}

/// Organizations by plan and status: `(plan, status, count)`.
pub(crate) async fn plans(conn: &mut Conn<'_>) -> Result<Vec<(String, String, i64)>, Error> {
    let query = answers::table
        .group_by((answers::plan, answers::status))
        .select((answers::plan, answers::status, diesel::dsl::count_star()))
        .order((answers::plan, answers::status));
    Ok(run!(conn, |c| query.load(c).await)?)
}

/// Events received per day (unix day number) and outcome since `since`.
#[derive(Debug, Clone, QueryableByName)]
pub(crate) struct DayCount {
    #[diesel(sql_type = BigInt)]
    pub day: i64,
    #[diesel(sql_type = Text)]
    pub outcome: String,
    #[diesel(sql_type = BigInt)]
    pub events: i64,
}

pub(crate) async fn events_per_day(
    conn: &mut Conn<'_>,
    since: i64,
) -> Result<Vec<DayCount>, Error> {
    let query = diesel::sql_query(
        "SELECT received_at / 86400 AS day, outcome, COUNT(*) AS events \
         FROM webhook_events WHERE received_at >= $1 \
         GROUP BY received_at / 86400, outcome ORDER BY day, outcome",
    )
    .bind::<BigInt, _>(since)
    .cached();
    Ok(run!(conn, |c| query.load(c).await)?)
}

/// Events needing attention (unlinked, invalid, or with prices in no
/// plan), newest first, `limit` after skipping `offset`.
pub(crate) async fn attention(
    conn: &mut Conn<'_>,
    limit: i64,
    offset: i64,
) -> Result<Vec<EventSummary>, Error> {
    let unknown = format!("%{UNKNOWN_PRICES}%");
    let query = events::table
        .filter(
            events::outcome
                .eq_any(["unlinked", "invalid"])
                .or(events::detail.assume_not_null().like(unknown)),
        )
        .order((events::received_at.desc(), events::id))
        .limit(limit)
        .offset(offset)
        .select((
            events::id,
            events::event_type,
            events::org_id,
            events::outcome,
            events::detail,
            events::received_at,
        ));
    Ok(run!(conn, |c| query.load(c).await)?)
}

/// Notifications given up, newest first: `(org_id, detail, noted_at)`.
pub(crate) async fn notify_failures(
    conn: &mut Conn<'_>,
    limit: i64,
) -> Result<Vec<NotifyFailure>, Error> {
    let query = notes::table
        .filter(notes::action.eq("notify_failed"))
        .order(notes::noted_at.desc())
        .limit(limit)
        .select((notes::org_id, notes::detail, notes::noted_at));
    Ok(run!(conn, |c| query.load(c).await)?)
}

/// Organizations whose id starts with `text` or whose Stripe customer is
/// `text`: `(org_id, customer)`, by id.
pub(crate) async fn search(
    conn: &mut Conn<'_>,
    text: &str,
    limit: i64,
) -> Result<Vec<(String, Option<String>)>, Error> {
    let prefix = format!("{}%", escape_like(text));
    let query = orgs::table
        .filter(
            orgs::id
                .like(prefix)
                .escape('\\')
                .or(orgs::stripe_customer_id.assume_not_null().eq(text)),
        )
        .order(orgs::id)
        .limit(limit)
        .select((orgs::id, orgs::stripe_customer_id));
    Ok(run!(conn, |c| query.load(c).await)?)
}

/// The payloads of these events: `(id, payload)`.
pub(crate) async fn payloads(
    conn: &mut Conn<'_>,
    ids: &[&str],
) -> Result<Vec<(String, String)>, Error> {
    let query = events::table
        .filter(events::id.eq_any(ids))
        .select((events::id, events::payload));
    Ok(run!(conn, |c| query.load(c).await)?)
}

fn escape_like(text: &str) -> String {
    text.replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_")
}
