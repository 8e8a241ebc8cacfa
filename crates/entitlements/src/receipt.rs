//! What applying an event did: its outcome, recorded with the event.

/// What applying an event did, as recorded with the event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The event changed (or confirmed) state.
    Applied,
    /// A type the service does not act on.
    Ignored,
    /// From the other mode (live vs test); no effect.
    Rejected,
    /// Older than what was already applied; no effect.
    Stale,
    /// The subscription is stored but no organization is known yet; the
    /// checkout event will link it.
    Unlinked,
    /// A handled type whose object lacks what the service needs; kept for
    /// inspection and replay.
    Invalid,
}

impl Outcome {
    /// Every outcome, in declaration order.
    pub const ALL: [Outcome; 6] = [
        Outcome::Applied,
        Outcome::Ignored,
        Outcome::Rejected,
        Outcome::Stale,
        Outcome::Unlinked,
        Outcome::Invalid,
    ];

    /// The name stored with the event.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Applied => "applied",
            Outcome::Ignored => "ignored",
            Outcome::Rejected => "rejected",
            Outcome::Stale => "stale",
            Outcome::Unlinked => "unlinked",
            Outcome::Invalid => "invalid",
        }
    }
}

/// The record of one applied event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt {
    /// What happened.
    pub outcome: Outcome,
    /// The organization the event concerned, when known.
    pub org_id: Option<String>,
    /// The subscription the event concerned, when any.
    pub subscription_id: Option<String>,
    /// A sentence for operators (why ignored, unknown prices, ...).
    pub detail: Option<String>,
    /// How the organization's entitlements moved, if they did.
    pub change: Option<Change>,
    /// Prices of the organization's subscriptions that no plan lists.
    pub unknown_prices: Vec<String>,
}

impl Receipt {
    pub(crate) fn new(outcome: Outcome) -> Self {
        Self {
            outcome,
            org_id: None,
            subscription_id: None,
            detail: None,
            change: None,
            unknown_prices: Vec::new(),
        }
    }

    pub(crate) fn detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }

    /// Adds `note` to the detail, after what it says already.
    pub(crate) fn note(mut self, note: impl Into<String>) -> Self {
        let note = note.into();
        self.detail = Some(match self.detail.take() {
            Some(existing) => format!("{existing}; {note}"),
            None => note,
        });
        self
    }

    pub(crate) fn org(mut self, org_id: Option<String>) -> Self {
        self.org_id = org_id;
        self
    }

    pub(crate) fn subscription(mut self, id: &str) -> Self {
        self.subscription_id = Some(id.to_owned());
        self
    }
}

/// How an event moved its organization's entitlements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// From the default plan to a subscription's plan.
    Granted,
    /// From a subscription's plan back to the default plan.
    Revoked,
    /// From one granted answer to another (plan, seats, period, ...).
    Changed,
}

impl Change {
    /// The change as a word: `granted`, `revoked` or `changed`.
    pub fn as_str(self) -> &'static str {
        match self {
            Change::Granted => "granted",
            Change::Revoked => "revoked",
            Change::Changed => "changed",
        }
    }
}

/// The result of receiving an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    /// The event was recorded before; nothing changed.
    Duplicate,
    /// The event is now recorded with this receipt.
    Recorded(Receipt),
}
