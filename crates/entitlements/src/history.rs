//! The history of an organization as callers see it.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::catalog::{FeatureValue, Features};
use crate::store::history::{ChangeEntry, EventEntry};

pub use crate::store::history::Cursor;

/// One page of an organization's history, newest first.
#[derive(Debug, Clone, Serialize)]
pub struct HistoryPage {
    /// The entries.
    pub entries: Vec<HistoryEntry>,
    /// Where the next page starts, if there is one.
    #[serde(skip)]
    pub next: Option<Cursor>,
}

/// An event or an entitlement change.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum HistoryEntry {
    /// A webhook event concerning the organization.
    Event {
        /// When it was received.
        at: Option<DateTime<Utc>>,
        /// Stripe's event id.
        event_id: String,
        /// Its type.
        #[serde(rename = "type")]
        event_type: String,
        /// What applying it did.
        outcome: String,
        /// Why, or what was noticed.
        detail: Option<String>,
        /// The subscription it concerned.
        subscription_id: Option<String>,
    },
    /// A change of the organization's entitlements.
    EntitlementChange {
        /// When it changed.
        at: Option<DateTime<Utc>>,
        /// The new version.
        version: i64,
        /// The event that caused it; none when time alone did (a grace
        /// period ended).
        event_id: Option<String>,
        /// The plan afterwards.
        plan: String,
        /// The status afterwards.
        status: String,
        /// The features afterwards.
        #[schema(value_type = std::collections::HashMap<String, FeatureValue>)]
        features: Features,
    },
}

impl HistoryEntry {
    pub(crate) fn from_event(e: EventEntry) -> (Cursor, Self) {
        let cursor = Cursor::Event {
            at: e.received_at,
            id: e.id.clone(),
        };
        let entry = HistoryEntry::Event {
            at: DateTime::from_timestamp(e.received_at, 0),
            event_id: e.id,
            event_type: e.event_type,
            outcome: e.outcome,
            detail: e.detail,
            subscription_id: e.subscription_id,
        };
        (cursor, entry)
    }

    pub(crate) fn from_change(c: ChangeEntry) -> Result<(Cursor, Self), serde_json::Error> {
        let cursor = Cursor::Change {
            at: c.changed_at,
            id: c.id,
        };
        let entry = HistoryEntry::EntitlementChange {
            at: DateTime::from_timestamp(c.changed_at, 0),
            version: c.version,
            event_id: c.event_id,
            plan: c.plan,
            status: c.status,
            features: serde_json::from_str(&c.features)?,
        };
        Ok((cursor, entry))
    }
}

impl Cursor {
    /// The cursor as an opaque token for URLs.
    pub fn encode(&self) -> String {
        match self {
            Cursor::Event { at, id } => format!("{at}.e.{id}"),
            Cursor::Change { at, id } => format!("{at}.c.{id}"),
        }
    }

    /// Reads a token made by [`Cursor::encode`].
    pub fn decode(token: &str) -> Option<Self> {
        let mut parts = token.splitn(3, '.');
        let at = parts.next()?.parse().ok()?;
        match (parts.next()?, parts.next()?) {
            ("e", id) if !id.is_empty() => Some(Cursor::Event {
                at,
                id: id.to_owned(),
            }),
            ("c", id) => Some(Cursor::Change {
                at,
                id: id.parse().ok()?,
            }),
            _ => None,
        }
    }

    /// Sort key, larger is newer: time, then changes before events.
    fn key(&self) -> (i64, u8) {
        match self {
            Cursor::Event { at, .. } => (*at, 0),
            Cursor::Change { at, .. } => (*at, 1),
        }
    }
}

/// Merges two newest-first lists into one page of at most `limit`.
pub(crate) fn merge_page(
    events: Vec<(Cursor, HistoryEntry)>,
    changes: Vec<(Cursor, HistoryEntry)>,
    limit: usize,
) -> HistoryPage {
    let mut all: Vec<(Cursor, HistoryEntry)> = events.into_iter().chain(changes).collect();
    // Stable sort keeps each list's own id order within a second.
    all.sort_by_key(|(cursor, _)| std::cmp::Reverse(cursor.key()));
    let more = all.len() > limit;
    all.truncate(limit);
    let next = if more {
        all.last().map(|(cursor, _)| cursor.clone())
    } else {
        None
    };
    HistoryPage {
        entries: all.into_iter().map(|(_, entry)| entry).collect(),
        next,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip() {
        for cursor in [
            Cursor::Event {
                at: 5,
                id: "evt_a.b".into(),
            },
            Cursor::Change { at: 7, id: 42 },
        ] {
            assert_eq!(Cursor::decode(&cursor.encode()), Some(cursor));
        }
        assert_eq!(Cursor::decode("x.e.evt"), None);
        assert_eq!(Cursor::decode("5.c.nope"), None);
        assert_eq!(Cursor::decode("5.z.1"), None);
    }
}
