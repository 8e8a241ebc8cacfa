//! The plan catalog: which Stripe prices grant which features.

use std::collections::{BTreeMap, HashMap};

use sha2::{Digest, Sha256};

use serde::{Deserialize, Serialize};

use crate::Error;

/// One plan as written in configuration (`[plans.<name>]`).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PlanConfig {
    /// The plan every organization without a granting subscription gets.
    #[serde(default)]
    pub default: bool,
    /// Stripe price ids that buy this plan.
    #[serde(default)]
    pub prices: Vec<String>,
    /// Feature name to `true`/`false`, a number, or `{ per_unit = n }`.
    #[serde(default)]
    pub features: BTreeMap<String, serde_json::Value>,
    /// How the plan is sold: by subscription (the default) or once.
    #[serde(default)]
    pub mode: PlanMode,
    /// For a plan sold once: how many days a purchase grants; absent, it
    /// grants forever.
    #[serde(default)]
    pub access_days: Option<u32>,
}

/// How a plan is sold.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PlanMode {
    /// A subscription-mode Checkout; the subscription's status decides.
    #[default]
    Subscription,
    /// A payment-mode Checkout: bought once (a lifetime deal, a pass).
    Payment,
}

/// How a plan defines one feature.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FeatureSpec {
    /// On or off.
    Flag(bool),
    /// A fixed number.
    Limit(i64),
    /// A number per unit of the subscription item's quantity (per seat).
    PerUnit(i64),
}

/// A granted feature value, as callers see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum FeatureValue {
    /// On or off.
    Flag(bool),
    /// A number: a limit or a count of seats.
    Limit(i64),
}

/// Granted features by name.
pub type Features = BTreeMap<String, FeatureValue>;

/// A validated plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// The plan's name, its key in the catalog.
    pub name: String,
    /// Stripe price ids that buy it.
    pub prices: Vec<String>,
    /// What it grants.
    pub features: BTreeMap<String, FeatureSpec>,
    /// How it is sold.
    pub mode: PlanMode,
    /// For a plan sold once: how long a purchase grants (seconds); `None`
    /// forever.
    pub access_secs: Option<i64>,
}

/// What a one-time purchase was sold with, recorded when it is made so
/// that later catalog edits change new purchases only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Terms {
    /// The plan's features for the units bought.
    pub features: Features,
    /// How long it grants from its payment (seconds); `None` forever.
    pub access_secs: Option<i64>,
}

/// All plans, indexed by price.
#[derive(Debug, Clone)]
pub struct Catalog {
    plans: BTreeMap<String, Plan>,
    by_price: HashMap<String, String>,
    default: Option<String>,
    zeros: Features,
    fingerprint: u64,
}

