//! `GET /v1/entitlements/{org_id}` and its feature lookup.

use serde_json::json;

use crate::helpers::{Backend, READ_TOKEN, TestApp, assert_error, json_of, now};
use crate::on_both_backends;

async fn an_unknown_organization_gets_the_default_plan(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (status, body) = app.get_entitlements("nobody").await;
    assert_eq!(status, 200);
    assert_eq!(
        body,
        json!({
            "org_id": "nobody", "plan": "free", "status": "none",
            "features": {"projects": 3, "seats": 1, "sso": false},
            "subscription_id": null, "current_period_end": null, "cancel_at_period_end": false,
            "grace_until": null, "valid_until": null, "version": 0, "updated_at": null,
            "sources": []
        })
    );
}

async fn the_etag_answers_304_until_the_entitlements_change(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let first = app.get("/v1/entitlements/acme", Some(READ_TOKEN)).await;
    let etag = first.headers()["etag"].to_str().unwrap().to_owned();
    let revalidate = async || {
        let authorization = format!("Bearer {READ_TOKEN}");
        let headers = [
            ("Authorization", authorization.as_str()),
            ("If-None-Match", &etag),
        ];
        app.get_with_headers("/v1/entitlements/acme", &headers)
            .await
    };
    assert_eq!(revalidate().await.status(), 304);

    app.deliver(&app.event("customer.subscription.created", "acme", now()))
        .await;
    let changed = revalidate().await;
    assert_eq!(changed.status(), 200);
    assert_ne!(changed.headers()["etag"].to_str().unwrap(), etag);
}

async fn the_short_path_answers_identically(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.deliver(&app.event("customer.subscription.created", "acme", now()))
        .await;
    let long = json_of(app.get("/v1/entitlements/acme", Some(READ_TOKEN)).await).await;
    let short = json_of(app.get("/entitlements/acme", Some(READ_TOKEN)).await).await;
    assert_eq!(long, short);
    assert_eq!(app.get("/entitlements/acme", None).await.status(), 401);
}

async fn a_feature_lookup_answers_its_value(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.deliver(&app.event("customer.subscription.created", "acme", now()))
        .await;
    let (status, body) = json_of(
        app.get("/v1/entitlements/acme/features/sso", Some(READ_TOKEN))
            .await,
    )
    .await;
    assert_eq!(
        (status, body),
        (
            200,
            json!({"org_id": "acme", "feature": "sso", "value": true})
        )
    );
    let (_, seats) = json_of(
        app.get("/v1/entitlements/other/features/seats", Some(READ_TOKEN))
            .await,
    )
    .await;
    assert_eq!(seats["value"], 1);
    let (status, body) = json_of(
        app.get("/v1/entitlements/acme/features/teleport", Some(READ_TOKEN))
            .await,
    )
    .await;
    assert_error(status, &body, 404, "unknown_feature");
}

async fn without_a_default_plan_an_unsubscribed_organization_is_not_found(backend: Backend) {
    let app = TestApp::spawn_with(backend, |s| {
        s.plans.remove("free");
    })
    .await;
    let (status, body) = app.get_entitlements("acme").await;
    assert_error(status, &body, 404, "no_entitlements");
    app.deliver(&app.event("customer.subscription.created", "acme", now()))
        .await;
    assert_eq!(app.get_entitlements("acme").await.0, 200);
}

async fn an_invalid_organization_id_is_refused(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (status, body) = json_of(app.get("/v1/entitlements/a%20b", Some(READ_TOKEN)).await).await;
    assert_error(status, &body, 400, "invalid_request");
}

/// Development settings with `pro` granting 250 projects and a new feature,
/// and `free` granting 5 projects.
fn new_catalog(settings: &mut billing_api::settings::Settings) {
    let pro = settings.plans.get_mut("pro").unwrap();
    pro.features.insert("projects".into(), json!(250));
    pro.features.insert("exports".into(), json!(true));
    let free = settings.plans.get_mut("free").unwrap();
    free.features.insert("projects".into(), json!(5));
}

