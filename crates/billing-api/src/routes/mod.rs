//! HTTP routes, one module per group, each mounted by `configure`.

pub(crate) mod checkout;
pub(crate) mod entitlements;
pub(crate) mod history;
pub(crate) mod operations;
pub(crate) mod portal;
pub(crate) mod webhooks;

use actix_web::{HttpRequest, error::JsonPayloadError, web};

use crate::error::ApiError;

/// Mounts every route group.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.configure(checkout::configure)
        .configure(entitlements::configure)
        .configure(history::configure)
        .configure(operations::configure)
        .configure(portal::configure)
        .configure(crate::openapi::configure)
        .configure(webhooks::configure);
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

/// Organization ids are short opaque strings chosen by the SaaS.
pub fn check_org_id(org_id: &str) -> Result<(), ApiError> {
    let valid = !org_id.is_empty()
        && org_id.len() <= 128
        && org_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:@".contains(&b));
    if valid {
        Ok(())
    } else {
        Err(ApiError::InvalidRequest(
            "org_id: 1 to 128 characters of letters, digits and - _ . : @".into(),
        ))
    }
}
