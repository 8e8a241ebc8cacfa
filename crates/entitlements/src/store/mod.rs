//! Query functions, one module per table group. Each takes a [`Conn`] so
//! that callers compose them inside one transaction.
//!
//! [`Conn`]: crate::db::Conn

pub(crate) mod answers;
pub(crate) mod events;
pub(crate) mod history;
pub(crate) mod notes;
pub(crate) mod organizations;
pub(crate) mod subscriptions;
