//! What the sweeper deletes past its retention (`[retention]`): changes,
//! with the feed's cursors staying true, and webhook events.

use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::{Backend, READ_TOKEN, TestApp, now};
use crate::on_both_backends;

const DAY: i64 = 86_400;

/// Sweeps and looks for what is past its retention every 50 ms.
fn sweep_often(s: &mut billing_api::settings::Settings) {
    s.sweep.every_ms = 50;
    s.retention.check_every_ms = 50;
}

/// `GET /v1/changes?after=<after>`: the status and the organizations and
/// versions of the page, or the refusal's message.
async fn after(app: &TestApp, after: &str) -> (u16, Value) {
    let response = app
        .get(&format!("/v1/changes?after={after}"), Some(READ_TOKEN))
        .await;
    let status = response.status().as_u16();
    let body: Value = response.json().await.unwrap();
    if status != 200 {
        return (status, body["message"].clone());
    }
    let changes = body["changes"].as_array().unwrap().iter();
    let versions = changes.map(|c| json!([c["org_id"], c["version"]]));
    (status, Value::Array(versions.collect()))
}

/// Waits (at most 10 s) for `done`, polling every 50 ms.
async fn eventually<F: Future<Output = bool>>(mut done: impl FnMut() -> F) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !done().await {
        assert!(tokio::time::Instant::now() < deadline, "not within 10 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A reader that has kept up is never told its cursor expired, however
/// quiet the feed has been; one is only once changes it had not read
/// were deleted.
async fn a_cursor_expires_only_once_changes_after_it_are_deleted(backend: Backend) {
    let app = TestApp::spawn_with(backend, |s| {
        s.retention.changes_days = 60;
        sweep_often(s);
    })
    .await;
    app.post_grant("acme", &json!({"features": {"sso": true}}))
        .await;
    app.post_grant("acme", &json!({"features": {"projects": 9}}))
        .await;
    app.post_grant("beta", &json!({"features": {"sso": true}}))
        .await;
    let all: Value = app
        .get("/v1/changes", Some(READ_TOKEN))
        .await
        .json()
        .await
        .unwrap();
    let cursors: Vec<String> = all["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["cursor"].as_str().unwrap().to_owned())
        .collect();
    let [first, second, newest] = &cursors[..] else {
        panic!("three changes: {all}");
    };

    // A quiet month and more (the feed's start is 30 days back): nothing
    // is past its 60 days, every cursor reads on.
    let db = &app.db;
    let age = |days: i64| {
        let sql = format!(
            "UPDATE entitlement_changes SET changed_at = {}",
            now() - days * DAY
        );
        async move { db.execute(&sql).await }
    };
    age(40).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(after(&app, newest).await, (200, json!([])));
    assert_eq!(
        after(&app, first).await,
        (200, json!([["acme", 2], ["beta", 1]]))
    );

    // Past 60 days: every change but the newest is deleted. A cursor that
    // had not read a deleted change has expired; the others read on.
    age(70).await;
    eventually(|| async { after(&app, first).await.0 == 400 }).await;
    let (_, message) = after(&app, first).await;
    assert!(message.as_str().unwrap().contains("deleted"), "{message}");
    assert_eq!(after(&app, second).await, (200, json!([["beta", 1]])));
    assert_eq!(after(&app, newest).await, (200, json!([])));
    assert_eq!(app.db.count_rows("entitlement_changes").await, 1);

    // The feed goes on above every position it gave.
    app.post_grant("gamma", &json!({"features": {"sso": true}}))
        .await;
    assert_eq!(after(&app, newest).await, (200, json!([["gamma", 1]])));
}

/// Webhook events older than `retention.events_days` are deleted; the
/// others are kept, and still tell a redelivery from a new event.
async fn webhook_events_past_their_retention_are_deleted(backend: Backend) {
    let app = TestApp::spawn_with(backend, |s| {
        s.retention.events_days = 31;
        sweep_often(s);
    })
    .await;
    let old = app.event("customer.subscription.created", "acme", now());
    let recent = app.event("customer.subscription.updated", "acme", now() + 1);
    for event in [&old, &recent] {
        assert_eq!(app.deliver(event).await.0, 200);
    }
    let old_id = old["id"].as_str().unwrap();
    app.db
        .execute(&format!(
            "UPDATE webhook_events SET created = {} WHERE id = '{old_id}'",
            now() - 32 * DAY
        ))
        .await;
    eventually(|| async { app.db.count_rows("webhook_events").await == 1 }).await;
    let kept = format!(
        "webhook_events WHERE id = '{}'",
        recent["id"].as_str().unwrap()
    );
    assert_eq!(app.db.count_rows(&kept).await, 1);
    let (status, body) = app.deliver(&recent).await;
    assert_eq!((status, &body["duplicate"]), (200, &json!(true)));
}

on_both_backends!(
    a_cursor_expires_only_once_changes_after_it_are_deleted,
    webhook_events_past_their_retention_are_deleted
);
