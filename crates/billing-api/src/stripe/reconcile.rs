//! `billing-api reconcile`: reads every subscription from Stripe's API and
//! applies each through the same state machine as webhooks, repairing what
//! missed webhooks left behind. Customers of subscriptions that stay
//! without an organization are read too, and linked where their metadata
//! names one.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;

use entitlements::{Change, Engine, Error, Outcome, Receipt, SubscriptionRead};

use crate::stripe::api::{CustomerRecord, StripeApi, StripeFailure};
use crate::stripe::pages::fold_pages;
use crate::stripe::progress::Progress;

/// What a reconciliation did (or, dry, would do).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    /// Subscriptions read from Stripe.
    pub subscriptions: usize,
    /// Organizations that gained a plan.
    pub granted: usize,
    /// Organizations that lost their plan.
    pub revoked: usize,
    /// Organizations whose granted entitlements changed.
    pub changed: usize,
    /// Organizations left as they were.
    pub unchanged: usize,
    /// Subscriptions with no known organization.
    pub unlinked: usize,
    /// Customers linked by the organization their metadata names.
    pub linked_customers: usize,
    /// The subscriptions still without an organization, by customer.
    pub unlinked_customers: BTreeMap<String, Vec<String>>,
    /// Prices that no plan lists.
    pub unknown_prices: BTreeSet<String>,
}

