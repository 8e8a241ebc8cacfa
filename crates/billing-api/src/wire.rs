//! The JSON the API answers with: the domain's answers, serialized and
//! described for the OpenAPI document (the domain crate knows neither).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use entitlements::grants::Grant;
use entitlements::history::HistoryEntry as DomainEntry;
use entitlements::{EntitlementView, Features, Source};

/// Features by name, as answered.
type FeatureValues = BTreeMap<String, FeatureValue>;
use serde::Serialize;

/// A feature's value: on or off, or a number (a limit, a count of seats).
#[derive(Serialize, utoipa::ToSchema)]
#[serde(untagged)]
pub(crate) enum FeatureValue {
    /// On or off.
    Flag(bool),
    /// A number.
    Limit(i64),
}

impl From<entitlements::FeatureValue> for FeatureValue {
    fn from(value: entitlements::FeatureValue) -> Self {
        match value {
            entitlements::FeatureValue::Flag(on) => FeatureValue::Flag(on),
            entitlements::FeatureValue::Limit(n) => FeatureValue::Limit(n),
        }
    }
}

/// The domain's features as answered.
pub(crate) fn values(features: Features) -> FeatureValues {
    features
        .into_iter()
        .map(|(name, value)| (name, value.into()))
        .collect()
}

/// An organization's entitlements.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct Entitlements {
    /// The organization.
    org_id: String,
    /// The plan in force.
    plan: String,
    /// The subscription status, or `none`.
    status: String,
    /// Every catalog feature with its granted value.
    features: FeatureValues,
    /// The primary granting subscription.
    subscription_id: Option<String>,
    /// Its period end.
    current_period_end: Option<DateTime<Utc>>,
    /// Whether it ends at its period end.
    cancel_at_period_end: bool,
    /// While past due: when access ends unless paid.
    grace_until: Option<DateTime<Utc>>,
    /// When this answer lapses if no further event arrives.
    valid_until: Option<DateTime<Utc>>,
    /// Grows by one with every change.
    version: i64,
    /// When the entitlements last changed.
    updated_at: Option<DateTime<Utc>>,
    /// What grants the answer now; empty for the default plan.
    sources: Vec<GrantingSource>,
}

/// One thing that grants an organization now.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct GrantingSource {
    /// `subscription`, `purchase` or `grant`.
    kind: &'static str,
    /// `sub_...`, `cs_...` or `grant_...`.
    id: String,
    /// The plan it grants; null for a grant of features alone.
    plan: Option<String>,
    /// When it stops granting if nothing else happens; null: never.
    until: Option<DateTime<Utc>>,
}

impl From<Source> for GrantingSource {
    fn from(source: Source) -> Self {
        Self {
            kind: source.kind.as_str(),
            id: source.id,
            plan: source.plan,
            until: source
                .until
                .and_then(|secs| DateTime::from_timestamp(secs, 0)),
        }
    }
}

impl From<EntitlementView> for Entitlements {
    fn from(view: EntitlementView) -> Self {
        Self {
            org_id: view.org_id,
            plan: view.plan,
            status: view.status,
            features: values(view.features),
            subscription_id: view.subscription_id,
            current_period_end: view.current_period_end,
            cancel_at_period_end: view.cancel_at_period_end,
            grace_until: view.grace_until,
            valid_until: view.valid_until,
            version: view.version,
            updated_at: view.updated_at,
            sources: view.sources.into_iter().map(GrantingSource::from).collect(),
        }
    }
}

