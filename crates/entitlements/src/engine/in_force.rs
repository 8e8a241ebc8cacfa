//! Which rules answers are computed under when processes disagree. During
//! a rolling deploy that changes the catalog, replicas of both releases
//! share one database; were each to recompute under its own catalog,
//! answers would take turns and every turn would be a new version,
//! announced. The rules of the process that started last are in force
//! (or those `billing-api catalog activate` names); a process whose rules
//! are not serves what is stored, records events and grants as usual, and
//! leaves computing their answers to one whose rules are.

use super::Engine;
use crate::Error;
use crate::clock::now;
use crate::store::rules;

impl Engine {
    /// Makes this engine's rules the ones in force, for every process.
    pub async fn activate_rules(&self) -> Result<(), Error> {
        let rules = self.rules.clone();
        self.write(async |conn| rules::activate(conn, &rules, now()).await)
            .await?;
        self.note_rules_in_force(true);
        Ok(())
    }

    /// Reads which rules are in force and returns whether they are this
    /// engine's (also when none were activated yet).
    pub async fn follow_rules_in_force(&self) -> Result<bool, Error> {
        let current = self
            .db
            .read(async |conn| rules::current(conn).await)
            .await?;
        let ours = current
            .as_ref()
            .is_none_or(|(rules, _)| **rules == *self.rules);
        self.note_rules_in_force(ours);
        Ok(ours)
    }

    /// Records whether this engine's rules are in force, saying so in the
    /// log when that changes.
    fn note_rules_in_force(&self, ours: bool) {
        if !self.counters.set_rules_outdated(!ours) {
            return;
        }
        if ours {
            tracing::info!(rules = %self.rules, "this process's catalog is in force: it computes answers");
        } else {
            tracing::warn!(
                rules = %self.rules,
                "another process's catalog is in force: serving stored answers, computing none"
            );
        }
    }
}
