//! Applying Stripe events: each event is recorded once and applied in one
//! transaction together with the subscription state and the recomputed
//! entitlements of its organization.

mod apply;
mod batch;
mod by_hand;
mod in_force;
mod link;

pub use link::Linked;
pub use sweep::Retention;
mod purchase;
mod sweep;
mod transition;

use std::sync::Arc;

use crate::Error;
use crate::catalog::Catalog;
use crate::clock::now;
use crate::compute::{Computed, Policy, Source, SourceKind, Sources, compute, default_entitlement};
use crate::counters::Counters;
use crate::db::{Conn, Database};
use crate::event::Event;
use crate::history::{Cursor, HistoryPage, merge_page};
use crate::receipt::{Change, Delivery, Outcome, Receipt};
use crate::source::{SourceError, SubscriptionRead, SubscriptionSource};
use crate::store::answers::EntitlementRow;
use crate::store::events::Placement;
use crate::store::{
    Cause, answers, events, grants, history, notes, organizations, purchases, subscriptions,
};
use crate::view::EntitlementView;

use apply::subscription_to_read;

/// What refetch mode learned of an event's subscription from its source.
enum Refetched {
    /// Its state now.
    State(SubscriptionRead),
    /// The source will never show it: the event is `invalid`, for this
    /// reason.
    Unreadable(String),
}

/// How a receipt says its organization was left to another process.
const DEFERRED: &str =
    "recorded; another replica's catalog is in force and computes the entitlements within a second";

/// The domain service: owns the database, the catalog and the rules.
#[derive(Clone)]
pub struct Engine {
    db: Database,
    catalog: Arc<Catalog>,
    policy: Policy,
    /// The catalog's fingerprint and the policy: stored with every answer,
    /// so that an answer computed under other rules is computed again.
    rules: Arc<str>,
    livemode: bool,
    counters: Arc<Counters>,
    /// Set in refetch mode: where subscription events read the state they
    /// apply.
    source: Option<Arc<dyn SubscriptionSource>>,
    /// Told of every new version once its transaction has committed.
    on_change: Option<ChangeHook>,
    /// Deliveries waiting for the next shared transaction.
    queue: batch::Queue,
    /// The most deliveries one transaction takes.
    max_batch: usize,
    /// Metadata keys an organization's id is read from, first found wins.
    pub(crate) org_id_keys: Arc<[String]>,
    /// Names this engine as the holder of a lease on background work.
    holder: Arc<str>,
}

/// Where an organization's id is looked for in metadata unless configured:
/// this service's own key, then the one a widely copied guide uses.
pub const DEFAULT_ORG_ID_KEYS: [&str; 2] = ["org_id", "orgId"];

/// Called with an organization and its new version after the transaction
/// that wrote it committed (before the write's caller is answered).
pub type ChangeHook = Arc<dyn Fn(&str, i64) + Send + Sync>;

tokio::task_local! {
    /// The versions written by the transaction in progress on this task.
    static WRITTEN: std::cell::RefCell<Vec<(String, i64)>>;
}

impl Engine {
    /// An engine applying events of the given mode (live or test).
    pub fn new(db: Database, catalog: Arc<Catalog>, policy: Policy, livemode: bool) -> Self {
        let rules = format!(
            "{:016x}-grace{}",
            catalog.fingerprint(),
            policy.past_due_grace_secs
        );
        Self {
            db,
            catalog,
            policy,
            rules: rules.into(),
            livemode,
            counters: Arc::default(),
            source: None,
            on_change: None,
            queue: batch::Queue::default(),
            max_batch: 64,
            org_id_keys: DEFAULT_ORG_ID_KEYS
                .iter()
                .map(|k| (*k).to_owned())
                .collect(),
            holder: uuid::Uuid::new_v4().simple().to_string().into(),
        }
    }

    /// Reads an organization's id from metadata under `keys`, the first
    /// found winning (default: `org_id`, then `orgId`).
    pub fn with_org_id_keys(mut self, keys: &[String]) -> Self {
        self.org_id_keys = keys.into();
        self
    }

    /// At most `max_batch` deliveries share a transaction (1: each has its
    /// own).
    pub fn with_max_batch(mut self, max_batch: usize) -> Self {
        self.max_batch = max_batch.max(1);
        self
    }

