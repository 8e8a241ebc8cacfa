//! Counts of what the engine did, for metrics.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crate::compute::SourceKind;
use crate::receipt::Outcome;

/// Slots of entitlement changes: one per kind of source, then `none`.
const CHANGE_SLOTS: usize = SourceKind::ALL.len() + 1;

/// Monotonic counters, and whether the engine's rules are in force,
/// shared by every clone of an engine.
#[derive(Debug, Default)]
pub struct Counters {
    outdated: AtomicBool,
    outcomes: [AtomicU64; Outcome::ALL.len()],
    duplicates: AtomicU64,
    unknown_prices: AtomicU64,
    entitlement_changes: [AtomicU64; CHANGE_SLOTS],
    batches: AtomicU64,
    batched: AtomicU64,
}

impl Counters {
    /// Whether another process's rules are in force: this one serves what
    /// is stored and computes nothing (see `Engine::follow_rules_in_force`).
    pub fn rules_outdated(&self) -> bool {
        self.outdated.load(Ordering::Acquire)
    }

    /// Records whether this process's rules are outdated; returns whether
    /// that changed.
    pub(crate) fn set_rules_outdated(&self, outdated: bool) -> bool {
        self.outdated.swap(outdated, Ordering::AcqRel) != outdated
    }

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
        if kinds.is_empty() {
            self.entitlement_changes[CHANGE_SLOTS - 1].fetch_add(1, Ordering::Relaxed);
        }
        for kind in kinds {
            self.entitlement_changes[*kind as usize].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Counts a transaction shared by `deliveries` webhook deliveries.
    pub(crate) fn batch(&self, deliveries: usize) {
        self.batches.fetch_add(1, Ordering::Relaxed);
        let deliveries = u64::try_from(deliveries).unwrap_or(u64::MAX);
        self.batched.fetch_add(deliveries, Ordering::Relaxed);
    }

    /// Shared transactions that committed, and the deliveries they held.
    pub fn batches(&self) -> (u64, u64) {
        (
            self.batches.load(Ordering::Relaxed),
            self.batched.load(Ordering::Relaxed),
        )
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

    /// Changes of organizations' entitlements, by the kind of source that
    /// changed (`none` when only the rules or the default plan did).
    pub fn entitlement_changes(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        let labels = SourceKind::ALL.map(SourceKind::as_str);
        labels
            .into_iter()
            .chain(["none"])
            .zip(&self.entitlement_changes)
            .map(|(label, count)| (label, count.load(Ordering::Relaxed)))
    }
}