async fn feature(app: &TestApp, org: &str, name: &str) -> serde_json::Value {
    let path = format!("/v1/entitlements/{org}/features/{name}");
    json_of(app.get(&path, Some(READ_TOKEN)).await).await.1["value"].clone()
}

async fn stored_answers_follow_the_catalog_in_force_after_a_restart(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let t = now();
    app.deliver(&app.event("customer.subscription.created", "acme", t))
        .await;
    app.deliver(&app.event("customer.subscription.created", "gone", t))
        .await;
    app.deliver(&app.event("customer.subscription.deleted", "gone", t + 1))
        .await;
    assert_eq!(
        app.get_entitlements("gone").await.1["features"]["projects"],
        3
    );

    let app = app.restart_with(new_catalog).await;
    let acme = app.get_entitlements("acme").await.1;
    assert_eq!(
        acme["features"],
        json!({"exports": true, "projects": 250, "seats": 1, "sso": true})
    );
    assert_eq!(acme["version"], 2);
    assert_eq!(feature(&app, "acme", "projects").await, 250);
    assert_eq!(feature(&app, "acme", "exports").await, true);
    let gone = app.get_entitlements("gone").await.1;
    assert_eq!(
        (gone["plan"].as_str(), gone["features"]["projects"].as_i64()),
        (Some("free"), Some(5))
    );
    assert_eq!(gone["features"]["exports"], false);
    assert_eq!(feature(&app, "gone", "exports").await, false);
    assert_eq!(
        app.get_entitlements("never-seen").await.1["features"]["projects"],
        5
    );
    // Read again: computed once, not at every read.
    assert_eq!(app.get_entitlements("acme").await.1["version"], 2);
}

async fn a_restart_recomputes_stored_answers_without_a_read(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.deliver(&app.event("customer.subscription.created", "acme", now()))
        .await;
    let app = app.restart_with(new_catalog).await;
    // The history route reads no answer: the change comes from start-up.
    let mut versions = Vec::new();
    for _ in 0..50 {
        let history = json_of(
            app.get("/v1/orgs/acme/history", Some(crate::helpers::ADMIN_TOKEN))
                .await,
        )
        .await
        .1;
        versions = history["entries"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|e| e["version"].as_i64())
            .collect();
        if versions.len() == 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(versions, [2, 1]);
}

async fn a_settled_answer_is_read_without_a_write(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let t = now();
    // One subscription still grants after its period ended (its renewal
    // event is late); another is canceled at the end of a later period.
    let mut renewing = app.event("customer.subscription.created", "acme", t - 40 * 86_400);
    renewing["data"]["object"]["id"] = json!("sub_renewing");
    renewing["data"]["object"]["items"]["data"][0]["id"] = json!("si_renewing");
    let mut canceling = app.event("customer.subscription.created", "acme", t);
    canceling["data"]["object"]["cancel_at_period_end"] = json!(true);
    app.deliver(&renewing).await;
    app.deliver(&canceling).await;
    let first = app.get_entitlements("acme").await.1;
    assert_eq!(first["plan"], "pro");

    // While another writer holds acme's lock, a read still answers.
    let holder = app.db.hold_org_lock("acme").await;
    let read = tokio::time::timeout(
        std::time::Duration::from_secs(3),
        app.get_entitlements("acme"),
    )
    .await;
    holder.release().await;
    let (status, body) = read.expect("the read waited for a write lock");
    assert_eq!(
        (status, body["version"].clone()),
        (200, first["version"].clone())
    );
}

on_both_backends!(
    an_unknown_organization_gets_the_default_plan,
    the_etag_answers_304_until_the_entitlements_change,
    the_short_path_answers_identically,
    a_feature_lookup_answers_its_value,
    without_a_default_plan_an_unsubscribed_organization_is_not_found,
    an_invalid_organization_id_is_refused,
    stored_answers_follow_the_catalog_in_force_after_a_restart,
    a_restart_recomputes_stored_answers_without_a_read,
    a_settled_answer_is_read_without_a_write
);
