//! Entitlement computation: a pure function of what grants an
//! organization (its subscriptions, purchases and grants), the catalog and
//! the current time.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::catalog::{Catalog, FeatureValue, Features, Terms, merge};
use crate::kinds::SubscriptionStatus;

/// The state of one subscription as the service last applied it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriptionState {
    /// Stripe's subscription id.
    pub id: String,
    /// Stripe's status; `None` until the first subscription event arrives.
    pub status: Option<SubscriptionStatus>,
    /// Start of the current period (unix seconds).
    pub current_period_start: Option<i64>,
    /// End of the current period (unix seconds).
    pub current_period_end: Option<i64>,
    /// Canceled by the customer, effective at the period end.
    pub cancel_at_period_end: bool,
    /// When payment of the unpaid invoice first failed (unix seconds).
    pub past_due_since: Option<i64>,
    /// What the subscription buys.
    pub items: Vec<Item>,
}

/// One subscription item: a price and a quantity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    /// Stripe price id.
    pub price_id: String,
    /// Units bought (seats).
    pub quantity: i64,
}

/// A one-time purchase as the service last applied it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PurchaseState {
    /// The Checkout Session id, `cs_...`.
    pub id: String,
    /// The plan bought.
    pub plan: String,
    /// Units bought.
    pub quantity: i64,
    /// When it was paid; `None` while a delayed payment is pending, or
    /// after it failed.
    pub paid_at: Option<i64>,
    /// Fully refunded, or under a dispute not won.
    pub withdrawn: bool,
    /// What it was sold with; `None` takes its plan's terms in today's
    /// catalog (a purchase recorded before terms were, or of a plan no
    /// catalog had yet).
    pub terms: Option<Terms>,
}

/// Access given by hand, not revoked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrantState {
    /// `grant_...`.
    pub id: String,
    /// The plan granted, if any.
    pub plan: Option<String>,
    /// Features granted beside (or instead of) a plan.
    pub features: Features,
    /// Units of the plan's per-unit features.
    pub quantity: i64,
    /// When it stops granting; `None` never.
    pub expires_at: Option<i64>,
}

/// Everything that may grant an organization something.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sources {
    /// Its subscriptions, granting or not.
    pub subscriptions: Vec<SubscriptionState>,
    /// Its one-time purchases.
    pub purchases: Vec<PurchaseState>,
    /// Its grants that are not revoked.
    pub grants: Vec<GrantState>,
}

/// What kind of thing grants.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceKind {
    /// A Stripe subscription.
    Subscription,
    /// A one-time purchase.
    Purchase,
    /// A grant by hand.
    Grant,
}

impl SourceKind {
    /// Every kind, in declaration order (their discriminants).
    pub const ALL: [SourceKind; 3] = [
        SourceKind::Subscription,
        SourceKind::Purchase,
        SourceKind::Grant,
    ];

    /// The name in answers and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            SourceKind::Subscription => "subscription",
            SourceKind::Purchase => "purchase",
            SourceKind::Grant => "grant",
        }
    }
}

/// One thing that grants an organization now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Source {
    /// Its kind.
    pub kind: SourceKind,
    /// `sub_...`, `cs_...` or `grant_...`.
    pub id: String,
    /// The plan it grants, if it grants one.
    pub plan: Option<String>,
    /// When it stops granting if nothing else happens; `None` never.
    pub until: Option<i64>,
}

/// Rules that are configuration rather than catalog.
#[derive(Debug, Clone, Copy)]
pub struct Policy {
    /// How long a `past_due` subscription keeps granting (seconds).
    pub past_due_grace_secs: i64,
}

/// What an organization is entitled to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entitlement {
    /// The plan of the primary granting subscription, or the default plan.
    pub plan: String,
    /// That subscription's status, or `none` for the default plan.
    pub status: String,
    /// Every catalog feature with the value granted.
    pub features: Features,
    /// The primary granting subscription.
    pub subscription_id: Option<String>,
    /// Its period end.
    pub current_period_end: Option<i64>,
    /// Whether it ends at its period end.
    pub cancel_at_period_end: bool,
    /// While past due: when the grace period ends.
    pub grace_until: Option<i64>,
    /// When this answer lapses if no event arrives: the earliest moment
    /// it changes by time alone, or a granting subscription's period end.
    pub valid_until: Option<i64>,
    /// What grants it, subscriptions first; empty for the default plan.
    pub sources: Vec<Source>,
}

/// The result of a computation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Computed {
    /// The organization's entitlement.
    pub entitlement: Entitlement,
    /// The next moment time alone changes the result (a grace period or a
    /// canceled subscription's last period ends); always after `now`.
    pub recheck_at: Option<i64>,
    /// Prices of granting subscriptions that no plan lists.
    pub unknown_prices: Vec<String>,
}

impl Entitlement {
    /// Whether anything grants this (it is not the default plan).
    pub fn is_granted(&self) -> bool {
        !self.sources.is_empty()
    }
}