/// Why a reconciliation stopped.
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    /// Stripe could not be read (after retries).
    #[error(transparent)]
    Stripe(#[from] StripeFailure),
    /// The database failed.
    #[error(transparent)]
    Storage(#[from] Error),
}

/// How one organization's entitlements moved over the run.
#[derive(Default)]
struct Movement {
    before: Option<bool>,
    after: bool,
    changed: bool,
}

/// What a run has counted so far.
#[derive(Default)]
struct Tally {
    summary: Summary,
    orgs: BTreeMap<String, Movement>,
}

impl Tally {
    /// Counts one applied subscription of `customer`, and (unless it is
    /// another's than `only_org`) how its organization moved.
    fn count(&mut self, receipt: Receipt, customer: Option<String>, only_org: Option<&str>) {
        let summary = &mut self.summary;
        summary.subscriptions += 1;
        summary
            .unknown_prices
            .extend(receipt.unknown_prices.iter().cloned());
        let Some(org) = receipt.org_id else {
            if receipt.outcome == Outcome::Unlinked {
                summary.unlinked += 1;
                if let (Some(customer), Some(sub)) = (customer, receipt.subscription_id) {
                    let subs = summary.unlinked_customers.entry(customer).or_default();
                    subs.push(sub);
                }
            }
            return;
        };
        if only_org.is_some_and(|only| only != org) {
            return;
        }
        let movement = self.orgs.entry(org).or_default();
        if let Some(change) = receipt.change {
            let (was, is) = match change {
                Change::Granted => (false, true),
                Change::Revoked => (true, false),
                Change::Changed => (true, true),
            };
            movement.before.get_or_insert(was);
            movement.after = is;
            movement.changed = true;
        }
    }
}

/// Lists every subscription (of `only_org`'s customer when it has one) and
/// applies each; with `dry_run` nothing is written. The next page is read
/// from Stripe while the last one is applied; `progress` is told of each.
/// Then (for every organization, not dry) the customers of subscriptions
/// left without an organization are read, and linked where their metadata
/// names one.
pub async fn reconcile(
    engine: &Engine,
    api: &StripeApi,
    only_org: Option<&str>,
    dry_run: bool,
    progress: &mut Progress,
) -> Result<Summary, ReconcileError> {
    let mut summary = apply_subscriptions(engine, api, only_org, dry_run, progress).await?;
    if !dry_run && only_org.is_none() {
        link_by_metadata(engine, api, false, &mut summary).await?;
    }
    Ok(summary)
}

/// Reads from Stripe the customers of `summary`'s subscriptions without
/// an organization, one at a time, and (unless `dry_run`) links those
/// whose metadata names one: each linked customer leaves
/// `unlinked_customers`. Returns what was read of the others (`None`: not
/// found).
pub(crate) async fn link_by_metadata(
    engine: &Engine,
    api: &StripeApi,
    dry_run: bool,
    summary: &mut Summary,
) -> Result<HashMap<String, Option<CustomerRecord>>, ReconcileError> {
    let customers: Vec<String> = summary.unlinked_customers.keys().cloned().collect();
    let mut left = HashMap::new();
    for customer in customers {
        let record = match api.retrieve_customer(&customer).await {
            Ok(record) => record,
            Err(failure) if failure.is_permanent() => None,
            Err(failure) => return Err(failure.into()),
        };
        let named = record.as_ref().map(|r| engine.org_named_in(&r.metadata));
        let (Some(Ok(Some(org))), false) = (named, dry_run) else {
            left.insert(customer, record);
            continue;
        };
        match engine.link_customer(&org, &customer, "its metadata").await {
            Ok(_) => {
                summary.linked_customers += 1;
                if let Some(subscriptions) = summary.unlinked_customers.remove(&customer) {
                    summary.unlinked -= subscriptions.len();
                }
            }
            // Linked to another organization since the page was read.
            Err(Error::CustomerTaken { .. }) => {
                left.insert(customer, record);
            }
            Err(error) => return Err(error.into()),
        }
    }
    Ok(left)
}

/// Applies every listed subscription, as [`reconcile`] describes.
pub(crate) async fn apply_subscriptions(
    engine: &Engine,
    api: &StripeApi,
    only_org: Option<&str>,
    dry_run: bool,
    progress: &mut Progress,
) -> Result<Summary, ReconcileError> {
    let customer = match only_org {
        Some(org) => engine.customer_of(org).await?,
        None => None,
    };
    progress.expect(engine.stored_subscriptions(only_org).await?);
    let customer = customer.as_deref();
    let read = move |after: Option<String>| async move {
        read_page(engine, api, customer, after.as_deref()).await
    };
    let apply = move |mut tally: Tally, reads: Vec<SubscriptionRead>| async move {
        let customers: Vec<Option<String>> = reads
            .iter()
            .map(|read| read.subscription.customer.clone())
            .collect();
        let receipts = engine.reconcile_page(reads, only_org, dry_run).await?;
        for (receipt, customer) in receipts.into_iter().zip(customers) {
            tally.count(receipt, customer, only_org);
        }
        Ok(tally)
    };
    let id_of = |read: &SubscriptionRead| read.subscription.id.clone();
    let Tally { mut summary, orgs } =
        fold_pages(progress, read, id_of, Tally::default(), apply).await?;
    for movement in orgs.values() {
        match (movement.changed, movement.before, movement.after) {
            (false, _, _) => summary.unchanged += 1,
            (true, Some(false), true) => summary.granted += 1,
            (true, Some(true), false) => summary.revoked += 1,
            _ => summary.changed += 1,
        }
    }
    Ok(summary)
}

/// One page of subscriptions after `after`, each stamped on Stripe's
/// clock, not this host's: no older than its own timestamps and the newest
/// event recorded before the request. An event recorded by then is in
/// the page; one created later is newer than it.
async fn read_page(
    engine: &Engine,
    api: &StripeApi,
    customer: Option<&str>,
    after: Option<&str>,
) -> Result<(Vec<SubscriptionRead>, bool), ReconcileError> {
    let heard = engine.stripe_time_heard().await?;
    let (page, more) = api.list_subscriptions(customer, after).await?;
    let reads = page.into_iter().map(|read| read.not_before(heard));
    Ok((reads.collect(), more))
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} subscription(s) read; organizations: {} granted, {} revoked, {} changed, {} unchanged; \
             {} subscription(s) without an organization",
            self.subscriptions,
            self.granted,
            self.revoked,
            self.changed,
            self.unchanged,
            self.unlinked
        )?;
        if self.linked_customers > 0 {
            write!(
                f,
                "; {} customer(s) linked by their metadata",
                self.linked_customers
            )?;
        }
        if !self.unknown_prices.is_empty() {
            let prices: Vec<&str> = self.unknown_prices.iter().map(String::as_str).collect();
            write!(f, "; prices in no plan: {}", prices.join(", "))?;
        }
        Ok(())
    }
}
