//! Access given by hand: a grant request validated against the catalog,
//! and grants as operators see them.

use serde_json::Value;

use crate::Error;
use crate::catalog::{Catalog, FeatureValue, Features};

/// The longest reason a grant may carry, in characters.
pub const MAX_REASON_CHARS: usize = 500;
/// The most units a grant of a plan may scale its per-unit features by.
pub const MAX_QUANTITY: i64 = 1_000_000;

/// A grant as an operator asks for it: a plan or features, exactly one.
#[derive(Debug, Clone, Default)]
pub struct GrantRequest {
    /// The plan to grant.
    pub plan: Option<String>,
    /// Features to grant, by name: `true`/`false` or a whole number.
    pub features: Option<serde_json::Map<String, Value>>,
    /// Units of the plan's per-unit features (a plan grant only).
    pub quantity: Option<i64>,
    /// When it stops granting (unix seconds, in the future); `None` never.
    pub expires_at: Option<i64>,
    /// Why, for the audit trail.
    pub reason: Option<String>,
}

/// A grant, active or not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    /// `grant_...`.
    pub id: String,
    /// The organization it grants to.
    pub org_id: String,
    /// The plan granted, if any.
    pub plan: Option<String>,
    /// Features granted by name (empty for a plan grant).
    pub features: Features,
    /// Units of the plan's per-unit features.
    pub quantity: i64,
    /// When it stops granting (unix seconds); `None` never.
    pub expires_at: Option<i64>,
    /// Why it was given.
    pub reason: Option<String>,
    /// When it was given (unix seconds).
    pub created_at: i64,
    /// Who gave it: the name of the token or the operator.
    pub created_by: String,
    /// When it was revoked (unix seconds).
    pub revoked_at: Option<i64>,
    /// Who revoked it.
    pub revoked_by: Option<String>,
}

impl Grant {
    /// Whether it grants at `now`: not revoked and not expired.
    pub fn is_active(&self, now: i64) -> bool {
        self.revoked_at.is_none() && self.expires_at.is_none_or(|at| at > now)
    }
}

/// What a valid request grants.
#[derive(Debug, Clone)]
pub(crate) struct ValidGrant {
    pub plan: Option<String>,
    pub features: Features,
    pub quantity: i64,
    pub expires_at: Option<i64>,
    pub reason: Option<String>,
}

impl GrantRequest {
    /// Checks the request against the catalog at `now`; the error names the
    /// first bad field.
    pub(crate) fn validate(self, catalog: &Catalog, now: i64) -> Result<ValidGrant, Error> {
        let refuse = |field: &str, why: String| Err(Error::InvalidGrant(format!("{field}: {why}")));
        let features = match (&self.plan, &self.features) {
            (None, None) => return refuse("plan", "give either plan or features".into()),
            (Some(_), Some(_)) => {
                return refuse("features", "give either plan or features, not both".into());
            }
            (Some(plan), None) if catalog.plan(plan).is_none() => {
                return refuse("plan", format!("no plan is named {plan:?}"));
            }
            (Some(_), None) => Features::new(),
            (None, Some(_)) if self.quantity.is_some() => {
                return refuse("quantity", "only a plan grant has a quantity".into());
            }
            (None, Some(requested)) if requested.is_empty() => {
                return refuse("features", "name at least one feature".into());
            }
            (None, Some(requested)) => feature_values(catalog, requested)?,
        };
        let quantity = self.quantity.unwrap_or(1);
        if !(1..=MAX_QUANTITY).contains(&quantity) {
            return refuse("quantity", format!("must be between 1 and {MAX_QUANTITY}"));
        }
        if self.expires_at.is_some_and(|at| at <= now) {
            return refuse("expires_at", "must be in the future".into());
        }
        if let Some(reason) = self.reason.as_deref() {
            if reason.chars().count() > MAX_REASON_CHARS {
                return refuse("reason", format!("at most {MAX_REASON_CHARS} characters"));
            }
            // No database stores NUL in text.
            if reason.contains('\0') {
                return refuse("reason", "must not contain a NUL character".into());
            }
        }
        Ok(ValidGrant {
            plan: self.plan,
            features,
            quantity,
            expires_at: self.expires_at,
            reason: self.reason,
        })
    }
}

