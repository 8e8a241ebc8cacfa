//! `GET /v1/changes`: every change of every organization's entitlements,
//! oldest first, for services that would rather pull than be called; a
//! request may wait for the next change (long poll).

use std::time::Duration;

use actix_web::http::Method;
use actix_web::{HttpResponse, web};
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use crate::http::AppState;
use crate::http::auth::{Authorized, ReadScope};
use crate::http::error::{ApiError, ErrorBody};
use crate::wire::FeedChange;

/// Mounts the route.
pub fn configure(cfg: &mut web::ServiceConfig) {
    crate::http::mount(cfg, "/v1/changes", Method::GET, list);
}

const DEFAULT_LIMIT: usize = 100;
pub(crate) const MAX_LIMIT: usize = 500;
/// A cursor: a feed position, `0` before the first change.
pub(crate) const CURSOR_PATTERN: &str = "^(0|[1-9][0-9]{0,17})$";
/// How often a waiting request looks again for changes made on other
/// replicas, when nothing here woke it first.
const RECHECK: Duration = Duration::from_millis(250);

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FeedQuery {
    after: Option<String>,
    limit: Option<usize>,
    wait: Option<u64>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct ChangesAnswer {
    changes: Vec<FeedChange>,
    /// Pass as `after` to read on; the same cursor when nothing followed.
    next: String,
}

/// Every change of every organization's entitlements after a cursor,
/// oldest first. Following `next` sees each change exactly once, each
/// organization's in version order, however transactions commit.
#[utoipa::path(get, path = "/v1/changes", tag = "entitlements", security(("bearer" = ["entitlements:read"])),
    params(
        ("after" = Option<String>, Query, description = "`next` of the previous page; without it, the oldest change of the last `notify.feed_retention_days`"),
        ("limit" = Option<usize>, Query, description = "Changes per page, 1 to 500 (100)"),
        ("wait" = Option<u64>, Query, description = "Seconds to wait for a change when none follows the cursor, 0 to 30 (0)"),
    ),
    responses(
        (status = 200, description = "The changes after the cursor, possibly none", body = ChangesAnswer),
        (status = 400, description = "Invalid limit or wait, or a cursor that is malformed, is past the newest change, or some of whose unread changes were deleted (`retention.changes_days`)", body = ErrorBody),
    ))]
#[tracing::instrument(skip_all)]
pub(crate) async fn list(
    _: Authorized<ReadScope>,
    state: web::Data<AppState>,
    query: web::Query<FeedQuery>,
) -> Result<HttpResponse, ApiError> {
    let limit = super::limit(query.limit, DEFAULT_LIMIT, MAX_LIMIT)?;
    let max_wait = state.settings.notify.max_wait_secs;
    let wait = query.wait.unwrap_or(0);
    if wait > max_wait {
        return Err(ApiError::InvalidRequest(format!(
            "wait: must be between 0 and {max_wait}"
        )));
    }
    let after = match query.after.as_deref() {
        None => 0,
        Some(cursor) => parse_cursor(cursor).ok_or_else(|| {
            ApiError::InvalidRequest("after: not a cursor this service issued".into())
        })?,
    };
    let start = i64::from(state.settings.notify.feed_retention_days) * 86_400;
    let deadline = Instant::now() + Duration::from_secs(wait);
    loop {
        let page = state
            .with_engine(async move |engine| engine.changes(after, limit, start).await)
            .await?;
        if !page.changes.is_empty() || Instant::now() >= deadline {
            return Ok(HttpResponse::Ok().json(ChangesAnswer {
                next: page.next.to_string(),
                changes: page.changes.into_iter().map(FeedChange::from).collect(),
            }));
        }
        let until = deadline.min(Instant::now() + RECHECK);
        let _ = tokio::time::timeout_at(until, state.cache.next_change()).await;
    }
}

fn parse_cursor(cursor: &str) -> Option<i64> {
    let plain = cursor == "0" || (!cursor.starts_with('0') && cursor.len() <= 18);
    if !plain || !cursor.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    cursor.parse().ok()
}
