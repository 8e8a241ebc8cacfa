//! `billing-api reconcile` and the periodic reconciliation in `serve`,
//! against a fake Stripe API with several pages and a rate limit.

use serde_json::{Value, json};
use wiremock::matchers::{query_param, query_param_is_missing};
use wiremock::{MockServer, ResponseTemplate};

use billing_api::stripe::api::StripeApi;
use billing_api::stripe::import::import;
use billing_api::stripe::progress::Progress;
use billing_api::stripe::reconcile::reconcile;

use crate::helpers::{
    Backend, TestApp, answer, now, run_against_stripe, stripe_call, stripe_subscription,
};
use crate::on_both_backends;

fn page(subs: Vec<Value>, has_more: bool) -> Value {
    json!({"object": "list", "data": subs, "has_more": has_more, "url": "/v1/subscriptions"})
}

async fn stripe_with_two_pages() -> MockServer {
    let stripe = MockServer::start().await;
    let first = page(
        vec![
            stripe_subscription("sub_acme", "acme", "active", "price_pro_monthly", 6),
            stripe_subscription("sub_beta", "beta", "active", "price_unlisted", 1),
        ],
        true,
    );
    stripe_call("GET", "/v1/subscriptions")
        .and(query_param("status", "all"))
        .and(query_param_is_missing("starting_after"))
        .respond_with(answer(200, first))
        .mount(&stripe)
        .await;
    let limited =
        json!({"error": {"type": "invalid_request_error", "message": "Too many requests"}});
    stripe_call("GET", "/v1/subscriptions")
        .and(query_param("starting_after", "sub_beta"))
        .respond_with(answer(429, limited))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&stripe)
        .await;
    let second = page(
        vec![stripe_subscription(
            "sub_trigger_gamma",
            "gamma",
            "canceled",
            "price_pro_monthly",
            1,
        )],
        false,
    );
    stripe_call("GET", "/v1/subscriptions")
        .and(query_param("starting_after", "sub_beta"))
        .respond_with(answer(200, second))
        .mount(&stripe)
        .await;
    stripe
}

fn run_reconcile(app: &TestApp, stripe: &MockServer, args: &[&str]) -> String {
    let args: Vec<&str> = ["reconcile"].iter().chain(args).copied().collect();
    run_against_stripe(&args, &app.db.url, &stripe.uri())
}

async fn reconcile_repairs_what_webhooks_missed(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    // Webhooks saw gamma subscribe but not cancel, and never saw acme.
    app.deliver(&app.event("customer.subscription.created", "gamma", now() - 60))
        .await;
    let stripe = stripe_with_two_pages().await;

    let dry = run_reconcile(&app, &stripe, &["--dry-run"]);
    assert!(dry.contains("dry run, nothing changed: 3 subscription(s) read; organizations: 1 granted, 1 revoked, 0 changed, 1 unchanged"), "{dry}");
    assert_eq!(app.get_entitlements("acme").await.1["plan"], "free");
    assert_eq!(app.get_entitlements("gamma").await.1["plan"], "pro");

    let text = run_reconcile(&app, &stripe, &[]);
    assert!(text.contains("2 pages, 3 subscriptions in "), "{text}");
    assert!(
        text.contains(
            "3 subscription(s) read; organizations: 1 granted, 1 revoked, 0 changed, 1 unchanged"
        ),
        "{text}"
    );
    assert!(text.contains("prices in no plan: price_unlisted"), "{text}");
    let acme = app.entitlements_once("acme", |b| b["plan"] == "pro").await;
    assert_eq!(
        (acme["plan"].as_str(), acme["features"]["seats"].as_i64()),
        (Some("pro"), Some(6))
    );
    let gamma = app
        .entitlements_once("gamma", |b| b["plan"] == "free")
        .await;
    assert_eq!(gamma["plan"], "free");

    let again = run_reconcile(&app, &stripe, &[]);
    assert!(
        again.contains("0 granted, 0 revoked, 0 changed, 3 unchanged"),
        "{again}"
    );
}

/// A fake Stripe listing `pages` pages of `per_page` subscriptions, one
/// organization each (`org-<page>-<n>`), chained by `starting_after`.
async fn stripe_with_pages(pages: usize, per_page: usize) -> MockServer {
    let stripe = MockServer::start().await;
    stripe_call("GET", "/v1/subscriptions")
        .respond_with(move |request: &wiremock::Request| {
            let after = request
                .url
                .query_pairs()
                .find(|(key, _)| key == "starting_after")
                .map(|(_, value)| value.into_owned());
            // Ids are `sub_<page>_<n>`: the page after `sub_3_4` is page 4.
            let number = after.map_or(0, |id| {
                id.split('_')
                    .nth(1)
                    .and_then(|p| p.parse().ok())
                    .unwrap_or(0)
                    + 1
            });
            let subs = (0..per_page)
                .map(|n| {
                    let (id, org) = (format!("sub_{number}_{n}"), format!("org-{number}-{n}"));
                    stripe_subscription(&id, &org, "active", "price_pro_monthly", 1)
                })
                .collect();
            answer(200, page(subs, number + 1 < pages))
        })
        .mount(&stripe)
        .await;
    stripe
}

