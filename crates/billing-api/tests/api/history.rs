//! `GET /v1/orgs/{org_id}/history` and `billing-api replay`.

use serde_json::{Value, json};

use crate::helpers::{Backend, READ_TOKEN, TestApp, now, run_with_catalog};
use crate::on_both_backends;

async fn page(app: &TestApp, query: &str) -> Value {
    let (status, body) = app.history("acme", query).await;
    assert_eq!(status, 200, "{body}");
    body
}

/// Updates acme's subscription to each number of seats in turn, a second
/// apart.
async fn change_seats(app: &TestApp, seats: &[u64]) {
    let t = now();
    for (i, seats) in seats.iter().enumerate() {
        let event = app
            .build_event("customer.subscription.updated", "acme")
            .at(t + i as i64)
            .quantity(*seats)
            .build();
        app.deliver(&event).await;
    }
}

async fn history_lists_events_and_changes_newest_first_in_pages(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    change_seats(&app, &[2, 3, 4]).await;
    // 3 events and 3 changes, 4 then 2 per page.
    let first = page(&app, "?limit=4").await;
    let next = first["next"].as_str().expect("a second page").to_owned();
    let second = page(&app, &format!("?limit=4&before={next}")).await;
    assert_eq!(second["next"], Value::Null);
    let entries: Vec<&Value> = first["entries"]
        .as_array()
        .unwrap()
        .iter()
        .chain(second["entries"].as_array().unwrap())
        .collect();
    let kinds: Vec<&str> = entries
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds.len(), 6, "{entries:?}");
    assert_eq!(kinds.iter().filter(|k| **k == "event").count(), 3);
    let versions: Vec<i64> = entries
        .iter()
        .filter_map(|e| e["version"].as_i64())
        .collect();
    assert_eq!(versions, vec![3, 2, 1]);
    let times: Vec<&str> = entries.iter().map(|e| e["at"].as_str().unwrap()).collect();
    assert!(times.windows(2).all(|w| w[0] >= w[1]), "{times:?}");
    let newest_change = entries
        .iter()
        .find(|e| e["kind"] == "entitlement_change")
        .unwrap();
    assert_eq!(newest_change["features"]["seats"], 4);
}

async fn upgrading_keeps_the_history_in_order_and_appends_after_it(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    change_seats(&app, &[2, 3]).await;
    app.db.reapply_newest_migration().await;

    let event = app
        .build_event("customer.subscription.updated", "acme")
        .at(now() + 2)
        .quantity(4)
        .build();
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
    assert_eq!(
        entries[0]["event_id"], newest,
        "new entries come after the old ones"
    );
    assert_eq!(entries[0]["kind"], "event");
    assert_eq!(entries[1]["version"], 3);
    let versions: Vec<i64> = entries
        .iter()
        .filter_map(|e| e["version"].as_i64())
        .collect();
    assert_eq!(versions, vec![3, 2, 1]);
    let mut events: Vec<&str> = entries
        .iter()
        .filter(|e| e["kind"] == "event")
        .map(|e| e["event_id"].as_str().unwrap())
        .collect();
    events.sort_unstable();
    events.dedup();
    assert_eq!(events.len(), 3, "{entries:?}");
}

async fn history_needs_the_admin_scope_and_a_valid_cursor(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    assert_eq!(
        app.get("/v1/orgs/acme/history", Some(READ_TOKEN))
            .await
            .status(),
        403
    );
    for query in ["?before=junk", "?limit=0"] {
        let (status, body) = app.history("acme", query).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (400, Some("invalid_request")),
            "{query}"
        );
    }
    assert_eq!(page(&app, "").await["entries"], json!([]));
}

async fn replay_recomputes_the_events_organization_and_keeps_its_outcome(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (event_id, answer) = app.subscribe_on_price("acme", "price_pro_2027").await;
    assert_eq!(answer["outcome"], "applied");
    assert_eq!(app.get_entitlements("acme").await.1["plan"], "free");

    // The operator adds the price to the catalog and replays the event.
    let catalog = "[plans.pro]\nprices = [\"price_pro_monthly\", \"price_pro_2027\"]\n";
    let replay = |event: &str| run_with_catalog(&app.db.url, catalog, &["replay", event]);
    let output = replay(&event_id);
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(
        text.trim(),
        format!("{event_id}: recomputed acme: entitlements granted to version 1")
    );
    let again = replay(&event_id);
    assert!(String::from_utf8_lossy(&again.stdout).contains("entitlements unchanged at version 1"));

    let entries = page(&app, "").await["entries"].as_array().unwrap().clone();
    let kinds: Vec<&str> = entries
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        ["note", "note", "entitlement_change", "event"],
        "{entries:?}"
    );
    assert_eq!(
        (
            entries[1]["action"].as_str(),
            entries[1]["event_id"].as_str()
        ),
        (Some("replay"), Some(event_id.as_str()))
    );
    assert_eq!(entries[1]["detail"], "entitlements granted to version 1");
    assert_eq!(entries[2]["version"], 1);
    // The event keeps the outcome it was recorded with.
    assert_eq!(entries[3]["outcome"], "applied");
    assert!(
        entries[3]["detail"]
            .as_str()
            .unwrap()
            .contains("price_pro_2027"),
        "{entries:?}"
    );

    let missing = replay("evt_nope");
    assert!(!missing.status.success());
    let mut unlinked = app.event("invoice.paid", "nobody", now());
    unlinked["data"]["object"]["customer"] = json!("cus_unknown");
    unlinked["data"]["object"]["subscription"] = json!("sub_unknown");
    assert_eq!(app.deliver(&unlinked).await.1["outcome"], "unlinked");
    let nothing = replay(unlinked["id"].as_str().unwrap());
    assert!(!nothing.status.success());
    assert!(String::from_utf8_lossy(&nothing.stderr).contains("concerns no organization"));
}

on_both_backends!(
    history_lists_events_and_changes_newest_first_in_pages,
    upgrading_keeps_the_history_in_order_and_appends_after_it,
    history_needs_the_admin_scope_and_a_valid_cursor,
    replay_recomputes_the_events_organization_and_keeps_its_outcome
);
