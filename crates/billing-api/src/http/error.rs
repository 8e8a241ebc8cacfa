//! The API's one error type and its one mapping to HTTP.
//!
//! Every error answers `{"error": "<code>", "message": "<sentence>"}`.
//! Server-side failures say nothing internal in the body; their cause chain
//! goes to the log. A database that cannot be reached answers 503 so that
//! Stripe and other callers retry.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;

use crate::stripe::api::StripeFailure;
use crate::stripe::signature::SignatureError;

/// Every way a request can fail.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// A field is missing or wrong; the message names it.
    #[error("{0}")]
    InvalidRequest(String),
    /// The webhook signature does not check out.
    #[error(transparent)]
    Signature(#[from] SignatureError),
    /// The webhook body is not a Stripe event.
    #[error("{0}")]
    MalformedEvent(String),
    /// The body is larger than the route accepts.
    #[error("the request body is larger than {0} bytes")]
    PayloadTooLarge(usize),
    /// The body did not arrive within the deadline (milliseconds).
    #[error("the request body did not arrive within {0} ms")]
    BodyTimeout(u64),
    /// No bearer token, or one that is not configured.
    #[error("a valid bearer token is required")]
    Unauthorized,
    /// Too many unknown tokens came from the client's address; it may try
    /// again after this many seconds.
    #[error("too many unknown tokens from this address; retry in {0} s")]
    TooManyAttempts(u64),
    /// The token lacks the scope the route needs.
    #[error("this token lacks the {0} scope")]
    Forbidden(&'static str),
    /// A named thing does not exist; `code` says which kind.
    #[error("{message}")]
    NotFound {
        /// `unknown_plan`, `unknown_price`, `unknown_feature`, ...
        code: &'static str,
        /// What was not found.
        message: String,
    },
    /// The path is served, but not for this method.
    #[error("this path answers only {0}")]
    MethodNotAllowed(String),
    /// The organization already holds a granting subscription.
    #[error("organization {0} already has an active subscription")]
    AlreadySubscribed(String),
    /// The grant was revoked before.
    #[error("grant {0} is already revoked")]
    AlreadyRevoked(String),
    /// The Stripe customer belongs to another organization.
    #[error("customer {customer} belongs to organization {owner}")]
    CustomerTaken {
        /// The customer.
        customer: String,
        /// Its organization.
        owner: String,
    },
    /// Stripe refused or failed.
    #[error(transparent)]
    Stripe(#[from] StripeFailure),
    /// Stripe could not be asked for state the request needs; retry later.
    #[error(
        "Stripe could not be asked for what the event needs; nothing was recorded, retry later: {0}"
    )]
    StripeUnavailable(String),
    /// No Stripe key is configured.
    #[error("Stripe is not configured on this service (stripe.secret_key)")]
    StripeNotConfigured,
    /// Storage failed.
    #[error(transparent)]
    Storage(entitlements::Error),
    /// A fault of the service itself.
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<entitlements::Error> for ApiError {
    fn from(error: entitlements::Error) -> Self {
        match error {
            entitlements::Error::SourceUnavailable(reason) => ApiError::StripeUnavailable(reason),
            entitlements::Error::InvalidGrant(message) => ApiError::InvalidRequest(message),
            entitlements::Error::UnknownGrant(id) => ApiError::NotFound {
                code: "unknown_grant",
                message: format!("the organization has no grant {id:?}"),
            },
            entitlements::Error::GrantRevoked(id) => ApiError::AlreadyRevoked(id),
            entitlements::Error::CustomerTaken { customer, owner } => {
                ApiError::CustomerTaken { customer, owner }
            }
            entitlements::Error::BadCursor(message) => ApiError::InvalidRequest(message),
            other => ApiError::Storage(other),
        }
    }
}

/// The body of every error answer.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ErrorBody<'a> {
    /// A machine-readable code such as `invalid_request`.
    error: &'a str,
    /// A sentence for people.
    message: String,
}

