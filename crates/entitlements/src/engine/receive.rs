//! Receiving a Stripe event: recorded once and applied in one transaction
//! with the subscription state and the organization's recomputed
//! entitlements (see `batch` and `apply`), its subscription refetched
//! first in refetch mode; and replaying a recorded event.

use super::{Engine, batch};
use crate::Error;
use crate::clock::now;
use crate::db::Conn;
use crate::event::Event;
use crate::receipt::{Change, Delivery, Outcome, Receipt};
use crate::source::{SourceError, SubscriptionRead};
use crate::store::events::Placement;
use crate::store::{Cause, events, notes, organizations};

use super::apply::subscription_to_read;
use super::recompute::Recomputed;

/// What refetch mode learned of an event's subscription from its source.
pub(super) enum Refetched {
    /// Its state now.
    State(SubscriptionRead),
    /// The source will never show it: the event is `invalid`, for this
    /// reason.
    Unreadable(String),
}

/// How a receipt says its organization was left to another process.
const DEFERRED: &str =
    "recorded; another replica's catalog is in force and computes the entitlements within a second";

impl Engine {
    /// Records a verified event once and applies it, in a transaction it
    /// may share with deliveries that arrived at the same time (see
    /// `batch`); answers once that transaction has committed. In refetch
    /// mode its subscription is read first (outside the transaction), an
    /// unreachable source is [`Error::SourceUnavailable`], and an event left
    /// `unlinked` is linked after all when its customer's metadata names an
    /// organization.
    #[tracing::instrument(skip_all, fields(event_id = %event.id, event_type = %event.kind))]
    pub async fn receive(&self, event: Event, payload: String) -> Result<Delivery, Error> {
        let refetched = self.refetch(&event).await?;
        let customer = self
            .source
            .as_ref()
            .and(event.customer().map(str::to_owned));
        let work = batch::Work::Delivery {
            event,
            payload,
            refetched,
        };
        let delivery = match (self.submit(work).await?, customer) {
            (Delivery::Recorded(receipt), Some(customer))
                if receipt.outcome == Outcome::Unlinked =>
            {
                Delivery::Recorded(self.link_by_metadata(receipt, &customer).await)
            }
            (delivery, _) => delivery,
        };
        match &delivery {
            Delivery::Duplicate => self.counters.duplicate(),
            Delivery::Recorded(receipt) => self.observe(receipt),
        }
        Ok(delivery)
    }

    /// In refetch mode, the event's subscription as its source shows it
    /// now. Not read for a redelivery (it changes nothing), for an event of
    /// the other mode (it is rejected, and the key could not read it), nor
    /// for a type that carries no subscription state.
    async fn refetch(&self, event: &Event) -> Result<Option<Refetched>, Error> {
        let (Some(source), Some(id)) = (&self.source, subscription_to_read(event)) else {
            return Ok(None);
        };
        if event.livemode != self.livemode || self.is_recorded(&event.id).await? {
            return Ok(None);
        }
        match source.read(&id, event.created).await {
            Ok(fresh) => Ok(Some(Refetched::State(fresh))),
            Err(SourceError::Unreadable(reason)) => Ok(Some(Refetched::Unreadable(reason))),
            Err(SourceError::Unavailable(reason)) => Err(Error::SourceUnavailable(reason)),
        }
    }

    async fn is_recorded(&self, event_id: &str) -> Result<bool, Error> {
        let mut pooled = self.db.get().await?;
        events::exists(&mut pooled.conn(), event_id).await
    }

    /// Recomputes the organization a recorded event concerns from what is
    /// stored (its subscriptions, under the catalog in force), for example
    /// after a missing price was added to the catalog. The event keeps its
    /// outcome; the replay is a note of its own in the history.
    #[tracing::instrument(skip_all, fields(event_id = %event_id))]
    pub async fn replay(&self, event_id: &str) -> Result<Replay, Error> {
        let replay = self
            .write(async |conn| {
                let org_id = match events::org_of(conn, event_id).await? {
                    None => return Ok(Replay::UnknownEvent),
                    Some(None) => return Ok(Replay::NoOrganization),
                    Some(Some(org_id)) => org_id,
                };
                let recomputed = self
                    .lock_and_recompute(conn, &org_id, Cause::Event(event_id))
                    .await?;
                let detail = match recomputed.change {
                    None => format!("entitlements unchanged at version {}", recomputed.version),
                    Some(change) => format!(
                        "entitlements {} to version {}",
                        change.as_str(),
                        recomputed.version
                    ),
                };
                let about = Cause::Event(event_id);
                notes::add(conn, &org_id, "replay", about, &detail, now()).await?;
                Ok(Replay::Recomputed {
                    org_id,
                    version: recomputed.version,
                    change: recomputed.change,
                })
            })
            .await?;
        Ok(replay)
    }

    fn observe(&self, receipt: &Receipt) {
        self.counters.outcome(receipt.outcome);
        tracing::info!(
            outcome = receipt.outcome.as_str(),
            org_id = receipt.org_id.as_deref(),
            detail = receipt.detail.as_deref(),
            "event recorded"
        );
    }
}

/// Records an applied event once, with its outcome (see
/// [`events::record`]). An event that concerns an organization takes the
/// organization's next history position and is stamped with the time read
/// once that lock is held.
pub(super) async fn record(
    conn: &mut Conn<'_>,
    event: &Event,
    payload: &str,
    receipt: &Receipt,
    received_at: i64,
) -> Result<bool, Error> {
    let placement = match receipt.org_id.as_deref() {
        Some(org_id) => {
            let position = organizations::next_position(conn, org_id, now()).await?;
            Some(Placement {
                position,
                at: now(),
            })
        }
        None => None,
    };
    events::record(conn, event, payload, receipt, placement, received_at).await
}

/// What [`Engine::replay`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Replay {
    /// No event has that id.
    UnknownEvent,
    /// The event concerns no organization (it is `unlinked` or `invalid`),
    /// so there is nothing to recompute.
    NoOrganization,
    /// The event's organization was recomputed.
    Recomputed {
        /// The organization.
        org_id: String,
        /// Its version afterwards.
        version: i64,
        /// How its entitlements moved, if they did.
        change: Option<Change>,
    },
}

/// Completes a receipt with what recomputing its organization found: how
/// the entitlements moved, and prices that no plan lists.
pub(super) fn conclude(mut receipt: Receipt, recomputed: Recomputed) -> Receipt {
    receipt.change = recomputed.change;
    if recomputed.deferred {
        receipt = receipt.note(DEFERRED);
    }
    if recomputed.unknown_prices.is_empty() {
        return receipt;
    }
    let note = format!(
        "{}: {}",
        crate::store::admin::UNKNOWN_PRICES,
        recomputed.unknown_prices.join(", ")
    );
    receipt.unknown_prices = recomputed.unknown_prices;
    receipt.note(note)
}

impl Receipt {
    pub(super) fn invalid(reason: impl Into<String>) -> Self {
        Receipt::new(Outcome::Invalid).detail(reason)
    }
}
