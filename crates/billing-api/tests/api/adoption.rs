//! Adopting an existing Stripe account: the organization id wherever
//! other codebases already put it.

use serde_json::{Value, json};

use crate::helpers::{
    ADMIN_TOKEN, Backend, EventBuilder, TestApp, answer, json_of, run_against_stripe, run_command,
    stripe_call, stripe_customer, stripe_subscription,
};
use crate::on_both_backends;

/// The flow of a widely copied guide: the Checkout Session carries
/// `metadata: {orgId, priceId}` and no `client_reference_id`; the
/// subscription carries no metadata at all.
fn guide_events(app: &TestApp, org: &str) -> (Value, Value) {
    let mut session = EventBuilder::new(&app.settings, "checkout.session.completed", org).build();
    let object = &mut session["data"]["object"];
    object["metadata"] = json!({"orgId": org, "priceId": "price_pro_monthly"});
    object["client_reference_id"] = Value::Null;
    let mut subscription = EventBuilder::new(&app.settings, "customer.subscription.created", org)
        .quantity(4)
        .build();
    subscription["data"]["object"]["metadata"] = json!({});
    (session, subscription)
}

async fn the_guides_flow_ends_entitled_in_either_order(backend: Backend) {
    for checkout_first in [true, false] {
        let app = TestApp::spawn(backend).await;
        let (session, subscription) = guide_events(&app, "acme");
        let order = if checkout_first {
            [&session, &subscription]
        } else {
            [&subscription, &session]
        };
        for event in order {
            let (status, body) = app.deliver(event).await;
            assert_eq!(status, 200, "{body}");
        }
        let (_, answer) = app.get_entitlements("acme").await;
        assert_eq!(
            answer["plan"], "pro",
            "checkout first: {checkout_first}: {answer}"
        );
        assert_eq!(answer["features"]["seats"], 4, "{answer}");
    }
}

async fn an_org_id_under_a_key_not_configured_is_not_read(backend: Backend) {
    let app = TestApp::spawn_with(backend, |s| s.stripe.org_id_keys = vec!["org_id".into()]).await;
    let (session, subscription) = guide_events(&app, "acme");
    for event in [&session, &subscription] {
        let (status, body) = app.deliver(event).await;
        assert_eq!(status, 200, "{body}");
    }
    let (_, answer) = app.get_entitlements("acme").await;
    assert_eq!(answer["plan"], "free", "{answer}");
}

/// A subscription created by another codebase: no organization anywhere.
async fn stray_subscription(app: &TestApp, tag: &str) -> (String, String) {
    let mut event = EventBuilder::new(&app.settings, "customer.subscription.created", tag)
        .quantity(7)
        .build();
    event["data"]["object"]["metadata"] = json!({});
    let (status, body) = app.deliver(&event).await;
    assert_eq!(status, 200, "{body}");
    let customer = event["data"]["object"]["customer"]
        .as_str()
        .unwrap()
        .to_owned();
    (event["id"].as_str().unwrap().to_owned(), customer)
}

async fn link(app: &TestApp, org: &str, customer: &str) -> (u16, Value) {
    let response = reqwest::Client::new()
        .post(format!("{}/v1/orgs/{org}/customer", app.address))
        .bearer_auth(ADMIN_TOKEN)
        .json(&json!({ "customer_id": customer }))
        .send()
        .await
        .unwrap();
    json_of(response).await
}

/// The `/metrics` line counting events that wait for an organization.
async fn unlinked(app: &TestApp) -> String {
    let metrics = app.get("/metrics", None).await.text().await.unwrap();
    metrics
        .lines()
        .find(|l| l.starts_with("billing_unlinked_events "))
        .unwrap_or_default()
        .to_owned()
}

/// Events that waited before the upgrade that indexes them by customer
/// (an id, or the customer expanded) are found when it is linked.
async fn events_waiting_from_before_the_upgrade_come_with_their_customer(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (first, customer) = stray_subscription(&app, "legacy").await;
    let mut expanded = EventBuilder::new(&app.settings, "customer.subscription.updated", "legacy")
        .at(crate::helpers::now() + 1)
        .quantity(9)
        .build();
    let object = &mut expanded["data"]["object"];
    object["metadata"] = json!({});
    object["customer"] = json!({"id": customer, "object": "customer"});
    assert_eq!(app.deliver(&expanded).await.0, 200);
    app.db.reapply_newest_migration().await;

    let (status, answer) = link(&app, "acme", &customer).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        answer["events_applied"],
        json!([first, expanded["id"]]),
        "{answer}"
    );
    assert_eq!(answer["entitlements"]["features"]["seats"], 9, "{answer}");
}

