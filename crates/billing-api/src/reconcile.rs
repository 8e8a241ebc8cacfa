//! `billing-api reconcile`: reads every subscription from Stripe's API and
//! applies each through the same state machine as webhooks, repairing what
//! missed webhooks left behind.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use entitlements::{Change, Engine, Outcome, SubscriptionRead};

use crate::stripe_api::{StripeApi, StripeFailure};

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
    Storage(#[from] entitlements::Error),
}

/// How one organization's entitlements moved over the run.
#[derive(Default)]
struct Movement {
    before: Option<bool>,
    after: bool,
    changed: bool,
}

/// Lists every subscription (of `only_org`'s customer when it has one) and
/// applies each; with `dry_run` nothing is written.
pub async fn reconcile(
    engine: &Engine,
    api: &StripeApi,
    only_org: Option<&str>,
    dry_run: bool,
) -> Result<Summary, ReconcileError> {
    let customer = match only_org {
        Some(org) => engine.customer_of(org).await?,
        None => None,
    };
    let mut summary = Summary::default();
    let mut orgs: BTreeMap<String, Movement> = BTreeMap::new();
    let mut after: Option<String> = None;
    loop {
        // The page shows Stripe's state as of its request, however long it
        // takes to apply: a webhook applied meanwhile is newer than it.
        let read_at_ms = chrono::Utc::now().timestamp_millis();
        let (page, more) = api
            .list_subscriptions(customer.as_deref(), after.as_deref())
            .await?;
        after = page.last().map(|sub| sub.id.clone());
        for subscription in page {
            summary.subscriptions += 1;
            let fresh = SubscriptionRead {
                subscription,
                read_at_ms,
            };
            let receipt = engine.reconcile(&fresh, only_org, dry_run).await?;
            summary
                .unknown_prices
                .extend(receipt.unknown_prices.iter().cloned());
            let Some(org) = receipt.org_id else {
                summary.unlinked += usize::from(receipt.outcome == Outcome::Unlinked);
                continue;
            };
            if only_org.is_some_and(|only| only != org) {
                continue;
            }
            let movement = orgs.entry(org).or_default();
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
        if !more || after.is_none() {
            break;
        }
    }
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
        if !self.unknown_prices.is_empty() {
            let prices: Vec<&str> = self.unknown_prices.iter().map(String::as_str).collect();
            write!(f, "; prices in no plan: {}", prices.join(", "))?;
        }
        Ok(())
    }
}
