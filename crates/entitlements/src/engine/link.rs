//! Linking a Stripe customer to an organization by hand, for customers
//! whose events named no organization the service could read.

use super::Engine;
use super::apply::valid_org;
use crate::clock::now;
use crate::event::{CheckoutSessionObject, Metadata, org_id_in};
use crate::receipt::{Outcome, Receipt};
use crate::store::{Cause, events, notes, organizations, subscriptions};
use crate::{Error, SourceError};

/// What linking a customer did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Linked {
    /// The customer's subscriptions that now belong to the organization.
    pub subscriptions: usize,
    /// The customer's events that waited (`unlinked`), oldest first; each
    /// is now the organization's, and applied.
    pub events: Vec<String>,
}

impl Engine {
    /// Links `customer` to the organization: its subscriptions and every
    /// event of it that waited as `unlinked` become the organization's, in
    /// one transaction with the recomputed entitlements, and the history
    /// says who linked it. A customer that belongs to another organization
    /// is [`Error::CustomerTaken`]; linking twice changes nothing more.
    #[tracing::instrument(skip_all, fields(org_id = %org_id, customer = %customer))]
    pub async fn link_customer(
        &self,
        org_id: &str,
        customer: &str,
        by: &str,
    ) -> Result<Linked, Error> {
        let linked = self
            .write(async |conn| {
                let now = organizations::lock(conn, org_id, now()).await?;
                if let Some(owner) = organizations::org_of_customer(conn, customer).await?
                    && owner != org_id
                {
                    return Err(Error::CustomerTaken {
                        customer: customer.to_owned(),
                        owner,
                    });
                }
                organizations::set_customer_if_unset(conn, org_id, customer, now).await?;
                let subscriptions = subscriptions::link_customer(conn, customer, org_id).await?;
                let mut linked = Vec::new();
                let detail = format!("waited for an organization; customer linked by {by}");
                for id in events::unlinked_of(conn, customer).await? {
                    let position = organizations::next_position(conn, org_id, now).await?;
                    events::link(conn, &id, org_id, position, &detail).await?;
                    linked.push(id);
                }
                let note = format!(
                    "customer {customer} linked by {by}: {subscriptions} subscriptions, {} waiting events",
                    linked.len()
                );
                notes::add(conn, org_id, "customer_linked", Cause::Time, &note, now).await?;
                self.recompute(conn, org_id, Cause::Time, now).await?;
                Ok(Linked {
                    subscriptions,
                    events: linked,
                })
            })
            .await?;
        tracing::info!(
            by,
            subscriptions = linked.subscriptions,
            events = linked.events.len(),
            "customer linked"
        );
        Ok(linked)
    }
}

impl Engine {
    /// How many recorded events wait for an organization (`unlinked`).
    pub async fn unlinked_events(&self) -> Result<i64, Error> {
        self.database()
            .read(async |conn| events::unlinked_count(conn).await)
            .await
    }

    /// The organization a customer is linked to, if any.
    pub async fn owner_of_customer(&self, customer: &str) -> Result<Option<String>, Error> {
        self.database()
            .read(async |conn| organizations::org_of_customer(conn, customer).await)
            .await
    }

    /// The organization `metadata` (a Stripe customer's, say) names under
    /// the configured keys; an id that is not valid is an error saying so.
    pub fn org_named_in(&self, metadata: &Metadata) -> Result<Option<String>, String> {
        valid_org(org_id_in(metadata, &self.org_id_keys))
    }

    /// The organization a Checkout Session names: in its metadata under the
    /// configured keys, else as its `client_reference_id`; an id that is
    /// not valid is an error saying so.
    pub fn org_named_by_checkout(
        &self,
        session: &CheckoutSessionObject,
    ) -> Result<Option<String>, String> {
        valid_org(session.org_id(&self.org_id_keys))
    }

    /// In refetch mode, an event left `unlinked` whose customer's metadata
    /// (read from the source) names an organization links that customer,
    /// which applies the event and remembers the link. Failures leave the
    /// event waiting, as it was recorded, for `reconcile` or a hand link.
    pub(super) async fn link_by_metadata(&self, receipt: Receipt, customer: &str) -> Receipt {
        let Some(source) = &self.source else {
            return receipt;
        };
        let org = match source.customer_metadata(customer).await {
            Ok(Some(metadata)) => self.org_named_in(&metadata),
            Ok(None) => Ok(None),
            Err(SourceError::Unavailable(e) | SourceError::Unreadable(e)) => Err(e),
        };
        let org = match org {
            Ok(Some(org)) => org,
            Ok(None) => return receipt,
            Err(reason) => {
                tracing::warn!(
                    customer,
                    reason,
                    "the customer's metadata names no organization"
                );
                return receipt;
            }
        };
        match self.link_customer(&org, customer, "its metadata").await {
            Ok(_) => Receipt {
                outcome: Outcome::Applied,
                org_id: Some(org),
                detail: Some(format!("customer {customer} linked by its metadata")),
                ..receipt
            },
            Err(error) => {
                tracing::warn!(customer, %error, "the customer could not be linked; the event waits");
                receipt
            }
        }
    }
}
