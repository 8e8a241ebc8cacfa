//! This database's own random id, made by its migration.

use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use crate::Error;
use crate::db::schema::installation;
use crate::db::{Conn, run};

/// The id (16 hex digits).
pub(crate) async fn id(conn: &mut Conn<'_>) -> Result<String, Error> {
    let query = installation::table.select(installation::id);
    let id: String = run!(conn, |c| query.first(c).await)?;
    Ok(id)
}
