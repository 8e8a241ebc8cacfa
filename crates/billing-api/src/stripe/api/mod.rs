//! The calls the service makes to Stripe's API, through async-stripe.
//!
//! `create` holds what the service makes in Stripe (customers, Checkout
//! and portal sessions), `read` what it reads (lists and single objects);
//! this file the client, its failures and the one way requests are sent.

mod create;
mod read;

pub use create::{Session, SessionRequest};
pub use read::CustomerRecord;

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;

use stripe::{Client, ClientBuilder, IdempotencyKey, RequestStrategy, StripeError, StripeRequest};

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
    what: Cow<'static, str>,
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
            .map_err(|e| failure("configuration".into(), e))?;
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
}

impl StripeApi {
    /// Sends a request that changes nothing, retrying rate limits and
    /// server errors with backoff. `operation` names it in the metrics
    /// and says what failed: `list_customers` "could not list customers",
    /// `retrieve_charge` "could not be asked for the charge".
    async fn read<R>(
        &self,
        request: &R,
        operation: &'static str,
    ) -> Result<R::Output, StripeFailure>
    where
        R: StripeRequest,
        R::Output: miniserde::Deserialize,
    {
        let what = match operation.split_once('_') {
            Some(("list", things)) => format!("could not list {}", things.replace('_', " ")),
            Some((_, thing)) => format!("could not be asked for the {}", thing.replace('_', " ")),
            None => format!("could not {operation}"),
        };
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
        what: impl Into<Cow<'static, str>>,
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
        result.map_err(|e| failure(what.into(), e))
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
            what: "idempotency key".into(),
            message: e.to_string(),
            request_id: None,
            status: Some(400),
        })
}

fn failure(what: Cow<'static, str>, error: StripeError) -> StripeFailure {
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
