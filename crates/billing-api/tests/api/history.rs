//! `GET /v1/orgs/{org_id}/history` and `billing-api replay`.

use serde_json::{Value, json};

use crate::helpers::{ADMIN_TOKEN, READ_TOKEN, TestApp, json_of, now};
use crate::on_both_backends;

async fn page(app: &TestApp, query: &str) -> Value {
    let (status, body) = json_of(
        app.get(&format!("/v1/orgs/acme/history{query}"), Some(ADMIN_TOKEN))
            .await,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body
}

on_both_backends! {
    async fn history_lists_events_and_changes_newest_first_in_pages(backend) {
        let app = TestApp::spawn(backend).await;
        let t = now();
        for (i, seats) in [2, 3, 4].into_iter().enumerate() {
            let mut event = app.event("customer.subscription.updated", "acme", t + i as i64);
            event["data"]["object"]["items"]["data"][0]["quantity"] = json!(seats);
            app.deliver(&event).await;
        }
        // 3 events and 3 changes, 4 then 2 per page.
        let first = page(&app, "?limit=4").await;
        let next = first["next"].as_str().expect("a second page").to_owned();
        let second = page(&app, &format!("?limit=4&before={next}")).await;
        assert_eq!(second["next"], Value::Null);
        let entries: Vec<&Value> = first["entries"].as_array().unwrap().iter()
            .chain(second["entries"].as_array().unwrap()).collect();
        let kinds: Vec<&str> = entries.iter().map(|e| e["kind"].as_str().unwrap()).collect();
        assert_eq!(kinds.len(), 6, "{entries:?}");
        assert_eq!(kinds.iter().filter(|k| **k == "event").count(), 3);
        let versions: Vec<i64> = entries.iter().filter_map(|e| e["version"].as_i64()).collect();
        assert_eq!(versions, vec![3, 2, 1]);
        let times: Vec<&str> = entries.iter().map(|e| e["at"].as_str().unwrap()).collect();
        assert!(times.windows(2).all(|w| w[0] >= w[1]), "{times:?}");
        let newest_change = entries.iter().find(|e| e["kind"] == "entitlement_change").unwrap();
        assert_eq!(newest_change["features"]["seats"], 4);
    }

    async fn upgrading_keeps_the_history_in_order_and_appends_after_it(backend) {
        let app = TestApp::spawn(backend).await;
        let t = now();
        for (i, seats) in [2, 3].into_iter().enumerate() {
            let mut event = app.event("customer.subscription.updated", "acme", t + i as i64);
            event["data"]["object"]["items"]["data"][0]["quantity"] = json!(seats);
            app.deliver(&event).await;
        }
        app.db.reapply_newest_migration().await;

        let mut event = app.event("customer.subscription.updated", "acme", t + 2);
        event["data"]["object"]["items"]["data"][0]["quantity"] = json!(4);
        let newest = event["id"].clone();
        app.deliver(&event).await;
        let mut entries = Vec::new();
        let mut query = "?limit=1".to_owned();
        loop {
            let body = page(&app, &query).await;
            entries.extend(body["entries"].as_array().unwrap().iter().cloned());
            match body["next"].as_str() {
                Some(next) => query = format!("?limit=1&before={next}"),
                None => break,
            }
        }
        assert_eq!(entries.len(), 6, "{entries:?}");
        assert_eq!(entries[0]["event_id"], newest, "new entries come after the old ones");
        assert_eq!(entries[0]["kind"], "event");
        assert_eq!(entries[1]["version"], 3);
        let versions: Vec<i64> = entries.iter().filter_map(|e| e["version"].as_i64()).collect();
        assert_eq!(versions, vec![3, 2, 1]);
        let mut events: Vec<&str> = entries.iter().filter(|e| e["kind"] == "event")
            .map(|e| e["event_id"].as_str().unwrap()).collect();
        events.sort_unstable();
        events.dedup();
        assert_eq!(events.len(), 3, "{entries:?}");
    }

    async fn history_needs_the_admin_scope_and_a_valid_cursor(backend) {
        let app = TestApp::spawn(backend).await;
        assert_eq!(app.get("/v1/orgs/acme/history", Some(READ_TOKEN)).await.status(), 403);
        let (status, body) = json_of(app.get("/v1/orgs/acme/history?before=junk", Some(ADMIN_TOKEN)).await).await;
        assert_eq!((status, body["error"].as_str()), (400, Some("invalid_request")));
        assert_eq!(app.get("/v1/orgs/acme/history?limit=0", Some(ADMIN_TOKEN)).await.status(), 400);
        assert_eq!(page(&app, "").await["entries"], json!([]));
    }

    async fn replay_applies_a_stored_event_after_the_catalog_learns_its_price(backend) {
        let app = TestApp::spawn(backend).await;
        let mut created = app.event("customer.subscription.created", "acme", now());
        created["data"]["object"]["items"]["data"][0]["price"]["id"] = json!("price_pro_2027");
        let event_id = created["id"].as_str().unwrap().to_owned();
        app.deliver(&created).await;
        assert_eq!(app.get_entitlements("acme").await.1["plan"], "free");

        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("catalog.toml");
        std::fs::write(&config, "[plans.pro]\nprices = [\"price_pro_monthly\", \"price_pro_2027\"]\n").unwrap();
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_billing-api"))
            .args(["--config", config.to_str().unwrap(), "replay", &event_id])
            .env("DATABASE_URL", &app.db.url)
            .current_dir(dir.path())
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&output.stdout);
        assert!(output.status.success() && text.contains("applied"), "{text}{}", String::from_utf8_lossy(&output.stderr));
        let body = app.get_entitlements("acme").await.1;
        assert_eq!((body["plan"].as_str(), body["version"].as_i64()), (Some("pro"), Some(1)));

        let missing = std::process::Command::new(env!("CARGO_BIN_EXE_billing-api"))
            .args(["replay", "evt_nope"]).env("DATABASE_URL", &app.db.url).current_dir(dir.path()).output().unwrap();
        assert!(!missing.status.success());
    }
}
