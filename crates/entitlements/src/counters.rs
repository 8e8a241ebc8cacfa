//! Counts of what the engine did, for metrics.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::receipt::Outcome;

/// Monotonic counters, shared by every clone of an engine.
#[derive(Debug, Default)]
pub struct Counters {
    outcomes: [AtomicU64; Outcome::ALL.len()],
    duplicates: AtomicU64,
    unknown_prices: AtomicU64,
    entitlement_changes: AtomicU64,
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

    pub(crate) fn entitlement_change(&self) {
        self.entitlement_changes.fetch_add(1, Ordering::Relaxed);
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

    /// Changes of any organization's entitlements.
    pub fn entitlement_changes(&self) -> u64 {
        self.entitlement_changes.load(Ordering::Relaxed)
    }
}
