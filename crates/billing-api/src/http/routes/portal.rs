//! `POST /v1/portal/sessions`: a Stripe customer portal URL for an
//! organization that has a Stripe customer.

use actix_web::http::Method;
use actix_web::{HttpResponse, web};
use serde::Deserialize;
use serde_json::json;

use crate::http::AppState;
use crate::http::auth::{Authorized, CheckoutScope};
use crate::http::checkout::open_portal;
use crate::http::error::{ApiError, ErrorBody};
use crate::http::openapi::StripeAnswers;
use crate::http::org_id::OrgId;

/// Mounts the route.
pub fn configure(cfg: &mut web::ServiceConfig) {
    crate::http::mount(cfg, "/v1/portal/sessions", Method::POST, create);
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct PortalRequest {
    #[schema(value_type = String)]
    org_id: OrgId,
    return_url: Option<String>,
}

/// A Stripe customer portal session (upgrades, downgrades, cancellation,
/// payment methods).
#[utoipa::path(post, path = "/v1/portal/sessions", tag = "checkout", security(("bearer" = ["checkout"])),
    request_body = PortalRequest,
    responses(
        (status = 201, description = "`{\"url\": ...}`: redirect the browser there", body = Object),
        (status = 404, description = "The organization has no Stripe customer yet", body = ErrorBody),
        StripeAnswers,
    ))]
#[tracing::instrument(skip_all, fields(org_id = %body.org_id))]
pub(crate) async fn create(
    _: Authorized<CheckoutScope>,
    state: web::Data<AppState>,
    body: web::Json<PortalRequest>,
) -> Result<HttpResponse, ApiError> {
    let req = body.into_inner();
    let url = open_portal(&state, req.org_id, req.return_url.as_deref()).await?;
    Ok(HttpResponse::Created().json(json!({ "url": url })))
}
