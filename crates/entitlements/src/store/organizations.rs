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
    lock_at(conn, org_id, now).await?;
    Ok(clock::now())
}

/// [`lock`], answering the organization's last history position taken.
async fn lock_at(conn: &mut Conn<'_>, org_id: &str, now: i64) -> Result<(String, i64), Error> {
    let query = diesel::insert_into(orgs::table)
        .values((
            orgs::id.eq(org_id),
            orgs::created_at.eq(now),
            orgs::updated_at.eq(now),
        ))
        .on_conflict(orgs::id)
        .do_update()
        .set(orgs::updated_at.eq(now))
        .returning((orgs::id, orgs::history_position))
        .cached();
    Ok(run!(conn, |c| query.get_result(c).await)?)
}

/// [`lock`] for each of the (distinct) organizations, in id order (so two
/// transactions lock shared rows in the same order): one statement on
/// PostgreSQL. Answers each one's last history position taken.
pub(crate) async fn lock_many(
    conn: &mut Conn<'_>,
    org_ids: &[&str],
    now: i64,
) -> Result<Vec<(String, i64)>, Error> {
    let mut org_ids = org_ids.to_vec();
    org_ids.sort_unstable();
    let Conn::Postgres(c) = conn else {
        let mut locked = Vec::with_capacity(org_ids.len());
        for org_id in org_ids {
            locked.push(lock_at(conn, org_id, now).await?);
        }
        return Ok(locked);
    };
    let values: Vec<_> = org_ids
        .iter()
        .map(|org_id| {
            (
                orgs::id.eq(*org_id),
                orgs::created_at.eq(now),
                orgs::updated_at.eq(now),
            )
        })
        .collect();
    let query = diesel::insert_into(orgs::table)
        .values(values)
        .on_conflict(orgs::id)
        .do_update()
        .set(orgs::updated_at.eq(now))
        .returning((orgs::id, orgs::history_position))
        .cached();
    Ok(query.get_results(&mut **c).await?)
}

/// Stores each (locked) organization's last history position taken, as
/// taken in memory since [`lock_many`] answered it.
pub(crate) async fn set_positions(
    conn: &mut Conn<'_>,
    positions: &[(&str, i64)],
) -> Result<(), Error> {
    use diesel::upsert::excluded;
    let Conn::Postgres(c) = conn else {
        for (org_id, position) in positions {
            let query = diesel::update(orgs::table.find(org_id))
                .set(orgs::history_position.eq(position))
                .cached();
            run!(conn, |c| query.execute(c).await)?;
        }
        return Ok(());
    };
    if positions.is_empty() {
        return Ok(());
    }
    let values: Vec<_> = positions
        .iter()
        .map(|(org_id, position)| {
            (
                orgs::id.eq(*org_id),
                orgs::created_at.eq(0),
                orgs::updated_at.eq(0),
                orgs::history_position.eq(*position),
            )
        })
        .collect();
    let query = diesel::insert_into(orgs::table)
        .values(values)
        .on_conflict(orgs::id)
        .do_update()
        .set(orgs::history_position.eq(excluded(orgs::history_position)))
        .cached();
    query.execute(&mut **c).await?;
    Ok(())
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
    match owner_of_customer(conn, customer).await? {
        Some(org) => Ok(Some(org)),
        None => linked_org_of_customer(conn, customer).await,
    }
}

/// The organization a Stripe customer was created for (or linked to).
pub(crate) async fn owner_of_customer(
    conn: &mut Conn<'_>,
    customer: &str,
) -> Result<Option<String>, Error> {
    let own = orgs::table
        .filter(orgs::stripe_customer_id.eq(customer))
        .select(orgs::id);
    Ok(run!(conn, |c| own.first(c).await.optional())?)
}

/// The organization the customer's most recently updated linked
/// subscription belongs to.
pub(crate) async fn linked_org_of_customer(
    conn: &mut Conn<'_>,
    customer: &str,
) -> Result<Option<String>, Error> {
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
