//! `POST /webhooks/stripe`: verified, recorded once, applied in one
//! transaction. The signature is the authentication.

use actix_web::http::Method;
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use entitlements::{Delivery, Event};
use futures_util::StreamExt;
use serde_json::json;

use crate::http::AppState;
use crate::http::error::{ApiError, ErrorBody};

/// Stripe's events are far smaller; anything larger is refused unread.
pub const MAX_BODY: usize = 1024 * 1024;

/// What is set aside for a body before it arrives, whatever length it
/// declares: the buffer grows as bytes come, so a client declaring 1 MiB
/// and sending nothing holds no more than this.
const FIRST_BUFFER: usize = 16 * 1024;

/// Mounts the route.
pub fn configure(cfg: &mut web::ServiceConfig) {
    crate::http::mount(cfg, "/webhooks/stripe", Method::POST, receive);
}

/// Stripe's webhooks; the `Stripe-Signature` header is the authentication.
#[utoipa::path(post, path = "/webhooks/stripe", tag = "webhooks",
    params(("Stripe-Signature" = String, Header, description = "t=<unix>,v1=<hex HMAC-SHA256>")),
    request_body(content = Object, description = "A Stripe event"),
    responses(
        (status = 200, description = "`{\"received\": true, \"outcome\": ...}` or `{\"received\": true, \"duplicate\": true}`", body = Object),
        (status = 400, description = "Bad signature or not a Stripe event; nothing stored", body = ErrorBody),
        (status = 408, description = "The body did not arrive within `server.body_timeout_ms`", body = ErrorBody),
        (status = 413, description = "Body over 1 MiB", body = ErrorBody),
        (status = 503, description = "Storage or Stripe unavailable; nothing stored, Stripe retries", body = ErrorBody),
    ))]
pub(crate) async fn receive(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let deadline = state.settings.server.body_timeout_ms;
    let body = tokio::time::timeout(
        std::time::Duration::from_millis(deadline),
        read_limited(&req, payload),
    )
    .await
    .map_err(|_| ApiError::BodyTimeout(deadline))??;
    let signature = req.headers().get("Stripe-Signature").map(|v| v.as_bytes());
    state
        .verifier
        .verify(signature, &body, chrono::Utc::now().timestamp())?;
    let event = Event::parse(&body).map_err(|e| ApiError::MalformedEvent(e.to_string()))?;
    let text = std::str::from_utf8(&body)
        .map_err(|_| ApiError::MalformedEvent("body is not UTF-8".into()))?;
    let (event, text) =
        crate::http::dispute::with_charge_customer(state.stripe.as_ref(), event, text.to_owned())
            .await?;
    let kind = event.kind.clone();
    let delivery = state
        .with_engine(async move |engine| engine.receive(event, text).await)
        .await?;
    let answer = match delivery {
        Delivery::Duplicate => {
            state.metrics.webhook(kind.as_str(), "duplicate");
            json!({"received": true, "duplicate": true})
        }
        Delivery::Recorded(receipt) => {
            state
                .metrics
                .webhook(kind.as_str(), receipt.outcome.as_str());
            json!({"received": true, "outcome": receipt.outcome.as_str()})
        }
    };
    Ok(HttpResponse::Ok().json(answer))
}

/// Reads the raw body, refusing more than [`MAX_BODY`] bytes (by the
/// declared length when there is one, so large bodies are not read), into
/// a buffer that grows as the bytes arrive.
async fn read_limited(
    req: &HttpRequest,
    mut payload: web::Payload,
) -> Result<web::BytesMut, ApiError> {
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > MAX_BODY) {
        return Err(ApiError::PayloadTooLarge(MAX_BODY));
    }
    let mut body = web::BytesMut::with_capacity(declared.unwrap_or(FIRST_BUFFER).min(FIRST_BUFFER));
    while let Some(chunk) = payload.next().await {
        let chunk =
            chunk.map_err(|e| ApiError::InvalidRequest(format!("could not read the body: {e}")))?;
        if body.len() + chunk.len() > MAX_BODY {
            return Err(ApiError::PayloadTooLarge(MAX_BODY));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}
