//! `stripe.sync_mode = "refetch"` against a fake Stripe API.

use std::sync::Arc;

use serde_json::{Value, json};
use wiremock::{MockServer, ResponseTemplate};

use crate::helpers::{
    Backend, TestApp, answer, assert_error, now, stripe_call, stripe_subscription,
};
use crate::on_both_backends;
use billing_api::stripe::api::StripeApi;
use billing_api::stripe::refetch::Refetcher;

/// A subscription source that answers the reads it was given, in order.
#[derive(Default)]
struct Scripted(std::sync::Mutex<std::collections::VecDeque<entitlements::SubscriptionRead>>);

impl Scripted {
    fn push(&self, fresh: entitlements::SubscriptionRead) {
        self.0.lock().unwrap().push_back(fresh);
    }
}

impl entitlements::SubscriptionSource for Scripted {
    fn read<'a>(
        &'a self,
        _: &'a str,
        _: i64,
    ) -> futures_util::future::BoxFuture<
        'a,
        Result<entitlements::SubscriptionRead, entitlements::SourceError>,
    > {
        let next = self.0.lock().unwrap().pop_front();
        Box::pin(async move {
            next.ok_or_else(|| entitlements::SourceError::Unavailable("no read scripted".into()))
        })
    }

    /// It knows no customers.
    fn customer_metadata<'a>(
        &'a self,
        _: &'a str,
    ) -> futures_util::future::BoxFuture<
        'a,
        Result<Option<entitlements::event::Metadata>, entitlements::SourceError>,
    > {
        Box::pin(async { Ok(None) })
    }
}

const SUB_PATH: &str = "/v1/subscriptions/sub_trigger_acme";

/// acme's subscription as Stripe's API would return it.
fn stripe_state(status: &str, quantity: u64) -> Value {
    stripe_subscription(
        "sub_trigger_acme",
        "acme",
        status,
        "price_pro_monthly",
        quantity,
    )
}

/// `engine`'s receipt for `event`, a new one.
async fn receive(engine: &entitlements::Engine, event: &Value) -> entitlements::Receipt {
    let payload = event.to_string();
    let parsed = entitlements::Event::parse(payload.as_bytes()).unwrap();
    match engine.receive(parsed, payload).await.unwrap() {
        entitlements::Delivery::Recorded(receipt) => receipt,
        entitlements::Delivery::Duplicate => panic!("a new event"),
    }
}

async fn refetching_app(backend: Backend) -> (TestApp, MockServer) {
    TestApp::spawn_with_stripe(backend, |s| {
        s.stripe.sync_mode = billing_api::settings::SyncMode::Refetch;
    })
    .await
}

fn event_with_status(app: &TestApp, kind: &str, status: &str, created: i64) -> Value {
    app.build_event(kind, "acme")
        .at(created)
        .status(status)
        .build()
}

async fn a_burst_of_events_costs_one_or_two_reads_and_ends_in_stripes_state(backend: Backend) {
    let (app, stripe) = refetching_app(backend).await;
    stripe_call("GET", SUB_PATH)
        .respond_with(answer(200, stripe_state("active", 7)))
        .expect(1..=2)
        .mount(&stripe)
        .await;
    let t = now();
    let kinds = [
        "customer.subscription.created",
        "customer.subscription.updated",
    ];
    let statuses = ["incomplete", "active", "past_due", "incomplete"];
    let events: Vec<Value> = (0..10)
        .map(|i| event_with_status(&app, kinds[i % 2], statuses[i % 4], t))
        .collect();
    let answers = futures_util::future::join_all(events.iter().map(|e| app.deliver(e))).await;
    assert!(
        answers.iter().all(|(status, _)| *status == 200),
        "{answers:?}"
    );
    let body = app.get_entitlements("acme").await.1;
    assert_eq!(
        (body["status"].as_str(), body["features"]["seats"].as_i64()),
        (Some("active"), Some(7))
    );
}

async fn same_second_events_in_any_order_end_in_stripes_state(backend: Backend) {
    let (app, stripe) = refetching_app(backend).await;
    stripe_call("GET", SUB_PATH)
        .respond_with(answer(200, stripe_state("canceled", 1)))
        .mount(&stripe)
        .await;
    let t = now();
    let deleted = app.event("customer.subscription.deleted", "acme", t);
    let updated = event_with_status(&app, "customer.subscription.updated", "active", t);
    // The payloads disagree and share a second; Stripe says canceled.
    for event in [updated, deleted] {
        assert_eq!(app.deliver(&event).await.0, 200);
        assert_eq!(app.get_entitlements("acme").await.1["plan"], "free");
    }
}

