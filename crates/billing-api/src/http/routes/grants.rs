//! `/v1/orgs/{org_id}/grants`: access given by hand, listed and revoked.

use actix_web::http::Method;
use actix_web::{HttpResponse, web};
use chrono::{DateTime, Utc};
use entitlements::grants::GrantRequest;
use serde::Deserialize;

use crate::http::auth::AdminScope;
use crate::http::error::{ApiError, ErrorBody};
use crate::http::org_call::OrgCall;
use crate::wire::{GrantAnswer, GrantList};

/// Mounts the routes.
pub fn configure(cfg: &mut web::ServiceConfig) {
    crate::http::serve(
        cfg,
        "/v1/orgs/{org_id}/grants",
        &[Method::GET, Method::POST],
        |resource| {
            resource
                .route(web::get().to(list))
                .route(web::post().to(create))
        },
    );
    crate::http::mount(
        cfg,
        "/v1/orgs/{org_id}/grants/{grant_id}",
        Method::DELETE,
        revoke,
    );
}

/// A grant to give: a plan or features, exactly one.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewGrant {
    /// A catalog plan.
    plan: Option<String>,
    /// Features by name: `true`/`false` or a whole number.
    #[schema(value_type = Option<Object>)]
    features: Option<serde_json::Map<String, serde_json::Value>>,
    /// Scales the plan's per-unit features (plan grants only).
    quantity: Option<i64>,
    /// When it stops granting; absent: never.
    expires_at: Option<DateTime<Utc>>,
    /// Why, for the audit trail (at most 500 characters).
    reason: Option<String>,
}

/// Gives the organization a grant; its entitlements change at once.
#[utoipa::path(post, path = "/v1/orgs/{org_id}/grants", tag = "grants", security(("bearer" = ["admin"])),
    params(("org_id" = String, Path, description = "The organization")),
    request_body = NewGrant,
    responses((status = 201, description = "The grant", body = GrantAnswer)))]
#[tracing::instrument(skip_all, fields(org_id = %call.org))]
pub(crate) async fn create(
    call: OrgCall<AdminScope>,
    body: web::Json<NewGrant>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let request = GrantRequest {
        plan: body.plan,
        features: body.features,
        quantity: body.quantity,
        expires_at: body.expires_at.map(|at| at.timestamp()),
        reason: body.reason,
    };
    let by = call.token.name.clone();
    let grant = call
        .run(async move |engine, org| engine.grant(&org, request, &by).await)
        .await?;
    let now = Utc::now().timestamp();
    Ok(HttpResponse::Created().json(GrantAnswer::new(grant, now)))
}

/// The organization's grants.
#[utoipa::path(get, path = "/v1/orgs/{org_id}/grants", tag = "grants", security(("bearer" = ["admin"])),
    params(("org_id" = String, Path, description = "The organization")),
    responses((status = 200, description = "Newest first", body = GrantList)))]
#[tracing::instrument(skip_all, fields(org_id = %call.org))]
pub(crate) async fn list(call: OrgCall<AdminScope>) -> Result<HttpResponse, ApiError> {
    let grants = call
        .run(async move |engine, org| engine.grants(&org).await)
        .await?;
    Ok(HttpResponse::Ok().json(GrantList::new(grants, Utc::now().timestamp())))
}

/// The grant segment of the revoke route's path.
#[derive(Deserialize)]
pub(crate) struct GrantPath {
    grant_id: String,
}

/// Revokes a grant; the record stays for audit.
#[utoipa::path(delete, path = "/v1/orgs/{org_id}/grants/{grant_id}", tag = "grants", security(("bearer" = ["admin"])),
    params(("org_id" = String, Path, description = "The organization"), ("grant_id" = String, Path, description = "The grant")),
    responses(
        (status = 204, description = "Revoked"),
        (status = 404, description = "The organization has no such grant", body = ErrorBody),
        (status = 409, description = "Already revoked", body = ErrorBody),
    ))]
#[tracing::instrument(skip_all, fields(org_id = %call.org, grant_id = %path.grant_id))]
pub(crate) async fn revoke(
    call: OrgCall<AdminScope>,
    path: web::Path<GrantPath>,
) -> Result<HttpResponse, ApiError> {
    let (id, by) = (path.into_inner().grant_id, call.token.name.clone());
    call.run(async move |engine, org| engine.revoke_grant(&org, &id, &by).await)
        .await?;
    Ok(HttpResponse::NoContent().finish())
}
