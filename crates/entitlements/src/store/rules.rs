//! Which rules answers are computed under, when replicas disagree (a
//! rolling deploy that changes the catalog): one row, the rules last
//! activated.

use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use crate::Error;
use crate::db::schema::rules_in_force as in_force;
use crate::db::{Conn, Prepared, run};

/// The row's key.
const NAME: &str = "answers";

/// Makes `rules` the rules in force from `now` on.
pub(crate) async fn activate(conn: &mut Conn<'_>, rules: &str, now: i64) -> Result<(), Error> {
    let query = diesel::insert_into(in_force::table)
        .values((
            in_force::name.eq(NAME),
            in_force::rules.eq(rules),
            in_force::activated_at.eq(now),
        ))
        .on_conflict(in_force::name)
        .do_update()
        .set((in_force::rules.eq(rules), in_force::activated_at.eq(now)))
        .cached();
    run!(conn, |c| query.execute(c).await)?;
    Ok(())
}

/// The rules in force and when they were activated; `None` before any
/// replica started.
pub(crate) async fn current(conn: &mut Conn<'_>) -> Result<Option<(String, i64)>, Error> {
    let query = in_force::table
        .find(NAME)
        .select((in_force::rules, in_force::activated_at));
    Ok(run!(conn, |c| query.first(c).await.optional())?)
}
