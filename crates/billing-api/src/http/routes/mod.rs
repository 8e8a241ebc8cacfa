//! HTTP routes, one module per group, each mounted by `configure`.

pub(crate) mod changes;
pub(crate) mod checkout;
pub(crate) mod entitlements;
pub(crate) mod grants;
pub(crate) mod history;
pub(crate) mod link;
pub(crate) mod operations;
pub(crate) mod portal;
pub(crate) mod webhooks;

use actix_web::error::{JsonPayloadError, QueryPayloadError};
use actix_web::{HttpRequest, HttpResponse, web};

use crate::http::error::ApiError;

/// Mounts every group of the JSON API.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.configure(changes::configure)
        .configure(checkout::configure)
        .configure(entitlements::configure)
        .configure(grants::configure)
        .configure(history::configure)
        .configure(link::configure)
        .configure(operations::configure)
        .configure(portal::configure)
        .configure(webhooks::configure);
}

/// What a path that no route serves answers.
pub async fn not_found(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    Err(ApiError::NotFound {
        code: "not_found",
        message: format!("no route serves {}", req.path()),
    })
}

/// The page size asked for, `default` when none was, refused unless
/// between 1 and `max`.
fn limit(asked: Option<usize>, default: usize, max: usize) -> Result<usize, ApiError> {
    let limit = asked.unwrap_or(default);
    if !(1..=max).contains(&limit) {
        return Err(ApiError::InvalidRequest(format!(
            "limit: must be between 1 and {max}"
        )));
    }
    Ok(limit)
}

/// Turns a query string the extractor refused into our error shape.
pub fn query_error(error: QueryPayloadError, _: &HttpRequest) -> actix_web::Error {
    ApiError::InvalidRequest(format!("invalid query string: {error}")).into()
}

/// Turns a JSON body the extractor refused into our error shape.
pub fn json_error(error: JsonPayloadError, _: &HttpRequest) -> actix_web::Error {
    let message = match &error {
        JsonPayloadError::Deserialize(e) => format!("invalid JSON body: {e}"),
        JsonPayloadError::ContentType => {
            "the body must be JSON (Content-Type: application/json)".into()
        }
        other => format!("invalid body: {other}"),
    };
    ApiError::InvalidRequest(message).into()
}
