//! `GET /healthz`, `GET /readyz` and `GET /metrics`, for the people and
//! machines that run the service. No token: keep them on an internal
//! network.

use actix_web::http::Method;
use actix_web::{HttpResponse, web};
use serde_json::json;

use crate::http::AppState;
use crate::http::error::{ApiError, ErrorBody};

/// Mounts the routes.
pub fn configure(cfg: &mut web::ServiceConfig) {
    crate::http::mount(cfg, "/healthz", Method::GET, health);
    crate::http::mount(cfg, "/readyz", Method::GET, ready);
    crate::http::mount(cfg, "/metrics", Method::GET, metrics);
}

/// The process is up and serving.
#[utoipa::path(get, path = "/healthz", tag = "operations", responses((status = 200, description = "Alive")))]
pub(crate) async fn health() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

/// The database answers and every migration is applied.
#[utoipa::path(get, path = "/readyz", tag = "operations", responses(
    (status = 200, description = "Ready"),
    (status = 503, description = "Database unreachable or migrations pending", body = ErrorBody),
))]
pub(crate) async fn ready(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let pending = state
        .with_engine(async move |engine| {
            engine.database().ping().await?;
            engine.database().pending_migrations().await
        })
        .await?;
    if pending > 0 {
        return Ok(HttpResponse::ServiceUnavailable().json(
            json!({"error": "not_ready", "message": format!("{pending} migration(s) not applied")}),
        ));
    }
    let answers = match (state.settings.cache.max_orgs, state.cache.stats().following) {
        (0, _) => "from the database (cache.max_orgs = 0)",
        (_, true) => "from memory",
        (_, false) => "from the database: other processes' changes are not followed now",
    };
    let rules = if state.engine.counters().rules_outdated() {
        "outdated: another replica's catalog is in force; stored answers are served, none is computed here"
    } else {
        "in force"
    };
    Ok(HttpResponse::Ok().json(json!({"status": "ready", "answers": answers, "rules": rules})))
}

/// Prometheus metrics.
#[utoipa::path(get, path = "/metrics", tag = "operations", responses((status = 200, description = "Prometheus text format", content_type = "text/plain")))]
pub(crate) async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    // Without the database the rest still answers; the gauge is left out.
    let unlinked = state
        .with_engine(async move |engine| engine.unlinked_events().await)
        .await
        .ok();
    let engine = state.engine.counters();
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(state.metrics.render(engine, state.cache.stats(), unlinked))
}
