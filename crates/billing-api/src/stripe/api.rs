//! The calls the service makes to Stripe's API, through async-stripe.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use entitlements::event::{CheckoutSessionObject, Metadata};
use entitlements::{SnapshotItem, SubscriptionRead, SubscriptionSnapshot, SubscriptionStatus};
use stripe::{Client, ClientBuilder, IdempotencyKey, RequestStrategy, StripeError, StripeRequest};
use stripe_billing::billing_portal_session::CreateBillingPortalSession;
use stripe_billing::subscription::{
    ListSubscription, ListSubscriptionStatus, RetrieveSubscription,
};
use stripe_checkout::checkout_session::{
    CreateCheckoutSession, CreateCheckoutSessionLineItems, CreateCheckoutSessionPaymentIntentData,
    CreateCheckoutSessionSubscriptionData, ListCheckoutSession,
};
use stripe_core::charge::RetrieveCharge;
use stripe_core::customer::{
    CreateCustomer, ListCustomer, RetrieveCustomer, RetrieveCustomerReturned, UpdateCustomer,
};
use stripe_shared::{CheckoutSessionMode, CheckoutSessionStatus};

use crate::metrics::Metrics;
use crate::stripe::rate_limit::RateLimiter;

/// Attempts per call; retries (on 429 and 5xx, with exponential backoff
/// from one second) reuse one idempotency key.
const ATTEMPTS: u32 = 3;

/// A client for the Stripe API.
#[derive(Clone)]
pub struct StripeApi {
    client: Client,
    metrics: Arc<Metrics>,
    limiter: Arc<RateLimiter>,
}

/// Stripe refused the request or could not be reached.
#[derive(Debug, Clone, thiserror::Error)]
#[error("Stripe {what}: {message}{}", request_id.as_ref().map(|id| format!(" (request {id})")).unwrap_or_default())]
pub struct StripeFailure {
    what: &'static str,
    message: String,
    request_id: Option<String>,
    /// Stripe's HTTP status; none when Stripe was not reached.
    status: Option<u16>,
}

impl StripeFailure {
    /// Whether the failure is Stripe's or the network's (5xx, a timeout,
    /// no connection) rather than a refusal of the request.
    pub fn is_server_side(&self) -> bool {
        self.status.is_none_or(|status| status >= 500)
    }

    /// Whether Stripe will give the same refusal however often it is
    /// asked: the object does not exist (404) or the key may not read it
    /// (403).
    pub fn is_permanent(&self) -> bool {
        matches!(self.status, Some(403 | 404))
    }
}

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
    /// A client for `secret_key` against `api_base` (Stripe, stripe-mock or
    /// a test server), within Stripe's rate limit for the key.
    pub fn new(
        secret_key: &str,
        api_base: &str,
        metrics: Arc<Metrics>,
    ) -> Result<Self, StripeFailure> {
        let base = if api_base.ends_with('/') {
            api_base.to_owned()
        } else {
            format!("{api_base}/")
        };
        let client = ClientBuilder::new(secret_key)
            .url(base)
            .timeout(Duration::from_secs(20))
            .build()
            .map_err(|e| failure("configuration", e))?;
        let limiter = Arc::new(RateLimiter::for_key(secret_key));
        Ok(Self {
            client,
            metrics,
            limiter,
        })
    }

    /// The same client at most `per_second` calls a second (an account
    /// whose limit Stripe raised, or a test server); 0 keeps the key's.
    pub fn with_rate_limit(mut self, per_second: u32) -> Self {
        if per_second > 0 {
            self.limiter = Arc::new(RateLimiter::new(per_second));
        }
        self
    }

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
            what: "returned a checkout session",
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
}

impl StripeApi {
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
        let page = self
            .read(
                &request,
                "list_subscriptions",
                "could not list subscriptions",
            )
            .await?;
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
        let page = self
            .read(&request, "list_customers", "could not list customers")
            .await?;
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
        let page = self
            .read(
                &request,
                "list_checkout_sessions",
                "could not list checkout sessions",
            )
            .await?;
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
            .read(
                &RetrieveCustomer::new(id),
                "retrieve_customer",
                "could not be asked for the customer",
            )
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
            .read(
                &RetrieveCharge::new(id),
                "retrieve_charge",
                "could not be asked for the charge",
            )
            .await?;
        Ok(charge.customer.map(|customer| customer.id().to_string()))
    }

    /// Reads a subscription's current state, retrying rate limits and
    /// server errors with backoff.
    pub async fn retrieve_subscription(&self, id: &str) -> Result<SubscriptionRead, StripeFailure> {
        let sub = self
            .read(
                &RetrieveSubscription::new(id),
                "retrieve_subscription",
                "could not be asked for the subscription",
            )
            .await?;
        Ok(to_read(sub))
    }
}

impl StripeApi {
    /// Sends a request that changes nothing, retrying rate limits and
    /// server errors with backoff.
    async fn read<R>(
        &self,
        request: &R,
        operation: &'static str,
        what: &'static str,
    ) -> Result<R::Output, StripeFailure>
    where
        R: StripeRequest,
        R::Output: miniserde::Deserialize,
    {
        let strategy = RequestStrategy::ExponentialBackoff(ATTEMPTS);
        self.send(request, strategy, operation, what).await
    }

    /// Sends `request` with `strategy`, counts the call as `operation` in
    /// the metrics, and on failure says `what` Stripe did ("refused to
    /// create the customer").
    async fn send<R>(
        &self,
        request: &R,
        strategy: RequestStrategy,
        operation: &'static str,
        what: &'static str,
    ) -> Result<R::Output, StripeFailure>
    where
        R: StripeRequest,
        R::Output: miniserde::Deserialize,
    {
        self.limiter.turn().await;
        let result = request
            .customize()
            .request_strategy(strategy)
            .send(&self.client)
            .await;
        self.metrics.stripe_call(operation, result.is_ok());
        result.map_err(|e| failure(what, e))
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

fn idempotent(key: &str) -> Result<RequestStrategy, StripeFailure> {
    // Stripe keys are at most 255 characters; long org ids are hashed.
    let key = if key.len() <= 255 {
        key.to_owned()
    } else {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(key.as_bytes()))
    };
    IdempotencyKey::new(key)
        .map(RequestStrategy::Idempotent)
        .map_err(|e| StripeFailure {
            what: "idempotency key",
            message: e.to_string(),
            request_id: None,
            status: Some(400),
        })
}

fn failure(what: &'static str, error: StripeError) -> StripeFailure {
    match error {
        StripeError::Stripe(api, status) => StripeFailure {
            what,
            message: format!(
                "{} (HTTP {status})",
                api.message
                    .clone()
                    .unwrap_or_else(|| api.type_.as_str().to_owned())
            ),
            request_id: api.request_log_url.as_deref().and_then(request_id_of),
            status: Some(status),
        },
        other => StripeFailure {
            what,
            message: other.to_string(),
            request_id: None,
            status: None,
        },
    }
}

/// Stripe's request log URL ends in the request id (`req_...`).
fn request_id_of(log_url: &str) -> Option<String> {
    log_url
        .rsplit(['/', '?', '='])
        .find(|part| part.starts_with("req_"))
        .map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_request_id_is_read_from_the_log_url() {
        assert_eq!(
            request_id_of("https://dashboard.stripe.com/test/logs/req_abc123?t=1"),
            Some("req_abc123".into())
        );
        assert_eq!(request_id_of("https://dashboard.stripe.com/logs"), None);
    }
}
