//! Computing an organization's entitlements again from its sources and
//! storing them as a new version, with a history row, when they changed;
//! or leaving it to a process whose rules are in force.

use super::{Engine, WRITTEN, detached};
use crate::Error;
use crate::clock::now;
use crate::compute::{Computed, Source, SourceKind, Sources, compute, default_entitlement};
use crate::db::Conn;
use crate::receipt::Change;
use crate::store::answers::EntitlementRow;
use crate::store::{Cause, answers, grants, notes, organizations, purchases, subscriptions};

impl Engine {
    /// Computes again, under the rules in force, every stored answer that
    /// was computed under other rules (after the catalog or the grace
    /// period changed), a batch at a time; returns how many. Reads do the
    /// same lazily for an organization this has not reached yet.
    pub async fn follow_rules(&self) -> Result<usize, Error> {
        const BATCH: i64 = 100;
        let mut done = 0;
        loop {
            let orgs = {
                let mut pooled = self.db.get().await?;
                answers::computed_under_other_rules(&mut pooled.conn(), &self.rules, BATCH).await?
            };
            if orgs.is_empty() {
                return Ok(done);
            }
            self.recompute_each(&orgs).await?;
            done += orgs.len();
        }
    }

    /// Locks and recomputes each organization, each in a write transaction
    /// of its own (so none waits on a long one, and committers locking the
    /// same organizations never deadlock with it).
    pub(super) async fn recompute_each(&self, orgs: &[String]) -> Result<(), Error> {
        for org_id in orgs {
            let (engine, org_id) = (self.clone(), org_id.clone());
            detached(async move {
                engine
                    .write(async |conn| engine.lock_and_recompute(conn, &org_id, Cause::Time).await)
                    .await
            })
            .await?;
        }
        Ok(())
    }

    /// Locks the organization and recomputes it, at the time read once the
    /// lock is held.
    pub(super) async fn lock_and_recompute(
        &self,
        conn: &mut Conn<'_>,
        org_id: &str,
        cause: Cause<'_>,
    ) -> Result<Recomputed, Error> {
        let now = organizations::lock(conn, org_id, now()).await?;
        self.recompute(conn, org_id, cause, now).await
    }

    /// Recomputes the organization's entitlements from its sources and
    /// stores them, with a new version and a history row naming `cause`, if
    /// they changed; an unchanged answer records the rules it was computed
    /// under and when to compute it again. Grants that expired since are
    /// noted in the history. The caller holds the organization's lock.
    pub(super) async fn recompute(
        &self,
        conn: &mut Conn<'_>,
        org_id: &str,
        cause: Cause<'_>,
        now: i64,
    ) -> Result<Recomputed, Error> {
        if self.counters.rules_outdated() {
            return self.defer(conn, org_id, now).await;
        }
        let (grants, expired) = grants::unrevoked(conn, org_id, now).await?;
        let sources = Sources {
            subscriptions: subscriptions::of_org(conn, org_id).await?,
            purchases: purchases::of_org(conn, org_id).await?,
            grants,
        };
        for (grant_id, expired_at) in &expired {
            let detail = expiry_detail(*expired_at);
            let about = Cause::Grant(grant_id);
            notes::add(conn, org_id, GRANT_EXPIRED, about, &detail, now).await?;
        }
        if !expired.is_empty() {
            let ids: Vec<&str> = expired.iter().map(|(id, _)| id.as_str()).collect();
            grants::note_expired(conn, &ids).await?;
        }
        let computed = compute(&self.catalog, &sources, now, self.policy);
        let current = answers::get(conn, org_id).await?;
        let decision = self.decide(org_id, current.as_ref(), &computed, now)?;
        match &decision.store {
            Some(Stored::Changed(row)) => {
                answers::save_change(conn, row, cause).await?;
                answers::announce(conn, &[(org_id, row.version)]).await?;
            }
            Some(Stored::Settled { recheck_at }) => {
                answers::settle(conn, org_id, &self.rules, *recheck_at).await?;
            }
            None => {}
        }
        Ok(self.recomputed(org_id, computed, &decision))
    }

