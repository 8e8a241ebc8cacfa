//! The history of an organization as callers see it.

use crate::catalog::Features;
pub use crate::store::history::{ChangeEntry, Cursor, EventEntry, NoteEntry};

/// One page of an organization's history, newest first.
#[derive(Debug, Clone)]
pub struct HistoryPage {
    /// The entries.
    pub entries: Vec<HistoryEntry>,
    /// Where the next page starts, if there is one.
    pub next: Option<Cursor>,
}

/// An entry of an organization's history, as stored.
#[derive(Debug, Clone)]
pub enum HistoryEntry {
    /// A webhook event concerning the organization.
    Event(EventEntry),
    /// A change of the organization's entitlements, with the features
    /// granted afterwards.
    EntitlementChange(ChangeEntry, Features),
    /// Something an operator did, such as a replay.
    Note(NoteEntry),
}

impl HistoryEntry {
    /// Where the entry stands in the organization's history.
    pub fn position(&self) -> i64 {
        match self {
            HistoryEntry::Event(e) => e.position,
            HistoryEntry::EntitlementChange(c, _) => c.position,
            HistoryEntry::Note(n) => n.position,
        }
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
pub(crate) fn merge_page(lists: Vec<Vec<HistoryEntry>>, limit: usize) -> HistoryPage {
    let mut entries: Vec<HistoryEntry> = lists.into_iter().flatten().collect();
    entries.sort_by_key(|entry| std::cmp::Reverse(entry.position()));
    let more = entries.len() > limit;
    entries.truncate(limit);
    let next = if more {
        entries.last().map(|entry| Cursor(entry.position()))
    } else {
        None
    };
    HistoryPage { entries, next }
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

    fn entry(position: i64) -> HistoryEntry {
        HistoryEntry::Event(EventEntry {
            id: format!("evt_{position}"),
            event_type: "invoice.paid".into(),
            outcome: "applied".into(),
            detail: None,
            subscription_id: None,
            received_at: 0,
            position,
        })
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
                HistoryEntry::Event(event) => event.id.clone(),
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
