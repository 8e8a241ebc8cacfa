//! What time alone changes: a grant or a pass expiring, a past-due grace
//! period or a canceled subscription's last period ending. Each answer
//! records when it is next due (`recheck_at`); a sweep recomputes the
//! answers that are due, so each such change gets its version, history
//! row, feed row and notification with no read to prompt it.

use super::Engine;
use crate::Error;
use crate::clock::{now, now_ms};
use crate::store::{answers, leases};

/// The lease that lets one process at a time sweep.
const LEASE: &str = "sweep";

/// How long a sweeper's lease lasts without renewal: another process
/// takes over this long after the holder stopped.
const LEASE_MS: i64 = 10_000;

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

    /// Takes or renews the lease `name` for this engine.
    async fn take_lease(&self, name: &str) -> Result<bool, Error> {
        let (holder, now_ms) = (self.holder.clone(), now_ms());
        self.write(async |conn| leases::take(conn, name, &holder, now_ms, now_ms + LEASE_MS).await)
            .await
    }
}