impl Catalog {
    /// Validates plans from configuration. Errors name the offending key:
    /// a price in two plans, two default plans, a feature of an unknown type
    /// or of different types in different plans.
    pub fn new(configs: &BTreeMap<String, PlanConfig>) -> Result<Self, Error> {
        let mut plans = BTreeMap::new();
        let mut by_price: HashMap<String, String> = HashMap::new();
        let mut default: Option<String> = None;
        let mut zeros = Features::new();
        for (name, config) in configs {
            if config.default {
                if let Some(other) = &default {
                    return Err(Error::Catalog(format!(
                        "plans.{name}.default: plan {other:?} is already the default plan"
                    )));
                }
                default = Some(name.clone());
            }
            validate_sale(name, config)?;
            for price in &config.prices {
                if let Some(other) = by_price.insert(price.clone(), name.clone()) {
                    return Err(Error::Catalog(format!(
                        "plans.{name}.prices: price {price:?} is already in plan {other:?}"
                    )));
                }
            }
            let mut features = BTreeMap::new();
            for (feature, value) in &config.features {
                let key = format!("plans.{name}.features.{feature}");
                let spec = parse_feature(&key, value)?;
                let zero = spec.zero();
                match zeros.get(feature) {
                    Some(existing) if !existing.same_kind(&zero) => {
                        return Err(Error::Catalog(format!(
                            "{key}: {feature:?} is a {} here but a {} in another plan",
                            zero.kind(),
                            existing.kind()
                        )));
                    }
                    _ => {
                        zeros.insert(feature.clone(), zero);
                    }
                }
                features.insert(feature.clone(), spec);
            }
            let plan = Plan {
                name: name.clone(),
                prices: config.prices.clone(),
                features,
                mode: config.mode,
                access_secs: config.access_days.map(|days| i64::from(days) * 86_400),
            };
            plans.insert(name.clone(), plan);
        }
        // Stored with every answer, so it must not change between builds
        // (std's hasher may): SHA-256 of a canonical rendering.
        let mut hasher = Sha256::new();
        for plan in plans.values() {
            let rendering = format!(
                "{:?}|{:?}|{:?}|{}|{:?}|{:?}\n",
                plan.name,
                plan.prices,
                plan.features,
                default.as_deref() == Some(plan.name.as_str()),
                plan.mode,
                plan.access_secs,
            );
            hasher.update(rendering.as_bytes());
        }
        let digest = hasher.finalize();
        let mut first = [0u8; 8];
        first.copy_from_slice(&digest[..8]);
        Ok(Self {
            plans,
            by_price,
            default,
            zeros,
            fingerprint: u64::from_be_bytes(first),
        })
    }

    /// The plan with this name.
    pub fn plan(&self, name: &str) -> Option<&Plan> {
        self.plans.get(name)
    }

    /// Every plan, by name.
    pub fn plans(&self) -> impl Iterator<Item = &Plan> {
        self.plans.values()
    }

    /// The plan a Stripe price buys.
    pub fn plan_for_price(&self, price: &str) -> Option<&Plan> {
        self.by_price
            .get(price)
            .and_then(|name| self.plans.get(name))
    }

    /// The plan of organizations without a granting subscription.
    pub fn default_plan(&self) -> Option<&Plan> {
        self.default
            .as_deref()
            .and_then(|name| self.plans.get(name))
    }

    /// Every feature any plan defines, at its "nothing granted" value.
    pub fn zero_features(&self) -> &Features {
        &self.zeros
    }

    /// Changes whenever plans, prices or features change; part of ETags so
    /// that a catalog change invalidates cached answers.
    pub fn fingerprint(&self) -> u64 {
        self.fingerprint
    }
}

impl Plan {
    /// The terms a purchase of `quantity` units of this plan is sold with.
    pub fn terms(&self, quantity: i64) -> Terms {
        Terms {
            features: self.features_for(quantity),
            access_secs: self.access_secs,
        }
    }

    /// The features this plan grants for an item of `quantity` units.
    pub fn features_for(&self, quantity: i64) -> Features {
        self.features
            .iter()
            .map(|(name, spec)| {
                let value = match *spec {
                    FeatureSpec::Flag(on) => FeatureValue::Flag(on),
                    FeatureSpec::Limit(n) => FeatureValue::Limit(n),
                    FeatureSpec::PerUnit(n) => FeatureValue::Limit(n.saturating_mul(quantity)),
                };
                (name.clone(), value)
            })
            .collect()
    }
}

impl FeatureSpec {
    fn zero(self) -> FeatureValue {
        match self {
            FeatureSpec::Flag(_) => FeatureValue::Flag(false),
            FeatureSpec::Limit(_) | FeatureSpec::PerUnit(_) => FeatureValue::Limit(0),
        }
    }
}

impl FeatureValue {
    fn same_kind(&self, other: &FeatureValue) -> bool {
        std::mem::discriminant(self) == std::mem::discriminant(other)
    }

    fn kind(&self) -> &'static str {
        match self {
            FeatureValue::Flag(_) => "boolean",
            FeatureValue::Limit(_) => "number",
        }
    }
}

