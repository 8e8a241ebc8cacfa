//! Prepared once per connection: diesel prepares every `UPDATE`, upsert,
//! raw query and insert of an optional value anew each time it runs,
//! because such a query's SQL can vary while its type stays the same.
//! [`Cached`] keys the prepared statement by the SQL text itself (and the
//! types of its binds), so every variant is prepared once and reused.
//!
//! Only for queries with a bounded number of SQL variants: an `IN` list
//! of varying length would fill the cache with one statement per length.

use diesel::backend::Backend;
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel::result::QueryResult;

/// A query whose prepared statement is cached under its SQL text.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Cached<Q>(Q);

/// Turns any query into a [`Cached`] one.
pub(crate) trait Prepared: Sized {
    /// This query, prepared once per connection.
    fn cached(self) -> Cached<Self> {
        Cached(self)
    }
}

impl<Q> Prepared for Q {}

impl<Q: Query> Query for Cached<Q> {
    type SqlType = Q::SqlType;
}

impl<Q> QueryId for Cached<Q> {
    type QueryId = ();
    // No identity by type: the statement cache then keys by SQL text.
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl<DB: Backend, Q: QueryFragment<DB>> QueryFragment<DB> for Cached<Q> {
    fn walk_ast<'b>(&'b self, pass: AstPass<'_, 'b, DB>) -> QueryResult<()> {
        self.0.walk_ast(pass)
    }

    fn is_safe_to_cache_prepared(&self, _backend: &DB) -> QueryResult<bool> {
        Ok(true)
    }
}
