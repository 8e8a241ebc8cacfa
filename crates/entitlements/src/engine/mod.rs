//! The engine: the domain service that owns the database, the catalog and
//! the rules. This file holds [`Engine`] itself and its one way to write
//! (a transaction that tells who follows of every new version); each of
//! its operations lives in a file of its own:
//!
//! - `receive`: a Stripe event, recorded once and applied (refetched
//!   first in refetch mode), and `replay` of a recorded one; `batch` shares
//!   transactions between deliveries, `apply` is the shell around the pure
//!   state machine in `transition`, `setwise` applies runs of subscription
//!   states with a few statements for the whole run, `purchase` handles
//!   one-time payments.
//! - `recompute`: an organization's entitlements computed again and
//!   stored as a new version when they changed; `in_force` decides whose
//!   rules are current, `sweep` applies what time alone changed and prunes
//!   what is past its retention.
//! - `reconcile`: subscriptions as Stripe's API lists them.
//! - `by_hand` (grants) and `link` (customers to organizations).
//! - `read`: the answers, history and stored facts others ask for.

mod apply;
mod batch;
mod by_hand;
mod in_force;
mod link;
mod purchase;
mod read;
mod receive;
mod recompute;
mod reconcile;
mod setwise;
mod sweep;
mod transition;

pub use link::Linked;
pub use receive::Replay;
pub use sweep::Retention;

use std::sync::Arc;

use crate::Error;
use crate::catalog::Catalog;
use crate::compute::Policy;
use crate::counters::Counters;
use crate::db::{Conn, Database};
use crate::source::SubscriptionSource;

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
