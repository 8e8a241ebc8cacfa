//! Leases on background work that one process at a time does (sweeping
//! what time alone changed, for one): the holder renews its lease while it
//! works, and another takes it over once it has lapsed.

use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use crate::Error;
use crate::db::schema::leases;
use crate::db::{Conn, Prepared, run};

/// Holds the lease `name` for `holder` until `until_ms` if it is free, has
/// lapsed by `now_ms`, or is `holder`'s already; returns whether it does.
pub(crate) async fn take(
    conn: &mut Conn<'_>,
    name: &str,
    holder: &str,
    now_ms: i64,
    until_ms: i64,
) -> Result<bool, Error> {
    let create = diesel::insert_into(leases::table)
        .values((
            leases::name.eq(name),
            leases::holder.eq(holder),
            leases::until_ms.eq(until_ms),
        ))
        .on_conflict_do_nothing()
        .cached();
    if run!(conn, |c| create.execute(c).await)? == 1 {
        return Ok(true);
    }
    let renew = diesel::update(
        leases::table
            .find(name)
            .filter(leases::holder.eq(holder).or(leases::until_ms.lt(now_ms))),
    )
    .set((leases::holder.eq(holder), leases::until_ms.eq(until_ms)))
    .cached();
    Ok(run!(conn, |c| renew.execute(c).await)? == 1)
}

/// Gives up the lease `name` if `holder` holds it, so that another takes
/// it over at once.
pub(crate) async fn release(conn: &mut Conn<'_>, name: &str, holder: &str) -> Result<(), Error> {
    let query = diesel::delete(leases::table.find(name).filter(leases::holder.eq(holder))).cached();
    run!(conn, |c| query.execute(c).await)?;
    Ok(())
}
