//! What the service reads from Stripe: its lists (subscriptions,
//! customers, completed Checkouts) and single objects.

use entitlements::event::{CheckoutSessionObject, Metadata};
use entitlements::{SnapshotItem, SubscriptionRead, SubscriptionSnapshot, SubscriptionStatus};
use stripe_billing::subscription::{
    ListSubscription, ListSubscriptionStatus, RetrieveSubscription,
};
use stripe_checkout::checkout_session::ListCheckoutSession;
use stripe_core::charge::RetrieveCharge;
use stripe_core::customer::{ListCustomer, RetrieveCustomer, RetrieveCustomerReturned};
use stripe_shared::CheckoutSessionStatus;

use super::{StripeApi, StripeFailure};

/// A Stripe customer, as far as linking it to an organization needs.
#[derive(Debug, Clone)]
pub struct CustomerRecord {
    /// `cus_...`.
    pub id: String,
    /// Its email, to tell it apart in a list.
    pub email: Option<String>,
    /// Its metadata, where another codebase may have put the organization.
    pub metadata: Metadata,
}

impl From<stripe_shared::Customer> for CustomerRecord {
    fn from(customer: stripe_shared::Customer) -> Self {
        Self {
            id: customer.id.to_string(),
            email: customer.email,
            metadata: customer.metadata.unwrap_or_default(),
        }
    }
}

impl StripeApi {
    /// One page (up to 100) of subscriptions of every status, optionally
    /// of one customer, after `starting_after`; and whether more follow.
    pub async fn list_subscriptions(
        &self,
        customer: Option<&str>,
        starting_after: Option<&str>,
    ) -> Result<(Vec<SubscriptionRead>, bool), StripeFailure> {
        let mut request = ListSubscription::new()
            .status(ListSubscriptionStatus::All)
            .limit(100);
        if let Some(customer) = customer {
            request = request.customer(customer);
        }
        if let Some(after) = starting_after {
            request = request.starting_after(after);
        }
        let page = self.read(&request, "list_subscriptions").await?;
        Ok((page.data.into_iter().map(to_read).collect(), page.has_more))
    }

    /// One page (up to 100) of customers after `starting_after`, and
    /// whether more follow.
    pub async fn list_customers(
        &self,
        starting_after: Option<&str>,
    ) -> Result<(Vec<CustomerRecord>, bool), StripeFailure> {
        let mut request = ListCustomer::new().limit(100);
        if let Some(after) = starting_after {
            request = request.starting_after(after);
        }
        let page = self.read(&request, "list_customers").await?;
        Ok((
            page.data.into_iter().map(CustomerRecord::from).collect(),
            page.has_more,
        ))
    }

    /// One page (up to 100) of completed Checkout Sessions after
    /// `starting_after`, as far as finding their organization needs; and
    /// whether more follow.
    pub async fn list_completed_checkouts(
        &self,
        starting_after: Option<&str>,
    ) -> Result<(Vec<CheckoutSessionObject>, bool), StripeFailure> {
        let mut request = ListCheckoutSession::new()
            .status(CheckoutSessionStatus::Complete)
            .limit(100);
        if let Some(after) = starting_after {
            request = request.starting_after(after);
        }
        let page = self.read(&request, "list_checkout_sessions").await?;
        let sessions = page.data.into_iter().map(|session| CheckoutSessionObject {
            id: session.id.to_string(),
            mode: Some(session.mode.as_str().to_owned()),
            client_reference_id: session.client_reference_id,
            customer: session.customer.map(|c| c.id().to_string()),
            subscription: session.subscription.map(|s| s.id().to_string()),
            metadata: session.metadata.unwrap_or_default(),
            payment_status: Some(session.payment_status.as_str().to_owned()),
            payment_intent: session.payment_intent.map(|p| p.id().to_string()),
        });
        Ok((sessions.collect(), page.has_more))
    }

    /// Reads a customer; `None` when it was deleted.
    pub async fn retrieve_customer(
        &self,
        id: &str,
    ) -> Result<Option<CustomerRecord>, StripeFailure> {
        let customer = self
            .read(&RetrieveCustomer::new(id), "retrieve_customer")
            .await?;
        Ok(match customer {
            RetrieveCustomerReturned::Customer(customer) => Some(customer.into()),
            RetrieveCustomerReturned::DeletedCustomer(_) => None,
        })
    }

    /// The customer a charge belongs to (`None` for a charge with none),
    /// retrying rate limits and server errors with backoff.
    pub async fn retrieve_charge_customer(
        &self,
        id: &str,
    ) -> Result<Option<String>, StripeFailure> {
        let charge = self
            .read(&RetrieveCharge::new(id), "retrieve_charge")
            .await?;
        Ok(charge.customer.map(|customer| customer.id().to_string()))
    }

    /// Reads a subscription's current state, retrying rate limits and
    /// server errors with backoff.
    pub async fn retrieve_subscription(&self, id: &str) -> Result<SubscriptionRead, StripeFailure> {
        let sub = self
            .read(&RetrieveSubscription::new(id), "retrieve_subscription")
            .await?;
        Ok(to_read(sub))
    }
}

/// A subscription as read, stamped with the newest of its own timestamps
/// (created, started, a period begun, canceled, ended, a trial begun, an
/// item added): Stripe's clock showed at least that when it answered,
/// whatever this host's clock says.
fn to_read(sub: stripe_shared::Subscription) -> SubscriptionRead {
    let items = sub.items.data.iter();
    let shown = [Some(sub.created), Some(sub.start_date), sub.canceled_at]
        .into_iter()
        .chain([sub.ended_at, sub.trial_start])
        .flatten()
        .chain(items.flat_map(|i| [i.created, i.current_period_start]))
        .max()
        .unwrap_or_default();
    SubscriptionRead {
        subscription: to_domain(sub),
        read_at_ms: shown.saturating_mul(1000),
    }
}

/// The domain's snapshot of async-stripe's typed subscription.
fn to_domain(sub: stripe_shared::Subscription) -> SubscriptionSnapshot {
    let items = sub
        .items
        .data
        .iter()
        .map(|item| SnapshotItem {
            id: item.id.to_string(),
            price_id: item.price.id.to_string(),
            quantity: item
                .quantity
                .and_then(|q| i64::try_from(q).ok())
                .unwrap_or(1),
        })
        .collect();
    let items_data = &sub.items.data;
    SubscriptionSnapshot {
        id: sub.id.to_string(),
        customer: Some(sub.customer.id().to_string()),
        status: SubscriptionStatus::parse(sub.status.as_str()),
        cancel_at_period_end: sub.cancel_at_period_end,
        current_period_start: items_data.iter().map(|i| i.current_period_start).min(),
        current_period_end: items_data.iter().map(|i| i.current_period_end).max(),
        metadata: sub.metadata.into_iter().collect(),
        items,
    }
}