async fn a_customer_linked_by_hand_brings_its_waiting_events(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (event_id, customer) = stray_subscription(&app, "legacy").await;
    let (_, before) = app.get_entitlements("acme").await;
    assert_eq!(before["plan"], "free", "{before}");
    assert_eq!(unlinked(&app).await, "billing_unlinked_events 1");

    let (status, answer) = link(&app, "acme", &customer).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["subscriptions_linked"], 1, "{answer}");
    assert_eq!(answer["events_applied"], json!([event_id]), "{answer}");
    assert_eq!(answer["entitlements"]["plan"], "pro", "{answer}");
    assert_eq!(answer["entitlements"]["features"]["seats"], 7, "{answer}");
    let (_, now) = app.get_entitlements("acme").await;
    assert_eq!(now["features"]["seats"], 7, "the hot path follows: {now}");

    assert_eq!(unlinked(&app).await, "billing_unlinked_events 0");

    // The event is now the organization's, applied; the history says who.
    let (_, history) = app.history("acme", "").await;
    let entries = history["entries"].as_array().unwrap();
    let event = entries
        .iter()
        .find(|e| e["event_id"] == event_id && e["kind"] == "event");
    assert_eq!(
        event.map(|e| e["outcome"].clone()),
        Some(json!("applied")),
        "{history}"
    );
    let note = entries.iter().find(|e| e["action"] == "customer_linked");
    assert!(
        note.is_some_and(|n| n["detail"].as_str().unwrap().contains("by operator")),
        "{history}"
    );

    // Again: nothing more to do. Another organization: refused.
    let (status, again) = link(&app, "acme", &customer).await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(again["events_applied"], json!([]), "{again}");
    let (status, taken) = link(&app, "beta", &customer).await;
    assert_eq!(status, 409, "{taken}");
    assert_eq!(taken["error"], "customer_taken", "{taken}");
    let (status, bad) = link(&app, "acme", "acme").await;
    assert_eq!(status, 400, "{bad}");
}

async fn the_cli_links_a_customer(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (event_id, customer) = stray_subscription(&app, "legacy").await;
    // Another customer's event waits too, and stays waiting.
    stray_subscription(&app, "legacy_other").await;
    let text = run_command(&["link", "globex", &customer], &app.db.url);
    assert!(text.contains(&format!("{customer} linked to globex: 1 subscriptions, 1 waiting events applied ({event_id}); plan pro")), "{text}");
    // Another process changed the database: the service's memory follows.
    let answer = app
        .entitlements_once("globex", |a| a["plan"] == "pro")
        .await;
    assert_eq!(answer["features"]["seats"], 7, "{answer}");
}

async fn a_failed_payment_that_waited_counts_once_linked(backend: Backend) {
    const DAY: i64 = 86_400;
    let app = TestApp::spawn(backend).await;
    let now = crate::helpers::now();
    let stray = |kind: &str, at: i64| {
        let mut event = EventBuilder::new(&app.settings, kind, "legacy")
            .at(at)
            .build();
        let object = &mut event["data"]["object"];
        object["metadata"] = json!({});
        if object["parent"].is_object() {
            object["parent"]["subscription_details"]["metadata"] = json!({});
        }
        event
    };
    // Subscribed ten days ago; the renewal failed two days ago. Both wait.
    let created = stray("customer.subscription.created", now - 10 * DAY);
    let failed = stray("invoice.payment_failed", now - 2 * DAY);
    for event in [&created, &failed] {
        let (status, body) = app.deliver(event).await;
        assert_eq!(status, 200, "{body}");
    }
    assert_eq!(unlinked(&app).await, "billing_unlinked_events 2");
    let customer = created["data"]["object"]["customer"].as_str().unwrap();
    let (status, answer) = link(&app, "acme", customer).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        answer["events_applied"].as_array().map(Vec::len),
        Some(2),
        "{answer}"
    );

    // Stripe then marks it past due: the grace period runs from the failed
    // payment that waited (seven days from two days ago), not from the
    // period's start (which would have ended it three days ago).
    let mut past_due = stray("customer.subscription.updated", now - DAY);
    past_due["data"]["object"]["status"] = json!("past_due");
    let (status, body) = app.deliver(&past_due).await;
    assert_eq!(status, 200, "{body}");
    let (_, entitlements) = app.get_entitlements("acme").await;
    assert_eq!(entitlements["status"], "past_due", "{entitlements}");
    let grace = chrono::DateTime::from_timestamp(now - 2 * DAY + 7 * DAY, 0).unwrap();
    let expected = grace.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    assert_eq!(
        entitlements["grace_until"],
        json!(expected),
        "{entitlements}"
    );
}