    /// The engine telling `hook` of every committed change (a cache
    /// invalidating its entries, for example).
    pub fn with_change_hook(mut self, hook: ChangeHook) -> Self {
        self.on_change = Some(hook);
        self
    }

    /// The engine in refetch mode: subscription events apply the state
    /// `source` reads, not their payload.
    pub fn with_source(mut self, source: Arc<dyn SubscriptionSource>) -> Self {
        self.source = Some(source);
        self
    }

    /// The database the engine writes to.
    pub fn database(&self) -> &Database {
        &self.db
    }

    /// The plan catalog.
    pub fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    /// What the engine has done since it started.
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// Records a verified event once and applies it, in a transaction it
    /// may share with deliveries that arrived at the same time (see
    /// `batch`); answers once that transaction has committed. In refetch
    /// mode its subscription is read first (outside the transaction), an
    /// unreachable source is [`Error::SourceUnavailable`], and an event left
    /// `unlinked` is linked after all when its customer's metadata names an
    /// organization.
    #[tracing::instrument(skip_all, fields(event_id = %event.id, event_type = %event.kind))]
    pub async fn receive(&self, event: Event, payload: String) -> Result<Delivery, Error> {
        let refetched = self.refetch(&event).await?;
        let customer = self
            .source
            .as_ref()
            .and(event.customer().map(str::to_owned));
        let work = batch::Work::Delivery {
            event,
            payload,
            refetched,
        };
        let delivery = match (self.submit(work).await?, customer) {
            (Delivery::Recorded(receipt), Some(customer))
                if receipt.outcome == Outcome::Unlinked =>
            {
                Delivery::Recorded(self.link_by_metadata(receipt, &customer).await)
            }
            (delivery, _) => delivery,
        };
        match &delivery {
            Delivery::Duplicate => self.counters.duplicate(),
            Delivery::Recorded(receipt) => self.observe(receipt),
        }
        Ok(delivery)
    }

    /// In refetch mode, the event's subscription as its source shows it
    /// now. Not read for a redelivery (it changes nothing), for an event of
    /// the other mode (it is rejected, and the key could not read it), nor
    /// for a type that carries no subscription state.
    async fn refetch(&self, event: &Event) -> Result<Option<Refetched>, Error> {
        let (Some(source), Some(id)) = (&self.source, subscription_to_read(event)) else {
            return Ok(None);
        };
        if event.livemode != self.livemode || self.is_recorded(&event.id).await? {
            return Ok(None);
        }
        match source.read(&id, event.created).await {
            Ok(fresh) => Ok(Some(Refetched::State(fresh))),
            Err(SourceError::Unreadable(reason)) => Ok(Some(Refetched::Unreadable(reason))),
            Err(SourceError::Unavailable(reason)) => Err(Error::SourceUnavailable(reason)),
        }
    }

    async fn is_recorded(&self, event_id: &str) -> Result<bool, Error> {
        let mut pooled = self.db.get().await?;
        events::exists(&mut pooled.conn(), event_id).await
    }

