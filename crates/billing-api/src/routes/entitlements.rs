//! `GET /v1/entitlements/{org_id}` (also `/entitlements/{org_id}`) and
//! `GET /v1/entitlements/{org_id}/features/{feature}`.

use actix_web::http::Method;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, web};
use entitlements::EntitlementView;
use serde::{Deserialize, Serialize};

use crate::auth::{Authorized, ReadScope};
use crate::error::{ApiError, ErrorBody};
use crate::org_id::OrgId;
use crate::startup::AppState;
use crate::wire::{Entitlements, FeatureValue};

/// Mounts the routes.
pub fn configure(cfg: &mut web::ServiceConfig) {
    super::mount(cfg, "/v1/entitlements/{org_id}", Method::GET, get);
    super::mount(cfg, "/entitlements/{org_id}", Method::GET, get);
    super::mount(
        cfg,
        "/v1/entitlements/{org_id}/features/{feature}",
        Method::GET,
        feature,
    );
}

/// An organization's entitlements (also served at `/entitlements/{org_id}`).
#[utoipa::path(get, path = "/v1/entitlements/{org_id}", tag = "entitlements", security(("bearer" = ["entitlements:read"])),
    params(("org_id" = String, Path, description = "The organization")),
    responses(
        (status = 200, description = "The entitlements; `ETag` carries the version", body = Entitlements),
        (status = 304, description = "Unchanged since the `If-None-Match` ETag"),
        (status = 404, description = "Nothing grants and the catalog has no default plan", body = ErrorBody),
    ))]
#[tracing::instrument(skip_all, fields(org_id = %org))]
pub(crate) async fn get(
    _: Authorized<ReadScope>,
    org: OrgId,
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let view = current(&state, &org).await?;
    let etag = format!(
        "\"{}-{:x}\"",
        view.version,
        state.engine.catalog().fingerprint()
    );
    if matches_etag(&req, &etag) {
        return Ok(HttpResponse::NotModified()
            .insert_header((header::ETAG, etag))
            .finish());
    }
    Ok(HttpResponse::Ok()
        .insert_header((header::ETAG, etag))
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .json(Entitlements::from(view)))
}

/// The feature segment of the feature route's path.
#[derive(Deserialize)]
pub(crate) struct FeaturePath {
    feature: String,
}

#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct FeatureAnswer<'a> {
    org_id: &'a str,
    feature: &'a str,
    value: FeatureValue,
}

/// One feature's value for an organization.
#[utoipa::path(get, path = "/v1/entitlements/{org_id}/features/{feature}", tag = "entitlements",
    security(("bearer" = ["entitlements:read"])),
    params(("org_id" = String, Path, description = "The organization"), ("feature" = String, Path, description = "A feature of the catalog")),
    responses(
        (status = 200, description = "The value", body = FeatureAnswer),
        (status = 404, description = "No plan defines the feature, or nothing grants and the catalog has no default plan", body = ErrorBody),
    ))]
#[tracing::instrument(skip_all, fields(org_id = %org, feature = %path.feature))]
pub(crate) async fn feature(
    _: Authorized<ReadScope>,
    org: OrgId,
    state: web::Data<AppState>,
    path: web::Path<FeaturePath>,
) -> Result<HttpResponse, ApiError> {
    let feature = &path.feature;
    let Some(zero) = state.engine.catalog().zero_features().get(feature).copied() else {
        return Err(ApiError::NotFound {
            code: "unknown_feature",
            message: format!("no plan defines a feature named {feature:?}"),
        });
    };
    let view = current(&state, &org).await?;
    let value = view.features.get(feature).copied().unwrap_or(zero).into();
    Ok(HttpResponse::Ok().json(FeatureAnswer {
        org_id: org.as_str(),
        feature,
        value,
    }))
}

/// The organization's entitlements, or 404 when nothing grants and the
/// catalog has no default plan.
async fn current(state: &AppState, org_id: &OrgId) -> Result<EntitlementView, ApiError> {
    let org = org_id.clone();
    let view = state
        .with_engine(async move |engine| engine.entitlements(org.as_str()).await)
        .await?;
    if !view.is_granted() && state.engine.catalog().default_plan().is_none() {
        return Err(ApiError::NotFound {
            code: "no_entitlements",
            message: format!("nothing grants organization {org_id:?} and there is no default plan"),
        });
    }
    Ok(view)
}

fn matches_etag(req: &HttpRequest, etag: &str) -> bool {
    req.headers()
        .get_all(header::IF_NONE_MATCH)
        .filter_map(|v: &HeaderValue| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|tag| tag.trim().trim_start_matches("W/"))
        .any(|tag| tag == "*" || tag == etag)
}
