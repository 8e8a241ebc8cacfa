//! The service's answer for one organization, with typed accessors.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Deserialize;

/// An organization's entitlements, as `GET /v1/entitlements/{org}` answers.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Entitlements {
    /// The organization.
    pub org_id: String,
    /// The plan in force.
    pub plan: String,
    /// The subscription status, or `none`.
    pub status: String,
    /// Every feature: on or off, or a number.
    pub features: BTreeMap<String, serde_json::Value>,
    /// When this answer lapses if nothing else happens; `None`: never.
    pub valid_until: Option<DateTime<Utc>>,
    /// Grows by one with every change.
    pub version: i64,
}

impl Entitlements {
    /// Whether the feature is on: a flag that is true, or a limit above 0.
    pub fn enabled(&self, feature: &str) -> bool {
        match self.features.get(feature) {
            Some(serde_json::Value::Bool(on)) => *on,
            Some(serde_json::Value::Number(n)) => n.as_i64().is_some_and(|n| n > 0),
            _ => false,
        }
    }

    /// The feature's number (seats, projects), if it is one.
    pub fn limit(&self, feature: &str) -> Option<i64> {
        self.features
            .get(feature)
            .and_then(serde_json::Value::as_i64)
    }

    /// Whether the answer still holds at `now`.
    pub(crate) fn holds_at(&self, now: DateTime<Utc>) -> bool {
        self.valid_until.is_none_or(|until| now < until)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_and_limits_read_as_their_types() {
        let answer: Entitlements = serde_json::from_value(serde_json::json!({
            "org_id": "acme", "plan": "pro", "status": "active", "version": 3,
            "valid_until": null, "sources": [],
            "features": {"sso": true, "audit": false, "seats": 5, "exports": 0}
        }))
        .unwrap();
        assert!(answer.enabled("sso") && answer.enabled("seats"));
        assert!(!answer.enabled("audit") && !answer.enabled("exports") && !answer.enabled("nope"));
        assert_eq!(
            (answer.limit("seats"), answer.limit("sso")),
            (Some(5), None)
        );
    }
}
