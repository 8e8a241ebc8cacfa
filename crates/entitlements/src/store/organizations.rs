//! Organizations and their Stripe customer.

use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use crate::db::schema::organizations as orgs;
use crate::db::schema::subscriptions as subs;
use crate::db::{Conn, Prepared, run};
use crate::{Error, clock};

/// Creates the organization if it is new and holds its row lock until the
/// transaction ends, so events of one organization apply one at a time.
/// Returns the time read once the lock is held: stamps taken after it
/// order like the organization's versions, whoever waited longest.
pub(crate) async fn lock(conn: &mut Conn<'_>, org_id: &str, now: i64) -> Result<i64, Error> {
    let query = diesel::insert_into(orgs::table)
        .values((
            orgs::id.eq(org_id),
            orgs::created_at.eq(now),
            orgs::updated_at.eq(now),
        ))
        .on_conflict(orgs::id)
        .do_update()
        .set(orgs::updated_at.eq(now))
        .cached();
    run!(conn, |c| query.execute(c).await)?;
    Ok(clock::now())
}

/// Adds one to a counter of the organization's row and returns it,
/// creating the row (the counter at 1) if the organization is new.
macro_rules! count_up {
    ($conn:expr, $org_id:expr, $now:expr, $counter:expr) => {{
        let query = diesel::insert_into(orgs::table)
            .values((
                orgs::id.eq($org_id),
                orgs::created_at.eq($now),
                orgs::updated_at.eq($now),
                $counter.eq(1),
            ))
            .on_conflict(orgs::id)
            .do_update()
            .set($counter.eq($counter + 1))
            .returning($counter)
            .cached();
        run!($conn, |c| query.get_result::<i64>(c).await)
    }};
}

/// Takes the organization's next history position, creating the
/// organization if it is new. The update holds its row lock, so positions
/// follow the order in which the organization's transactions commit.
pub(crate) async fn next_position(
    conn: &mut Conn<'_>,
    org_id: &str,
    now: i64,
) -> Result<i64, Error> {
    Ok(count_up!(conn, org_id, now, orgs::history_position)?)
}

/// The Stripe customer stored for an organization.
pub(crate) async fn customer_of(
    conn: &mut Conn<'_>,
    org_id: &str,
) -> Result<Option<String>, Error> {
    let query = orgs::table.find(org_id).select(orgs::stripe_customer_id);
    let found: Option<Option<String>> = run!(conn, |c| query.first(c).await.optional())?;
    Ok(found.flatten())
}

/// Which attempt at creating the organization's Stripe customer is next.
pub(crate) async fn customer_attempt(conn: &mut Conn<'_>, org_id: &str) -> Result<i64, Error> {
    let query = orgs::table.find(org_id).select(orgs::customer_attempt);
    let found: Option<i64> = run!(conn, |c| query.first(c).await.optional())?;
    Ok(found.unwrap_or(0))
}

/// Moves the organization on to its next attempt at creating a customer.
pub(crate) async fn next_customer_attempt(
    conn: &mut Conn<'_>,
    org_id: &str,
    now: i64,
) -> Result<(), Error> {
    count_up!(conn, org_id, now, orgs::customer_attempt)?;
    Ok(())
}

/// The organization a Stripe customer belongs to: the one it was created
/// for, else the one its linked subscriptions belong to.
pub(crate) async fn org_of_customer(
    conn: &mut Conn<'_>,
    customer: &str,
) -> Result<Option<String>, Error> {
    let own = orgs::table
        .filter(orgs::stripe_customer_id.eq(customer))
        .select(orgs::id);
    if let Some(org) = run!(conn, |c| own.first(c).await.optional())? {
        return Ok(Some(org));
    }
    let linked = subs::table
        .filter(subs::customer_id.eq(customer))
        .filter(subs::org_id.is_not_null())
        .select(subs::org_id)
        .order(subs::updated_at.desc());
    let found: Option<Option<String>> = run!(conn, |c| linked.first(c).await.optional())?;
    Ok(found.flatten())
}

/// Stores `customer` for the organization unless it already has one, and
/// returns the customer the organization has afterwards.
pub(crate) async fn set_customer_if_unset(
    conn: &mut Conn<'_>,
    org_id: &str,
    customer: &str,
    now: i64,
) -> Result<String, Error> {
    lock(conn, org_id, now).await?;
    let query = diesel::update(
        orgs::table
            .find(org_id)
            .filter(orgs::stripe_customer_id.is_null()),
    )
    .set(orgs::stripe_customer_id.eq(customer))
    .cached();
    run!(conn, |c| query.execute(c).await)?;
    Ok(customer_of(conn, org_id)
        .await?
        .unwrap_or_else(|| customer.to_owned()))
}
