//! Entitlement computation: a pure function of an organization's
//! subscriptions, the catalog and the current time.

use std::collections::BTreeSet;

use crate::catalog::{Catalog, FeatureValue, Features, merge};
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

/// Rules that are configuration rather than catalog.
#[derive(Debug, Clone, Copy)]
pub struct Policy {
    /// How long a `past_due` subscription keeps granting (seconds).
    pub past_due_grace_secs: i64,
}

/// What an organization is entitled to.
#[derive(Debug, Clone, PartialEq, Eq)]
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
    /// When this answer lapses if no event arrives.
    pub valid_until: Option<i64>,
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
    /// Whether a subscription grants this (not the default plan).
    pub fn is_subscribed(&self) -> bool {
        self.status != NO_SUBSCRIPTION
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

/// Computes an organization's entitlement from its subscriptions: the merge
/// of the granting ones (flags OR-ed, numbers maxed), else the default plan.
pub fn compute(
    catalog: &Catalog,
    subs: &[SubscriptionState],
    now: i64,
    policy: Policy,
) -> Computed {
    let mut features = catalog.zero_features().clone();
    let mut unknown_prices = BTreeSet::new();
    let mut primary: Option<(&SubscriptionState, &str, Window)> = None;
    let mut valid_until: Option<i64> = None;
    let mut recheck_at: Option<i64> = None;

    for sub in subs {
        let Some(window) = grant_window(sub, now, policy) else {
            continue;
        };
        // The subscription's plan, when its items buy several: the one
        // that grants most, then the first by name.
        let mut plan_name: Option<(Weight, &str)> = None;
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
        if let Some(until) = window.until {
            valid_until = Some(valid_until.map_or(until, |v| v.min(until)));
        }
        if let Some(ends) = window.ends {
            recheck_at = Some(recheck_at.map_or(ends, |r| r.min(ends)));
        }
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

    let entitlement = match primary {
        Some((sub, plan, window)) => Entitlement {
            plan: plan.to_owned(),
            status: sub
                .status
                .as_ref()
                .map(|s| s.as_str().to_owned())
                .unwrap_or_default(),
            features,
            subscription_id: Some(sub.id.clone()),
            current_period_end: sub.current_period_end,
            cancel_at_period_end: sub.cancel_at_period_end,
            grace_until: window.grace_until,
            valid_until,
        },
        None => default_entitlement(catalog),
    };
    Computed {
        entitlement,
        recheck_at,
        unknown_prices: unknown_prices.into_iter().collect(),
    }
}

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
    Entitlement {
        plan,
        status: NO_SUBSCRIPTION.to_owned(),
        features,
        subscription_id: None,
        current_period_end: None,
        cancel_at_period_end: false,
        grace_until: None,
        valid_until: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::{FeatureValue, PlanConfig};
    use serde_json::json;

    const NOW: i64 = 1_800_000_000;
    const DAY: i64 = 86_400;
    const POLICY: Policy = Policy {
        past_due_grace_secs: 7 * DAY,
    };

    fn catalog() -> Catalog {
        let plans = [
            (
                "free",
                json!({"default": true, "features": {"seats": 1, "sso": false, "projects": 3}}),
            ),
            (
                "pro",
                json!({"prices": ["price_pro"], "features": {"seats": {"per_unit": 1}, "sso": true, "projects": 100}}),
            ),
            (
                "team",
                json!({"prices": ["price_team"], "features": {"seats": 25, "projects": 50}}),
            ),
        ];
        let plans = plans
            .into_iter()
            .map(|(name, value)| {
                (
                    name.to_string(),
                    serde_json::from_value::<PlanConfig>(value).unwrap(),
                )
            })
            .collect();
        Catalog::new(&plans).unwrap()
    }

    fn sub(id: &str, status: &str, price: &str, quantity: i64) -> SubscriptionState {
        SubscriptionState {
            id: id.into(),
            status: Some(SubscriptionStatus::parse(status)),
            current_period_start: Some(NOW - DAY),
            current_period_end: Some(NOW + 29 * DAY),
            cancel_at_period_end: false,
            past_due_since: None,
            items: vec![Item {
                price_id: price.into(),
                quantity,
            }],
        }
    }

    fn entitlement(subs: &[SubscriptionState]) -> Entitlement {
        compute(&catalog(), subs, NOW, POLICY).entitlement
    }

    #[test]
    fn no_subscription_gets_the_default_plan() {
        let e = entitlement(&[]);
        assert_eq!((e.plan.as_str(), e.status.as_str()), ("free", "none"));
        assert_eq!(e.features["projects"], FeatureValue::Limit(3));
        assert_eq!(e.valid_until, None);
    }

    #[test]
    fn active_and_trialing_grant_with_seats_scaled_by_quantity() {
        for status in ["active", "trialing"] {
            let e = entitlement(&[sub("sub_1", status, "price_pro", 10)]);
            assert_eq!(e.plan, "pro");
            assert_eq!(e.status, status);
            assert_eq!(e.features["seats"], FeatureValue::Limit(10));
            assert_eq!(e.features["sso"], FeatureValue::Flag(true));
            assert_eq!(e.valid_until, Some(NOW + 29 * DAY));
        }
    }

    #[test]
    fn statuses_that_do_not_grant_fall_back_to_the_default_plan() {
        for status in [
            "incomplete",
            "incomplete_expired",
            "unpaid",
            "canceled",
            "paused",
        ] {
            let e = entitlement(&[sub("sub_1", status, "price_pro", 1)]);
            assert_eq!(e.plan, "free", "{status}");
        }
    }

    #[test]
    fn past_due_grants_only_during_the_grace_period() {
        let mut s = sub("sub_1", "past_due", "price_pro", 1);
        s.past_due_since = Some(NOW - 2 * DAY);
        let e = entitlement(std::slice::from_ref(&s));
        assert_eq!(e.plan, "pro");
        assert_eq!(e.grace_until, Some(NOW + 5 * DAY));
        s.past_due_since = Some(NOW - 8 * DAY);
        assert_eq!(entitlement(std::slice::from_ref(&s)).plan, "free");
        // Without a failed invoice, grace counts from the unpaid period's start.
        s.past_due_since = None;
        assert_eq!(
            entitlement(std::slice::from_ref(&s)).grace_until,
            Some(NOW + 6 * DAY)
        );
        s.current_period_start = Some(NOW - 7 * DAY);
        assert_eq!(entitlement(&[s]).plan, "free");
    }

    #[test]
    fn cancel_at_period_end_grants_until_the_period_ends() {
        let mut s = sub("sub_1", "active", "price_pro", 1);
        s.cancel_at_period_end = true;
        assert_eq!(entitlement(std::slice::from_ref(&s)).plan, "pro");
        s.current_period_end = Some(NOW - 1);
        assert_eq!(entitlement(&[s]).plan, "free");
    }

    #[test]
    fn only_an_ending_grant_asks_to_be_computed_again() {
        let mut renewing = sub("sub_a", "active", "price_pro", 1);
        // Its renewal event is late: the period ended, but it still grants.
        renewing.current_period_end = Some(NOW - DAY);
        let computed = compute(&catalog(), std::slice::from_ref(&renewing), NOW, POLICY);
        assert_eq!(computed.entitlement.plan, "pro");
        assert_eq!(computed.recheck_at, None);
        let mut canceled = sub("sub_b", "active", "price_team", 1);
        canceled.cancel_at_period_end = true;
        let computed = compute(&catalog(), &[renewing, canceled], NOW, POLICY);
        assert_eq!(computed.entitlement.valid_until, Some(NOW - DAY));
        assert_eq!(computed.recheck_at, Some(NOW + 29 * DAY));
    }

    #[test]
    fn several_granting_subscriptions_merge() {
        let e = entitlement(&[
            sub("sub_a", "active", "price_pro", 5),
            sub("sub_b", "active", "price_team", 1),
        ]);
        assert_eq!(e.features["seats"], FeatureValue::Limit(25));
        assert_eq!(e.features["projects"], FeatureValue::Limit(100));
        assert_eq!(e.features["sso"], FeatureValue::Flag(true));
    }

    #[test]
    fn a_subscription_of_two_plans_is_named_for_the_one_granting_most() {
        for prices in [["price_pro", "price_team"], ["price_team", "price_pro"]] {
            let mut s = sub("sub_1", "active", prices[0], 1);
            s.items.push(Item {
                price_id: prices[1].into(),
                quantity: 1,
            });
            // pro turns on seats, sso and projects; team only seats and projects.
            assert_eq!(entitlement(&[s]).plan, "pro", "{prices:?}");
        }
    }

    #[test]
    fn unknown_prices_grant_nothing_and_are_reported() {
        let computed = compute(
            &catalog(),
            &[sub("sub_1", "active", "price_nope", 1)],
            NOW,
            POLICY,
        );
        assert_eq!(computed.entitlement.plan, "free");
        assert_eq!(computed.unknown_prices, vec!["price_nope".to_string()]);
    }
}
