//! `GET /v1/orgs/{org_id}/history`: an organization's events and
//! entitlement changes, newest first, a page at a time.

use actix_web::http::Method;
use actix_web::{HttpResponse, web};
use entitlements::history::Cursor;
use serde::{Deserialize, Serialize};

use crate::http::auth::AdminScope;
use crate::http::error::{ApiError, ErrorBody};
use crate::http::org_call::OrgCall;
use crate::wire::HistoryEntry;

/// Mounts the route.
pub fn configure(cfg: &mut web::ServiceConfig) {
    crate::http::mount(cfg, "/v1/orgs/{org_id}/history", Method::GET, list);
}

const DEFAULT_LIMIT: usize = 50;
pub(crate) const MAX_LIMIT: usize = 200;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Page {
    limit: Option<usize>,
    before: Option<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct HistoryAnswer<'a> {
    org_id: &'a str,
    entries: Vec<HistoryEntry>,
    /// Pass as `before` for the next page; null on the last page.
    next: Option<String>,
}

/// An organization's events and entitlement changes, newest first.
#[utoipa::path(get, path = "/v1/orgs/{org_id}/history", tag = "operations", security(("bearer" = ["admin"])),
    params(
        ("org_id" = String, Path, description = "The organization"),
        ("limit" = Option<usize>, Query, description = "Entries per page, 1 to 200 (50)"),
        ("before" = Option<String>, Query, description = "`next` of the previous page"),
    ),
    responses(
        (status = 200, description = "One page", body = HistoryAnswer),
        (status = 400, description = "Invalid organization id, limit or cursor", body = ErrorBody),
    ))]
#[tracing::instrument(skip_all, fields(org_id = %call.org))]
pub(crate) async fn list(
    call: OrgCall<AdminScope>,
    page: web::Query<Page>,
) -> Result<HttpResponse, ApiError> {
    let limit = super::limit(page.limit, DEFAULT_LIMIT, MAX_LIMIT)?;
    let before = match &page.before {
        Some(token) => Some(Cursor::decode(token).ok_or_else(|| {
            ApiError::InvalidRequest("before: not a cursor this service issued".into())
        })?),
        None => None,
    };
    let history = call
        .run(async move |engine, org| engine.history(&org, before.as_ref(), limit).await)
        .await?;
    Ok(HttpResponse::Ok().json(HistoryAnswer {
        org_id: call.org.as_str(),
        entries: history
            .entries
            .into_iter()
            .map(HistoryEntry::from)
            .collect(),
        next: history.next.map(|cursor| cursor.encode()),
    }))
}