    /// Recomputes the organization a recorded event concerns from what is
    /// stored (its subscriptions, under the catalog in force), for example
    /// after a missing price was added to the catalog. The event keeps its
    /// outcome; the replay is a note of its own in the history.
    #[tracing::instrument(skip_all, fields(event_id = %event_id))]
    pub async fn replay(&self, event_id: &str) -> Result<Replay, Error> {
        let replay = self
            .write(async |conn| {
                let org_id = match events::org_of(conn, event_id).await? {
                    None => return Ok(Replay::UnknownEvent),
                    Some(None) => return Ok(Replay::NoOrganization),
                    Some(Some(org_id)) => org_id,
                };
                let recomputed = self
                    .lock_and_recompute(conn, &org_id, Cause::Event(event_id))
                    .await?;
                let detail = match recomputed.change {
                    None => format!("entitlements unchanged at version {}", recomputed.version),
                    Some(change) => format!(
                        "entitlements {} to version {}",
                        change.as_str(),
                        recomputed.version
                    ),
                };
                let about = Cause::Event(event_id);
                notes::add(conn, &org_id, "replay", about, &detail, now()).await?;
                Ok(Replay::Recomputed {
                    org_id,
                    version: recomputed.version,
                    change: recomputed.change,
                })
            })
            .await?;
        Ok(replay)
    }

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
    async fn recompute_each(&self, orgs: &[String]) -> Result<(), Error> {
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

    /// Runs `work` in a write transaction on one pooled connection.
    pub(crate) async fn write<T>(
        &self,
        work: impl AsyncFnOnce(&mut Conn<'_>) -> Result<T, Error>,
    ) -> Result<T, Error> {
        self.write_if(work, |_| true).await
    }

    /// Like [`Engine::write`], but rolls back a successful result that
    /// `commit` refuses, and still returns it.
    async fn write_if<T>(
        &self,
        work: impl AsyncFnOnce(&mut Conn<'_>) -> Result<T, Error>,
        commit: impl FnOnce(&T) -> bool,
    ) -> Result<T, Error> {
        let _turn = self.db.write_turn().await?;
        let mut pooled = self.db.get().await?;
        let mut conn = pooled.conn();
        conn.begin_write().await?;
        let (result, written) = WRITTEN
            .scope(std::cell::RefCell::default(), async {
                let result = work(&mut conn).await;
                (result, WRITTEN.with(std::cell::RefCell::take))
            })
            .await;
        let value = match result {
            Ok(value) if !commit(&value) => {
                conn.abort().await?;
                return Ok(value);
            }
            result => conn.finish(result).await?,
        };
        if let Some(hook) = &self.on_change {
            for (org_id, version) in &written {
                hook(org_id, *version);
            }
        }
        Ok(value)
    }

    /// Applies a subscription as Stripe's API returned it, through the same
    /// code as its events, to repair what missed webhooks left behind. With
    /// `only_org`, a subscription of another organization changes nothing;
    /// with `dry_run`, nothing is changed at all. The receipt says what
    /// happened (or would have).
    #[tracing::instrument(skip_all, fields(subscription_id = %fresh.subscription.id))]
    pub async fn reconcile(
        &self,
        fresh: &SubscriptionRead,
        only_org: Option<&str>,
        dry_run: bool,
    ) -> Result<Receipt, Error> {
        let (engine, fresh) = (self.clone(), fresh.clone());
        let only_org = only_org.map(str::to_owned);
        detached(async move {
            let (now, source) = (now(), transition::Source::listed(&fresh));
            engine
                .write_if(
                    async |conn| {
                        let sub = &fresh.subscription;
                        engine
                            .apply_subscription(conn, source, sub, Some(&fresh), now)
                            .await
                    },
                    |receipt| {
                        !dry_run
                            && only_org
                                .as_deref()
                                .is_none_or(|org| receipt.org_id.as_deref() == Some(org))
                    },
                )
                .await
        })
        .await
    }

    /// Applies a page of subscriptions as Stripe's API listed them, like
    /// [`Engine::reconcile`] does one, answering a receipt for each in
    /// order. A full run (every organization, not dry) shares transactions
    /// the way deliveries do.
    pub async fn reconcile_page(
        &self,
        page: Vec<SubscriptionRead>,
        only_org: Option<&str>,
        dry_run: bool,
    ) -> Result<Vec<Receipt>, Error> {
        if dry_run || only_org.is_some() {
            let mut receipts = Vec::with_capacity(page.len());
            for fresh in &page {
                receipts.push(self.reconcile(fresh, only_org, dry_run).await?);
            }
            return Ok(receipts);
        }
        let applied = page
            .into_iter()
            .map(|fresh| self.submit(batch::Work::Listed(fresh)));
        futures_util::future::try_join_all(applied)
            .await?
            .into_iter()
            .map(|delivery| match delivery {
                Delivery::Recorded(receipt) => Ok(receipt),
                Delivery::Duplicate => Err(Error::Unavailable(
                    "a listed subscription was answered as a redelivery".into(),
                )),
            })
            .collect()
    }

    fn observe(&self, receipt: &Receipt) {
        self.counters.outcome(receipt.outcome);
        tracing::info!(
            outcome = receipt.outcome.as_str(),
            org_id = receipt.org_id.as_deref(),
            detail = receipt.detail.as_deref(),
            "event recorded"
        );
    }

    /// Locks the organization and recomputes it, at the time read once the
    /// lock is held.
    async fn lock_and_recompute(
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
    async fn recompute(
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
            let detail = format!("expired at {}", rfc3339(*expired_at));
            notes::add(
                conn,
                org_id,
                "grant_expired",
                Cause::Grant(grant_id),
                &detail,
                now,
            )
            .await?;
        }
        if !expired.is_empty() {
            let ids: Vec<&str> = expired.iter().map(|(id, _)| id.as_str()).collect();
            grants::note_expired(conn, &ids).await?;
        }
        let computed = compute(&self.catalog, &sources, now, self.policy);
        let current = answers::get(conn, org_id).await?;
        let (before, version) = match &current {
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
        let version = match (change, &current) {
            (Some(_), _) => {
                let row = EntitlementRow::new(org_id, &computed, version + 1, now, &self.rules)?;
                answers::save_change(conn, &row, cause).await?;
                answers::announce(conn, org_id, version + 1).await?;
                // Outside a write (never, today) there is no one to tell.
                let _ = WRITTEN.try_with(|w| w.borrow_mut().push((org_id.to_owned(), version + 1)));
                self.counters
                    .entitlement_change(&changed_kinds(&before.sources, &after.sources));
                version + 1
            }
            (None, Some(row))
                if row.rules.as_deref() != Some(&*self.rules)
                    || row.recheck_at != computed.recheck_at =>
            {
                answers::settle(conn, org_id, &self.rules, computed.recheck_at).await?;
                version
            }
            (None, _) => version,
        };
        if !computed.unknown_prices.is_empty() {
            self.counters.unknown_prices();
            tracing::warn!(org_id, prices = ?computed.unknown_prices, "prices in no plan grant nothing");
        }
        Ok(Recomputed {
            unknown_prices: computed.unknown_prices,
            change,
            version,
            deferred: false,
        })
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
        let nothing = Computed {
            entitlement: default_entitlement(&self.catalog),
            recheck_at: Some(now),
            unknown_prices: Vec::new(),
        };
        let mut row = EntitlementRow::new(org_id, &nothing, 0, now, &self.rules)?;
        row.rules = None;
        Ok(Recomputed {
            unknown_prices: Vec::new(),
            change: None,
            version: answers::defer(conn, &row, now).await?,
            deferred: true,
        })
    }

    /// The organization's current entitlements: the stored ones, or the
    /// default plan at version 0 for an organization no event concerned.
    /// An answer computed under other rules (the catalog changed) or that
    /// time alone changed (a grace period or a canceled period ended) is
    /// recomputed first, and stored as a new version if it changed.
    #[tracing::instrument(skip_all, fields(org_id = %org_id))]
    pub async fn entitlements(&self, org_id: &str) -> Result<EntitlementView, Error> {
        let now = now();
        let row = {
            let mut pooled = self.db.get().await?;
            answers::get(&mut pooled.conn(), org_id).await?
        };
        let row = match row {
            // An outdated process serves what is stored, never rewriting
            // it under its own rules.
            Some(row) if row.due(now, &self.rules) && !self.counters.rules_outdated() => {
                self.write(async |conn| {
                    self.lock_and_recompute(conn, org_id, Cause::Time).await?;
                    answers::get(conn, org_id).await
                })
                .await?
            }
            row => row,
        };
        Ok(match row {
            Some(row) => EntitlementView::new(
                org_id,
                row.entitlement()?,
                row.version,
                Some(row.updated_at),
                row.recheck_at,
            ),
            None => EntitlementView::new(org_id, default_entitlement(&self.catalog), 0, None, None),
        })
    }

    /// One page of the organization's history, newest first: at most
    /// `limit` events and entitlement changes older than `before`.
    pub async fn history(
        &self,
        org_id: &str,
        before: Option<&Cursor>,
        limit: usize,
    ) -> Result<HistoryPage, Error> {
        let mut pooled = self.db.get().await?;
        let mut conn = pooled.conn();
        // One more than asked tells whether another page follows.
        let fetch = i64::try_from(limit).unwrap_or(i64::MAX).saturating_add(1);
        let lists = history::before(&mut conn, org_id, before, fetch).await?;
        Ok(merge_page(lists, limit))
    }

    /// Stripe's clock as last heard (unix seconds): the newest `created` of
    /// the recorded events, 0 before any. A read of Stripe begun after this
    /// call is no older than that, whatever this host's clock says.
    pub async fn stripe_time_heard(&self) -> Result<i64, Error> {
        let mut pooled = self.db.get().await?;
        let newest = events::newest_created(&mut pooled.conn()).await?;
        Ok(newest.unwrap_or_default())
    }

    /// How many subscriptions are stored, of one organization or all.
    pub async fn stored_subscriptions(&self, org_id: Option<&str>) -> Result<u64, Error> {
        let mut pooled = self.db.get().await?;
        let count = subscriptions::count(&mut pooled.conn(), org_id).await?;
        Ok(u64::try_from(count).unwrap_or_default())
    }

    /// The Stripe customer stored for the organization.
    pub async fn customer_of(&self, org_id: &str) -> Result<Option<String>, Error> {
        let mut pooled = self.db.get().await?;
        organizations::customer_of(&mut pooled.conn(), org_id).await
    }

    /// Which attempt at creating the organization's Stripe customer is
    /// next; it names the creation's idempotency key.
    pub async fn customer_attempt(&self, org_id: &str) -> Result<i64, Error> {
        let mut pooled = self.db.get().await?;
        organizations::customer_attempt(&mut pooled.conn(), org_id).await
    }

    /// Moves on to the next attempt at creating the organization's
    /// customer, after Stripe failed on its side: Stripe replays a failed
    /// answer for a day to a key it has seen.
    pub async fn next_customer_attempt(&self, org_id: &str) -> Result<(), Error> {
        let now = now();
        self.write(async |conn| organizations::next_customer_attempt(conn, org_id, now).await)
            .await
    }

    /// Stores the organization's Stripe customer unless it has one already,
    /// and returns the one it has afterwards.
    pub async fn remember_customer(&self, org_id: &str, customer: &str) -> Result<String, Error> {
        let now = now();
        self.write(async |conn| {
            organizations::set_customer_if_unset(conn, org_id, customer, now).await
        })
        .await
    }
}

/// Runs `work` as a task of its own, so that a caller that stops waiting
/// (a dropped request, a stopped background task) never cuts its
/// transaction short.
async fn detached<T: Send + 'static>(
    work: impl Future<Output = Result<T, Error>> + Send + 'static,
) -> Result<T, Error> {
    tokio::spawn(work)
        .await
        .map_err(|e| Error::Unavailable(e.to_string()))?
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

/// Records an applied event once, with its outcome (see
/// [`events::record`]). An event that concerns an organization takes the
/// organization's next history position and is stamped with the time read
/// once that lock is held.
async fn record(
    conn: &mut Conn<'_>,
    event: &Event,
    payload: &str,
    receipt: &Receipt,
    received_at: i64,
) -> Result<bool, Error> {
    let placement = match receipt.org_id.as_deref() {
        Some(org_id) => {
            let position = organizations::next_position(conn, org_id, now()).await?;
            Some(Placement {
                position,
                at: now(),
            })
        }
        None => None,
    };
    events::record(conn, event, payload, receipt, placement, received_at).await
}

/// What a recomputation found.
pub(crate) struct Recomputed {
    unknown_prices: Vec<String>,
    change: Option<Change>,
    /// The version in force afterwards.
    version: i64,
    /// Left to a process whose rules are in force.
    deferred: bool,
}

/// What [`Engine::replay`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Replay {
    /// No event has that id.
    UnknownEvent,
    /// The event concerns no organization (it is `unlinked` or `invalid`),
    /// so there is nothing to recompute.
    NoOrganization,
    /// The event's organization was recomputed.
    Recomputed {
        /// The organization.
        org_id: String,
        /// Its version afterwards.
        version: i64,
        /// How its entitlements moved, if they did.
        change: Option<Change>,
    },
}

/// Completes a receipt with what recomputing its organization found: how
/// the entitlements moved, and prices that no plan lists.
fn conclude(mut receipt: Receipt, recomputed: Recomputed) -> Receipt {
    receipt.change = recomputed.change;
    if recomputed.deferred {
        receipt = receipt.note(DEFERRED);
    }
    if recomputed.unknown_prices.is_empty() {
        return receipt;
    }
    let note = format!(
        "{}: {}",
        crate::store::admin::UNKNOWN_PRICES,
        recomputed.unknown_prices.join(", ")
    );
    receipt.unknown_prices = recomputed.unknown_prices;
    receipt.note(note)
}

impl Receipt {
    fn invalid(reason: impl Into<String>) -> Self {
        Receipt::new(Outcome::Invalid).detail(reason)
    }
}