impl ApiError {
    /// The answer's status and machine-readable code: the one place both
    /// are decided.
    fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            ApiError::InvalidRequest(_) => (StatusCode::BAD_REQUEST, "invalid_request"),
            ApiError::Signature(e) => (StatusCode::BAD_REQUEST, e.code()),
            ApiError::MalformedEvent(_) => (StatusCode::BAD_REQUEST, "malformed_event"),
            ApiError::PayloadTooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
            ApiError::BodyTimeout(_) => (StatusCode::REQUEST_TIMEOUT, "body_timeout"),
            ApiError::Unauthorized => (StatusCode::UNAUTHORIZED, "unauthorized"),
            ApiError::TooManyAttempts(_) => (StatusCode::TOO_MANY_REQUESTS, "too_many_attempts"),
            ApiError::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
            ApiError::NotFound { code, .. } => (StatusCode::NOT_FOUND, code),
            ApiError::MethodNotAllowed(_) => (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"),
            ApiError::AlreadySubscribed(_) => (StatusCode::CONFLICT, "already_subscribed"),
            ApiError::AlreadyRevoked(_) => (StatusCode::CONFLICT, "already_revoked"),
            ApiError::CustomerTaken { .. } => (StatusCode::CONFLICT, "customer_taken"),
            ApiError::Stripe(_) => (StatusCode::BAD_GATEWAY, "stripe_error"),
            ApiError::StripeUnavailable(_) => {
                (StatusCode::SERVICE_UNAVAILABLE, "stripe_unavailable")
            }
            ApiError::StripeNotConfigured => {
                (StatusCode::SERVICE_UNAVAILABLE, "stripe_not_configured")
            }
            ApiError::Storage(e) if e.is_transient() => {
                (StatusCode::SERVICE_UNAVAILABLE, "storage_unavailable")
            }
            ApiError::Storage(_) | ApiError::Internal(_) => {
                (StatusCode::INTERNAL_SERVER_ERROR, "internal_error")
            }
        }
    }
}

impl ApiError {
    /// Logs the error and says what the client is told: its status, its
    /// code and a message that never holds internals (the JSON API and the
    /// admin console's pages answer the same).
    pub(crate) fn report(&self) -> (StatusCode, &'static str, String) {
        let (status, code) = self.status_and_code();
        let message = match self {
            ApiError::Storage(e) if e.is_transient() => {
                "storage is unavailable; nothing was changed, retry later".to_owned()
            }
            ApiError::Storage(_) | ApiError::Internal(_) => {
                "internal error; nothing was changed".to_owned()
            }
            other => other.to_string(),
        };
        if status.is_server_error() {
            tracing::error!(error = ?self, code, "request failed");
        } else {
            tracing::info!(code, %message, "request refused");
        }
        (status, code, message)
    }
}

impl ApiError {
    /// The refusal of an address whose allowance comes back after `wait`.
    pub fn too_many_attempts(wait: std::time::Duration) -> Self {
        ApiError::TooManyAttempts(wait.as_secs() + u64::from(wait.subsec_nanos() > 0))
    }

    /// Seconds after which the client may try again, when it is told.
    pub(crate) fn retry_after(&self) -> Option<u64> {
        match self {
            ApiError::TooManyAttempts(secs) => Some(*secs),
            _ => None,
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status_and_code().0
    }

    fn error_response(&self) -> HttpResponse {
        let (status, code, message) = self.report();
        let mut response = HttpResponse::build(status);
        match self {
            ApiError::Unauthorized => {
                response.insert_header(("WWW-Authenticate", "Bearer"));
            }
            ApiError::MethodNotAllowed(allow) => {
                response.insert_header(("Allow", allow.as_str()));
            }
            _ => {}
        }
        if let Some(secs) = self.retry_after() {
            response.insert_header(("Retry-After", secs));
        }
        response.json(ErrorBody {
            error: code,
            message,
        })
    }
}
