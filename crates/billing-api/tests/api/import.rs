//! `billing-api import` against a fake Stripe account: customers and
//! subscriptions over several pages, a rate limit, customers linked each
//! way, and one that cannot be linked.

use serde_json::{Value, json};
use wiremock::matchers::{query_param, query_param_is_missing};
use wiremock::{MockServer, Request};

use crate::helpers::{
    Backend, TestApp, answer, run_against_stripe, stripe_call, stripe_customer, stripe_subscription,
};
use crate::on_both_backends;

fn list(url: &str, data: Vec<Value>, has_more: bool) -> Value {
    json!({"object": "list", "data": data, "has_more": has_more, "url": url})
}

/// A subscription of `customer` on plan pro with `seats`, carrying
/// `metadata`.
fn subscription(id: &str, customer: &str, seats: u64, metadata: Value) -> Value {
    let mut sub = stripe_subscription(id, "unused", "active", "price_pro_monthly", seats);
    sub["customer"] = json!(customer);
    sub["metadata"] = metadata;
    sub
}

/// A completed subscription checkout of `customer` with `metadata`.
fn checkout(id: &str, customer: &str, metadata: Value) -> Value {
    let mut session: Value =
        serde_json::from_str(include_str!("../../fixtures/stripe/checkout_session.json")).unwrap();
    session["id"] = json!(id);
    session["mode"] = json!("subscription");
    session["status"] = json!("complete");
    session["payment_status"] = json!("paid");
    session["customer"] = json!(customer);
    session["metadata"] = metadata;
    session
}

/// Mounts `pages` of `route`, each after the last id of the one before;
/// the second page answers 429 once first.
async fn mount_pages(stripe: &MockServer, route: &str, pages: Vec<Vec<Value>>) {
    let url = route.trim_start_matches("/v1");
    let mut after: Option<String> = None;
    let count = pages.len();
    for (number, data) in pages.into_iter().enumerate() {
        let last = data.last().map(|o| o["id"].as_str().unwrap().to_owned());
        let body = list(url, data, number + 1 < count);
        let call = stripe_call("GET", route).and(query_param("limit", "100"));
        let call = match &after {
            Some(id) => call.and(query_param("starting_after", id.as_str())),
            None => call.and(query_param_is_missing("starting_after")),
        };
        if number == 1 {
            let limited =
                json!({"error": {"type": "rate_limit_error", "message": "Too many requests"}});
            let limited_call = stripe_call("GET", route).and(query_param(
                "starting_after",
                after.clone().unwrap().as_str(),
            ));
            limited_call
                .respond_with(answer(429, limited))
                .up_to_n_times(1)
                .with_priority(1)
                .mount(stripe)
                .await;
        }
        call.respond_with(answer(200, body)).mount(stripe).await;
        after = last;
    }
}

/// The account: customers linked by `org_id` and by `orgId` metadata, one
/// by its checkout's metadata (as a widely copied guide makes them), one a
/// webhook linked before, one whose subscription names its organization,
/// one linked elsewhere than its metadata says, one without subscriptions,
/// and one nothing names.
async fn stripe_account() -> MockServer {
    let stripe = MockServer::start().await;
    let customer =
        |id: &str, email: &str, metadata: Value| stripe_customer(id, Some(email), metadata);
    let customers = vec![
        vec![
            customer("cus_alpha", "ops@alpha.test", json!({"org_id": "alpha"})),
            customer("cus_beta", "ops@beta.test", json!({"orgId": "beta"})),
            customer("cus_trigger_gamma", "ops@gamma.test", json!({})),
        ],
        vec![
            customer("cus_delta", "ops@delta.test", json!({})),
            customer("cus_stray", "stray@example.test", json!({"plan": "pro"})),
            customer("cus_lead", "lead@example.test", json!({})),
        ],
        vec![
            customer("cus_moved", "ops@zeta.test", json!({"org_id": "epsilon"})),
            customer("cus_guide", "ops@guide.test", json!({})),
        ],
    ];
    // Each can be read on its own too.
    for customer in customers.iter().flatten() {
        let route = format!("/v1/customers/{}", customer["id"].as_str().unwrap());
        stripe_call("GET", route)
            .respond_with(answer(200, customer.clone()))
            .mount(&stripe)
            .await;
    }
    mount_pages(&stripe, "/v1/customers", customers).await;
    let guide = json!({"orgId": "guide", "priceId": "price_pro_monthly"});
    let checkouts = vec![
        vec![
            checkout("cs_alpha", "cus_alpha", json!({"orgId": "alpha"})),
            checkout("cs_guide", "cus_guide", guide),
        ],
        vec![checkout("cs_stray", "cus_stray", json!({}))],
    ];
    mount_pages(&stripe, "/v1/checkout/sessions", checkouts).await;
    let subscriptions = vec![
        vec![
            subscription("sub_alpha", "cus_alpha", 2, json!({})),
            subscription(
                "sub_beta",
                "cus_beta",
                3,
                json!({"priceId": "price_pro_monthly"}),
            ),
            subscription("sub_trigger_gamma", "cus_trigger_gamma", 4, json!({})),
        ],
        vec![
            subscription("sub_delta", "cus_delta", 5, json!({"orgId": "delta"})),
            subscription("sub_stray", "cus_stray", 6, json!({})),
            subscription("sub_guide", "cus_guide", 7, json!({})),
        ],
    ];
    mount_pages(&stripe, "/v1/subscriptions", subscriptions).await;
    stripe
}

