//! Refetch mode's port: where the engine reads a subscription's current
//! state and a customer's metadata (Stripe's API, in the service; a
//! script, in tests).

use futures_util::future::BoxFuture;

use crate::event::Metadata;
use crate::snapshot::SubscriptionSnapshot;

/// A subscription as read from its source just now; applied instead of an
/// event's payload.
#[derive(Debug, Clone)]
pub struct SubscriptionRead {
    /// The subscription.
    pub subscription: SubscriptionSnapshot,
    /// When it was read on Stripe's clock (unix milliseconds), as far as
    /// Stripe's own data tells: at least the newest timestamp the object
    /// carries and the newest event known before the read began. Never this
    /// host's clock, which may disagree with Stripe's and another
    /// replica's. Orders reads of one subscription against each other and
    /// against events.
    pub read_at_ms: i64,
}

impl SubscriptionRead {
    /// The same read, known to have begun after an event created in second
    /// `secs` was received: it counts as of the next second, newer than
    /// every event of that second (their created seconds are all the order
    /// there is).
    #[must_use]
    pub fn not_before(mut self, secs: i64) -> Self {
        let after = secs.saturating_add(1).saturating_mul(1000);
        self.read_at_ms = self.read_at_ms.max(after);
        self
    }
}

/// Why a subscription could not be read.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SourceError {
    /// Not now (a network failure, a 5xx, a rate limit that outlasted the
    /// retries): the event is refused so that Stripe delivers it again.
    #[error("{0}")]
    Unavailable(String),
    /// Never (it does not exist, or the key may not read it): the event is
    /// recorded as `invalid` with this reason.
    #[error("{0}")]
    Unreadable(String),
}

/// Reads subscriptions for refetch mode.
pub trait SubscriptionSource: Send + Sync {
    /// The subscription's state, read after this call began, for an event
    /// created at `after` (unix seconds): the read is stamped no earlier.
    fn read<'a>(
        &'a self,
        subscription_id: &'a str,
        after: i64,
    ) -> BoxFuture<'a, Result<SubscriptionRead, SourceError>>;

    /// The customer's metadata, read after this call began; `None` for a
    /// deleted customer.
    fn customer_metadata<'a>(
        &'a self,
        customer_id: &'a str,
    ) -> BoxFuture<'a, Result<Option<Metadata>, SourceError>>;
}
