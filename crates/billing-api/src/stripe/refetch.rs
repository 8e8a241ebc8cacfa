//! `stripe.sync_mode = "refetch"`: subscription events are applied with the
//! subscription's state as Stripe's API returns it now, since payloads
//! alone cannot order events of the same second.
//!
//! Reads are coalesced per subscription: a read waits a short window, then
//! serves every event that arrived before it started, so a burst of events
//! costs one or two reads and no event is served a state older than its own
//! arrival.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use entitlements::event::Metadata;
use entitlements::{SourceError, SubscriptionRead, SubscriptionSource};
use futures_util::future::BoxFuture;

use crate::stripe::api::{StripeApi, StripeFailure};

/// Reads subscriptions from Stripe, one read per burst.
pub struct Refetcher {
    api: StripeApi,
    window: Duration,
    slots: Mutex<HashMap<String, Arc<Slot>>>,
}

#[derive(Default)]
struct Slot {
    /// Arrivals so far; each waiter takes the next number.
    arrivals: AtomicU64,
    /// The newest `created` of the events that have arrived (unix seconds):
    /// a read begun after it was raised is no older on Stripe's clock.
    newest_event: AtomicI64,
    /// The last read: how many arrivals it covers, and its result.
    last: tokio::sync::Mutex<Option<(u64, Result<SubscriptionRead, StripeFailure>)>>,
}

impl Refetcher {
    /// Reads through `api`; a read first waits `window` for more events
    /// of its subscription to arrive and share it.
    pub fn new(api: StripeApi, window: Duration) -> Self {
        Self {
            api,
            window,
            slots: Mutex::default(),
        }
    }

    /// The subscription's state, read after this call began for an event
    /// created at `after`, stamped on Stripe's clock: the newest of the
    /// object's timestamps and of the events that arrived before the read.
    pub async fn read(
        &self,
        subscription_id: &str,
        after: i64,
    ) -> Result<SubscriptionRead, StripeFailure> {
        let claim = Claim::new(self, subscription_id);
        let slot = &claim.slot;
        slot.newest_event.fetch_max(after, Ordering::SeqCst);
        let ticket = slot.arrivals.fetch_add(1, Ordering::SeqCst) + 1;
        let mut last = slot.last.lock().await;
        match &*last {
            Some((covered, result)) if *covered >= ticket => result.clone(),
            _ => {
                tokio::time::sleep(self.window).await;
                // Everyone who has arrived by now arrived before this read.
                let covered = slot.arrivals.load(Ordering::SeqCst);
                let newest = slot.newest_event.load(Ordering::SeqCst);
                let result = self
                    .api
                    .retrieve_subscription(subscription_id)
                    .await
                    .map(|read| read.not_before(newest));
                *last = Some((covered, result.clone()));
                result
            }
        }
    }

    fn lock_slots(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Slot>>> {
        self.slots.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl SubscriptionSource for Refetcher {
    fn read<'a>(
        &'a self,
        subscription_id: &'a str,
        after: i64,
    ) -> BoxFuture<'a, Result<SubscriptionRead, SourceError>> {
        Box::pin(async move {
            self.read(subscription_id, after).await.map_err(|failure| {
                if failure.is_permanent() {
                    SourceError::Unreadable(format!(
                        "subscription {subscription_id} cannot be read: {failure}"
                    ))
                } else {
                    SourceError::Unavailable(failure.to_string())
                }
            })
        })
    }

    fn customer_metadata<'a>(
        &'a self,
        customer_id: &'a str,
    ) -> BoxFuture<'a, Result<Option<Metadata>, SourceError>> {
        Box::pin(async move {
            let customer = self.api.retrieve_customer(customer_id).await;
            customer
                .map(|customer| customer.map(|c| c.metadata))
                .map_err(|failure| SourceError::Unavailable(failure.to_string()))
        })
    }
}

/// A caller's hold on a subscription's slot. Dropping it, also when the
/// caller's request is dropped mid-read, removes the slot once nobody
/// else holds it.
struct Claim<'a> {
    refetcher: &'a Refetcher,
    subscription_id: &'a str,
    slot: Arc<Slot>,
}

impl<'a> Claim<'a> {
    fn new(refetcher: &'a Refetcher, subscription_id: &'a str) -> Self {
        let slot = refetcher
            .lock_slots()
            .entry(subscription_id.to_owned())
            .or_default()
            .clone();
        Self {
            refetcher,
            subscription_id,
            slot,
        }
    }
}

impl Drop for Claim<'_> {
    fn drop(&mut self) {
        let mut slots = self.refetcher.lock_slots();
        // Only the map and this claim hold the slot: nobody waits on it.
        if Arc::strong_count(&self.slot) == 2 {
            slots.remove(self.subscription_id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Metrics;
    use wiremock::{Mock, MockServer, ResponseTemplate, matchers::any};

    #[tokio::test]
    async fn a_read_dropped_half_way_leaves_no_slot_behind() {
        let stripe = MockServer::start().await;
        Mock::given(any())
            .respond_with(ResponseTemplate::new(500).set_delay(Duration::from_secs(30)))
            .mount(&stripe)
            .await;
        let api = StripeApi::new("sk_test_fake", &stripe.uri(), Arc::new(Metrics::default()))
            .expect("client builds");
        let refetcher = Refetcher::new(api, Duration::from_millis(1));
        let reads =
            futures_util::future::join(refetcher.read("sub_1", 0), refetcher.read("sub_1", 0));
        let outcome = tokio::time::timeout(Duration::from_millis(300), reads).await;
        assert!(outcome.is_err(), "the fake Stripe answers far later");
        assert!(refetcher.lock_slots().is_empty());
    }
}
