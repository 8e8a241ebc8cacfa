//! `GET /v1/entitlements/{org_id}` and its feature lookup.

use serde_json::json;

use crate::helpers::{READ_TOKEN, TestApp, json_of, now};
use crate::on_both_backends;

on_both_backends! {
    async fn an_unknown_organization_gets_the_default_plan(backend) {
        let app = TestApp::spawn(backend).await;
        let (status, body) = app.get_entitlements("nobody").await;
        assert_eq!(status, 200);
        assert_eq!(body, json!({
            "org_id": "nobody", "plan": "free", "status": "none",
            "features": {"projects": 3, "seats": 1, "sso": false},
            "subscription_id": null, "current_period_end": null, "cancel_at_period_end": false,
            "grace_until": null, "valid_until": null, "version": 0, "updated_at": null
        }));
    }

    async fn the_etag_answers_304_until_the_entitlements_change(backend) {
        let app = TestApp::spawn(backend).await;
        let first = app.get("/v1/entitlements/acme", Some(READ_TOKEN)).await;
        let etag = first.headers()["etag"].to_str().unwrap().to_owned();
        let cached = app.client.get(format!("{}/v1/entitlements/acme", app.address))
            .bearer_auth(READ_TOKEN).header("If-None-Match", &etag).send().await.unwrap();
        assert_eq!(cached.status(), 304);

        app.deliver(&app.event("customer.subscription.created", "acme", now())).await;
        let changed = app.client.get(format!("{}/v1/entitlements/acme", app.address))
            .bearer_auth(READ_TOKEN).header("If-None-Match", &etag).send().await.unwrap();
        assert_eq!(changed.status(), 200);
        assert_ne!(changed.headers()["etag"].to_str().unwrap(), etag);
    }

    async fn the_short_path_answers_identically(backend) {
        let app = TestApp::spawn(backend).await;
        app.deliver(&app.event("customer.subscription.created", "acme", now())).await;
        let long = json_of(app.get("/v1/entitlements/acme", Some(READ_TOKEN)).await).await;
        let short = json_of(app.get("/entitlements/acme", Some(READ_TOKEN)).await).await;
        assert_eq!(long, short);
        assert_eq!(app.get("/entitlements/acme", None).await.status(), 401);
    }

    async fn a_feature_lookup_answers_its_value(backend) {
        let app = TestApp::spawn(backend).await;
        app.deliver(&app.event("customer.subscription.created", "acme", now())).await;
        let (status, body) = json_of(app.get("/v1/entitlements/acme/features/sso", Some(READ_TOKEN)).await).await;
        assert_eq!((status, body), (200, json!({"org_id": "acme", "feature": "sso", "value": true})));
        let (_, seats) = json_of(app.get("/v1/entitlements/other/features/seats", Some(READ_TOKEN)).await).await;
        assert_eq!(seats["value"], 1);
        let (status, body) = json_of(app.get("/v1/entitlements/acme/features/teleport", Some(READ_TOKEN)).await).await;
        assert_eq!((status, body["error"].as_str()), (404, Some("unknown_feature")));
    }

    async fn without_a_default_plan_an_unsubscribed_organization_is_not_found(backend) {
        let app = TestApp::spawn_with(backend, |s| {
            s.plans.remove("free");
        }).await;
        let (status, body) = app.get_entitlements("acme").await;
        assert_eq!((status, body["error"].as_str()), (404, Some("no_entitlements")));
        app.deliver(&app.event("customer.subscription.created", "acme", now())).await;
        assert_eq!(app.get_entitlements("acme").await.0, 200);
    }

    async fn an_invalid_organization_id_is_refused(backend) {
        let app = TestApp::spawn(backend).await;
        let (status, body) = json_of(app.get("/v1/entitlements/a%20b", Some(READ_TOKEN)).await).await;
        assert_eq!((status, body["error"].as_str()), (400, Some("invalid_request")));
    }
}
