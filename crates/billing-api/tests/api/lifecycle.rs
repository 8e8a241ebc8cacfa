//! The subscription lifecycle from Stripe's documented event shapes
//! (`tests/fixtures/events`), statuses, dunning and plan changes.

use serde_json::{Value, json};

use crate::helpers::{ADMIN_TOKEN, Backend, TestApp, fixture, json_of, now};
use crate::on_both_backends;

const ORG: &str = "fixture-org";
const START: i64 = 1_790_000_000;
const DAY: i64 = 86_400;

async fn outcome(app: &TestApp, name: &str) -> String {
    let (status, body) = app.deliver(&fixture(name)).await;
    assert_eq!(status, 200, "{name}: {body}");
    body["outcome"].as_str().unwrap_or_default().to_owned()
}

async fn state(app: &TestApp) -> (String, String, i64) {
    let body = app.get_entitlements(ORG).await.1;
    (
        body["plan"].as_str().unwrap().into(),
        body["status"].as_str().unwrap().into(),
        body["features"]["seats"].as_i64().unwrap(),
    )
}

/// A fixture event for invoice `id` (created at `invoice_created`), sent at
/// `created`.
fn invoice_event(name: &str, id: &str, invoice_created: i64, created: i64) -> Value {
    let mut event = fixture(name);
    event["id"] = json!(format!("evt_{name}_{id}_{created}"));
    event["created"] = json!(created);
    event["data"]["object"]["id"] = json!(id);
    event["data"]["object"]["created"] = json!(invoice_created);
    event
}

/// Payment of invoice `id` (created at `invoice_created`) fails at `at`,
/// and the subscription turns `past_due` a second later.
async fn payment_fails(app: &TestApp, id: &str, invoice_created: i64, at: i64) {
    let failure = invoice_event("invoice.payment_failed", id, invoice_created, at);
    app.deliver(&failure).await;
    app.deliver(&status_event("past_due", at + 1)).await;
}

/// The fixture subscription with `status`, sent at `created`.
fn status_event(status: &str, created: i64) -> Value {
    let mut event = fixture("customer.subscription.updated");
    event["id"] = json!(format!("evt_status_{status}_{created}"));
    event["created"] = json!(created);
    event["data"]["object"]["status"] = json!(status);
    event
}

fn grace_until(body: &Value) -> Value {
    body["grace_until"].clone()
}

fn at(t: i64) -> Value {
    json!(chrono::DateTime::from_timestamp(t, 0).unwrap())
}

fn with_grace_days(days: u32) -> impl FnOnce(&mut billing_api::settings::Settings) {
    move |s| s.stripe.past_due_grace_days = days
}