/// The requested features as values of the catalog's features, each of the
/// type the catalog gives it.
fn feature_values(
    catalog: &Catalog,
    requested: &serde_json::Map<String, Value>,
) -> Result<Features, Error> {
    requested
        .iter()
        .map(|(name, value)| {
            let field = format!("features.{name}");
            let converted = match (catalog.zero_features().get(name), value) {
                (None, _) => Err(format!("{field}: no plan defines a feature named {name:?}")),
                (Some(FeatureValue::Flag(_)), Value::Bool(on)) => Ok(FeatureValue::Flag(*on)),
                (Some(FeatureValue::Flag(_)), _) => Err(format!("{field}: expected true or false")),
                (Some(FeatureValue::Limit(_)), Value::Number(n)) => n
                    .as_i64()
                    .filter(|n| *n >= 0)
                    .map(FeatureValue::Limit)
                    .ok_or_else(|| format!("{field}: expected a whole number of at least 0")),
                (Some(FeatureValue::Limit(_)), _) => {
                    Err(format!("{field}: expected a whole number of at least 0"))
                }
            };
            converted
                .map(|value| (name.clone(), value))
                .map_err(Error::InvalidGrant)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::PlanConfig;
    use serde_json::json;

    fn catalog() -> Catalog {
        let pro: PlanConfig = serde_json::from_value(json!({
            "prices": ["price_pro"],
            "features": {"seats": {"per_unit": 1}, "sso": true}
        }))
        .unwrap();
        Catalog::new(&[("pro".to_owned(), pro)].into()).unwrap()
    }

    fn refusal(request: GrantRequest) -> String {
        match request.validate(&catalog(), 1_000) {
            Err(Error::InvalidGrant(message)) => message,
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    fn features(value: Value) -> Option<serde_json::Map<String, Value>> {
        value.as_object().cloned()
    }

    #[test]
    fn a_bad_request_is_refused_naming_its_field() {
        let cases = [
            (GrantRequest::default(), "plan:"),
            (
                GrantRequest {
                    plan: Some("pro".into()),
                    features: features(json!({"sso": true})),
                    ..GrantRequest::default()
                },
                "features:",
            ),
            (
                GrantRequest {
                    plan: Some("gold".into()),
                    ..GrantRequest::default()
                },
                "plan: no plan",
            ),
            (
                GrantRequest {
                    features: features(json!({"teleport": true})),
                    ..GrantRequest::default()
                },
                "features.teleport:",
            ),
            (
                GrantRequest {
                    features: features(json!({"sso": 1})),
                    ..GrantRequest::default()
                },
                "features.sso: expected true or false",
            ),
            (
                GrantRequest {
                    features: features(json!({"seats": -2})),
                    ..GrantRequest::default()
                },
                "features.seats:",
            ),
            (
                GrantRequest {
                    features: features(json!({"seats": 3})),
                    quantity: Some(2),
                    ..GrantRequest::default()
                },
                "quantity:",
            ),
            (
                GrantRequest {
                    plan: Some("pro".into()),
                    quantity: Some(0),
                    ..GrantRequest::default()
                },
                "quantity:",
            ),
            (
                GrantRequest {
                    plan: Some("pro".into()),
                    expires_at: Some(1_000),
                    ..GrantRequest::default()
                },
                "expires_at:",
            ),
            (
                GrantRequest {
                    plan: Some("pro".into()),
                    reason: Some("x".repeat(MAX_REASON_CHARS + 1)),
                    ..GrantRequest::default()
                },
                "reason:",
            ),
            (
                GrantRequest {
                    plan: Some("pro".into()),
                    reason: Some("a\0b".into()),
                    ..GrantRequest::default()
                },
                "reason: must not contain",
            ),
        ];
        for (request, field) in cases {
            let message = refusal(request.clone());
            assert!(message.starts_with(field), "{request:?}: {message}");
        }
    }

    #[test]
    fn a_valid_request_keeps_typed_values() {
        let valid = GrantRequest {
            features: features(json!({"seats": 50, "sso": true})),
            expires_at: Some(2_000),
            ..GrantRequest::default()
        }
        .validate(&catalog(), 1_000)
        .unwrap();
        assert_eq!(valid.features["seats"], FeatureValue::Limit(50));
        assert_eq!(valid.features["sso"], FeatureValue::Flag(true));
        assert_eq!((valid.quantity, valid.expires_at), (1, Some(2_000)));
    }
}