async fn a_rate_limited_read_is_retried(backend: Backend) {
    let (app, stripe) = refetching_app(backend).await;
    let limited =
        json!({"error": {"type": "invalid_request_error", "message": "Too many requests"}});
    stripe_call("GET", SUB_PATH)
        .respond_with(answer(429, limited))
        .up_to_n_times(1)
        .with_priority(1)
        .expect(1)
        .mount(&stripe)
        .await;
    stripe_call("GET", SUB_PATH)
        .respond_with(answer(200, stripe_state("active", 3)))
        .expect(1)
        .mount(&stripe)
        .await;
    let (status, body) = app
        .deliver(&app.event("customer.subscription.created", "acme", now()))
        .await;
    assert_eq!((status, body["outcome"].as_str()), (200, Some("applied")));
    assert_eq!(app.get_entitlements("acme").await.1["features"]["seats"], 3);
}

async fn when_stripe_cannot_be_read_the_webhook_answers_503_and_records_nothing(backend: Backend) {
    let (app, stripe) = refetching_app(backend).await;
    let failing = stripe_call("GET", SUB_PATH)
        .respond_with(answer(500, json!({"error": {"type": "api_error"}})))
        .mount_as_scoped(&stripe)
        .await;
    let event = app.event("customer.subscription.created", "acme", now());
    let (status, body) = app.deliver(&event).await;
    assert_error(status, &body, 503, "stripe_unavailable");
    drop(failing);
    stripe_call("GET", SUB_PATH)
        .respond_with(answer(200, stripe_state("active", 2)))
        .mount(&stripe)
        .await;
    assert_eq!(app.deliver(&event).await.1["outcome"], "applied");
}

async fn a_subscription_stripe_does_not_have_makes_the_event_invalid(backend: Backend) {
    let (app, stripe) = refetching_app(backend).await;
    for (status, id) in [(404, "sub_gone"), (403, "sub_forbidden")] {
        let error = json!({"error": {"type": "invalid_request_error", "message": format!("No such subscription: '{id}'")}});
        stripe_call("GET", format!("/v1/subscriptions/{id}"))
            .respond_with(ResponseTemplate::new(status).set_body_json(error))
            .mount(&stripe)
            .await;
        let mut event = app.event("customer.subscription.updated", "acme", now());
        event["data"]["object"]["id"] = json!(id);
        let (code, body) = app.deliver(&event).await;
        assert_eq!(
            (code, body["outcome"].as_str()),
            (200, Some("invalid")),
            "{status}: {body}"
        );
    }
    let history = crate::helpers::json_of(
        app.get("/v1/orgs/acme/history", Some(crate::helpers::ADMIN_TOKEN))
            .await,
    )
    .await
    .1;
    assert_eq!(history["entries"], json!([]), "nothing was applied to acme");
}

async fn an_older_read_with_a_checkout_does_not_revive_a_canceled_subscription(backend: Backend) {
    use entitlements::{Outcome, Receipt, SubscriptionRead};
    let app = TestApp::spawn(backend).await;
    let reads = Arc::new(Scripted::default());
    let engine = app.settings.engine().unwrap().with_source(reads.clone());
    let receive = async |event: &Value, status: &str, read_at_ms: i64| -> Receipt {
        let object: entitlements::event::SubscriptionObject =
            serde_json::from_value(stripe_state(status, 3)).unwrap();
        reads.push(SubscriptionRead {
            subscription: object.into(),
            read_at_ms,
        });
        receive(&engine, event).await
    };
    let t = now();
    let read = t * 1000;
    // Stripe was read for the checkout (active) before it was read for
    // the deletion (canceled), but the deletion commits first.
    receive(
        &app.event("customer.subscription.created", "acme", t),
        "active",
        read - 10,
    )
    .await;
    receive(
        &app.event("customer.subscription.deleted", "acme", t),
        "canceled",
        read,
    )
    .await;
    let receipt = receive(
        &app.event("checkout.session.completed", "acme", t),
        "active",
        read - 5,
    )
    .await;
    assert!(
        receipt
            .detail
            .as_deref()
            .is_some_and(|d| d.contains("already canceled")),
        "{receipt:?}"
    );
    assert_eq!(app.get_entitlements("acme").await.1["plan"], "free");

    // Nor did the checkout's older read move the read time backwards.
    let receipt = receive(
        &app.event("customer.subscription.updated", "acme", t),
        "canceled",
        read - 2,
    )
    .await;
    assert_eq!(receipt.outcome, Outcome::Stale, "{receipt:?}");
}

