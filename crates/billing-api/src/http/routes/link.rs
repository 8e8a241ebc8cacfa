//! `POST /v1/orgs/{org_id}/customer`: links a Stripe customer to an
//! organization by hand, for customers whose events named none.

use actix_web::http::Method;
use actix_web::{HttpResponse, web};
use serde::{Deserialize, Serialize};

use crate::http::auth::AdminScope;
use crate::http::error::{ApiError, ErrorBody};
use crate::http::org_call::OrgCall;
use crate::wire::Entitlements;

/// Mounts the route.
pub fn configure(cfg: &mut web::ServiceConfig) {
    crate::http::mount(cfg, "/v1/orgs/{org_id}/customer", Method::POST, link);
}

/// The customer to link.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct LinkRequest {
    /// A Stripe customer id, `cus_...`.
    #[schema(pattern = "^cus_[A-Za-z0-9_]{1,250}$")]
    customer_id: String,
}

/// What linking did, and the entitlements after it.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct LinkAnswer {
    org_id: String,
    customer_id: String,
    /// The customer's subscriptions that now belong to the organization.
    subscriptions_linked: usize,
    /// The customer's events that waited as `unlinked`, oldest first; now
    /// the organization's and applied.
    events_applied: Vec<String>,
    entitlements: Entitlements,
}

/// Links a Stripe customer to the organization: its subscriptions and its
/// events waiting as `unlinked` become the organization's, applied in
/// order. Linking the same customer again changes nothing more.
#[utoipa::path(post, path = "/v1/orgs/{org_id}/customer", tag = "grants", security(("bearer" = ["admin"])),
    params(("org_id" = String, Path, description = "The organization")),
    request_body = LinkRequest,
    responses(
        (status = 200, description = "Linked; the organization's entitlements after it", body = LinkAnswer),
        (status = 400, description = "Not a customer id", body = ErrorBody),
        (status = 409, description = "The customer belongs to another organization", body = ErrorBody),
    ))]
#[tracing::instrument(skip_all, fields(org_id = %call.org))]
pub(crate) async fn link(
    call: OrgCall<AdminScope>,
    body: web::Json<LinkRequest>,
) -> Result<HttpResponse, ApiError> {
    let customer = body.into_inner().customer_id;
    let rest = customer.strip_prefix("cus_").unwrap_or_default();
    let valid = (1..=250).contains(&rest.len())
        && rest.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !valid {
        return Err(ApiError::InvalidRequest(
            "customer_id: a Stripe customer id (cus_...)".into(),
        ));
    }
    let (wanted, by) = (customer.clone(), call.token.name.clone());
    let (linked, view) = call
        .run(async move |engine, org| {
            let linked = engine.link_customer(&org, &wanted, &by).await?;
            Ok((linked, engine.entitlements(&org).await?))
        })
        .await?;
    Ok(HttpResponse::Ok().json(LinkAnswer {
        org_id: call.org.to_string(),
        customer_id: customer,
        subscriptions_linked: linked.subscriptions,
        events_applied: linked.events,
        entitlements: Entitlements::from(view),
    }))
}
