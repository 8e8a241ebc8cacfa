//! The OpenAPI document, generated from the handlers' annotations and
//! served at `GET /openapi.json`.

use actix_web::http::Method;
use actix_web::{HttpResponse, web};
use std::collections::BTreeMap;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};

use utoipa::openapi::{Content, Ref, RefOr, Response, ResponseBuilder};
use utoipa::{IntoResponses, Modify, OpenApi};

use crate::http::AppState;
use crate::http::routes;
use crate::settings::Settings;
use entitlements::Catalog;

mod constraints;

/// The service's API.
#[derive(OpenApi)]
#[openapi(
    info(title = "billing-api", description = "Stripe subscriptions turned into per-organization entitlements."),
    paths(
        routes::checkout::create,
        routes::portal::create,
        routes::entitlements::get,
        routes::entitlements::feature,
        routes::history::list,
        routes::changes::list,
        routes::grants::create,
        routes::grants::list,
        routes::grants::revoke,
        routes::link::link,
        routes::webhooks::receive,
        routes::operations::health,
        routes::operations::ready,
        routes::operations::metrics,
    ),
    modifiers(&BearerTokens)
)]
pub struct ApiDoc;

struct BearerTokens;

impl Modify for BearerTokens {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
    }
}

/// The answers of every route that calls Stripe, beside its own.
pub(crate) struct StripeAnswers;

impl IntoResponses for StripeAnswers {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        [
            (
                "502",
                "Stripe refused or failed; the message carries its request id",
            ),
            (
                "503",
                "Stripe is not configured, or storage is unavailable; retry later",
            ),
        ]
        .into_iter()
        .map(|(status, description)| {
            let body = Content::new(Some(Ref::from_schema_name("ErrorBody")));
            let answer = ResponseBuilder::new()
                .description(description)
                .content("application/json", body)
                .build();
            (status.to_owned(), answer.into())
        })
        .collect()
    }
}

/// Mounts `GET /openapi.json`.
pub fn configure(cfg: &mut web::ServiceConfig) {
    crate::http::mount(cfg, "/openapi.json", Method::GET, document);
}

/// The document, built once at start-up.
async fn document(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(state.openapi.clone())
}

/// The document, with the constraints of this configuration and catalog.
pub(crate) fn build(settings: &Settings, catalog: &Catalog) -> serde_json::Result<String> {
    let mut doc = serde_json::to_value(ApiDoc::openapi())?;
    common_answers(&mut doc);
    constraints::constrain(&mut doc, settings, catalog);
    serde_json::to_string(&doc)
}

/// The answers every authenticated operation shares, written here once
/// rather than on each route: 401 without a valid token, 403 without its
/// scope, 429 after too many unknown tokens, 503 while a dependency is down, and 400 for a bad organization
/// id in the path or a bad JSON body. A route's own row for the same
/// status wins.
fn common_answers(doc: &mut serde_json::Value) {
    use serde_json::json;
    let answer = |description: &str| {
        json!({
            "description": description,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}
        })
    };
    let paths = doc
        .get_mut("paths")
        .and_then(serde_json::Value::as_object_mut);
    for (path, item) in paths.into_iter().flat_map(|paths| paths.iter_mut()) {
        let org_in_path = path.contains("{org_id}");
        for operation in item
            .as_object_mut()
            .into_iter()
            .flat_map(|o| o.values_mut())
        {
            if operation.get("security").is_none() {
                continue;
            }
            let json_body = operation.get("requestBody").is_some();
            let Some(responses) = operation
                .get_mut("responses")
                .and_then(|r| r.as_object_mut())
            else {
                continue;
            };
            responses.insert("401".into(), answer("No or unknown bearer token"));
            responses.insert("403".into(), answer("The token lacks the scope"));
            let mut refused = answer(
                "Too many unknown tokens from this address; retry after Retry-After seconds",
            );
            refused["headers"] = json!({"Retry-After": {
                "description": "Seconds until this address may try again",
                "required": true,
                "schema": {"type": "integer", "minimum": 1}
            }});
            responses.insert("429".into(), refused);
            let bad_input = match (org_in_path, json_body) {
                (_, true) => Some("Invalid input; the message names the field"),
                (true, false) => Some("Invalid organization id"),
                (false, false) => None,
            };
            if let Some(description) = bad_input {
                responses
                    .entry("400")
                    .or_insert_with(|| answer(description));
            }
            responses
                .entry("503")
                .or_insert_with(|| answer("Storage unavailable; retry later"));
        }
    }
}