/// Stripe's answers for a subscription of `cus_legacy` that names no
/// organization, whose customer's metadata does (`orgId`).
async fn legacy_account(stripe: &wiremock::MockServer) {
    let mut sub = stripe_subscription(
        "sub_trigger_legacy",
        "legacy",
        "active",
        "price_pro_monthly",
        3,
    );
    sub["customer"] = json!("cus_legacy");
    sub["metadata"] = json!({});
    stripe_call("GET", "/v1/subscriptions/sub_trigger_legacy")
        .respond_with(answer(200, sub.clone()))
        .mount(stripe)
        .await;
    let page =
        json!({"object": "list", "data": [sub], "has_more": false, "url": "/v1/subscriptions"});
    stripe_call("GET", "/v1/subscriptions")
        .respond_with(answer(200, page))
        .mount(stripe)
        .await;
    let customer = stripe_customer("cus_legacy", None, json!({"orgId": "acme"}));
    stripe_call("GET", "/v1/customers/cus_legacy")
        .respond_with(answer(200, customer))
        .expect(1)
        .mount(stripe)
        .await;
}

/// An event of the legacy subscription, naming no organization.
fn legacy_event(app: &TestApp, kind: &str) -> Value {
    let mut event = EventBuilder::new(&app.settings, kind, "legacy").build();
    event["data"]["object"]["customer"] = json!("cus_legacy");
    event["data"]["object"]["metadata"] = json!({});
    event
}

async fn refetch_mode_reads_the_organization_from_the_customer_once(backend: Backend) {
    let (app, stripe) = TestApp::spawn_with_stripe(backend, |s| {
        s.stripe.sync_mode = billing_api::settings::SyncMode::Refetch;
    })
    .await;
    legacy_account(&stripe).await;
    // The first event reads the customer and is applied; the link is
    // remembered, so the next one does not read it again (the mock expects
    // one read).
    for kind in [
        "customer.subscription.created",
        "customer.subscription.updated",
    ] {
        let (status, body) = app.deliver(&legacy_event(&app, kind)).await;
        assert_eq!(
            (status, body["outcome"].as_str()),
            (200, Some("applied")),
            "{kind}: {body}"
        );
        let (_, answer) = app.get_entitlements("acme").await;
        assert_eq!(answer["features"]["seats"], 3, "{answer}");
    }
    stripe.verify().await;
}

async fn reconcile_links_a_customer_by_its_metadata(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let stripe = wiremock::MockServer::start().await;
    legacy_account(&stripe).await;
    let text = run_against_stripe(&["reconcile"], &app.db.url, &stripe.uri());
    assert!(
        text.contains("1 subscription(s) read; organizations: 0 granted, 0 revoked, 0 changed, 0 unchanged; 0 subscription(s) without an organization; 1 customer(s) linked by their metadata"),
        "{text}"
    );
    let answer = app.entitlements_once("acme", |a| a["plan"] == "pro").await;
    assert_eq!(answer["features"]["seats"], 3, "{answer}");
    // Remembered: the next run finds the organization without asking.
    let again = run_against_stripe(&["reconcile"], &app.db.url, &stripe.uri());
    assert!(
        again.contains("1 unchanged; 0 subscription(s) without"),
        "{again}"
    );
    stripe.verify().await;
}

on_both_backends!(
    events_waiting_from_before_the_upgrade_come_with_their_customer,
    refetch_mode_reads_the_organization_from_the_customer_once,
    reconcile_links_a_customer_by_its_metadata,
    a_failed_payment_that_waited_counts_once_linked,
    a_customer_linked_by_hand_brings_its_waiting_events,
    the_cli_links_a_customer,
    the_guides_flow_ends_entitled_in_either_order,
    an_org_id_under_a_key_not_configured_is_not_read
);
