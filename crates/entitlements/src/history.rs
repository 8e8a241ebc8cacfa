//! The history of an organization as callers see it.

use chrono::{DateTime, Utc};

use crate::catalog::Features;
use crate::store::history::{ChangeEntry, EventEntry};
use crate::store::notes::NoteEntry;

pub use crate::store::history::Cursor;

/// One page of an organization's history, newest first.
#[derive(Debug, Clone)]
pub struct HistoryPage {
    /// The entries.
    pub entries: Vec<HistoryEntry>,
    /// Where the next page starts, if there is one.
    pub next: Option<Cursor>,
}

/// An event or an entitlement change.
#[derive(Debug, Clone)]
pub enum HistoryEntry {
    /// A webhook event concerning the organization.
    Event {
        /// When it was received.
        at: Option<DateTime<Utc>>,
        /// Stripe's event id.
        event_id: String,
        /// Its type.
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
        features: Features,
    },
    /// Something an operator did, such as a replay.
    Note {
        /// When.
        at: Option<DateTime<Utc>>,
        /// What: `replay`.
        action: String,
        /// The event it concerned.
        event_id: Option<String>,
        /// What came of it.
        detail: String,
    },
}

impl HistoryEntry {
    pub(crate) fn from_event(e: EventEntry) -> (Cursor, Self) {
        let cursor = Cursor(e.position);
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
        let cursor = Cursor(c.position);
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

impl HistoryEntry {
    pub(crate) fn from_note(n: NoteEntry) -> (Cursor, Self) {
        let entry = HistoryEntry::Note {
            at: DateTime::from_timestamp(n.noted_at, 0),
            action: n.action,
            event_id: n.event_id,
            detail: n.detail,
        };
        (Cursor(n.position), entry)
    }
}

/// The most digits a cursor has (positions stay far below 10^18).
pub const CURSOR_DIGITS: usize = 18;

impl Cursor {
    /// The cursor as an opaque token for URLs.
    pub fn encode(&self) -> String {
        self.0.to_string()
    }

    /// Reads a token made by [`Cursor::encode`]: up to [`CURSOR_DIGITS`]
    /// digits, the first not 0.
    pub fn decode(token: &str) -> Option<Self> {
        let well_formed = (1..=CURSOR_DIGITS).contains(&token.len())
            && !token.starts_with('0')
            && token.bytes().all(|b| b.is_ascii_digit());
        well_formed
            .then(|| token.parse().ok().map(Cursor))
            .flatten()
    }
}

/// Merges newest-first lists, each of up to `limit + 1` entries, into one
/// page of at most `limit`.
pub(crate) fn merge_page(lists: Vec<Vec<(Cursor, HistoryEntry)>>, limit: usize) -> HistoryPage {
    let mut all: Vec<(Cursor, HistoryEntry)> = lists.into_iter().flatten().collect();
    all.sort_by_key(|(cursor, _)| std::cmp::Reverse(cursor.0));
    let more = all.len() > limit;
    all.truncate(limit);
    let next = if more {
        all.last().map(|(cursor, _)| *cursor)
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
        for cursor in [Cursor(1), Cursor(42), Cursor(999_999_999_999_999_999)] {
            assert_eq!(Cursor::decode(&cursor.encode()), Some(cursor));
        }
        for junk in [
            "",
            "x",
            "0",
            "07",
            "-3",
            "+5",
            "5.c.1",
            "1000000000000000000",
        ] {
            assert_eq!(Cursor::decode(junk), None, "{junk}");
        }
    }

    fn entry(position: i64) -> (Cursor, HistoryEntry) {
        let entry = HistoryEntry::Event {
            at: None,
            event_id: format!("evt_{position}"),
            event_type: "invoice.paid".into(),
            outcome: "applied".into(),
            detail: None,
            subscription_id: None,
        };
        (Cursor(position), entry)
    }

    #[test]
    fn pages_merge_by_position_newest_first() {
        let events = vec![entry(6), entry(3), entry(2)];
        let changes = vec![entry(5), entry(4), entry(1)];
        let page = merge_page(vec![events, changes], 4);
        let ids: Vec<String> = page
            .entries
            .iter()
            .map(|e| match e {
                HistoryEntry::Event { event_id, .. } => event_id.clone(),
                _ => unreachable!(),
            })
            .collect();
        assert_eq!(ids, ["evt_6", "evt_5", "evt_4", "evt_3"]);
        assert_eq!(page.next, Some(Cursor(3)));
        assert_eq!(
            merge_page(vec![vec![entry(2)], vec![entry(1)]], 2).next,
            None
        );
    }
}