/// How often Stripe was asked for `route` after `after`.
async fn asked(stripe: &MockServer, route: &str, after: &str) -> usize {
    let requests: Vec<Request> = stripe.received_requests().await.unwrap_or_default();
    requests
        .iter()
        .filter(|r| {
            r.url.path() == route
                && r.url
                    .query_pairs()
                    .any(|(k, v)| k == "starting_after" && v == after)
        })
        .count()
}

/// The service as the account left it before: gamma checked out through
/// it, zeta owns the customer whose metadata now names epsilon, and a
/// webhook of alpha's subscription (returned) waits for an organization.
async fn adopting_app(backend: Backend) -> (TestApp, Value) {
    let app = TestApp::spawn(backend).await;
    app.deliver(&app.event("checkout.session.completed", "gamma", crate::helpers::now()))
        .await;
    let mut zeta = app.event("checkout.session.completed", "zeta", crate::helpers::now());
    zeta["data"]["object"]["customer"] = json!("cus_moved");
    app.deliver(&zeta).await;
    let mut waiting = app.event(
        "customer.subscription.created",
        "alpha",
        crate::helpers::now(),
    );
    waiting["data"]["object"]["id"] = json!("sub_alpha");
    waiting["data"]["object"]["customer"] = json!("cus_alpha");
    waiting["data"]["object"]["metadata"] = json!({});
    let (status, body) = app.deliver(&waiting).await;
    assert_eq!(
        (status, body["outcome"].as_str()),
        (200, Some("unlinked")),
        "{body}"
    );
    (app, waiting)
}

async fn a_dry_run_says_what_import_would_do_and_changes_nothing(backend: Backend) {
    let (app, _) = adopting_app(backend).await;
    let stripe = stripe_account().await;

    let text = run_against_stripe(&["import", "--dry-run"], &app.db.url, &stripe.uri());

    assert!(
        text.contains(
            "dry run, nothing changed: customers: 8 read, 3 completed checkouts read; would link 2 by their metadata, 1 by a checkout; 0 already linked, 1 linked elsewhere"
        ),
        "{text}"
    );
    assert!(
        text.contains(
            "6 subscription(s) read; organizations: 2 granted, 0 revoked, 0 changed, 0 unchanged; 1 subscription(s) without an organization"
        ),
        "{text}"
    );
    assert!(
        text.contains("3 subscription(s) of customers it would link are not counted above"),
        "{text}"
    );
    let rows: Vec<&str> = text.lines().filter(|l| l.starts_with("cus_")).collect();
    assert_eq!(
        rows.len(),
        2,
        "the conflict and the one it cannot link: {text}"
    );
    assert!(rows.iter().any(|r| r.starts_with("cus_stray ")), "{text}");
    for org in ["alpha", "beta", "gamma", "delta", "guide"] {
        let (_, answer) = app.get_entitlements(org).await;
        assert_eq!(answer["plan"], "free", "{org}: {answer}");
    }
    let (_, history) = app.history("alpha", "").await;
    assert!(
        !history.to_string().contains("customer_linked"),
        "{history}"
    );
}