/// Whether a subscription grants access now, and until when.
fn grant_window(sub: &SubscriptionState, now: i64, policy: Policy) -> Option<Window> {
    match sub.status.as_ref()? {
        SubscriptionStatus::Active | SubscriptionStatus::Trialing => {
            let ends = sub.current_period_end.filter(|_| sub.cancel_at_period_end);
            if ends.is_some_and(|end| end <= now) {
                return None;
            }
            Some(Window {
                until: sub.current_period_end,
                grace_until: None,
                ends,
            })
        }
        SubscriptionStatus::PastDue => {
            // Without a failed-invoice event, dunning began when the unpaid
            // period did.
            let since = sub.past_due_since.or(sub.current_period_start)?;
            let grace_until = since.saturating_add(policy.past_due_grace_secs);
            (now < grace_until).then_some(Window {
                until: Some(grace_until),
                grace_until: Some(grace_until),
                ends: Some(grace_until),
            })
        }
        _ => None,
    }
}

/// How much a set of features grants: how many it turns on (true, or a
/// number above zero), then the sum of its numbers.
type Weight = (usize, i64);

fn weight(features: &Features) -> Weight {
    features
        .values()
        .fold((0, 0), |(count, sum), value| match value {
            FeatureValue::Flag(on) => (count + usize::from(*on), sum),
            FeatureValue::Limit(n) => (count + usize::from(*n > 0), sum.saturating_add(*n)),
        })
}

struct Window {
    until: Option<i64>,
    grace_until: Option<i64>,
    /// When the subscription stops granting with no further event.
    ends: Option<i64>,
}

/// What the sources grant, gathered one source at a time.
struct Gathered {
    features: Features,
    sources: Vec<Source>,
    plan_granted: bool,
    valid_until: Option<i64>,
    recheck_at: Option<i64>,
}

impl Gathered {
    fn new(catalog: &Catalog) -> Self {
        Self {
            features: catalog.zero_features().clone(),
            sources: Vec::new(),
            plan_granted: false,
            valid_until: None,
            recheck_at: None,
        }
    }

    /// Counts a granting source: `until` is when the answer lapses
    /// without an event, `ends` when time alone changes it.
    fn add(&mut self, source: Source, features: Features, ends: Option<i64>) {
        merge(&mut self.features, features);
        self.plan_granted |= source.plan.is_some();
        self.valid_until = earliest(self.valid_until, source.until);
        self.recheck_at = earliest(self.recheck_at, ends);
        self.sources.push(source);
    }
}

fn earliest(a: Option<i64>, b: Option<i64>) -> Option<i64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// Among sources that grant until a time or forever (`None`), the one
/// granting longest, then the last by id.
fn longest<'s, T>(
    candidates: impl Iterator<Item = (&'s T, Option<i64>, &'s str)>,
) -> Option<&'s T> {
    candidates
        .max_by_key(|(_, until, id)| (until.is_none(), *until, *id))
        .map(|(source, _, _)| source)
}

