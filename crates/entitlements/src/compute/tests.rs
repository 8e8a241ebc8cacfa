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
        (
            "lifetime",
            json!({"mode": "payment", "prices": ["price_lifetime"], "features": {"seats": 5, "sso": true}}),
        ),
        (
            "pass",
            json!({"mode": "payment", "prices": ["price_pass"], "access_days": 30, "features": {"seats": {"per_unit": 1}, "projects": 100}}),
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

fn of_subs(subs: &[SubscriptionState]) -> Sources {
    Sources {
        subscriptions: subs.to_vec(),
        ..Sources::default()
    }
}

fn entitlement(subs: &[SubscriptionState]) -> Entitlement {
    compute(&catalog(), &of_subs(subs), NOW, POLICY).entitlement
}

#[test]
fn no_subscription_gets_the_default_plan() {
    let e = entitlement(&[]);
    assert_eq!((e.plan.as_str(), e.status.as_str()), ("free", "none"));
    assert_eq!(e.features["projects"], FeatureValue::Limit(3));
    assert_eq!(e.valid_until, None);
}

#[test]
fn a_paid_item_of_no_units_grants_no_fewer_than_the_default_plan() {
    let e = entitlement(&[sub("sub_1", "active", "price_pro", 0)]);
    assert_eq!(e.plan, "pro");
    assert_eq!(e.features["seats"], FeatureValue::Limit(1), "free's seats");
    assert_eq!(e.features["sso"], FeatureValue::Flag(true));
    assert_eq!(e.features["projects"], FeatureValue::Limit(100));
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
    let computed = compute(
        &catalog(),
        &of_subs(std::slice::from_ref(&renewing)),
        NOW,
        POLICY,
    );
    assert_eq!(computed.entitlement.plan, "pro");
    assert_eq!(computed.recheck_at, None);
    let mut canceled = sub("sub_b", "active", "price_team", 1);
    canceled.cancel_at_period_end = true;
    let computed = compute(&catalog(), &of_subs(&[renewing, canceled]), NOW, POLICY);
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
        &of_subs(&[sub("sub_1", "active", "price_nope", 1)]),
        NOW,
        POLICY,
    );
    assert_eq!(computed.entitlement.plan, "free");
    assert_eq!(computed.unknown_prices, vec!["price_nope".to_string()]);
}

fn purchase(id: &str, plan: &str, quantity: i64, paid_at: Option<i64>) -> PurchaseState {
    PurchaseState {
        id: id.into(),
        plan: plan.into(),
        quantity,
        paid_at,
        withdrawn: false,
        terms: None,
    }
}

fn grant(id: &str, plan: Option<&str>, features: Features, expires_at: Option<i64>) -> GrantState {
    GrantState {
        id: id.into(),
        plan: plan.map(Into::into),
        features,
        quantity: 1,
        expires_at,
    }
}

fn at(sources: &Sources, now: i64) -> Computed {
    compute(&catalog(), sources, now, POLICY)
}

#[test]
fn a_lifetime_purchase_grants_forever_and_a_pass_for_its_days() {
    let sources = Sources {
        purchases: vec![
            purchase("cs_life", "lifetime", 1, Some(NOW - 400 * DAY)),
            purchase("cs_pass", "pass", 12, Some(NOW - DAY)),
        ],
        ..Sources::default()
    };
    let computed = at(&sources, NOW);
    let e = &computed.entitlement;
    assert_eq!(
        (e.plan.as_str(), e.status.as_str()),
        ("lifetime", "purchased")
    );
    assert_eq!(e.features["seats"], FeatureValue::Limit(12));
    assert_eq!(e.features["sso"], FeatureValue::Flag(true));
    assert_eq!(e.features["projects"], FeatureValue::Limit(100));
    let pass_ends = NOW + 29 * DAY;
    assert_eq!(
        (e.valid_until, computed.recheck_at),
        (Some(pass_ends), Some(pass_ends))
    );
    let kinds: Vec<_> = e.sources.iter().map(|s| (s.id.as_str(), s.until)).collect();
    assert_eq!(kinds, [("cs_life", None), ("cs_pass", Some(pass_ends))]);

    let after = at(&sources, pass_ends).entitlement;
    assert_eq!(after.features["seats"], FeatureValue::Limit(5));
    // Lifetime lists no projects: it keeps the free plan's 3.
    assert_eq!(after.features["projects"], FeatureValue::Limit(3));
    assert_eq!(after.valid_until, None);
}

