//! What time alone changes: a grant or a pass expiring, a past-due grace
//! period or a canceled subscription's last period ending. Each answer
//! records when it is next due (`recheck_at`); a sweep recomputes the
//! answers that are due, so each such change gets its version, history
//! row, feed row and notification with no read to prompt it.
//!
//! The sweeper also deletes what is older than its retention: entitlement
//! changes (the feed and organizations' history) and webhook events.

use super::Engine;
use crate::Error;
use crate::clock::{now, now_ms};
use crate::store::{answers, events, feed, leases};

/// The lease that lets one process at a time sweep.
const LEASE: &str = "sweep";

/// How long a sweeper's lease lasts without renewal: another process
/// takes over this long after the holder stopped.
const LEASE_MS: i64 = 10_000;

/// How long what is recorded is kept, in seconds; `None`: for good.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Retention {
    /// Entitlement changes: the change feed and organizations' history.
    pub changes_secs: Option<i64>,
    /// Received webhook events, by when Stripe created them.
    pub events_secs: Option<i64>,
}

impl Engine {
    /// Recomputes up to `limit` organizations whose answer time alone has
    /// changed by now, each in a transaction of its own, and returns how
    /// many. One process at a time sweeps (it holds a lease, which another
    /// takes over once it lapses); with nothing due, a sweep is one indexed
    /// read.
    ///
    /// Each sweep first reads which rules are in force: a process whose
    /// rules are not sweeps nothing and gives up its lease, and one whose
    /// rules have just come into force first brings every answer under
    /// them.
    pub async fn sweep(&self, limit: i64) -> Result<usize, Error> {
        let was_outdated = self.counters.rules_outdated();
        if !self.follow_rules_in_force().await? {
            if !was_outdated {
                let holder = self.holder.clone();
                self.write(async |conn| leases::release(conn, LEASE, &holder).await)
                    .await?;
            }
            return Ok(0);
        }
        if was_outdated {
            self.follow_rules().await?;
        }
        let now = now();
        let due = self
            .db
            .read(async |conn| answers::due_by(conn, now, limit).await)
            .await?;
        if due.is_empty() || !self.take_lease(LEASE).await? {
            return Ok(0);
        }
        self.recompute_each(&due).await?;
        Ok(due.len())
    }

    /// Deletes, under the sweeper's lease, up to `limit` of the oldest
    /// changes and up to `limit` of the oldest events past their
    /// retention; returns how many in all. Each organization's history
    /// and the feed lose them; the feed's newest change is always kept,
    /// and a feed cursor below what was deleted has expired. With nothing
    /// past its retention, one read.
    pub async fn prune(&self, retention: Retention, limit: i64) -> Result<usize, Error> {
        let now = now();
        // The cutoff of each kind that has something past it.
        let (changes, events) = self
            .db
            .read(async |conn| {
                let mut changes = retention.changes_secs.map(|secs| now - secs);
                if let Some(before) = changes
                    && !feed::prunable(conn, before).await?
                {
                    changes = None;
                }
                let mut events = retention.events_secs.map(|secs| now - secs);
                if let Some(before) = events
                    && !events::prunable(conn, before).await?
                {
                    events = None;
                }
                Ok((changes, events))
            })
            .await?;
        if (changes, events) == (None, None) || !self.take_lease(LEASE).await? {
            return Ok(0);
        }
        self.write(async |conn| {
            let mut pruned = 0;
            if let Some(before) = changes {
                pruned += feed::prune(conn, before, limit).await?;
            }
            if let Some(before) = events {
                pruned += events::prune(conn, before, limit).await?;
            }
            Ok(pruned)
        })
        .await
    }

    /// Takes or renews the lease `name` for this engine.
    async fn take_lease(&self, name: &str) -> Result<bool, Error> {
        let (holder, now_ms) = (self.holder.clone(), now_ms());
        self.write(async |conn| leases::take(conn, name, &holder, now_ms, now_ms + LEASE_MS).await)
            .await
    }
}
