//! The HTTP contract outside the routes' own logic: every error is the
//! JSON error body, with the right status and headers.

use crate::helpers::{ADMIN_TOKEN, Backend, READ_TOKEN, TestApp, assert_error, json_of};

async fn assert_json_error(response: reqwest::Response, status: u16, code: &str) {
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned());
    let (actual, body) = json_of(response).await;
    assert_error(actual, &body, status, code);
    assert_eq!(content_type.as_deref(), Some("application/json"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_routes_answer_a_json_404() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    for path in ["/", "/nope", "/v1/entitlements", "/v2/entitlements/acme"] {
        assert_json_error(app.get(path, Some(READ_TOKEN)).await, 404, "not_found").await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_query_parameters_answer_a_json_400() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let response = app
        .get(
            "/v1/orgs/acme/history?limit=5&colour=red",
            Some(ADMIN_TOKEN),
        )
        .await;
    assert_json_error(response, 400, "invalid_request").await;
    let response = app
        .get("/v1/orgs/acme/history?limit=many", Some(ADMIN_TOKEN))
        .await;
    assert_json_error(response, 400, "invalid_request").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_method_a_path_does_not_serve_answers_405_with_allow() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let cases = [
        (reqwest::Method::POST, "/healthz", "GET"),
        (reqwest::Method::DELETE, "/v1/entitlements/acme", "GET"),
        (reqwest::Method::PUT, "/entitlements/acme", "GET"),
        (reqwest::Method::GET, "/webhooks/stripe", "POST"),
        (reqwest::Method::GET, "/v1/checkout/sessions", "POST"),
        (reqwest::Method::PATCH, "/openapi.json", "GET"),
    ];
    for (method, path, allow) in cases {
        let response = app
            .client
            .request(method.clone(), format!("{}{path}", app.address))
            .bearer_auth(READ_TOKEN)
            .send()
            .await
            .unwrap();
        let header = response
            .headers()
            .get("allow")
            .map(|v| v.to_str().unwrap().to_owned());
        assert_eq!(header.as_deref(), Some(allow), "{method} {path}");
        assert_json_error(response, 405, "method_not_allowed").await;
    }
}