/// Merges `other` into `into`: flags are OR-ed, numbers take the maximum.
pub fn merge(into: &mut Features, other: Features) {
    for (name, value) in other {
        let merged = match (into.get(&name), value) {
            (Some(FeatureValue::Flag(a)), FeatureValue::Flag(b)) => FeatureValue::Flag(*a || b),
            (Some(FeatureValue::Limit(a)), FeatureValue::Limit(b)) => {
                FeatureValue::Limit(*a.max(&b))
            }
            _ => value,
        };
        into.insert(name, merged);
    }
}

/// Refuses what cannot be sold: a payment plan without a price or as the
/// default, and `access_days` of zero or on a subscription plan.
fn validate_sale(name: &str, config: &PlanConfig) -> Result<(), Error> {
    let refusal = match (config.mode, config.access_days) {
        (PlanMode::Payment, _) if config.prices.is_empty() => {
            Some(("prices", "a payment plan needs at least one price"))
        }
        (PlanMode::Payment, _) if config.default => Some((
            "default",
            "the default plan cannot be a payment plan (it is nobody's purchase)",
        )),
        (PlanMode::Payment, Some(0)) => Some(("access_days", "must be at least 1")),
        (PlanMode::Subscription, Some(_)) => Some((
            "access_days",
            "only a plan with mode = \"payment\" has access_days",
        )),
        _ => None,
    };
    match refusal {
        Some((key, why)) => Err(Error::Catalog(format!("plans.{name}.{key}: {why}"))),
        None => Ok(()),
    }
}

