//! What the service makes in Stripe: customers, and Checkout and portal
//! sessions.

use std::collections::HashMap;

use stripe::RequestStrategy;
use stripe_billing::billing_portal_session::CreateBillingPortalSession;
use stripe_checkout::checkout_session::{
    CreateCheckoutSession, CreateCheckoutSessionLineItems, CreateCheckoutSessionPaymentIntentData,
    CreateCheckoutSessionSubscriptionData,
};
use stripe_core::customer::{CreateCustomer, UpdateCustomer};
use stripe_shared::CheckoutSessionMode;

use super::{ATTEMPTS, StripeApi, StripeFailure, idempotent};

/// What the caller needs of a new Checkout Session.
#[derive(Debug, Clone)]
pub struct SessionRequest<'a> {
    /// The organization buying.
    pub org_id: &'a str,
    /// The plan bought, for metadata.
    pub plan: &'a str,
    /// The Stripe price.
    pub price_id: &'a str,
    /// Units (seats).
    pub quantity: u64,
    /// The organization's Stripe customer.
    pub customer: &'a str,
    /// Where to send the browser after payment.
    pub success_url: &'a str,
    /// Where to send it on cancel.
    pub cancel_url: &'a str,
    /// Free trial length.
    pub trial_days: Option<u32>,
    /// Whether the page accepts promotion codes.
    pub allow_promotion_codes: Option<bool>,
    /// Sold once (`mode=payment`) rather than by subscription.
    pub once: bool,
}

/// A created Checkout Session.
#[derive(Debug, Clone)]
pub struct Session {
    /// `cs_...`.
    pub id: String,
    /// The hosted page to redirect the browser to.
    pub url: String,
    /// When the session expires (unix seconds).
    pub expires_at: i64,
}

impl StripeApi {
    /// Creates the organization's customer. The idempotency key names the
    /// organization and the attempt, nothing a caller varies (such as an
    /// email), so concurrent first checkouts of one organization get one
    /// customer; the caller moves to a new attempt after a server-side
    /// failure, which Stripe would otherwise replay for a day.
    pub async fn create_customer(
        &self,
        org_id: &str,
        attempt: i64,
    ) -> Result<String, StripeFailure> {
        let request = CreateCustomer::new()
            .metadata(HashMap::from([("org_id".to_owned(), org_id.to_owned())]));
        let key = format!("customer-{org_id}-{attempt}");
        let customer = self
            .send(
                &request,
                idempotent(&key)?,
                "create_customer",
                "refused to create the customer",
            )
            .await?;
        Ok(customer.id.to_string())
    }

    /// Sets the customer's email, which Checkout shows and receipts go to.
    pub async fn set_customer_email(
        &self,
        customer: &str,
        email: &str,
    ) -> Result<(), StripeFailure> {
        let request = UpdateCustomer::new(customer).email(email);
        let retried = RequestStrategy::ExponentialBackoff(ATTEMPTS);
        self.send(
            &request,
            retried,
            "update_customer",
            "refused to set the customer's email",
        )
        .await?;
        Ok(())
    }

    /// Creates a subscription-mode Checkout Session tagged with the
    /// organization and plan, on the session and on the subscription.
    pub async fn create_checkout_session(
        &self,
        req: &SessionRequest<'_>,
    ) -> Result<Session, StripeFailure> {
        let mut metadata = HashMap::from([
            ("org_id".to_owned(), req.org_id.to_owned()),
            ("plan".to_owned(), req.plan.to_owned()),
        ]);
        let mut item = CreateCheckoutSessionLineItems::new();
        item.price = Some(req.price_id.to_owned());
        item.quantity = Some(req.quantity);
        let mut request = CreateCheckoutSession::new()
            .customer(req.customer)
            .client_reference_id(req.org_id)
            .line_items(vec![item])
            .success_url(req.success_url)
            .cancel_url(req.cancel_url);
        request = if req.once {
            metadata.insert("quantity".to_owned(), req.quantity.to_string());
            let mut payment = CreateCheckoutSessionPaymentIntentData::new();
            payment.metadata = Some(metadata.clone());
            request
                .mode(CheckoutSessionMode::Payment)
                .payment_intent_data(payment)
        } else {
            let mut subscription = CreateCheckoutSessionSubscriptionData::new();
            subscription.metadata = Some(metadata.clone());
            subscription.trial_period_days = req.trial_days;
            request
                .mode(CheckoutSessionMode::Subscription)
                .subscription_data(subscription)
        };
        request = request.metadata(metadata);
        if let Some(allow) = req.allow_promotion_codes {
            request = request.allow_promotion_codes(allow);
        }
        let session = self
            .send(
                &request,
                RequestStrategy::ExponentialBackoff(ATTEMPTS),
                "create_checkout_session",
                "refused to create the checkout session",
            )
            .await?;
        let url = session.url.ok_or_else(|| StripeFailure {
            what: "returned a checkout session".into(),
            message: "without a url".into(),
            request_id: None,
            status: None,
        })?;
        Ok(Session {
            id: session.id.to_string(),
            url,
            expires_at: session.expires_at,
        })
    }

    /// Creates a customer portal session (upgrades, downgrades,
    /// cancellation, payment methods) and returns its URL.
    pub async fn create_portal_session(
        &self,
        customer: &str,
        return_url: &str,
    ) -> Result<String, StripeFailure> {
        let session = self
            .send(
                &CreateBillingPortalSession::new()
                    .customer(customer)
                    .return_url(return_url),
                RequestStrategy::ExponentialBackoff(ATTEMPTS),
                "create_portal_session",
                "refused to create the portal session",
            )
            .await?;
        Ok(session.url)
    }
}
