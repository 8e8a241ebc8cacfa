//! What others ask the engine: an organization's answer (computed again
//! first when it is due), its history, and stored facts (Stripe's clock
//! as last heard, subscriptions, customers).

use super::Engine;
use crate::Error;
use crate::clock::now;
use crate::compute::default_entitlement;
use crate::history::{Cursor, HistoryPage, merge_page};
use crate::store::{Cause, answers, events, history, organizations, subscriptions};
use crate::view::EntitlementView;

impl Engine {
    /// The organization's current entitlements: the stored ones, or the
    /// default plan at version 0 for an organization no event concerned.
    /// An answer computed under other rules (the catalog changed) or that
    /// time alone changed (a grace period or a canceled period ended) is
    /// recomputed first, and stored as a new version if it changed.
    #[tracing::instrument(skip_all, fields(org_id = %org_id))]
    pub async fn entitlements(&self, org_id: &str) -> Result<EntitlementView, Error> {
        let now = now();
        let row = {
            let mut pooled = self.db.get().await?;
            answers::get(&mut pooled.conn(), org_id).await?
        };
        let row = match row {
            // An outdated process serves what is stored, never rewriting
            // it under its own rules.
            Some(row) if row.due(now, &self.rules) && !self.counters.rules_outdated() => {
                self.write(async |conn| {
                    self.lock_and_recompute(conn, org_id, Cause::Time).await?;
                    answers::get(conn, org_id).await
                })
                .await?
            }
            row => row,
        };
        Ok(match row {
            Some(row) => EntitlementView::new(
                org_id,
                row.entitlement()?,
                row.version,
                Some(row.updated_at),
                row.recheck_at,
            ),
            None => EntitlementView::new(org_id, default_entitlement(&self.catalog), 0, None, None),
        })
    }

    /// One page of the organization's history, newest first: at most
    /// `limit` events and entitlement changes older than `before`.
    pub async fn history(
        &self,
        org_id: &str,
        before: Option<&Cursor>,
        limit: usize,
    ) -> Result<HistoryPage, Error> {
        let mut pooled = self.db.get().await?;
        let mut conn = pooled.conn();
        // One more than asked tells whether another page follows.
        let fetch = i64::try_from(limit).unwrap_or(i64::MAX).saturating_add(1);
        let lists = history::before(&mut conn, org_id, before, fetch).await?;
        Ok(merge_page(lists, limit))
    }

    /// Stripe's clock as last heard (unix seconds): the newest `created` of
    /// the recorded events, 0 before any. A read of Stripe begun after this
    /// call is no older than that, whatever this host's clock says.
    pub async fn stripe_time_heard(&self) -> Result<i64, Error> {
        let mut pooled = self.db.get().await?;
        let newest = events::newest_created(&mut pooled.conn()).await?;
        Ok(newest.unwrap_or_default())
    }

    /// How many subscriptions are stored, of one organization or all.
    pub async fn stored_subscriptions(&self, org_id: Option<&str>) -> Result<u64, Error> {
        let mut pooled = self.db.get().await?;
        let count = subscriptions::count(&mut pooled.conn(), org_id).await?;
        Ok(u64::try_from(count).unwrap_or_default())
    }

    /// The Stripe customer stored for the organization.
    pub async fn customer_of(&self, org_id: &str) -> Result<Option<String>, Error> {
        let mut pooled = self.db.get().await?;
        organizations::customer_of(&mut pooled.conn(), org_id).await
    }

    /// Which attempt at creating the organization's Stripe customer is
    /// next; it names the creation's idempotency key.
    pub async fn customer_attempt(&self, org_id: &str) -> Result<i64, Error> {
        let mut pooled = self.db.get().await?;
        organizations::customer_attempt(&mut pooled.conn(), org_id).await
    }

    /// Moves on to the next attempt at creating the organization's
    /// customer, after Stripe failed on its side: Stripe replays a failed
    /// answer for a day to a key it has seen.
    pub async fn next_customer_attempt(&self, org_id: &str) -> Result<(), Error> {
        let now = now();
        self.write(async |conn| organizations::next_customer_attempt(conn, org_id, now).await)
            .await
    }

    /// Stores the organization's Stripe customer unless it has one already,
    /// and returns the one it has afterwards.
    pub async fn remember_customer(&self, org_id: &str, customer: &str) -> Result<String, Error> {
        let now = now();
        self.write(async |conn| {
            organizations::set_customer_if_unset(conn, org_id, customer, now).await
        })
        .await
    }
}
