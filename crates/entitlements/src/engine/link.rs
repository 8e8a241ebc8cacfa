//! Linking a Stripe customer to an organization by hand, for customers
//! whose events named no organization the service could read.

use super::Engine;
use crate::Error;
use crate::clock::now;
use crate::store::{Cause, events, notes, organizations, subscriptions};

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
                for (id, payload) in events::unlinked(conn).await? {
                    if customer_of(&payload).as_deref() != Some(customer) {
                        continue;
                    }
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
}

/// The customer an event's object names: as an id, or expanded.
fn customer_of(payload: &str) -> Option<String> {
    let event: serde_json::Value = serde_json::from_str(payload).ok()?;
    let customer = &event["data"]["object"]["customer"];
    customer
        .as_str()
        .or_else(|| customer["id"].as_str())
        .map(str::to_owned)
}