fn parse_feature(key: &str, value: &serde_json::Value) -> Result<FeatureSpec, Error> {
    use serde_json::Value;
    let unit = |n: Option<i64>| {
        n.filter(|n| *n >= 0)
            .ok_or_else(|| Error::Catalog(format!("{key}: expected a whole number of at least 0")))
    };
    match value {
        Value::Bool(on) => Ok(FeatureSpec::Flag(*on)),
        Value::Number(n) => unit(n.as_i64()).map(FeatureSpec::Limit),
        // Environment overrides arrive as strings.
        Value::String(s) => match s.as_str() {
            "true" => Ok(FeatureSpec::Flag(true)),
            "false" => Ok(FeatureSpec::Flag(false)),
            other => unit(other.parse().ok()).map(FeatureSpec::Limit),
        },
        Value::Object(map) if map.len() == 1 && map.contains_key("per_unit") => {
            let n = match &map["per_unit"] {
                Value::Number(n) => n.as_i64(),
                Value::String(s) => s.parse().ok(),
                _ => None,
            };
            unit(n).map(FeatureSpec::PerUnit)
        }
        _ => Err(Error::Catalog(format!(
            "{key}: unknown feature type; use true/false, a number, or {{ per_unit = n }}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn plan(default: bool, prices: &[&str], features: serde_json::Value) -> PlanConfig {
        PlanConfig {
            default,
            prices: prices.iter().map(|p| p.to_string()).collect(),
            features: serde_json::from_value(features).unwrap_or_default(),
            ..PlanConfig::default()
        }
    }

    fn sold_once(prices: &[&str], access_days: Option<u32>) -> PlanConfig {
        PlanConfig {
            mode: PlanMode::Payment,
            access_days,
            ..plan(false, prices, json!({"sso": true}))
        }
    }

    fn catalog(plans: Vec<(&str, PlanConfig)>) -> Result<Catalog, Error> {
        Catalog::new(&plans.into_iter().map(|(n, p)| (n.to_string(), p)).collect())
    }

    #[test]
    fn prices_map_to_their_plan_and_per_unit_features_scale() {
        let catalog = catalog(vec![
            ("free", plan(true, &[], json!({"seats": 1, "sso": false}))),
            (
                "pro",
                plan(
                    false,
                    &["price_a", "price_b"],
                    json!({"seats": {"per_unit": 2}, "sso": true}),
                ),
            ),
        ])
        .expect("valid catalog");
        let pro = catalog.plan_for_price("price_b").expect("price is listed");
        assert_eq!(pro.name, "pro");
        let features = pro.features_for(5);
        assert_eq!(features["seats"], FeatureValue::Limit(10));
        assert_eq!(features["sso"], FeatureValue::Flag(true));
        assert_eq!(
            catalog.default_plan().map(|p| p.name.as_str()),
            Some("free")
        );
        assert!(catalog.plan_for_price("price_unknown").is_none());
    }

    #[test]
    fn a_price_in_two_plans_is_rejected_naming_the_key() {
        let error = catalog(vec![
            ("a", plan(false, &["price_x"], json!({}))),
            ("b", plan(false, &["price_x"], json!({}))),
        ])
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
        assert!(error.starts_with("plans.b.prices"), "{error}");
    }

    #[test]
    fn unknown_or_conflicting_feature_types_are_rejected() {
        let unknown = catalog(vec![("a", plan(false, &[], json!({"sso": [1]})))]);
        let message = unknown.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(
            message.starts_with("plans.a.features.sso: unknown feature type"),
            "{message}"
        );

        let conflict = catalog(vec![
            ("a", plan(false, &[], json!({"sso": true}))),
            ("b", plan(false, &[], json!({"sso": 3}))),
        ]);
        let message = conflict.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(message.starts_with("plans.b.features.sso"), "{message}");
    }

    #[test]
    fn plans_sold_once_are_checked() {
        let pass = catalog(vec![("pass", sold_once(&["price_pass"], Some(30)))]).unwrap();
        let sold = pass.plan("pass").unwrap();
        assert_eq!(
            (sold.mode, sold.access_secs),
            (PlanMode::Payment, Some(30 * 86_400))
        );
        let refused = |name: &str, config: PlanConfig| {
            catalog(vec![(name, config)])
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default()
        };
        let no_price = refused("lifetime", sold_once(&[], None));
        assert!(no_price.starts_with("plans.lifetime.prices:"), "{no_price}");
        let zero_days = refused("pass", sold_once(&["p"], Some(0)));
        assert!(
            zero_days.starts_with("plans.pass.access_days:"),
            "{zero_days}"
        );
        let default = refused(
            "free",
            PlanConfig {
                default: true,
                ..sold_once(&["p"], None)
            },
        );
        assert!(default.starts_with("plans.free.default:"), "{default}");
        let days_on_subscription = PlanConfig {
            access_days: Some(30),
            ..plan(false, &["p"], json!({}))
        };
        let message = refused("pro", days_on_subscription);
        assert!(message.starts_with("plans.pro.access_days:"), "{message}");
    }

    #[test]
    fn two_default_plans_are_rejected() {
        let result = catalog(vec![
            ("a", plan(true, &[], json!({}))),
            ("b", plan(true, &[], json!({}))),
        ]);
        assert!(result.is_err());
    }

    #[test]
    fn merging_ors_flags_and_keeps_the_larger_number() {
        let mut a: Features = [
            ("sso".into(), FeatureValue::Flag(false)),
            ("seats".into(), FeatureValue::Limit(10)),
        ]
        .into();
        let b: Features = [
            ("sso".into(), FeatureValue::Flag(true)),
            ("seats".into(), FeatureValue::Limit(3)),
        ]
        .into();
        merge(&mut a, b);
        assert_eq!(a["sso"], FeatureValue::Flag(true));
        assert_eq!(a["seats"], FeatureValue::Limit(10));
    }

    #[test]
    fn the_fingerprint_follows_the_content() {
        let one =
            catalog(vec![("a", plan(false, &["p"], json!({"n": 1})))]).map(|c| c.fingerprint());
        let same =
            catalog(vec![("a", plan(false, &["p"], json!({"n": 1})))]).map(|c| c.fingerprint());
        let other =
            catalog(vec![("a", plan(false, &["p"], json!({"n": 2})))]).map(|c| c.fingerprint());
        assert_eq!(one.ok(), same.ok());
        assert_ne!(
            catalog(vec![("a", plan(false, &["p"], json!({"n": 1})))])
                .map(|c| c.fingerprint())
                .ok(),
            other.ok()
        );
    }
}