async fn many_pages_show_their_progress_and_all_apply(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let stripe = stripe_with_pages(12, 5).await;
    let text = run_reconcile(&app, &stripe, &[]);
    assert!(text.contains("10 pages, 50 subscriptions in "), "{text}");
    assert!(text.contains("12 pages, 60 subscriptions in "), "{text}");
    assert!(
        text.contains("60 subscription(s) read; organizations: 60 granted"),
        "{text}"
    );
    for org in ["org-0-0", "org-6-2", "org-11-4"] {
        let answer = app.entitlements_once(org, |b| b["plan"] == "pro").await;
        assert_eq!(answer["plan"], "pro", "{org}");
    }
}

async fn a_page_read_before_a_webhook_does_not_undo_it(backend: Backend) {
    for command in ["reconcile", "import"] {
        let app = TestApp::spawn(backend).await;
        let created = app
            .build_event("customer.subscription.created", "acme")
            .at(now() - 60)
            .quantity(2)
            .build();
        app.deliver(&created).await;
        // Stripe reads the page (2 seats), and takes its time to answer.
        let stripe = MockServer::start().await;
        let old = page(
            vec![stripe_subscription(
                "sub_trigger_acme",
                "acme",
                "active",
                "price_pro_monthly",
                2,
            )],
            false,
        );
        stripe_call("GET", "/v1/subscriptions")
            .respond_with(
                ResponseTemplate::new(200)
                    .set_body_json(old)
                    .set_delay(std::time::Duration::from_millis(1500)),
            )
            .mount(&stripe)
            .await;
        for route in ["/v1/customers", "/v1/checkout/sessions"] {
            let empty = json!({"object": "list", "data": [], "has_more": false, "url": route});
            stripe_call("GET", route)
                .respond_with(answer(200, empty))
                .mount(&stripe)
                .await;
        }
        let api = StripeApi::new("sk_test_fake", &stripe.uri(), Default::default()).unwrap();
        // Meanwhile the customer buys 5 seats and the webhook says so.
        let webhook = async {
            tokio::time::sleep(std::time::Duration::from_millis(300)).await;
            let updated = app
                .build_event("customer.subscription.updated", "acme")
                .at(now())
                .quantity(5)
                .build();
            app.deliver(&updated).await
        };
        let mut subscriptions = Progress::hidden();
        let run = async {
            match command {
                "reconcile" => reconcile(&app.engine, &api, None, false, &mut subscriptions)
                    .await
                    .map(|summary| summary.subscriptions),
                _ => import(&app.engine, &api, false, |_| Progress::hidden())
                    .await
                    .map(|report| report.subscriptions.subscriptions),
            }
        };
        let (read, (_, answer)) = tokio::join!(run, webhook);
        assert_eq!(answer["outcome"], "applied", "{command}");
        assert_eq!(read.unwrap(), 1, "{command}");
        let (_, entitlements) = app.get_entitlements("acme").await;
        assert_eq!(entitlements["features"]["seats"], 5, "{command}");
    }
}

/// Stripe, whose clock reads `offset` seconds from this host's, listing
/// acme's subscription of `seats` seats, its period begun a day ago on
/// Stripe's clock; and a client for it.
async fn stripe_listing_acme(offset: i64, seats: u64) -> (MockServer, StripeApi) {
    let stripe = MockServer::start().await;
    let mut sub = stripe_subscription(
        "sub_trigger_acme",
        "acme",
        "active",
        "price_pro_monthly",
        seats,
    );
    let began = now() + offset - 86_400;
    sub["items"]["data"][0]["current_period_start"] = json!(began);
    sub["items"]["data"][0]["current_period_end"] = json!(began + 30 * 86_400);
    stripe_call("GET", "/v1/subscriptions")
        .respond_with(answer(200, page(vec![sub], false)))
        .mount(&stripe)
        .await;
    let api = StripeApi::new("sk_test_fake", &stripe.uri(), Default::default()).unwrap();
    (stripe, api)
}

async fn reconcile_once(app: &TestApp, api: &StripeApi) -> usize {
    let mut progress = Progress::hidden();
    let summary = reconcile(&app.engine, api, None, false, &mut progress).await;
    summary.unwrap().subscriptions
}

