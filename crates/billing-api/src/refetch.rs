//! `stripe.sync_mode = "refetch"`: subscription events are applied with the
//! subscription's state as Stripe's API returns it now, since payloads
//! alone cannot order events of the same second.
//!
//! Reads are coalesced per subscription: a read waits a short window, then
//! serves every event that arrived before it started, so a burst of events
//! costs one or two reads and no event is served a state older than its own
//! arrival.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use entitlements::Fresh;

use crate::stripe_api::{StripeApi, StripeFailure};

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
    /// The last read: how many arrivals it covers, and its result.
    last: tokio::sync::Mutex<Option<(u64, Result<Fresh, StripeFailure>)>>,
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

    /// The subscription's state, read after this call began.
    pub async fn read(&self, subscription_id: &str) -> Result<Fresh, StripeFailure> {
        let slot = self
            .lock_slots()
            .entry(subscription_id.to_owned())
            .or_default()
            .clone();
        let ticket = slot.arrivals.fetch_add(1, Ordering::SeqCst) + 1;
        let result =
            {
                let mut last = slot.last.lock().await;
                match &*last {
                    Some((covered, result)) if *covered >= ticket => result.clone(),
                    _ => {
                        tokio::time::sleep(self.window).await;
                        // Everyone who has arrived by now arrived before this read.
                        let covered = slot.arrivals.load(Ordering::SeqCst);
                        let result = self.api.retrieve_subscription(subscription_id).await.map(
                            |subscription| Fresh {
                                subscription,
                                read_at_ms: chrono::Utc::now().timestamp_millis(),
                            },
                        );
                        *last = Some((covered, result.clone()));
                        result
                    }
                }
            };
        let mut slots = self.lock_slots();
        // Only the map and this call hold the slot: nobody waits on it.
        if Arc::strong_count(&slot) == 2 {
            slots.remove(subscription_id);
        }
        result
    }

    fn lock_slots(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Slot>>> {
        self.slots.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