async fn every_handled_event_type_applies_from_stripes_own_shapes(backend: Backend) {
    let app = TestApp::spawn_with(backend, with_grace_days(10_000)).await;
    assert_eq!(outcome(&app, "checkout.session.completed").await, "applied");
    assert_eq!(
        outcome(&app, "customer.subscription.created").await,
        "applied"
    );
    assert_eq!(state(&app).await, ("pro".into(), "active".into(), 1));
    assert_eq!(
        outcome(&app, "customer.subscription.updated").await,
        "applied"
    );
    assert_eq!(state(&app).await.2, 5);

    assert_eq!(outcome(&app, "invoice.payment_failed").await, "applied");
    assert_eq!(
        outcome(&app, "customer.subscription.updated.past_due").await,
        "applied"
    );
    let body = app.get_entitlements(ORG).await.1;
    assert_eq!(
        (body["plan"].as_str(), body["status"].as_str()),
        (Some("pro"), Some("past_due"))
    );
    let grace_until = chrono::DateTime::from_timestamp(START + 200 + 10_000 * DAY, 0).unwrap();
    assert_eq!(body["grace_until"], json!(grace_until));

    assert_eq!(outcome(&app, "invoice.paid").await, "applied");
    assert_eq!(
        outcome(&app, "customer.subscription.paused").await,
        "applied"
    );
    assert_eq!(state(&app).await.0, "free");
    assert_eq!(
        outcome(&app, "customer.subscription.resumed").await,
        "applied"
    );
    assert_eq!(state(&app).await, ("pro".into(), "active".into(), 5));
    assert_eq!(outcome(&app, "charge.refunded").await, "applied");
    assert_eq!(outcome(&app, "charge.dispute.created").await, "applied");
    assert_eq!(
        outcome(&app, "customer.subscription.deleted").await,
        "applied"
    );
    assert_eq!(state(&app).await, ("free".into(), "none".into(), 1));

    let history = json_of(
        app.get(
            &format!("/v1/orgs/{ORG}/history?limit=200"),
            Some(ADMIN_TOKEN),
        )
        .await,
    )
    .await
    .1;
    let types: Vec<&str> = history["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "event")
        .filter_map(|e| e["type"].as_str())
        .collect();
    assert!(
        types.contains(&"charge.refunded") && types.contains(&"charge.dispute.created"),
        "{types:?}"
    );
}

async fn a_refund_is_attributed_through_the_subscriptions_customer(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    // No checkout: the organization is known from subscription metadata only.
    outcome(&app, "customer.subscription.created").await;
    assert_eq!(outcome(&app, "charge.refunded").await, "applied");
    let mut stranger = fixture("charge.refunded");
    stranger["id"] = json!("evt_refund_stranger");
    stranger["data"]["object"]["customer"] = json!("cus_unknown");
    assert_eq!(app.deliver(&stranger).await.1["outcome"], "unlinked");
}

async fn the_legacy_subscription_shape_grants_the_same(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    assert_eq!(
        outcome(&app, "customer.subscription.created.legacy").await,
        "applied"
    );
    let body = app.get_entitlements(ORG).await.1;
    assert_eq!(body["plan"], "pro");
    assert_eq!(body["current_period_end"], "2100-01-01T00:00:00Z");
}

async fn past_due_after_the_grace_period_grants_nothing(backend: Backend) {
    let app = TestApp::spawn_with(backend, with_grace_days(7)).await;
    outcome(&app, "customer.subscription.created").await;
    outcome(&app, "invoice.payment_failed").await;
    outcome(&app, "customer.subscription.updated.past_due").await;
    assert_eq!(state(&app).await.0, "free");
}

async fn a_payment_failure_older_than_the_payment_is_stale(backend: Backend) {
    let app = TestApp::spawn_with(backend, with_grace_days(10_000)).await;
    outcome(&app, "customer.subscription.created").await;
    assert_eq!(outcome(&app, "invoice.paid").await, "applied");
    assert_eq!(outcome(&app, "invoice.payment_failed").await, "stale");
    assert_eq!(
        outcome(&app, "customer.subscription.updated.past_due").await,
        "applied"
    );
    // No open dunning: grace counts from the unpaid period's start.
    let body = app.get_entitlements(ORG).await.1;
    assert_eq!(
        body["grace_until"],
        json!(chrono::DateTime::from_timestamp(START + 10_000 * DAY, 0).unwrap())
    );
}

async fn a_new_past_due_counts_its_grace_afresh_after_an_old_invoice_was_voided(backend: Backend) {
    let app = TestApp::spawn_with(backend, with_grace_days(30)).await;
    outcome(&app, "customer.subscription.created").await;
    payment_fails(&app, "in_old", START + 200, START + 200).await;
    // in_old is voided (no event); the subscription is active again.
    app.deliver(&status_event("active", START + 300)).await;
    let failed = START + 50 * DAY;
    payment_fails(&app, "in_new", failed - 100, failed).await;
    let body = app.get_entitlements(ORG).await.1;
    assert_eq!(
        (body["plan"].as_str(), grace_until(&body)),
        (Some("pro"), at(failed + 30 * DAY)),
        "{body}"
    );
}

async fn only_a_payment_of_the_invoice_in_dunning_or_a_newer_one_ends_it(backend: Backend) {
    let app = TestApp::spawn_with(backend, with_grace_days(30)).await;
    outcome(&app, "customer.subscription.created").await;
    let failed = START + 50 * DAY;
    payment_fails(&app, "in_new", failed - 100, failed).await;
    // An older invoice paid late leaves the newer one in dunning.
    let paid_old = app
        .deliver(&invoice_event(
            "invoice.paid",
            "in_old",
            START + 200,
            failed + 500,
        ))
        .await
        .1;
    assert_eq!(paid_old["outcome"], "applied");
    let body = app.get_entitlements(ORG).await.1;
    assert_eq!(grace_until(&body), at(failed + 30 * DAY), "{body}");
    // A failure of an older invoice does not restart it either.
    let late = app
        .deliver(&invoice_event(
            "invoice.payment_failed",
            "in_older",
            START,
            failed + 600,
        ))
        .await
        .1;
    assert_eq!(late["outcome"], "stale", "{late}");
    // Paying the invoice in dunning ends it.
    app.deliver(&invoice_event(
        "invoice.paid",
        "in_new",
        failed - 100,
        failed + 700,
    ))
    .await;
    app.deliver(&status_event("active", failed + 701)).await;
    let body = app.get_entitlements(ORG).await.1;
    assert_eq!(
        (body["status"].as_str(), grace_until(&body)),
        (Some("active"), Value::Null),
        "{body}"
    );
}

async fn an_answer_lapses_when_its_grace_period_ends(backend: Backend) {
    let app = TestApp::spawn_with(backend, with_grace_days(1)).await;
    let t = now();
    let mut failed = fixture("invoice.payment_failed");
    failed["created"] = json!(t - DAY + 2);
    let mut past_due = fixture("customer.subscription.updated.past_due");
    past_due["created"] = json!(t);
    app.deliver(&failed).await;
    app.deliver(&past_due).await;
    let before = app.get_entitlements(ORG).await.1;
    assert_eq!(
        (before["plan"].as_str(), before["version"].as_i64()),
        (Some("pro"), Some(1))
    );
    tokio::time::sleep(std::time::Duration::from_millis(3_100)).await;
    let after = app.get_entitlements(ORG).await.1;
    assert_eq!(
        (after["plan"].as_str(), after["version"].as_i64()),
        (Some("free"), Some(2))
    );
    let history = json_of(
        app.get(&format!("/v1/orgs/{ORG}/history"), Some(ADMIN_TOKEN))
            .await,
    )
    .await
    .1;
    assert_eq!(history["entries"][0]["kind"], "entitlement_change");
    assert_eq!(history["entries"][0]["event_id"], Value::Null);
}

async fn cancel_at_period_end_keeps_access_until_the_period_ends(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut update = fixture("customer.subscription.updated");
    update["data"]["object"]["cancel_at_period_end"] = json!(true);
    app.deliver(&update).await;
    let body = app.get_entitlements(ORG).await.1;
    assert_eq!(
        (
            body["plan"].as_str(),
            body["cancel_at_period_end"].as_bool()
        ),
        (Some("pro"), Some(true))
    );
    assert_eq!(body["valid_until"], "2100-01-01T00:00:00Z");
}

async fn a_subscription_moved_to_another_organization_leaves_the_first(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let t = now();
    app.deliver(&app.event("customer.subscription.created", "acme", t))
        .await;
    let mut moved = app.event("customer.subscription.updated", "acme", t + 1);
    moved["data"]["object"]["metadata"]["org_id"] = json!("beta");
    let answer = app.deliver(&moved).await.1;
    assert_eq!(answer["outcome"], "applied", "{answer}");

    let acme = app.get_entitlements("acme").await.1;
    assert_eq!(
        (acme["plan"].as_str(), acme["version"].as_i64()),
        (Some("free"), Some(2))
    );
    let beta = app.get_entitlements("beta").await.1;
    assert_eq!(
        (beta["plan"].as_str(), beta["version"].as_i64()),
        (Some("pro"), Some(1))
    );
    for org in ["acme", "beta"] {
        let history = json_of(
            app.get(&format!("/v1/orgs/{org}/history"), Some(ADMIN_TOKEN))
                .await,
        )
        .await
        .1;
        let newest_change = history["entries"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["kind"] == "entitlement_change")
            .unwrap()
            .clone();
        assert_eq!(newest_change["event_id"], moved["id"], "{org}: {history}");
    }
}

async fn plan_changes_replace_the_items(backend: Backend) {
    let app = TestApp::spawn_with(backend, |s| {
        let team = serde_json::from_value(json!({"prices": ["price_team"], "features": {"seats": 50, "sso": true, "projects": 1000}})).unwrap();
        s.plans.insert("team".into(), team);
    }).await;
    outcome(&app, "customer.subscription.created").await;
    let mut upgrade = fixture("customer.subscription.updated");
    upgrade["data"]["object"]["items"]["data"][0]["price"]["id"] = json!("price_team");
    app.deliver(&upgrade).await;
    let body = app.get_entitlements(ORG).await.1;
    assert_eq!(
        (body["plan"].as_str(), body["features"]["projects"].as_i64()),
        (Some("team"), Some(1000))
    );
}

async fn granting_subscriptions_of_one_organization_merge(backend: Backend) {
    let app = TestApp::spawn_with(backend, |s| {
        let addon = serde_json::from_value(
            json!({"prices": ["price_projects_addon"], "features": {"projects": 500}}),
        )
        .unwrap();
        s.plans.insert("addon".into(), addon);
    })
    .await;
    let pro = app
        .build_event("customer.subscription.created", "acme")
        .at(now())
        .quantity(8)
        .build();
    app.deliver(&pro).await;
    let mut addon = app.event("customer.subscription.created", "acme", now());
    addon["data"]["object"]["id"] = json!("sub_addon");
    addon["data"]["object"]["items"]["data"][0]["id"] = json!("si_addon");
    addon["data"]["object"]["items"]["data"][0]["price"]["id"] = json!("price_projects_addon");
    app.deliver(&addon).await;
    let body = app.get_entitlements("acme").await.1;
    assert_eq!(
        body["features"],
        json!({"projects": 500, "seats": 8, "sso": true})
    );
}

async fn unknown_prices_are_logged_counted_and_recorded(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (event_id, _) = app.subscribe_on_price("acme", "price_unlisted").await;
    let history = app.history("acme", "").await.1;
    let entry = &history["entries"][0];
    assert_eq!(
        (entry["event_id"].as_str(), entry["outcome"].as_str()),
        (Some(event_id.as_str()), Some("applied"))
    );
    assert!(
        entry["detail"].as_str().unwrap().contains("price_unlisted"),
        "{entry}"
    );
    assert_eq!(app.engine.counters().unknown_price_events(), 1);
}

on_both_backends!(
    every_handled_event_type_applies_from_stripes_own_shapes,
    a_refund_is_attributed_through_the_subscriptions_customer,
    the_legacy_subscription_shape_grants_the_same,
    past_due_after_the_grace_period_grants_nothing,
    a_payment_failure_older_than_the_payment_is_stale,
    a_new_past_due_counts_its_grace_afresh_after_an_old_invoice_was_voided,
    only_a_payment_of_the_invoice_in_dunning_or_a_newer_one_ends_it,
    an_answer_lapses_when_its_grace_period_ends,
    cancel_at_period_end_keeps_access_until_the_period_ends,
    a_subscription_moved_to_another_organization_leaves_the_first,
    plan_changes_replace_the_items,
    granting_subscriptions_of_one_organization_merge,
    unknown_prices_are_logged_counted_and_recorded
);
