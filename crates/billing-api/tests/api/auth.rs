//! Bearer tokens and scopes on every `/v1` route.

use serde_json::json;

use crate::helpers::{
    ADMIN_TOKEN, Backend, CHECKOUT_TOKEN, READ_TOKEN, TestApp, assert_error, json_of,
};
use crate::on_both_backends;

async fn routes_need_a_token_with_their_scope(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    for token in [None, Some("wrong"), Some("")] {
        let (status, body) = json_of(app.get("/v1/entitlements/acme", token).await).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (401, Some("unauthorized")),
            "{token:?}"
        );
        assert_eq!(
            app.post_checkout(&json!({"org_id": "acme", "plan": "pro"}), token)
                .await
                .0,
            401
        );
    }
    for token in [CHECKOUT_TOKEN, ADMIN_TOKEN] {
        let (status, body) = json_of(app.get("/v1/entitlements/acme", Some(token)).await).await;
        assert_error(status, &body, 403, "forbidden");
    }
    for token in [READ_TOKEN, ADMIN_TOKEN] {
        let (status, _) = app
            .post_checkout(&json!({"org_id": "acme", "plan": "pro"}), Some(token))
            .await;
        assert_eq!(status, 403);
    }
    assert_eq!(
        app.get("/v1/entitlements/acme", Some(READ_TOKEN))
            .await
            .status(),
        200
    );
}

async fn the_bearer_scheme_is_matched_in_any_case(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    for (scheme, status) in [
        ("Bearer", 200),
        ("bearer", 200),
        ("BEARER", 200),
        ("bEaReR", 200),
        ("Basic", 401),
    ] {
        let authorization = format!("{scheme} {READ_TOKEN}");
        let response = app
            .get_with_headers(
                "/v1/entitlements/acme",
                &[("Authorization", &authorization)],
            )
            .await;
        assert_eq!(response.status(), status, "{scheme}");
    }
}

on_both_backends!(
    routes_need_a_token_with_their_scope,
    the_bearer_scheme_is_matched_in_any_case
);
