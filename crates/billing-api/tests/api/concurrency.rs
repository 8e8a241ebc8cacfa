//! Simultaneous deliveries of different events for one organization.

use serde_json::{Value, json};

use crate::helpers::{ADMIN_TOKEN, TestApp, json_of, now};
use crate::on_both_backends;

on_both_backends! {
    async fn concurrent_events_of_one_organization_lose_no_update(backend) {
        let app = TestApp::spawn(backend).await;
        let t = now();
        // Eight subscriptions of one organization, with 1 to 8 seats.
        let events: Vec<Value> = (1..=8)
            .map(|seats| {
                let mut event = app.event("customer.subscription.created", "acme", t);
                event["data"]["object"]["id"] = json!(format!("sub_{seats}"));
                event["data"]["object"]["items"]["data"][0]["id"] = json!(format!("si_{seats}"));
                event["data"]["object"]["items"]["data"][0]["quantity"] = json!(seats);
                event
            })
            .collect();
        let answers = futures_util::future::join_all(events.iter().map(|e| app.deliver(e))).await;
        assert!(answers.iter().all(|(_, body)| body["outcome"] == "applied"), "{answers:?}");

        let body = app.get_entitlements("acme").await.1;
        assert_eq!(body["features"]["seats"], 8);
        let history = json_of(app.get("/v1/orgs/acme/history?limit=200", Some(ADMIN_TOKEN)).await).await.1;
        let mut versions: Vec<i64> = history["entries"].as_array().unwrap().iter()
            .filter_map(|e| e["version"].as_i64()).collect();
        versions.reverse();
        let expected: Vec<i64> = (1..=body["version"].as_i64().unwrap()).collect();
        assert_eq!(versions, expected, "every change has its own version and history row");
    }

    async fn concurrent_updates_of_one_subscription_end_in_the_newest(backend) {
        let app = TestApp::spawn(backend).await;
        let t = now();
        let events: Vec<Value> = (1..=8)
            .map(|seats| {
                let mut event = app.event("customer.subscription.updated", "acme", t + seats);
                event["data"]["object"]["items"]["data"][0]["quantity"] = json!(seats);
                event
            })
            .collect();
        let answers = futures_util::future::join_all(events.iter().rev().map(|e| app.deliver(e))).await;
        assert!(answers.iter().all(|(status, _)| *status == 200), "{answers:?}");
        assert_eq!(app.get_entitlements("acme").await.1["features"]["seats"], 8);
    }
}
