//! Bearer tokens and scopes on every `/v1` route.

use serde_json::json;

use crate::helpers::{
    ADMIN_TOKEN, Backend, CHECKOUT_TOKEN, READ_TOKEN, TestApp, assert_error, json_of, now,
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

async fn signing_in_to_the_console_forgets_expired_sessions(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    // A sign-in nobody signed out of, which ended a second ago.
    let ended = entitlements::admin::Session {
        id_digest: "ended".into(),
        token_name: "admin".into(),
        read_only: false,
        csrf_token: "csrf".into(),
        expires_at: now() - 1,
    };
    app.engine.open_session(&ended).await.unwrap();
    assert_eq!(app.db.count_rows("admin_sessions").await, 1);
    let signed_in = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .post(format!("{}/admin/signin", app.address))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("token={ADMIN_TOKEN}"))
        .send()
        .await
        .unwrap();
    assert_eq!(signed_in.status(), 303);
    assert_eq!(
        app.db.count_rows("admin_sessions").await,
        1,
        "the new session, not the ended one"
    );
}

on_both_backends!(
    routes_need_a_token_with_their_scope,
    the_bearer_scheme_is_matched_in_any_case,
    signing_in_to_the_console_forgets_expired_sessions
);