#[test]
fn unpaid_withdrawn_and_unknown_purchases_grant_nothing() {
    let mut refunded = purchase("cs_b", "lifetime", 1, Some(NOW - DAY));
    refunded.withdrawn = true;
    for p in [
        purchase("cs_a", "lifetime", 1, None),
        refunded,
        purchase("cs_c", "retired", 1, Some(NOW - DAY)),
    ] {
        let sources = Sources {
            purchases: vec![p.clone()],
            ..Sources::default()
        };
        let e = at(&sources, NOW).entitlement;
        assert_eq!((e.plan.as_str(), e.is_granted()), ("free", false), "{p:?}");
    }
}

#[test]
fn a_subscription_is_the_primary_source_then_a_purchase_then_a_grant() {
    let sso: Features = [("sso".to_owned(), FeatureValue::Flag(true))].into();
    let all = Sources {
        subscriptions: vec![sub("sub_1", "active", "price_team", 1)],
        purchases: vec![purchase("cs_1", "lifetime", 1, Some(NOW))],
        grants: vec![grant("grant_1", None, sso.clone(), Some(NOW + DAY))],
    };
    let e = at(&all, NOW).entitlement;
    assert_eq!((e.plan.as_str(), e.status.as_str()), ("team", "active"));
    assert_eq!(e.subscription_id.as_deref(), Some("sub_1"));
    let kinds: Vec<_> = e.sources.iter().map(|s| s.kind).collect();
    assert_eq!(
        kinds,
        [
            SourceKind::Subscription,
            SourceKind::Purchase,
            SourceKind::Grant
        ]
    );
    assert_eq!(e.features["seats"], FeatureValue::Limit(25));
    assert_eq!(e.valid_until, Some(NOW + DAY));

    let without_sub = Sources {
        subscriptions: vec![],
        ..all.clone()
    };
    let e = at(&without_sub, NOW).entitlement;
    assert_eq!(
        (e.plan.as_str(), e.status.as_str()),
        ("lifetime", "purchased")
    );
    assert_eq!((e.subscription_id, e.current_period_end), (None, None));

    // A grant of features alone sits on the default plan.
    let grant_only = Sources {
        grants: all.grants.clone(),
        ..Sources::default()
    };
    let computed = at(&grant_only, NOW);
    let e = &computed.entitlement;
    assert_eq!((e.plan.as_str(), e.status.as_str()), ("free", "granted"));
    assert_eq!(e.features["sso"], FeatureValue::Flag(true));
    assert_eq!(e.features["projects"], FeatureValue::Limit(3));
    assert_eq!(computed.recheck_at, Some(NOW + DAY));
    // It expires with no event.
    let expired = at(&grant_only, NOW + DAY).entitlement;
    assert_eq!(
        (expired.status.as_str(), expired.features["sso"]),
        ("none", FeatureValue::Flag(false))
    );
}

#[test]
fn a_grant_of_a_plan_the_catalog_no_longer_has_grants_only_its_own_features() {
    let gone = grant("grant_gone", Some("enterprise"), Features::new(), None);
    let sources = Sources {
        grants: vec![gone.clone()],
        ..Sources::default()
    };
    let e = at(&sources, NOW).entitlement;
    assert_eq!((e.plan.as_str(), e.status.as_str()), ("free", "none"));
    assert!(e.sources.is_empty(), "{:?}", e.sources);

    let projects: Features = [("projects".to_owned(), FeatureValue::Limit(500))].into();
    let with_own = GrantState {
        features: projects,
        ..gone
    };
    let sources = Sources {
        grants: vec![with_own],
        ..Sources::default()
    };
    let e = at(&sources, NOW).entitlement;
    assert_eq!((e.plan.as_str(), e.status.as_str()), ("free", "granted"));
    assert_eq!(e.features["projects"], FeatureValue::Limit(500));
    assert_eq!(e.features["seats"], FeatureValue::Limit(1));
}

#[test]
fn a_plan_grant_scales_by_quantity_and_merges_with_its_features() {
    let projects: Features = [("projects".to_owned(), FeatureValue::Limit(500))].into();
    let mut g = grant("grant_1", Some("pro"), projects, None);
    g.quantity = 40;
    let sources = Sources {
        grants: vec![g],
        ..Sources::default()
    };
    let e = at(&sources, NOW).entitlement;
    assert_eq!((e.plan.as_str(), e.status.as_str()), ("pro", "granted"));
    assert_eq!(e.features["seats"], FeatureValue::Limit(40));
    assert_eq!(e.features["projects"], FeatureValue::Limit(500));
    assert_eq!(e.valid_until, None);
}
