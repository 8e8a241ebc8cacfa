//! One-time purchases: delayed payments, refunds and disputes, in every
//! order, from Stripe's own event shapes (payment-mode checkout is in
//! `checkout.rs`).

use serde_json::{Value, json};

use crate::helpers::{Backend, READ_TOKEN, TestApp, fixture, json_of, now, run_with_catalog};
use crate::on_both_backends;

const ORG: &str = "fixture-org";
const DAY: i64 = 86_400;

/// The answer's primary plan, status and seats.
async fn state(app: &TestApp, org: &str) -> (String, String, i64) {
    let body = app.get_entitlements(org).await.1;
    (
        body["plan"].as_str().unwrap().into(),
        body["status"].as_str().unwrap().into(),
        body["features"]["seats"].as_i64().unwrap(),
    )
}

fn free() -> (String, String, i64) {
    ("free".into(), "none".into(), 1)
}

fn purchased(plan: &str, seats: i64) -> (String, String, i64) {
    (plan.into(), "purchased".into(), seats)
}

/// Delivers `event` about `org` and returns its outcome and the detail
/// the history recorded for it.
async fn deliver(app: &TestApp, org: &str, event: &Value) -> (String, String) {
    let (status, body) = app.deliver(event).await;
    assert_eq!(status, 200, "{body}");
    let (_, history) = app.history(org, "").await;
    let entry = history["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["kind"] == "event" && e["event_id"] == event["id"]);
    let detail = entry.map_or("", |e| e["detail"].as_str().unwrap_or_default());
    (
        body["outcome"].as_str().unwrap_or_default().into(),
        detail.into(),
    )
}

/// An event about purchase `id` of `org`'s lifetime deal, created `at`.
fn lifetime(app: &TestApp, kind: &str, org: &str, id: &str, at: i64) -> Value {
    app.build_event(kind, org)
        .plan("lifetime")
        .purchase(id)
        .at(at)
        .build()
}

async fn stripes_purchase_events_apply_from_their_own_shapes(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    assert_eq!(
        deliver(&app, ORG, &fixture("checkout.session.completed.payment"))
            .await
            .0,
        "applied"
    );
    assert_eq!(state(&app, ORG).await, purchased("lifetime", 5));
    let body = app.get_entitlements(ORG).await.1;
    assert_eq!(
        (
            &body["sources"],
            &body["valid_until"],
            &body["subscription_id"]
        ),
        (
            &json!([{"kind": "purchase", "id": "cs_test_Fixture2", "plan": "lifetime", "until": null}]),
            &Value::Null,
            &Value::Null
        )
    );

    let (status, sso) = json_of(
        app.get(
            "/v1/entitlements/fixture-org/features/sso",
            Some(READ_TOKEN),
        )
        .await,
    )
    .await;
    assert_eq!((status, &sso["value"]), (200, &json!(true)));

    let (outcome, detail) = deliver(&app, ORG, &fixture("charge.refunded.partial")).await;
    assert_eq!(outcome, "applied");
    assert!(
        detail.contains("refunded in part; access stays"),
        "{detail}"
    );
    assert_eq!(state(&app, ORG).await, purchased("lifetime", 5));

    let (_, detail) = deliver(&app, ORG, &fixture("charge.dispute.created.purchase")).await;
    assert!(detail.contains("access suspended"), "{detail}");
    assert_eq!(state(&app, ORG).await, free());

    let (_, detail) = deliver(&app, ORG, &fixture("charge.dispute.closed")).await;
    assert!(detail.contains("dispute won; access restored"), "{detail}");
    assert_eq!(state(&app, ORG).await, purchased("lifetime", 5));

    let (_, detail) = deliver(&app, ORG, &fixture("charge.refunded.purchase")).await;
    assert!(detail.contains("refunded in full"), "{detail}");
    assert_eq!(state(&app, ORG).await, free());

    // The history shows each purchase event with its outcome, and each
    // change it caused.
    let (_, history) = app.history(ORG, "").await;
    let entries: Vec<(&str, &str)> = history["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["type"].as_str().or(e["kind"].as_str()).unwrap(),
                e["outcome"]
                    .as_str()
                    .or(e["status"].as_str())
                    .unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        entries,
        [
            ("charge.refunded", "applied"),
            ("entitlement_change", "none"),
            ("charge.dispute.closed", "applied"),
            ("entitlement_change", "purchased"),
            ("charge.dispute.created", "applied"),
            ("entitlement_change", "none"),
            ("charge.refunded", "applied"),
            ("checkout.session.completed", "applied"),
            ("entitlement_change", "purchased"),
        ]
    );
}

async fn a_delayed_payment_grants_only_once_it_succeeds(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (outcome, detail) = deliver(&app, ORG, &fixture("checkout.session.completed.unpaid")).await;
    assert_eq!(
        (
            outcome.as_str(),
            detail.contains("purchase cs_test_Fixture3 pending")
        ),
        ("applied", true),
        "{detail}"
    );
    assert_eq!(state(&app, ORG).await, free());

    // A pass of two seats, from the moment the payment succeeded.
    let mut succeeded = fixture("checkout.session.async_payment_succeeded");
    succeeded["created"] = json!(now());
    deliver(&app, ORG, &succeeded).await;
    assert_eq!(state(&app, ORG).await, purchased("pass", 2));
    let until =
        chrono::DateTime::from_timestamp(succeeded["created"].as_i64().unwrap() + 30 * DAY, 0);
    let body = app.get_entitlements(ORG).await.1;
    assert_eq!(body["sources"][0]["until"], json!(until));

    // Once paid, a failure of the same payment is out of date.
    let (outcome, detail) =
        deliver(&app, ORG, &fixture("checkout.session.async_payment_failed")).await;
    assert_eq!(outcome, "stale", "{detail}");
    assert_eq!(state(&app, ORG).await, purchased("pass", 2));
}

async fn a_failed_delayed_payment_ends_the_purchase_without_access(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    deliver(&app, ORG, &fixture("checkout.session.completed.unpaid")).await;
    let (outcome, detail) =
        deliver(&app, ORG, &fixture("checkout.session.async_payment_failed")).await;
    assert!(detail.contains("failed"), "{outcome}: {detail}");
    let (outcome, _) = deliver(
        &app,
        ORG,
        &fixture("checkout.session.async_payment_succeeded"),
    )
    .await;
    assert_eq!(outcome, "stale");
    assert_eq!(state(&app, ORG).await, free());
    assert_eq!(app.get_entitlements(ORG).await.1["version"], 0);
}

async fn a_pass_lapses_after_its_access_days(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    // Paid 30 days ago, less two seconds.
    let paid = now() - 30 * DAY + 2;
    let event = app
        .build_event("checkout.session.completed", "acme")
        .plan("pass")
        .quantity(3)
        .at(paid)
        .build();
    deliver(&app, "acme", &event).await;
    let body = app.get_entitlements("acme").await.1;
    assert_eq!(
        (body["status"].as_str(), body["features"]["seats"].as_i64()),
        (Some("purchased"), Some(3))
    );
    let until = chrono::DateTime::from_timestamp(paid + 30 * DAY, 0);
    assert_eq!(body["valid_until"], json!(until));
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    assert_eq!(state(&app, "acme").await, free());
}

/// Every order of `events` (by their index), each for its own
/// organization, ends in the same entitlements.
async fn every_order_ends_in(
    app: &TestApp,
    name: &str,
    kinds: &[(&str, Option<&str>)],
    expected: (String, String, i64),
) {
    let base = now() - 1_000;
    for (n, order) in permutations(kinds.len()).into_iter().enumerate() {
        let org = format!("{name}-{n}");
        for &i in &order {
            let (kind, status) = kinds[i];
            let mut builder = app
                .build_event(kind, &org)
                .plan("lifetime")
                .purchase(&org)
                .at(base + i as i64);
            if let Some(status) = status {
                builder = builder.status(status);
            }
            deliver(app, &org, &builder.build()).await;
        }
        assert_eq!(state(app, &org).await, expected, "{name}: order {order:?}");
    }
}

fn permutations(n: usize) -> Vec<Vec<usize>> {
    if n == 0 {
        return vec![vec![]];
    }
    let mut all = Vec::new();
    for rest in permutations(n - 1) {
        for at in 0..=rest.len() {
            let mut order = rest.clone();
            order.insert(at, n - 1);
            all.push(order);
        }
    }
    all
}

async fn refunds_and_disputes_apply_in_any_order_of_delivery(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let purchase = ("checkout.session.completed", None);
    let disputed = ("charge.dispute.created", None);
    every_order_ends_in(
        &app,
        "refunded",
        &[purchase, ("charge.refunded", None)],
        free(),
    )
    .await;
    every_order_ends_in(&app, "disputed", &[purchase, disputed], free()).await;
    every_order_ends_in(
        &app,
        "won",
        &[purchase, disputed, ("charge.dispute.closed", Some("won"))],
        purchased("lifetime", 5),
    )
    .await;
    every_order_ends_in(
        &app,
        "inquiry",
        &[
            purchase,
            disputed,
            ("charge.dispute.closed", Some("warning_closed")),
        ],
        purchased("lifetime", 5),
    )
    .await;
    every_order_ends_in(
        &app,
        "lost",
        &[purchase, disputed, ("charge.dispute.closed", Some("lost"))],
        free(),
    )
    .await;
    every_order_ends_in(
        &app,
        "won-refunded",
        &[
            purchase,
            disputed,
            ("charge.dispute.closed", Some("won")),
            ("charge.refunded", None),
        ],
        free(),
    )
    .await;
}

async fn duplicate_and_concurrent_deliveries_apply_once(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let t = now() - 100;
    let pass = app
        .build_event("checkout.session.completed", "acme")
        .plan("pass")
        .purchase("pass1")
        .quantity(4)
        .at(t)
        .build();
    let lifetime = lifetime(&app, "checkout.session.completed", "acme", "life1", t + 1);
    let refund = lifetime_refund(&app, t + 2);
    let deliveries = (0..6).map(|i| {
        let event = [&pass, &lifetime, &refund][i % 3];
        app.deliver(event)
    });
    let answers = futures_util::future::join_all(deliveries).await;
    assert!(
        answers.iter().all(|(status, _)| *status == 200),
        "{answers:?}"
    );

    // The pass stands; the lifetime deal was refunded; each counted once.
    assert_eq!(state(&app, "acme").await, purchased("pass", 4));
    let body = app.get_entitlements("acme").await.1;
    assert_eq!(body["sources"].as_array().unwrap().len(), 1, "{body}");
    // Three events recorded, three redeliveries. (A refund that came first
    // has no organization yet, so the history may not list it.)
    let counters = app.engine.counters();
    let recorded: u64 = entitlements::Outcome::ALL
        .into_iter()
        .map(|outcome| counters.events(outcome))
        .sum();
    assert_eq!((recorded, counters.duplicates()), (3, 3));
}

fn lifetime_refund(app: &TestApp, at: i64) -> Value {
    lifetime(app, "charge.refunded", "acme", "life1", at)
}

async fn a_purchase_beside_a_subscription_is_a_second_source(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let t = now() - 100;
    let sub = app
        .build_event("customer.subscription.created", "acme")
        .quantity(2)
        .at(t)
        .build();
    deliver(&app, "acme", &sub).await;
    deliver(
        &app,
        "acme",
        &app.build_event("checkout.session.completed", "acme")
            .plan("pass")
            .quantity(7)
            .at(t + 1)
            .build(),
    )
    .await;
    let body = app.get_entitlements("acme").await.1;
    // The subscription is primary; numbers merge by maximum.
    assert_eq!(
        (
            body["plan"].as_str(),
            body["status"].as_str(),
            body["features"]["seats"].as_i64()
        ),
        (Some("pro"), Some("active"), Some(7))
    );
    let kinds: Vec<&str> = body["sources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["subscription", "purchase"]);

    // A refund of a subscription's payment only records.
    let version = body["version"].clone();
    let refund = app
        .build_event("charge.refunded", "acme")
        .purchase("in_sub")
        .build();
    let (outcome, detail) = deliver(&app, "acme", &refund).await;
    assert_eq!(outcome, "applied", "{detail}");
    assert_eq!(app.get_entitlements("acme").await.1["version"], version);
}

async fn a_purchase_needs_its_plan_and_names_its_organization(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut event = fixture("checkout.session.completed.payment");
    event["data"]["object"]["metadata"] = json!({"org_id": ORG});
    assert_eq!(deliver(&app, ORG, &event).await.0, "invalid");
    let mut event = fixture("checkout.session.completed.payment");
    event["id"] = json!("evt_bad_quantity");
    event["data"]["object"]["metadata"]["quantity"] = json!("0");
    let (outcome, detail) = deliver(&app, ORG, &event).await;
    assert_eq!(outcome, "invalid");
    assert!(detail.contains("metadata.quantity"), "{detail}");
    assert_eq!(state(&app, ORG).await, free());

    // Without metadata.org_id the organization is client_reference_id;
    // a free checkout (`no_payment_required`) grants like a paid one.
    let mut event = fixture("checkout.session.completed.payment");
    event["id"] = json!("evt_by_reference");
    let session = &mut event["data"]["object"];
    session["metadata"] = json!({"plan": "lifetime"});
    session["client_reference_id"] = json!("initech");
    session["payment_status"] = json!("no_payment_required");
    assert_eq!(deliver(&app, "initech", &event).await.0, "applied");
    assert_eq!(state(&app, "initech").await, purchased("lifetime", 5));
}

async fn a_purchase_of_a_plan_added_later_grants_once_replayed(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut event = fixture("checkout.session.completed.payment");
    event["data"]["object"]["metadata"]["plan"] = json!("founders");
    let (outcome, detail) = deliver(&app, ORG, &event).await;
    assert_eq!(outcome, "applied");
    assert!(
        detail.contains("plan \"founders\" is in no catalog"),
        "{detail}"
    );
    assert_eq!(state(&app, ORG).await, free());

    let catalog = "[plans.founders]\nmode = \"payment\"\nprices = [\"price_founders\"]\nfeatures = { seats = 9, sso = true, projects = 9 }\n";
    let output = run_with_catalog(
        &app.db.url,
        catalog,
        &["replay", event["id"].as_str().unwrap()],
    );
    assert!(output.status.success(), "{output:?}");
    assert!(
        String::from_utf8_lossy(&output.stdout).contains("entitlements granted to version 1"),
        "{output:?}"
    );
    // The change replay made, under the catalog that knows the plan.
    let (_, history) = app.history(ORG, "").await;
    let change = history["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["kind"] == "entitlement_change")
        .unwrap();
    assert_eq!(
        (
            change["plan"].as_str(),
            change["status"].as_str(),
            change["features"]["seats"].as_i64()
        ),
        (Some("founders"), Some("purchased"), Some(9))
    );
}

/// The answer's features `seats` and `projects` and its `valid_until`.
async fn terms_of(app: &TestApp, org: &str) -> (Option<&'static str>, i64, i64, Value) {
    let body = app.get_entitlements(org).await.1;
    let granted = match body["status"].as_str() {
        Some("purchased") => Some("purchased"),
        _ => None,
    };
    (
        granted,
        body["features"]["seats"].as_i64().unwrap(),
        body["features"]["projects"].as_i64().unwrap(),
        body["valid_until"].clone(),
    )
}

/// A purchase keeps what it was sold with: a shorter pass, fewer projects
/// or a renamed plan in a later catalog change new purchases only, until
/// `billing-api reterm` gives the old ones today's terms.
async fn a_purchase_keeps_the_terms_it_was_sold_with(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let paid = now() - 10 * DAY;
    let pass = app
        .build_event("checkout.session.completed", "acme")
        .plan("pass")
        .quantity(3)
        .purchase("cs_pass_acme")
        .at(paid)
        .build();
    deliver(&app, "acme", &pass).await;
    let deal = lifetime(
        &app,
        "checkout.session.completed",
        "initech",
        "cs_deal",
        now() - DAY,
    );
    deliver(&app, "initech", &deal).await;
    // As recorded before terms were: it takes today's at the next start.
    app.db
        .execute("UPDATE purchases SET terms = NULL WHERE id = 'cs_deal'")
        .await;
    let app = app.restart_with(|_| {}).await;

    // The pass now lasts five days with ten projects, and the lifetime deal
    // is sold under another name.
    let app = app
        .restart_with(|s| {
            let pass = s.plans.get_mut("pass").unwrap();
            pass.access_days = Some(5);
            pass.features.insert("projects".into(), json!(10));
            let deal = s.plans.remove("lifetime").unwrap();
            s.plans.insert("lifetime_v2".into(), deal);
        })
        .await;
    let until = json!(chrono::DateTime::from_timestamp(paid + 30 * DAY, 0));
    assert_eq!(
        terms_of(&app, "acme").await,
        (Some("purchased"), 3, 100, until)
    );
    assert_eq!(state(&app, "initech").await, purchased("lifetime", 5));

    // A pass sold now is sold on today's terms.
    let sold_now = now() - 10;
    let newer = app
        .build_event("checkout.session.completed", "globex")
        .plan("pass")
        .quantity(2)
        .purchase("cs_pass_globex")
        .at(sold_now)
        .build();
    deliver(&app, "globex", &newer).await;
    let until = json!(chrono::DateTime::from_timestamp(sold_now + 5 * DAY, 0));
    assert_eq!(
        terms_of(&app, "globex").await,
        (Some("purchased"), 2, 10, until)
    );

    // Re-terming the passes by hand ends acme's (paid ten days ago).
    let version = app.get_entitlements("acme").await.1["version"].as_i64();
    let catalog = "[plans.pass]\naccess_days = 5\nfeatures = { seats = { per_unit = 1 }, sso = true, projects = 10 }\n";
    let output = run_with_catalog(&app.db.url, catalog, &["reterm", "pass"]);
    assert!(output.status.success(), "{output:?}");
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        "2 purchase(s) of pass given today's terms; 2 organization(s) recomputed\n"
    );
    let body = app
        .entitlements_once("acme", |b| b["status"] != "purchased")
        .await;
    assert_eq!(
        (body["plan"].as_str(), body["status"].as_str()),
        (Some("free"), Some("none")),
        "{body}"
    );
    assert_eq!(body["version"].as_i64(), version.map(|v| v + 1));
    assert_eq!(terms_of(&app, "globex").await.0, Some("purchased"));

    let output = run_with_catalog(&app.db.url, "", &["reterm", "pro"]);
    assert!(!output.status.success());
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("plan \"pro\" is no payment plan"),
        "{output:?}"
    );
}

async fn purchase_changes_are_counted_by_source_kind(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    deliver(&app, ORG, &fixture("checkout.session.completed.payment")).await;
    app.post_grant("acme", &json!({"plan": "pro"})).await;
    let metrics = app.get("/metrics", None).await.text().await.unwrap();
    for (source, count) in [("subscription", 0), ("purchase", 1), ("grant", 1)] {
        let line = format!("billing_entitlement_changes_total{{source=\"{source}\"}} {count}\n");
        assert!(metrics.contains(&line), "{line} in:\n{metrics}");
    }
}

on_both_backends!(
    stripes_purchase_events_apply_from_their_own_shapes,
    a_delayed_payment_grants_only_once_it_succeeds,
    a_failed_delayed_payment_ends_the_purchase_without_access,
    a_pass_lapses_after_its_access_days,
    refunds_and_disputes_apply_in_any_order_of_delivery,
    duplicate_and_concurrent_deliveries_apply_once,
    a_purchase_beside_a_subscription_is_a_second_source,
    a_purchase_needs_its_plan_and_names_its_organization,
    a_purchase_of_a_plan_added_later_grants_once_replayed,
    a_purchase_keeps_the_terms_it_was_sold_with,
    purchase_changes_are_counted_by_source_kind
);