async fn import_adopts_an_account_and_lists_what_it_cannot_link(backend: Backend) {
    let (app, waiting) = adopting_app(backend).await;
    let stripe = stripe_account().await;

    let text = run_against_stripe(&["import"], &app.db.url, &stripe.uri());

    assert!(
        text.contains(
            "customers: 8 read, 3 completed checkouts read; linked 2 by their metadata, 1 by a checkout; 0 already linked, 1 linked elsewhere"
        ),
        "{text}"
    );
    assert!(text.contains("3 pages, 8 customers in "), "{text}");
    assert!(text.contains("2 pages, 3 checkouts in "), "{text}");
    assert!(text.contains("2 pages, 6 subscriptions in "), "{text}");
    assert!(
        text.contains(
            "cus_moved is linked to zeta but its metadata names epsilon; left linked to zeta"
        ),
        "{text}"
    );
    assert!(
        text.contains("1 customer(s) with subscriptions could not be linked"),
        "{text}"
    );
    let row = text
        .lines()
        .find(|l| l.starts_with("cus_stray "))
        .unwrap_or_else(|| panic!("no row of cus_stray: {text}"));
    let cells: Vec<&str> = row.split("  ").filter(|c| !c.trim().is_empty()).collect();
    assert_eq!(
        cells.iter().map(|c| c.trim()).collect::<Vec<_>>(),
        [
            "cus_stray",
            "stray@example.test",
            "sub_stray",
            "billing-api link <org_id> cus_stray, or set its metadata org_id and import again"
        ],
        "{text}"
    );
    assert!(
        !text.contains("cus_lead"),
        "no subscriptions, nothing to do: {text}"
    );
    // Each rate-limited page was asked again, and read once it answered.
    assert_eq!(
        asked(&stripe, "/v1/customers", "cus_trigger_gamma").await,
        2
    );
    assert_eq!(asked(&stripe, "/v1/checkout/sessions", "cs_guide").await, 2);
    assert_eq!(
        asked(&stripe, "/v1/subscriptions", "sub_trigger_gamma").await,
        2
    );

    let entitled = [
        ("alpha", 2),
        ("beta", 3),
        ("gamma", 4),
        ("delta", 5),
        ("guide", 7),
    ];
    for (org, seats) in entitled {
        let answer = app.entitlements_once(org, |b| b["plan"] == "pro").await;
        assert_eq!(answer["features"]["seats"], seats, "{org}: {answer}");
    }
    // The waiting webhook is alpha's now, applied.
    let (_, history) = app.history("alpha", "").await;
    let event = history["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["event_id"] == waiting["id"]);
    assert_eq!(
        event.map(|e| e["outcome"].clone()),
        Some(json!("applied")),
        "{history}"
    );
    // Stray's subscription stays nobody's.
    let (_, stray) = app.get_entitlements("stray").await;
    assert_eq!(stray["plan"], "free", "{stray}");

    // Again: nothing new to link, nothing changes.
    let again = run_against_stripe(&["import"], &app.db.url, &stripe.uri());
    assert!(
        again.contains(
            "customers: 8 read, 3 completed checkouts read; linked 0 by their metadata, 0 by a checkout; 3 already linked, 1 linked elsewhere"
        ),
        "{again}"
    );
    assert!(
        again.contains("0 granted, 0 revoked, 0 changed, 5 unchanged"),
        "{again}"
    );
    assert!(
        again.contains("1 customer(s) with subscriptions could not be linked"),
        "{again}"
    );
    let (_, history) = app.history("alpha", "").await;
    let links = history["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "customer_linked")
        .count();
    assert_eq!(links, 1, "linked once, noted once: {history}");
}

async fn import_in_its_own_process_runs_while_webhooks_arrive(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    // 20 pages of 25 subscriptions, each of its own organization (named in
    // its metadata), and no customers or checkouts to link.
    let stripe = MockServer::start().await;
    for route in ["/v1/customers", "/v1/checkout/sessions"] {
        let empty = list(route.trim_start_matches("/v1"), vec![], false);
        stripe_call("GET", route)
            .respond_with(answer(200, empty))
            .mount(&stripe)
            .await;
    }
    let pages: Vec<Vec<Value>> = (0..20)
        .map(|page| {
            (0..25)
                .map(|n| {
                    let org = format!("listed-{page}-{n}");
                    let (id, customer) = (format!("sub_{org}"), format!("cus_{org}"));
                    subscription(&id, &customer, 2, json!({ "org_id": org }))
                })
                .collect()
        })
        .collect();
    mount_pages(&stripe, "/v1/subscriptions", pages).await;
    let (db_url, stripe_uri) = (app.db.url.clone(), stripe.uri());
    let import =
        tokio::task::spawn_blocking(move || run_against_stripe(&["import"], &db_url, &stripe_uri));
    // Meanwhile other organizations subscribe through webhooks, one after
    // another until the import is over.
    let mut answers = Vec::new();
    while !import.is_finished() {
        let org = format!("hooked-{}", answers.len());
        let event = app.event("customer.subscription.created", &org, crate::helpers::now());
        answers.push(app.deliver(&event).await);
    }
    assert!(
        answers.len() >= 20,
        "{} webhooks during the import",
        answers.len()
    );
    let text = import.await.unwrap();
    assert!(
        text.contains("500 subscription(s) read; organizations: 500 granted"),
        "{text}"
    );
    for (status, body) in &answers {
        assert_eq!(
            (*status, body["outcome"].as_str()),
            (200, Some("applied")),
            "{body}"
        );
    }
    let last = format!("hooked-{}", answers.len() - 1);
    for org in ["listed-0-0", "listed-19-24", "hooked-0", &last] {
        let answer = app.entitlements_once(org, |b| b["plan"] == "pro").await;
        assert_eq!(answer["plan"], "pro", "{org}: {answer}");
    }
}

on_both_backends!(
    a_dry_run_says_what_import_would_do_and_changes_nothing,
    import_adopts_an_account_and_lists_what_it_cannot_link,
    import_in_its_own_process_runs_while_webhooks_arrive
);
