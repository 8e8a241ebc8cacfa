//! `POST /v1/checkout/sessions`: a Stripe Checkout URL for an organization.

use actix_web::http::Method;
use actix_web::{HttpResponse, web};
use serde::Serialize;

use crate::http::AppState;
use crate::http::auth::{Authorized, CheckoutScope};
use crate::http::checkout::{CheckoutRequest, create_session};
use crate::http::error::{ApiError, ErrorBody};
use crate::http::openapi::StripeAnswers;

/// Mounts the route.
pub fn configure(cfg: &mut web::ServiceConfig) {
    crate::http::mount(cfg, "/v1/checkout/sessions", Method::POST, create);
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct CheckoutResponse {
    id: String,
    url: String,
    expires_at: i64,
}

/// A Stripe Checkout Session in subscription mode for an organization.
#[utoipa::path(post, path = "/v1/checkout/sessions", tag = "checkout", security(("bearer" = ["checkout"])),
    request_body = CheckoutRequest,
    responses(
        (status = 201, description = "Redirect the browser to `url`", body = CheckoutResponse),
        (status = 404, description = "Unknown plan or price", body = ErrorBody),
        (status = 409, description = "The organization already has a granting subscription", body = ErrorBody),
        StripeAnswers,
    ))]
#[tracing::instrument(skip_all, fields(org_id = %body.org_id))]
pub(crate) async fn create(
    _: Authorized<CheckoutScope>,
    state: web::Data<AppState>,
    body: web::Json<CheckoutRequest>,
) -> Result<HttpResponse, ApiError> {
    let (session, plan) = create_session(&state, body.into_inner()).await?;
    tracing::info!(session_id = %session.id, plan = %plan, "checkout session created");
    Ok(HttpResponse::Created().json(CheckoutResponse {
        id: session.id,
        url: session.url,
        expires_at: session.expires_at,
    }))
}
