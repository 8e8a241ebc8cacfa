//! The answer to "what may this organization use?".

use chrono::{DateTime, Utc};

use crate::catalog::Features;
use crate::compute::{Entitlement, Source, SourceKind};

/// An organization's entitlements at one version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntitlementView {
    /// The organization.
    pub org_id: String,
    /// The plan in force.
    pub plan: String,
    /// The subscription status, or `none`.
    pub status: String,
    /// Every catalog feature with its granted value.
    pub features: Features,
    /// The primary granting subscription.
    pub subscription_id: Option<String>,
    /// Its period end.
    pub current_period_end: Option<DateTime<Utc>>,
    /// Whether it ends at its period end.
    pub cancel_at_period_end: bool,
    /// While past due: when access ends unless paid.
    pub grace_until: Option<DateTime<Utc>>,
    /// When this answer lapses if no further event arrives.
    pub valid_until: Option<DateTime<Utc>>,
    /// What grants it; empty for the default plan.
    pub sources: Vec<Source>,
    /// Grows by one with every change.
    pub version: i64,
    /// When the entitlements last changed.
    pub updated_at: Option<DateTime<Utc>>,
    /// When it must be computed again because time alone may change it
    /// (unix seconds); a cache must not serve it from then on.
    pub recheck_at: Option<i64>,
}

impl EntitlementView {
    pub(crate) fn new(
        org_id: &str,
        e: Entitlement,
        version: i64,
        updated_at: Option<i64>,
        recheck_at: Option<i64>,
    ) -> Self {
        Self {
            org_id: org_id.to_owned(),
            plan: e.plan,
            status: e.status,
            features: e.features,
            subscription_id: e.subscription_id,
            current_period_end: e.current_period_end.and_then(time),
            cancel_at_period_end: e.cancel_at_period_end,
            grace_until: e.grace_until.and_then(time),
            valid_until: e.valid_until.and_then(time),
            sources: e.sources,
            version,
            updated_at: updated_at.and_then(time),
            recheck_at,
        }
    }

    /// Whether anything grants this answer (it is not the default plan).
    pub fn is_granted(&self) -> bool {
        !self.sources.is_empty()
    }

    /// Whether a subscription grants part of it.
    pub fn has_subscription(&self) -> bool {
        self.sources
            .iter()
            .any(|source| source.kind == SourceKind::Subscription)
    }
}

fn time(secs: i64) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp(secs, 0)
}