/// Two replicas read the subscription for two events a second apart; the
/// first replica's read comes back last, with the older state. Reads are
/// ordered on Stripe's clock (the events they were read for), not by when
/// each replica's clock saw them come back.
async fn a_slow_read_on_another_replica_does_not_overwrite_a_newer_one(backend: Backend) {
    let (app, stripe) = refetching_app(backend).await;
    let t = now();
    let state = |seats| {
        let mut state = stripe_state("active", seats);
        state["items"]["data"][0]["current_period_start"] = json!(t - 86_400);
        state
    };
    let slow = answer(200, state(2)).set_delay(std::time::Duration::from_millis(1500));
    let mocks = [(slow, 1), (answer(200, state(5)), 2)];
    for (response, priority) in mocks {
        let mock = stripe_call("GET", SUB_PATH).respond_with(response);
        let mock = if priority == 1 {
            mock.up_to_n_times(1)
        } else {
            mock
        };
        mock.with_priority(priority).mount(&stripe).await;
    }
    let replica = async || {
        let api = StripeApi::new("sk_test_fake", &stripe.uri(), Default::default()).unwrap();
        let refetcher = Refetcher::new(api, std::time::Duration::from_millis(10));
        let engine = app.settings.engine().unwrap();
        engine.with_source(Arc::new(refetcher))
    };
    let (first, second) = (replica().await, replica().await);
    let older = app.event("customer.subscription.updated", "acme", t);
    let newer = app.event("customer.subscription.updated", "acme", t + 1);
    let late = async {
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        receive(&second, &newer).await
    };
    let (slow, fast) = tokio::join!(receive(&first, &older), late);
    assert_eq!(fast.outcome, entitlements::Outcome::Applied, "{fast:?}");
    assert_eq!(slow.outcome, entitlements::Outcome::Stale, "{slow:?}");
    assert_eq!(app.get_entitlements("acme").await.1["features"]["seats"], 5);
}

async fn an_event_of_the_other_mode_is_rejected_without_a_read(backend: Backend) {
    let (app, stripe) = refetching_app(backend).await;
    stripe_call("GET", SUB_PATH)
        .respond_with(ResponseTemplate::new(404))
        .expect(0)
        .mount(&stripe)
        .await;
    let mut event = app.event("customer.subscription.created", "acme", now());
    event["livemode"] = json!(true);
    assert_eq!(app.deliver(&event).await.1["outcome"], "rejected");
}

async fn a_checkout_grants_at_once_with_the_subscription_read_from_stripe(backend: Backend) {
    let (app, stripe) = refetching_app(backend).await;
    stripe_call("GET", SUB_PATH)
        .respond_with(answer(200, stripe_state("trialing", 4)))
        .expect(1)
        .mount(&stripe)
        .await;
    assert_eq!(
        app.deliver(&app.event("checkout.session.completed", "acme", now()))
            .await
            .1["outcome"],
        "applied"
    );
    let body = app.get_entitlements("acme").await.1;
    assert_eq!(
        (body["status"].as_str(), body["features"]["seats"].as_i64()),
        (Some("trialing"), Some(4))
    );
}

on_both_backends!(
    a_burst_of_events_costs_one_or_two_reads_and_ends_in_stripes_state,
    same_second_events_in_any_order_end_in_stripes_state,
    a_rate_limited_read_is_retried,
    when_stripe_cannot_be_read_the_webhook_answers_503_and_records_nothing,
    a_subscription_stripe_does_not_have_makes_the_event_invalid,
    an_older_read_with_a_checkout_does_not_revive_a_canceled_subscription,
    a_slow_read_on_another_replica_does_not_overwrite_a_newer_one,
    an_event_of_the_other_mode_is_rejected_without_a_read,
    a_checkout_grants_at_once_with_the_subscription_read_from_stripe
);