/// Computes an organization's entitlement from its sources: the merge of
/// every granting subscription, purchase and grant (flags OR-ed, numbers
/// maxed), over the default plan when none of them grants a plan.
pub fn compute(catalog: &Catalog, sources: &Sources, now: i64, policy: Policy) -> Computed {
    let mut gathered = Gathered::new(catalog);
    let mut unknown_prices = BTreeSet::new();
    let mut primary: Option<(&SubscriptionState, &str, Window)> = None;

    for sub in &sources.subscriptions {
        let Some(window) = grant_window(sub, now, policy) else {
            continue;
        };
        // The subscription's plan, when its items buy several: the one
        // that grants most, then the first by name.
        let mut plan_name: Option<(Weight, &str)> = None;
        let mut features = Features::new();
        for item in &sub.items {
            match catalog.plan_for_price(&item.price_id) {
                Some(plan) => {
                    let granted = plan.features_for(item.quantity);
                    let candidate = (weight(&granted), plan.name.as_str());
                    merge(&mut features, granted);
                    let better = plan_name.is_none_or(|(w, name)| {
                        candidate.0 > w || (candidate.0 == w && candidate.1 < name)
                    });
                    if better {
                        plan_name = Some(candidate);
                    }
                }
                None => {
                    unknown_prices.insert(item.price_id.clone());
                }
            }
        }
        let Some((_, plan_name)) = plan_name else {
            continue;
        };
        let source = Source {
            kind: SourceKind::Subscription,
            id: sub.id.clone(),
            plan: Some(plan_name.to_owned()),
            until: window.until,
        };
        gathered.add(source, features, window.ends);
        // The primary subscription is the one paid furthest ahead.
        let better = match &primary {
            None => true,
            Some((current, _, _)) => {
                (sub.current_period_end, &sub.id) > (current.current_period_end, &current.id)
            }
        };
        if better {
            primary = Some((sub, plan_name, window));
        }
    }

    let mut purchases = Vec::new();
    for purchase in &sources.purchases {
        let (Some(paid_at), false) = (purchase.paid_at, purchase.withdrawn) else {
            continue;
        };
        let today;
        let terms = match &purchase.terms {
            Some(terms) => terms,
            None => match catalog.plan(&purchase.plan) {
                Some(plan) => {
                    today = plan.terms(purchase.quantity);
                    &today
                }
                None => continue,
            },
        };
        let until = terms.access_secs.map(|secs| paid_at.saturating_add(secs));
        if until.is_some_and(|until| until <= now) {
            continue;
        }
        let source = Source {
            kind: SourceKind::Purchase,
            id: purchase.id.clone(),
            plan: Some(purchase.plan.clone()),
            until,
        };
        gathered.add(source, terms.features.clone(), until);
        purchases.push((purchase, until, purchase.id.as_str()));
    }

    let mut grants = Vec::new();
    for grant in &sources.grants {
        if grant.expires_at.is_some_and(|at| at <= now) {
            continue;
        }
        let mut features = grant.features.clone();
        // A plan the catalog no longer has grants nothing: such a grant
        // counts by its own features alone, if it has any.
        let plan = grant.plan.as_deref().and_then(|name| catalog.plan(name));
        match plan {
            Some(plan) => merge(&mut features, plan.features_for(grant.quantity)),
            None if features.is_empty() => continue,
            None => {}
        }
        let source = Source {
            kind: SourceKind::Grant,
            id: grant.id.clone(),
            plan: plan.map(|p| p.name.clone()),
            until: grant.expires_at,
        };
        gathered.add(source, features, grant.expires_at);
        grants.push((grant, grant.expires_at, grant.id.as_str()));
    }

    // Nothing grants less than the default plan's numbers (a paid plan's
    // item of quantity 0 keeps the free plan's seats); its flags count only
    // when no plan is granted, since one may restrict (a watermark).
    let floor = default_entitlement(catalog);
    let floor_features = floor
        .features
        .iter()
        .filter(|(_, value)| !gathered.plan_granted || matches!(value, FeatureValue::Limit(_)));
    let floor_features = floor_features.map(|(name, value)| (name.clone(), *value));
    merge(&mut gathered.features, floor_features.collect());
    let (plan, status) = match (
        &primary,
        longest(purchases.into_iter()),
        longest(grants.into_iter()),
    ) {
        // A granting subscription has a status (see `grant_window`).
        (Some((sub, plan, _)), _, _) => (
            (*plan).to_owned(),
            sub.status.as_ref().map_or("", SubscriptionStatus::as_str),
        ),
        (None, Some(purchase), _) => (purchase.plan.clone(), PURCHASED),
        (None, None, Some(grant)) => {
            let plan = grant
                .plan
                .clone()
                .filter(|name| catalog.plan(name).is_some());
            (plan.unwrap_or(floor.plan.clone()), GRANTED)
        }
        (None, None, None) => (floor.plan.clone(), NO_SUBSCRIPTION),
    };
    let subscription = primary.as_ref().map(|(sub, _, window)| (*sub, window));
    let entitlement = Entitlement {
        plan,
        status: status.to_owned(),
        features: gathered.features,
        subscription_id: subscription.map(|(sub, _)| sub.id.clone()),
        current_period_end: subscription.and_then(|(sub, _)| sub.current_period_end),
        cancel_at_period_end: subscription.is_some_and(|(sub, _)| sub.cancel_at_period_end),
        grace_until: subscription.and_then(|(_, window)| window.grace_until),
        valid_until: gathered.valid_until,
        sources: gathered.sources,
    };
    Computed {
        entitlement,
        recheck_at: gathered.recheck_at,
        unknown_prices: unknown_prices.into_iter().collect(),
    }
}

/// Status of an organization whose primary source is a purchase.
pub const PURCHASED: &str = "purchased";
/// Status of an organization whose primary source is a grant.
pub const GRANTED: &str = "granted";

/// Status of an organization that nothing grants.
pub const NO_SUBSCRIPTION: &str = "none";

/// The answer for an organization that nothing grants: the default plan, or
/// plan `none` with every feature off when the catalog has no default.
pub fn default_entitlement(catalog: &Catalog) -> Entitlement {
    let mut features = catalog.zero_features().clone();
    let plan = match catalog.default_plan() {
        Some(plan) => {
            merge(&mut features, plan.features_for(1));
            plan.name.clone()
        }
        None => NO_SUBSCRIPTION.to_owned(),
    };
    Entitlement::bare(plan, NO_SUBSCRIPTION.to_owned(), features)
}

impl Entitlement {
    /// A plan and its features, granted by no source and bound to no
    /// period.
    pub(crate) fn bare(plan: String, status: String, features: Features) -> Self {
        Self {
            plan,
            status,
            features,
            subscription_id: None,
            current_period_end: None,
            cancel_at_period_end: false,
            grace_until: None,
            valid_until: None,
            sources: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests;
