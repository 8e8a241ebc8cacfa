//! Counts of what the engine did, for metrics.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::compute::SourceKind;
use crate::receipt::Outcome;

/// The labels of entitlement changes: the kind of source whose grant
/// changed, or `none` when only the rules or the default plan did.
pub const CHANGE_SOURCES: [&str; 4] = ["subscription", "purchase", "grant", "none"];

/// Monotonic counters, shared by every clone of an engine.
#[derive(Debug, Default)]
pub struct Counters {
    outcomes: [AtomicU64; Outcome::ALL.len()],
    duplicates: AtomicU64,
    unknown_prices: AtomicU64,
    entitlement_changes: [AtomicU64; CHANGE_SOURCES.len()],
}

impl Counters {
    pub(crate) fn outcome(&self, outcome: Outcome) {
        self.outcomes[outcome as usize].fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn duplicate(&self) {
        self.duplicates.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn unknown_prices(&self) {
        self.unknown_prices.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a change once for each kind of source that changed, or under
    /// `none` when no source did.
    pub(crate) fn entitlement_change(&self, kinds: &[SourceKind]) {
        let slots = kinds.iter().map(|kind| *kind as usize);
        let slots: Vec<usize> = match kinds {
            [] => vec![CHANGE_SOURCES.len() - 1],
            _ => slots.collect(),
        };
        for slot in slots {
            self.entitlement_changes[slot].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Events recorded with `outcome`.
    pub fn events(&self, outcome: Outcome) -> u64 {
        self.outcomes[outcome as usize].load(Ordering::Relaxed)
    }

    /// Redeliveries of events already recorded.
    pub fn duplicates(&self) -> u64 {
        self.duplicates.load(Ordering::Relaxed)
    }

    /// Events whose subscriptions carried prices that no plan lists.
    pub fn unknown_price_events(&self) -> u64 {
        self.unknown_prices.load(Ordering::Relaxed)
    }

    /// Changes of organizations' entitlements, by the source label (one of
    /// [`CHANGE_SOURCES`]).
    pub fn entitlement_changes(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        CHANGE_SOURCES
            .iter()
            .zip(&self.entitlement_changes)
            .map(|(label, count)| (*label, count.load(Ordering::Relaxed)))
    }
}
