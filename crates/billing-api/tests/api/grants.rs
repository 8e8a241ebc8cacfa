//! `/v1/orgs/{org_id}/grants`: access given by hand.

use serde_json::{Value, json};

use crate::helpers::{Backend, TestApp, assert_error, now};
use crate::on_both_backends;

fn at(secs: i64) -> String {
    chrono::DateTime::from_timestamp(secs, 0)
        .unwrap()
        .to_rfc3339()
}

async fn a_grant_merges_into_the_entitlements_until_it_is_revoked(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (status, grant) = app
        .post_grant(
            "acme",
            &json!({"features": {"sso": true, "seats": 50}, "reason": "enterprise pilot"}),
        )
        .await;
    assert_eq!(status, 201, "{grant}");
    assert_eq!(
        (grant["created_by"].as_str(), grant["active"].as_bool()),
        (Some("operator"), Some(true))
    );
    let id = grant["id"].as_str().unwrap().to_owned();
    assert!(id.starts_with("grant_"), "{id}");

    let (_, body) = app.get_entitlements("acme").await;
    assert_eq!(
        (body["plan"].as_str(), body["status"].as_str()),
        (Some("free"), Some("granted"))
    );
    assert_eq!(
        body["features"],
        json!({"projects": 3, "seats": 50, "sso": true})
    );
    assert_eq!(
        body["sources"],
        json!([{"kind": "grant", "id": id, "plan": null, "until": null}])
    );
    assert_eq!(body["version"], 1);

    assert_eq!(app.revoke_grant("acme", &id).await.0, 204);
    let (status, again) = app.revoke_grant("acme", &id).await;
    assert_error(status, &again, 409, "already_revoked");
    let (status, unknown) = app.revoke_grant("acme", "grant_nope").await;
    assert_error(status, &unknown, 404, "unknown_grant");

    let (_, body) = app.get_entitlements("acme").await;
    assert_eq!(
        (body["status"].as_str(), body["version"].as_i64()),
        (Some("none"), Some(2))
    );
    assert_eq!(body["features"]["sso"], false);

    // Kept for audit, with who revoked it.
    let (status, list) = crate::helpers::json_of(
        app.get("/v1/orgs/acme/grants", Some(crate::helpers::ADMIN_TOKEN))
            .await,
    )
    .await;
    assert_eq!(status, 200);
    let listed = &list["grants"][0];
    assert_eq!(
        (listed["active"].as_bool(), listed["revoked_by"].as_str()),
        (Some(false), Some("operator"))
    );
    // The history names the grant for the note and for each change.
    let (_, history) = app.history("acme", "").await;
    let grant_ids: Vec<(&str, &str)> = history["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let what = e["action"].as_str().or(e["kind"].as_str()).unwrap();
            (what, e["grant_id"].as_str().unwrap_or_default())
        })
        .collect();
    assert_eq!(
        grant_ids,
        [
            ("entitlement_change", id.as_str()),
            ("grant_revoked", id.as_str()),
            ("entitlement_change", id.as_str()),
            ("grant_created", id.as_str()),
        ]
    );
}

async fn a_plan_grant_expires_with_no_call(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let expires = now() + 2;
    let (status, grant) = app
        .post_grant(
            "acme",
            &json!({"plan": "pro", "quantity": 12, "expires_at": at(expires)}),
        )
        .await;
    assert_eq!(status, 201, "{grant}");
    let (_, body) = app.get_entitlements("acme").await;
    assert_eq!(
        (body["plan"].as_str(), body["features"]["seats"].as_i64()),
        (Some("pro"), Some(12))
    );
    assert_eq!(
        body["valid_until"].as_str(),
        Some(at(expires).replace("+00:00", "Z").as_str())
    );

    tokio::time::sleep(std::time::Duration::from_millis(2_100)).await;
    let (_, body) = app.get_entitlements("acme").await;
    assert_eq!(
        (body["plan"].as_str(), body["sources"].clone()),
        (Some("free"), json!([]))
    );
    let (_, history) = app.history("acme", "?limit=2").await;
    let actions: Vec<&Value> = history["entries"].as_array().unwrap().iter().collect();
    assert!(
        actions.iter().any(|e| e["action"] == "grant_expired"),
        "{history}"
    );
    // Still listed, inactive but not revoked; only admin tokens see it.
    let list = crate::helpers::json_of(
        app.get("/v1/orgs/acme/grants", Some(crate::helpers::ADMIN_TOKEN))
            .await,
    )
    .await
    .1;
    assert_eq!(
        (
            &list["grants"][0]["active"],
            &list["grants"][0]["revoked_at"]
        ),
        (&json!(false), &Value::Null)
    );
    let (status, refused) = crate::helpers::json_of(
        app.get("/v1/orgs/acme/grants", Some(crate::helpers::READ_TOKEN))
            .await,
    )
    .await;
    assert_error(status, &refused, 403, "forbidden");
}

async fn bad_grants_are_refused_naming_the_field(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    for (body, field) in [
        (json!({}), "plan:"),
        (json!({"plan": "gold"}), "plan:"),
        (
            json!({"plan": "pro", "features": {"sso": true}}),
            "features:",
        ),
        (json!({"features": {"sso": "yes"}}), "features.sso:"),
        (
            json!({"features": {"teleport": true}}),
            "features.teleport:",
        ),
        (
            json!({"plan": "pro", "expires_at": at(now() - 60)}),
            "expires_at:",
        ),
        (json!({"plan": "pro", "reason": "x".repeat(501)}), "reason:"),
    ] {
        let (status, answer) = app.post_grant("acme", &body).await;
        assert_error(status, &answer, 400, "invalid_request");
        let message = answer["message"].as_str().unwrap();
        assert!(message.starts_with(field), "{body} -> {message}");
    }
    assert_eq!(app.get_entitlements("acme").await.1["version"], 0);
}

on_both_backends!(
    a_grant_merges_into_the_entitlements_until_it_is_revoked,
    a_plan_grant_expires_with_no_call,
    bad_grants_are_refused_naming_the_field
);
