//! What the service enforces beyond types, written into the OpenAPI
//! document: every request valid by the schema is one the service accepts,
//! and every other one it refuses. Constraints that come from configuration
//! (plans, prices, features, redirect origins) are filled in at run time.

use entitlements::grants::{MAX_QUANTITY as GRANT_MAX_QUANTITY, MAX_REASON_CHARS};
use entitlements::org::ORG_ID_PATTERN;
use entitlements::{Catalog, FeatureValue, PlanMode};
use serde_json::{Value, json};

use crate::http::checkout::{MAX_QUANTITY, MAX_TRIAL_DAYS};
use crate::http::routes::changes;
use crate::http::routes::history::MAX_LIMIT;
use crate::settings::Settings;
use entitlements::history::CURSOR_DIGITS;

/// Adds the constraints to the generated document.
pub(crate) fn constrain(doc: &mut Value, settings: &Settings, catalog: &Catalog) {
    let org_id =
        json!({"type": "string", "pattern": ORG_ID_PATTERN, "minLength": 1, "maxLength": 128});
    let redirect = json!({"type": ["string", "null"], "pattern": settings.redirect_pattern()});

    for item in doc["paths"]
        .as_object_mut()
        .into_iter()
        .flat_map(|p| p.values_mut())
    {
        for operation in item
            .as_object_mut()
            .into_iter()
            .flat_map(|o| o.values_mut())
        {
            let params = operation
                .get_mut("parameters")
                .and_then(Value::as_array_mut);
            for param in params.into_iter().flatten() {
                if param["name"] == "org_id" {
                    param["schema"] = org_id.clone();
                }
            }
        }
    }

    let features: Vec<&String> = catalog.zero_features().keys().collect();
    let before = format!("^[1-9][0-9]{{0,{}}}$", CURSOR_DIGITS - 1);
    let (history, changes_route) = ("/v1/orgs/{org_id}/history", "/v1/changes");
    let max_wait = settings.notify.max_wait_secs;
    let params = [
        (
            "/v1/entitlements/{org_id}/features/{feature}",
            "feature",
            json!({"type": "string", "enum": features}),
        ),
        (
            history,
            "limit",
            json!({"type": "integer", "minimum": 1, "maximum": MAX_LIMIT}),
        ),
        (
            history,
            "before",
            json!({"type": "string", "pattern": before}),
        ),
        (
            changes_route,
            "limit",
            json!({"type": "integer", "minimum": 1, "maximum": changes::MAX_LIMIT}),
        ),
        (
            changes_route,
            "wait",
            json!({"type": "integer", "minimum": 0, "maximum": max_wait}),
        ),
        (
            changes_route,
            "after",
            json!({"type": "string", "pattern": changes::CURSOR_PATTERN}),
        ),
    ];
    for (path, name, schema) in params {
        set_param(doc, path, name, schema);
    }

    let schemas = &mut doc["components"]["schemas"];
    let checkout = &mut schemas["CheckoutRequest"];
    let purchasable: Vec<Value> = catalog
        .plans()
        .filter(|plan| !plan.prices.is_empty())
        .map(|plan| json!(plan.name))
        .collect();
    let prices: Vec<Value> = catalog
        .plans()
        .flat_map(|plan| plan.prices.iter().map(|price| json!(price)))
        .collect();
    let properties = &mut checkout["properties"];
    properties["org_id"] = org_id.clone();
    properties["plan"] = nullable_enum(purchasable);
    properties["price_id"] = nullable_enum(prices);
    properties["quantity"] =
        json!({"type": ["integer", "null"], "minimum": 1, "maximum": MAX_QUANTITY});
    properties["trial_days"] =
        json!({"type": ["integer", "null"], "minimum": 1, "maximum": MAX_TRIAL_DAYS});
    properties["customer_email"] =
        json!({"type": ["string", "null"], "pattern": "@", "maxLength": 512});
    properties["success_url"] = redirect.clone();
    properties["cancel_url"] = redirect.clone();
    // Exactly one of `plan` and `price_id` names what is bought.
    checkout["oneOf"] = json!([
        {"required": ["plan"], "properties": {"plan": {"type": "string"}}},
        {"required": ["price_id"], "properties": {"price_id": {"type": "string"}}},
    ]);
    // A plan sold once has no trial.
    let once: Vec<_> = catalog
        .plans()
        .filter(|plan| plan.mode == PlanMode::Payment)
        .collect();
    let once_plans: Vec<&String> = once.iter().map(|plan| &plan.name).collect();
    let once_prices: Vec<&String> = once.iter().flat_map(|plan| &plan.prices).collect();
    let no_trial = json!({"properties": {"trial_days": {"type": "null"}}});
    checkout["allOf"] = json!([
        {"if": {"required": ["plan"], "properties": {"plan": {"enum": once_plans}}}, "then": no_trial},
        {"if": {"required": ["price_id"], "properties": {"price_id": {"enum": once_prices}}}, "then": no_trial},
    ]);

    // What the webhook reads of an event before anything else.
    let event = json!({
        "type": "object",
        "required": ["id", "type"],
        "properties": {
            "id": {"type": "string", "minLength": 1},
            "type": {"type": "string", "minLength": 1},
            "created": {"type": "integer"},
            "livemode": {"type": "boolean"},
            "data": {"type": "object", "properties": {"object": {"type": "object"}}},
        },
    });
    if let Some(body) = doc
        .pointer_mut("/paths/~1webhooks~1stripe/post/requestBody/content/application~1json/schema")
    {
        *body = event;
    }

    let schemas = &mut doc["components"]["schemas"];
    let plans: Vec<Value> = catalog.plans().map(|plan| json!(plan.name)).collect();
    let feature_values: serde_json::Map<String, Value> = catalog
        .zero_features()
        .iter()
        .map(|(name, zero)| {
            let schema = match zero {
                FeatureValue::Flag(_) => json!({"type": "boolean"}),
                FeatureValue::Limit(_) => json!({"type": "integer", "minimum": 0}),
            };
            (name.clone(), schema)
        })
        .collect();
    let grant = &mut schemas["NewGrant"];
    grant["properties"]["plan"] = nullable_enum(plans);
    grant["properties"]["features"] = json!({
        "type": ["object", "null"], "properties": feature_values,
        "additionalProperties": false, "minProperties": 1,
    });
    grant["properties"]["quantity"] =
        json!({"type": ["integer", "null"], "minimum": 1, "maximum": GRANT_MAX_QUANTITY});
    grant["properties"]["reason"] = json!({
        "type": ["string", "null"], "maxLength": MAX_REASON_CHARS, "pattern": "^[^\\u0000]*$",
    });
    // A plan (scaled by `quantity`) or features, exactly one.
    grant["oneOf"] = json!([
        {"required": ["plan"], "properties": {"plan": {"type": "string"}, "features": {"type": "null"}}},
        {"required": ["features"], "properties": {"features": {"type": "object"}, "plan": {"type": "null"}, "quantity": {"type": "null"}}},
    ]);

    let portal = &mut schemas["PortalRequest"]["properties"];
    portal["org_id"] = org_id;
    portal["return_url"] = redirect;
}

/// A value of `values`, or null.
fn nullable_enum(mut values: Vec<Value>) -> Value {
    values.push(Value::Null);
    json!({"type": ["string", "null"], "enum": values})
}

/// Sets the schema of the parameter `name` of the GET operation at `path`.
fn set_param(doc: &mut Value, path: &str, name: &str, schema: Value) {
    let params = doc
        .pointer_mut(&format!(
            "/paths/{}/get/parameters",
            path.replace('/', "~1")
        ))
        .and_then(Value::as_array_mut);
    if let Some(param) = params.into_iter().flatten().find(|p| p["name"] == name) {
        param["schema"] = schema;
    }
}
