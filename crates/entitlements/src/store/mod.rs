//! Query functions, one module per table group. Each takes a [`Conn`] so
//! that callers compose them inside one transaction.
//!
//! [`Conn`]: crate::db::Conn

pub(crate) mod admin;
pub(crate) mod answers;
pub(crate) mod events;
pub(crate) mod feed;
pub(crate) mod grants;
pub(crate) mod history;
pub(crate) mod installation;
pub(crate) mod leases;
pub(crate) mod notes;
pub(crate) mod notify;
pub(crate) mod organizations;
pub(crate) mod purchases;
pub(crate) mod rules;
pub(crate) mod subscriptions;

/// What caused a change of entitlements or a note, named in its history
/// row.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Cause<'a> {
    /// A webhook event (or its replay).
    Event(&'a str),
    /// A grant given, revoked or expired.
    Grant(&'a str),
    /// Time alone, or the rules (catalog, policy).
    Time,
}

impl<'a> Cause<'a> {
    /// The event id and the grant id to store.
    pub(crate) fn ids(self) -> (Option<&'a str>, Option<&'a str>) {
        match self {
            Cause::Event(id) => (Some(id), None),
            Cause::Grant(id) => (None, Some(id)),
            Cause::Time => (None, None),
        }
    }
}

impl<'a> From<Option<&'a str>> for Cause<'a> {
    fn from(event_id: Option<&'a str>) -> Self {
        event_id.map_or(Cause::Time, Cause::Event)
    }
}