/// This host's clock runs ten minutes ahead of Stripe's: the webhook of a
/// change made just after the page was listed is newer than the page.
async fn an_event_just_after_a_reconcile_applies_with_this_host_ahead_of_stripe(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let stripe_now = now() - 600;
    let (_stripe, api) = stripe_listing_acme(-600, 2).await;
    assert_eq!(reconcile_once(&app, &api).await, 1);
    assert_eq!(app.get_entitlements("acme").await.1["features"]["seats"], 2);
    let updated = app
        .build_event("customer.subscription.updated", "acme")
        .at(stripe_now + 1)
        .quantity(5)
        .build();
    assert_eq!(app.deliver(&updated).await.1["outcome"], "applied");
    assert_eq!(app.get_entitlements("acme").await.1["features"]["seats"], 5);
}

/// This host's clock runs ten minutes behind Stripe's: a page listed after
/// the last webhook was heard repairs the change whose webhook was lost.
async fn a_reconcile_repairs_a_lost_change_with_this_host_behind_stripe(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let stripe_now = now() + 600;
    let created = app
        .build_event("customer.subscription.created", "acme")
        .at(stripe_now - 60)
        .quantity(2)
        .build();
    app.deliver(&created).await;
    // The account is busy: another organization's webhook came last.
    let other = app.event("customer.subscription.created", "beta", stripe_now);
    app.deliver(&other).await;
    // The upgrade to 5 seats carries no timestamp; its webhook never came.
    let (_stripe, api) = stripe_listing_acme(600, 5).await;
    assert_eq!(reconcile_once(&app, &api).await, 1);
    assert_eq!(app.get_entitlements("acme").await.1["features"]["seats"], 5);
}

async fn reconcile_can_be_limited_to_one_organization(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let stripe = stripe_with_two_pages().await;
    let text = run_reconcile(&app, &stripe, &["--org", "acme"]);
    assert!(
        text.contains("1 granted, 0 revoked, 0 changed, 0 unchanged"),
        "{text}"
    );
    let acme = app.entitlements_once("acme", |b| b["plan"] == "pro").await;
    assert_eq!(acme["plan"], "pro");
    assert_eq!(
        app.get_entitlements("beta").await.1["version"],
        0,
        "other organizations are untouched"
    );
}

async fn reconcile_never_removes_a_purchase_or_a_grant(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let t = now() - 60;
    app.deliver(&app.event("customer.subscription.created", "gamma", t))
        .await;
    let lifetime = app
        .build_event("checkout.session.completed", "gamma")
        .plan("lifetime")
        .at(t + 1)
        .build();
    app.deliver(&lifetime).await;
    let (status, grant) = app
        .post_grant("gamma", &json!({"features": {"seats": 40}}))
        .await;
    assert_eq!(status, 201, "{grant}");

    // Stripe says gamma's subscription is canceled: only that source goes.
    let before = app.get_entitlements("gamma").await.1["version"].clone();
    run_reconcile(&app, &stripe_with_two_pages().await, &[]);
    let body = app
        .entitlements_once("gamma", |b| b["version"] != before)
        .await;
    let sources: Vec<(&str, &str)> = body["sources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["kind"].as_str().unwrap(), s["id"].as_str().unwrap()))
        .collect();
    assert_eq!(
        sources,
        [
            ("purchase", "cs_test_trigger_gamma"),
            ("grant", grant["id"].as_str().unwrap())
        ]
    );
    assert_eq!(
        (
            body["plan"].as_str(),
            body["status"].as_str(),
            body["features"]["seats"].as_i64()
        ),
        (Some("lifetime"), Some("purchased"), Some(40))
    );
}

async fn serve_reconciles_periodically_when_configured(backend: Backend) {
    let stripe = stripe_with_two_pages().await;
    let app = TestApp::spawn_against(backend, &stripe, |s| {
        s.stripe.reconcile_every_secs = 1;
    })
    .await;
    let mut plan = Value::Null;
    for _ in 0..50 {
        plan = app.get_entitlements("acme").await.1["plan"].clone();
        if plan == "pro" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(plan, "pro");
}

on_both_backends!(
    reconcile_repairs_what_webhooks_missed,
    many_pages_show_their_progress_and_all_apply,
    a_page_read_before_a_webhook_does_not_undo_it,
    an_event_just_after_a_reconcile_applies_with_this_host_ahead_of_stripe,
    a_reconcile_repairs_a_lost_change_with_this_host_behind_stripe,
    reconcile_can_be_limited_to_one_organization,
    reconcile_never_removes_a_purchase_or_a_grant,
    serve_reconciles_periodically_when_configured
);