    /// What a computed answer means against the stored one (`current`):
    /// a new version when it differs (counted, and told to the change hook
    /// once the write commits), else the rules and recheck time to record
    /// if they moved.
    pub(super) fn decide(
        &self,
        org_id: &str,
        current: Option<&EntitlementRow>,
        computed: &Computed,
        now: i64,
    ) -> Result<Decision, Error> {
        let (before, version) = match current {
            Some(row) => (row.entitlement()?, row.version),
            None => (default_entitlement(&self.catalog), 0),
        };
        let after = &computed.entitlement;
        let change = match (before.is_granted(), after.is_granted()) {
            _ if before == *after => None,
            (false, true) => Some(Change::Granted),
            (true, false) => Some(Change::Revoked),
            _ => Some(Change::Changed),
        };
        let (version, store) = match (change, current) {
            (Some(_), _) => {
                let row = EntitlementRow::new(org_id, computed, version + 1, now, &self.rules)?;
                // Outside a write (never, today) there is no one to tell.
                let _ = WRITTEN.try_with(|w| w.borrow_mut().push((org_id.to_owned(), version + 1)));
                self.counters
                    .entitlement_change(&changed_kinds(&before.sources, &after.sources));
                (version + 1, Some(Stored::Changed(row)))
            }
            (None, Some(row))
                if row.rules.as_deref() != Some(&*self.rules)
                    || row.recheck_at != computed.recheck_at =>
            {
                let recheck_at = computed.recheck_at;
                (version, Some(Stored::Settled { recheck_at }))
            }
            (None, _) => (version, None),
        };
        Ok(Decision {
            change,
            version,
            store,
        })
    }

    /// What a recomputation found; prices in no plan are counted and
    /// logged.
    pub(super) fn recomputed(
        &self,
        org_id: &str,
        computed: Computed,
        decision: &Decision,
    ) -> Recomputed {
        if !computed.unknown_prices.is_empty() {
            self.counters.unknown_prices();
            tracing::warn!(org_id, prices = ?computed.unknown_prices, "prices in no plan grant nothing");
        }
        Recomputed {
            unknown_prices: computed.unknown_prices,
            change: decision.change,
            version: decision.version,
            deferred: false,
        }
    }

    /// Leaves an organization to a process whose rules are in force (see
    /// [`Engine::follow_rules_in_force`]): its answer is marked due, and
    /// that process's sweep computes it within a second.
    async fn defer(
        &self,
        conn: &mut Conn<'_>,
        org_id: &str,
        now: i64,
    ) -> Result<Recomputed, Error> {
        let version = answers::defer(conn, &self.deferred_default(org_id, now)?, now).await?;
        Ok(Recomputed::deferred(version))
    }

    /// The answer a deferred organization without one is stored with:
    /// the default plan at version 0, due at once, under no rules.
    pub(super) fn deferred_default(&self, org_id: &str, now: i64) -> Result<EntitlementRow, Error> {
        let nothing = Computed {
            entitlement: default_entitlement(&self.catalog),
            recheck_at: Some(now),
            unknown_prices: Vec::new(),
        };
        let mut row = EntitlementRow::new(org_id, &nothing, 0, now, &self.rules)?;
        row.rules = None;
        Ok(row)
    }
}

/// What recomputing decided to store.
pub(super) struct Decision {
    change: Option<Change>,
    version: i64,
    pub(super) store: Option<Stored>,
}

/// An answer to store.
#[expect(
    clippy::large_enum_variant,
    reason = "one per recomputation, moved once into the store"
)]
pub(super) enum Stored {
    /// A new version.
    Changed(EntitlementRow),
    /// The same answer, computed under the rules in force, holding until
    /// `recheck_at`.
    Settled { recheck_at: Option<i64> },
}

/// The history's action for a grant that expired.
pub(super) const GRANT_EXPIRED: &str = "grant_expired";

/// The history's detail of a grant that expired at `at`.
pub(super) fn expiry_detail(at: i64) -> String {
    format!("expired at {}", rfc3339(at))
}

/// The kinds of source whose grants differ between two answers.
fn changed_kinds(before: &[Source], after: &[Source]) -> Vec<SourceKind> {
    let mut kinds: Vec<SourceKind> = before
        .iter()
        .filter(|s| !after.contains(s))
        .chain(after.iter().filter(|s| !before.contains(s)))
        .map(|s| s.kind)
        .collect();
    kinds.sort();
    kinds.dedup();
    kinds
}

/// A time for people, in UTC.
fn rfc3339(secs: i64) -> String {
    chrono::DateTime::from_timestamp(secs, 0).map_or_else(|| secs.to_string(), |t| t.to_rfc3339())
}

/// What a recomputation found.
pub(crate) struct Recomputed {
    pub(super) unknown_prices: Vec<String>,
    pub(super) change: Option<Change>,
    /// The version in force afterwards.
    pub(super) version: i64,
    /// Left to a process whose rules are in force.
    pub(super) deferred: bool,
}

impl Recomputed {
    /// Left to a process whose rules are in force, at `version`.
    pub(super) fn deferred(version: i64) -> Self {
        Self {
            unknown_prices: Vec::new(),
            change: None,
            version,
            deferred: true,
        }
    }
}