/// An entry of an organization's history: an event, an entitlement change
/// or an operator's note.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub(crate) enum HistoryEntry {
    /// A webhook event concerning the organization.
    Event {
        /// When it was recorded.
        at: Option<DateTime<Utc>>,
        /// Stripe's event id.
        event_id: String,
        /// Its type.
        #[serde(rename = "type")]
        event_type: String,
        /// What applying it did.
        outcome: String,
        /// Why, or what was noticed.
        detail: Option<String>,
        /// The subscription it concerned.
        subscription_id: Option<String>,
    },
    /// A change of the organization's entitlements.
    EntitlementChange {
        /// When it changed.
        at: Option<DateTime<Utc>>,
        /// The new version.
        version: i64,
        /// The event that caused it; none when a grant, time alone or the
        /// catalog did.
        event_id: Option<String>,
        /// The grant that caused it.
        grant_id: Option<String>,
        /// The plan afterwards.
        plan: String,
        /// The status afterwards.
        status: String,
        /// The features afterwards.
        features: FeatureValues,
    },
    /// Something an operator did (a replay, a grant) or a grant's expiry.
    Note {
        /// When.
        at: Option<DateTime<Utc>>,
        /// What: `replay`, `grant_created`, `grant_revoked`,
        /// `grant_expired` or `notify_failed` (a notification given up).
        action: String,
        /// The event it concerned.
        event_id: Option<String>,
        /// The grant it concerned.
        grant_id: Option<String>,
        /// What came of it.
        detail: String,
    },
}

impl From<DomainEntry> for HistoryEntry {
    fn from(entry: DomainEntry) -> Self {
        let at = |secs| DateTime::from_timestamp(secs, 0);
        match entry {
            DomainEntry::Event(e) => HistoryEntry::Event {
                at: at(e.received_at),
                event_id: e.id,
                event_type: e.event_type,
                outcome: e.outcome,
                detail: e.detail,
                subscription_id: e.subscription_id,
            },
            DomainEntry::EntitlementChange(c, features) => HistoryEntry::EntitlementChange {
                at: at(c.changed_at),
                version: c.version,
                event_id: c.event_id,
                grant_id: c.grant_id,
                plan: c.plan,
                status: c.status,
                features: values(features),
            },
            DomainEntry::Note(n) => HistoryEntry::Note {
                at: at(n.noted_at),
                action: n.action,
                event_id: n.event_id,
                grant_id: n.grant_id,
                detail: n.detail,
            },
        }
    }
}

/// One change in the change feed.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct FeedChange {
    /// Pass as `after` to read on from this change.
    cursor: String,
    /// The organization.
    org_id: String,
    /// Its version after the change.
    version: i64,
    /// Its entitlements at that version, as `GET /v1/entitlements/{org_id}`
    /// answered them then.
    entitlements: Entitlements,
    /// When the change was made.
    changed_at: Option<DateTime<Utc>>,
}

impl From<entitlements::feed::FeedChange> for FeedChange {
    fn from(change: entitlements::feed::FeedChange) -> Self {
        let view = change.entitlements;
        Self {
            cursor: change.position.to_string(),
            org_id: view.org_id.clone(),
            version: view.version,
            changed_at: DateTime::from_timestamp(change.changed_at, 0),
            entitlements: view.into(),
        }
    }
}

/// A grant, active or not.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct GrantAnswer {
    id: String,
    org_id: String,
    plan: Option<String>,
    features: std::collections::BTreeMap<String, FeatureValue>,
    quantity: i64,
    expires_at: Option<DateTime<Utc>>,
    reason: Option<String>,
    created_at: Option<DateTime<Utc>>,
    /// The name of the token (or operator) that gave it.
    created_by: String,
    /// Whether it grants now.
    active: bool,
    revoked_at: Option<DateTime<Utc>>,
    revoked_by: Option<String>,
}

impl GrantAnswer {
    /// The grant as the API shows it at `now`.
    pub(crate) fn new(grant: Grant, now: i64) -> Self {
        let time = |secs: i64| DateTime::from_timestamp(secs, 0);
        Self {
            active: grant.is_active(now),
            features: values(grant.features),
            id: grant.id,
            org_id: grant.org_id,
            plan: grant.plan,
            quantity: grant.quantity,
            expires_at: grant.expires_at.and_then(time),
            reason: grant.reason,
            created_at: time(grant.created_at),
            created_by: grant.created_by,
            revoked_at: grant.revoked_at.and_then(time),
            revoked_by: grant.revoked_by,
        }
    }
}

#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct GrantList {
    /// Newest first, revoked and expired ones too.
    grants: Vec<GrantAnswer>,
}

impl GrantList {
    /// The grants as the API lists them at `now`.
    pub(crate) fn new(grants: Vec<Grant>, now: i64) -> Self {
        let grants = grants
            .into_iter()
            .map(|g| GrantAnswer::new(g, now))
            .collect();
        Self { grants }
    }
}
