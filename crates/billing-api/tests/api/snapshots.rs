//! The shapes callers depend on, pinned as snapshots
//! (`tests/api/snapshots/`): the entitlements body, the error bodies and
//! the OpenAPI document. A change shows as a diff to review.

use serde_json::Value;

use crate::helpers::{Backend, READ_TOKEN, TestApp, json_of, now};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_entitlements_body() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    app.deliver(&app.event("customer.subscription.created", "acme", now()))
        .await;
    let (status, body) = app.get_entitlements("acme").await;
    assert_eq!(status, 200);
    // Times of the run are redacted.
    insta::assert_json_snapshot!("entitlements_subscribed", body, {
        ".current_period_end" => "[time]", ".valid_until" => "[time]", ".updated_at" => "[time]",
        ".sources[].until" => "[time]"
    });
    let (_, default) = app.get_entitlements("nobody").await;
    insta::assert_json_snapshot!("entitlements_default", default);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_error_bodies() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let mut errors = Vec::new();
    for (method, path, token) in [
        ("GET", "/v1/entitlements/acme", None),
        ("GET", "/v1/entitlements/acme", Some("dev-checkout-token")),
        ("GET", "/v1/entitlements/a%20b", Some(READ_TOKEN)),
        (
            "GET",
            "/v1/entitlements/acme/features/nope",
            Some(READ_TOKEN),
        ),
        ("DELETE", "/v1/entitlements/acme", Some(READ_TOKEN)),
        ("GET", "/v2/nothing", None),
    ] {
        let mut request = app.client.request(
            reqwest::Method::from_bytes(method.as_bytes()).unwrap(),
            format!("{}{path}", app.address),
        );
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let (status, body) = json_of(request.send().await.unwrap()).await;
        errors.push(serde_json::json!({"request": format!("{method} {path}"), "status": status, "body": body}));
    }
    insta::assert_json_snapshot!("error_bodies", Value::Array(errors));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openapi_document() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let (status, doc) = json_of(app.get("/openapi.json", None).await).await;
    assert_eq!(status, 200);
    insta::assert_json_snapshot!("openapi", doc, {".info.version" => "[version]"});
}
