//! `GET /v1/entitlements/{org_id}` (also `/entitlements/{org_id}`) and
//! `GET /v1/entitlements/{org_id}/features/{feature}`.

use actix_web::http::Method;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, web};
use std::sync::Arc;

use entitlements::{Catalog, EntitlementView};
use serde::{Deserialize, Serialize};

use crate::cache::Answer;
use crate::http::AppState;
use crate::http::auth::ReadScope;
use crate::http::error::{ApiError, ErrorBody};
use crate::http::org_call::OrgCall;
use crate::http::org_id::OrgId;
use crate::wire::{Entitlements, FeatureValue};

/// Mounts the routes.
pub fn configure(cfg: &mut web::ServiceConfig) {
    crate::http::mount(cfg, "/v1/entitlements/{org_id}", Method::GET, get);
    crate::http::mount(cfg, "/entitlements/{org_id}", Method::GET, get);
    crate::http::mount(
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
#[tracing::instrument(level = "debug", skip_all, fields(org_id = %call.org))]
pub(crate) async fn get(
    call: OrgCall<ReadScope>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let answer = current(&call.state, &call.org).await?;
    if matches_etag(&req, &answer.etag) {
        return Ok(HttpResponse::NotModified()
            .insert_header((header::ETAG, answer.etag.clone()))
            .finish());
    }
    Ok(HttpResponse::Ok()
        .insert_header((header::ETAG, answer.etag.clone()))
        .insert_header((header::CACHE_CONTROL, HeaderValue::from_static("no-cache")))
        .content_type(header::ContentType::json())
        .body(answer.body.clone()))
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
#[tracing::instrument(level = "debug", skip_all, fields(org_id = %call.org, feature = %path.feature))]
pub(crate) async fn feature(
    call: OrgCall<ReadScope>,
    path: web::Path<FeaturePath>,
) -> Result<HttpResponse, ApiError> {
    let feature = &path.feature;
    let names = call.state.engine.catalog().zero_features();
    let Some(index) = names.keys().position(|name| name == feature) else {
        return Err(ApiError::NotFound {
            code: "unknown_feature",
            message: format!("no plan defines a feature named {feature:?}"),
        });
    };
    let answer = current(&call.state, &call.org).await?;
    let value = answer.features[index].into();
    Ok(HttpResponse::Ok().json(FeatureAnswer {
        org_id: call.org.as_str(),
        feature,
        value,
    }))
}

/// The organization's answer, from memory or else from the database (and
/// then kept), or 404 when nothing grants and the catalog has no default
/// plan.
async fn current(state: &AppState, org_id: &OrgId) -> Result<Arc<Answer>, ApiError> {
    let now = chrono::Utc::now().timestamp();
    let answer = match state.cache.get(org_id, now) {
        Some(answer) => answer,
        None => {
            let ticket = state.cache.ticket();
            let org = org_id.clone();
            let view = state
                .with_engine(async move |engine| engine.entitlements(org.as_str()).await)
                .await?;
            let answer = Arc::new(answer_of(view, state.engine.catalog())?);
            state.cache.put(org_id, answer.clone(), ticket);
            answer
        }
    };
    if !answer.granted && state.engine.catalog().default_plan().is_none() {
        return Err(ApiError::NotFound {
            code: "no_entitlements",
            message: format!("nothing grants organization {org_id:?} and there is no default plan"),
        });
    }
    Ok(answer)
}

/// The answer as it is sent: the body encoded once, the `ETag`, and the
/// features in the catalog's order for the feature route.
fn answer_of(view: EntitlementView, catalog: &Catalog) -> Result<Answer, ApiError> {
    let etag = format!("\"{}-{:x}\"", view.version, catalog.fingerprint());
    let features = catalog
        .zero_features()
        .iter()
        .map(|(name, zero)| view.features.get(name).copied().unwrap_or(*zero))
        .collect();
    let (version, granted, recheck_at) = (view.version, view.is_granted(), view.recheck_at);
    let body = serde_json::to_vec(&Entitlements::from(view))
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok(Answer {
        version,
        etag: HeaderValue::from_str(&etag).map_err(|e| ApiError::Internal(e.to_string()))?,
        body: body.into(),
        features,
        granted,
        recheck_at,
    })
}

fn matches_etag(req: &HttpRequest, etag: &HeaderValue) -> bool {
    let etag = etag.to_str().unwrap_or_default();
    req.headers()
        .get_all(header::IF_NONE_MATCH)
        .filter_map(|v: &HeaderValue| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|tag| tag.trim().trim_start_matches("W/"))
        .any(|tag| tag == "*" || tag == etag)
}
