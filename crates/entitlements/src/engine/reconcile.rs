//! Subscriptions as Stripe's API lists them, applied through the same
//! code as their events, to repair what missed webhooks left behind.

use std::collections::HashSet;

use super::{Engine, batch, detached};
use crate::Error;
use crate::receipt::{Delivery, Receipt};
use crate::source::SubscriptionRead;

impl Engine {
    /// Applies a subscription as Stripe's API returned it, through the same
    /// code as its events, to repair what missed webhooks left behind. With
    /// `only_org`, a subscription of another organization changes nothing;
    /// with `dry_run`, nothing is changed at all. The receipt says what
    /// happened (or would have).
    #[tracing::instrument(skip_all, fields(subscription_id = %fresh.subscription.id))]
    pub async fn reconcile(
        &self,
        fresh: &SubscriptionRead,
        only_org: Option<&str>,
        dry_run: bool,
    ) -> Result<Receipt, Error> {
        let (engine, fresh) = (self.clone(), fresh.clone());
        let only_org = only_org.map(str::to_owned);
        detached(async move {
            let work = batch::Work::Listed(fresh);
            engine
                .write_if(
                    async |conn| {
                        let applied = engine
                            .apply_states(conn, &[&work], &mut HashSet::new())
                            .await?;
                        match applied.into_iter().next() {
                            Some(batch::Applied::Done(Delivery::Recorded(receipt))) => Ok(receipt),
                            _ => Err(Error::Corrupt(
                                "a listed subscription was not applied".into(),
                            )),
                        }
                    },
                    |receipt| {
                        !dry_run
                            && only_org
                                .as_deref()
                                .is_none_or(|org| receipt.org_id.as_deref() == Some(org))
                    },
                )
                .await
        })
        .await
    }

    /// Applies a page of subscriptions as Stripe's API listed them, like
    /// [`Engine::reconcile`] does one, answering a receipt for each in
    /// order. A full run (every organization, not dry) shares transactions
    /// the way deliveries do.
    pub async fn reconcile_page(
        &self,
        page: Vec<SubscriptionRead>,
        only_org: Option<&str>,
        dry_run: bool,
    ) -> Result<Vec<Receipt>, Error> {
        if dry_run || only_org.is_some() {
            let mut receipts = Vec::with_capacity(page.len());
            for fresh in &page {
                receipts.push(self.reconcile(fresh, only_org, dry_run).await?);
            }
            return Ok(receipts);
        }
        let applied = page
            .into_iter()
            .map(|fresh| self.submit(batch::Work::Listed(fresh)));
        futures_util::future::try_join_all(applied)
            .await?
            .into_iter()
            .map(|delivery| match delivery {
                Delivery::Recorded(receipt) => Ok(receipt),
                Delivery::Duplicate => Err(Error::Unavailable(
                    "a listed subscription was answered as a redelivery".into(),
                )),
            })
            .collect()
    }
}
