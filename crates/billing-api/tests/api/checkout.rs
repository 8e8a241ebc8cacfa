//! `POST /v1/checkout/sessions` against a fake Stripe API.

use serde_json::{Value, json};
use wiremock::matchers::{header, header_exists};
use wiremock::{MockServer, Request};

use crate::helpers::{
    Backend, CHECKOUT_TOKEN, TestApp, answer, assert_error, now, stripe_call, stripe_customer,
};
use crate::on_both_backends;

const SESSION: &str = include_str!("../../fixtures/stripe/checkout_session.json");
const PORTAL: &str = include_str!("../../fixtures/stripe/billing_portal_session.json");

/// Matches a form body that contains every given pair.
struct FormHas(Vec<(&'static str, String)>);

impl wiremock::Match for FormHas {
    fn matches(&self, request: &Request) -> bool {
        let pairs = form_of(request);
        self.0
            .iter()
            .all(|(k, v)| pairs.iter().any(|(pk, pv)| pk == k && pv == v))
    }
}

fn form(pairs: &[(&'static str, &str)]) -> FormHas {
    FormHas(pairs.iter().map(|(k, v)| (*k, v.to_string())).collect())
}

fn customer(id: &str) -> Value {
    stripe_customer(id, None, json!({}))
}

fn session() -> Value {
    let mut session: Value = serde_json::from_str(SESSION).unwrap();
    session["id"] = json!("cs_test_123");
    session["mode"] = json!("subscription");
    session["url"] = json!("https://checkout.stripe.com/c/pay/cs_test_123");
    session["expires_at"] = json!(1_900_000_000);
    session
}

/// A checkout of plan `pro` for acme.
async fn buy_pro(app: &TestApp) -> (u16, Value) {
    app.post_checkout(
        &json!({"org_id": "acme", "plan": "pro"}),
        Some(CHECKOUT_TOKEN),
    )
    .await
}

async fn app_with_stripe(backend: Backend) -> (TestApp, MockServer) {
    TestApp::spawn_with_stripe(backend, |_| {}).await
}

async fn a_checkout_creates_one_customer_and_a_tagged_session(backend: Backend) {
    let (app, stripe) = app_with_stripe(backend).await;
    stripe_call("POST", "/v1/customers")
        .and(header("idempotency-key", "customer-acme-0"))
        .and(form(&[("metadata[org_id]", "acme")]))
        .respond_with(answer(200, customer("cus_acme")))
        .expect(1)
        .mount(&stripe)
        .await;
    stripe_call("POST", "/v1/customers/cus_acme")
        .and(form(&[("email", "ops@acme.test")]))
        .respond_with(answer(200, customer("cus_acme")))
        .expect(1)
        .mount(&stripe)
        .await;
    stripe_call("POST", "/v1/checkout/sessions")
        .and(header_exists("idempotency-key"))
        .and(wiremock::matchers::header(
            "authorization",
            "Bearer sk_test_fake",
        ))
        .and(form(&[
            ("mode", "subscription"),
            ("customer", "cus_acme"),
            ("client_reference_id", "acme"),
            ("metadata[org_id]", "acme"),
            ("metadata[plan]", "pro"),
            ("subscription_data[metadata][org_id]", "acme"),
            ("subscription_data[metadata][plan]", "pro"),
            ("subscription_data[trial_period_days]", "14"),
            ("line_items[0][price]", "price_pro_yearly"),
            ("line_items[0][quantity]", "3"),
            ("success_url", "http://localhost:3000/billing?ok=1"),
            ("cancel_url", "http://localhost:3000/back"),
        ]))
        .respond_with(answer(200, session()))
        .expect(2)
        .mount(&stripe)
        .await;

    let request = json!({"org_id": "acme", "price_id": "price_pro_yearly", "quantity": 3, "trial_days": 14,
                         "customer_email": "ops@acme.test", "cancel_url": "http://localhost:3000/back"});
    let (status, body) = app.post_checkout(&request, Some(CHECKOUT_TOKEN)).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(
        body,
        json!({"id": "cs_test_123", "url": "https://checkout.stripe.com/c/pay/cs_test_123",
                            "expires_at": 1_900_000_000})
    );
    // The second checkout reuses the stored customer (the mock expects one creation).
    let (status, body) = app.post_checkout(&request, Some(CHECKOUT_TOKEN)).await;
    assert_eq!(status, 201, "{body}");
}

async fn a_server_error_creating_the_customer_moves_to_a_new_idempotency_key(backend: Backend) {
    let (app, stripe) = app_with_stripe(backend).await;
    // Stripe replays the answer it gave to a key: the first key fails for good.
    stripe_call("POST", "/v1/customers")
        .and(header("idempotency-key", "customer-acme-0"))
        .respond_with(answer(500, json!({"error": {"type": "api_error"}})))
        .mount(&stripe)
        .await;
    stripe_call("POST", "/v1/customers")
        .and(header("idempotency-key", "customer-acme-1"))
        .respond_with(answer(200, customer("cus_acme")))
        .expect(1)
        .mount(&stripe)
        .await;
    stripe_call("POST", "/v1/checkout/sessions")
        .and(form(&[("customer", "cus_acme")]))
        .respond_with(answer(200, session()))
        .mount(&stripe)
        .await;
    let request = json!({"org_id": "acme", "plan": "pro"});
    let (status, body) = app.post_checkout(&request, Some(CHECKOUT_TOKEN)).await;
    assert_error(status, &body, 502, "stripe_error");
    let (status, body) = app.post_checkout(&request, Some(CHECKOUT_TOKEN)).await;
    assert_eq!(status, 201, "{body}");
}

async fn first_checkouts_with_different_emails_share_one_customer(backend: Backend) {
    let (app, stripe) = app_with_stripe(backend).await;
    stripe_call("POST", "/v1/customers")
        .and(header("idempotency-key", "customer-acme-0"))
        .respond_with(answer(200, customer("cus_acme")))
        .mount(&stripe)
        .await;
    // A checkout that finds the customer stored already sets no email.
    stripe_call("POST", "/v1/customers/cus_acme")
        .respond_with(answer(200, customer("cus_acme")))
        .expect(1..=2)
        .mount(&stripe)
        .await;
    stripe_call("POST", "/v1/checkout/sessions")
        .and(form(&[("customer", "cus_acme")]))
        .respond_with(answer(200, session()))
        .expect(2)
        .mount(&stripe)
        .await;
    let first = json!({"org_id": "acme", "plan": "pro", "customer_email": "a@acme.test"});
    let second = json!({"org_id": "acme", "plan": "pro", "customer_email": "b@acme.test"});
    let (a, b) = tokio::join!(
        app.post_checkout(&first, Some(CHECKOUT_TOKEN)),
        app.post_checkout(&second, Some(CHECKOUT_TOKEN))
    );
    assert_eq!((a.0, b.0), (201, 201), "{a:?} {b:?}");
    let creations: Vec<String> = stripe
        .received_requests()
        .await
        .unwrap()
        .iter()
        .filter(|r| r.url.path() == "/v1/customers")
        .map(|r| {
            r.headers
                .get("idempotency-key")
                .unwrap()
                .to_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert!(
        creations.iter().all(|key| key == "customer-acme-0"),
        "{creations:?}"
    );
}

async fn invalid_checkout_requests_name_the_problem(backend: Backend) {
    let (app, _stripe) = app_with_stripe(backend).await;
    let not_found = [
        (json!({"org_id": "acme", "plan": "gold"}), "unknown_plan"),
        (
            json!({"org_id": "acme", "price_id": "price_nope"}),
            "unknown_price",
        ),
    ];
    let pro = |field: &str, value: Value| json!({"org_id": "acme", "plan": "pro", field: value});
    let invalid = [
        json!({"org_id": "acme"}),
        json!({"org_id": "", "plan": "pro"}),
        json!({"org_id": "acme", "plan": "free"}),
        pro("quantity", json!(0)),
        pro("quantity", json!(2.5)),
        pro("quantity", json!(-1)),
        pro("success_url", json!("https://evil.test/")),
        pro("surprise", json!(1)),
        pro("price_id", json!("price_pro_yearly")),
    ];
    let cases = not_found
        .into_iter()
        .map(|(request, code)| (request, 404, code))
        .chain(
            invalid
                .into_iter()
                .map(|request| (request, 400, "invalid_request")),
        );
    for (request, expected_status, code) in cases {
        let (status, body) = app.post_checkout(&request, Some(CHECKOUT_TOKEN)).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (expected_status, Some(code)),
            "{request} -> {body}"
        );
    }
    let (_, body) = app
        .post_checkout(
            &json!({"org_id": "acme", "plan": "pro", "success_url": "x"}),
            Some(CHECKOUT_TOKEN),
        )
        .await;
    assert!(
        body["message"].as_str().unwrap().starts_with("success_url"),
        "{body}"
    );
}

async fn an_organization_already_subscribed_gets_409(backend: Backend) {
    let (app, _stripe) = app_with_stripe(backend).await;
    app.deliver(&app.event("customer.subscription.created", "acme", now()))
        .await;
    let (status, body) = buy_pro(&app).await;
    assert_error(status, &body, 409, "already_subscribed");
}

async fn a_stripe_refusal_is_a_502_carrying_the_request_id(backend: Backend) {
    let (app, stripe) = app_with_stripe(backend).await;
    let error = json!({"error": {"type": "invalid_request_error", "message": "No such price: 'price_pro_monthly'",
                                 "request_log_url": "https://dashboard.stripe.com/test/logs/req_fake42"}});
    stripe_call("POST", "/v1/customers")
        .respond_with(answer(400, error))
        .mount(&stripe)
        .await;
    let (status, body) = buy_pro(&app).await;
    assert_error(status, &body, 502, "stripe_error");
    let message = body["message"].as_str().unwrap();
    assert!(
        message.contains("req_fake42") && message.contains("No such price"),
        "{message}"
    );
}

async fn without_a_stripe_key_checkout_is_unavailable(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (status, body) = buy_pro(&app).await;
    assert_error(status, &body, 503, "stripe_not_configured");
}

async fn a_portal_session_opens_for_an_organization_with_a_customer(backend: Backend) {
    let (app, stripe) = app_with_stripe(backend).await;
    let mut portal: Value = serde_json::from_str(PORTAL).unwrap();
    portal["url"] = json!("https://billing.stripe.com/p/session/test_123");
    stripe_call("POST", "/v1/billing_portal/sessions")
        .and(form(&[
            ("customer", "cus_trigger_acme"),
            ("return_url", "http://localhost:3000/settings"),
        ]))
        .respond_with(answer(200, portal))
        .expect(1)
        .mount(&stripe)
        .await;
    let request = json!({"org_id": "acme", "return_url": "http://localhost:3000/settings"});
    let (status, body) = app.post_portal(&request, Some(CHECKOUT_TOKEN)).await;
    assert_error(status, &body, 404, "no_customer");

    app.deliver(&app.event("checkout.session.completed", "acme", now()))
        .await;
    let (status, body) = app.post_portal(&request, Some(CHECKOUT_TOKEN)).await;
    assert_eq!(
        (status, body),
        (
            201,
            json!({"url": "https://billing.stripe.com/p/session/test_123"})
        )
    );
    let (status, _) = app
        .post_portal(
            &json!({"org_id": "acme", "return_url": "https://evil.test/"}),
            Some(CHECKOUT_TOKEN),
        )
        .await;
    assert_eq!(status, 400);
    assert_eq!(
        app.post_portal(&request, Some(crate::helpers::READ_TOKEN))
            .await
            .0,
        403
    );
}

/// The form parameters of a checkout request.
fn form_of(request: &Request) -> Vec<(String, String)> {
    url::form_urlencoded::parse(&request.body)
        .into_owned()
        .collect()
}

async fn a_payment_plan_checks_out_in_payment_mode(backend: Backend) {
    let (app, stripe) = app_with_stripe(backend).await;
    stripe_call("POST", "/v1/customers")
        .respond_with(answer(200, customer("cus_acme")))
        .expect(1)
        .mount(&stripe)
        .await;
    let mut session = session();
    session["mode"] = json!("payment");
    stripe_call("POST", "/v1/checkout/sessions")
        .respond_with(answer(200, session))
        .expect(2)
        .mount(&stripe)
        .await;
    // Subscribed already: buying a pass is still allowed.
    app.deliver(&app.event("customer.subscription.created", "acme", now()))
        .await;

    let (status, body) = app
        .post_checkout(
            &json!({"org_id": "acme", "plan": "pass", "quantity": 3}),
            Some(CHECKOUT_TOKEN),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = app
        .post_checkout(
            &json!({"org_id": "acme", "price_id": "price_lifetime"}),
            Some(CHECKOUT_TOKEN),
        )
        .await;
    assert_eq!(status, 201, "{body}");

    let requests = stripe.received_requests().await.unwrap();
    let sessions: Vec<Vec<(String, String)>> = requests
        .iter()
        .filter(|r| r.url.path() == "/v1/checkout/sessions")
        .map(form_of)
        .collect();
    let expected = |plan: &str, price: &str, quantity: &str| {
        [
            ("mode", "payment"),
            ("customer", "cus_acme"),
            ("client_reference_id", "acme"),
            ("metadata[org_id]", "acme"),
            ("metadata[plan]", plan),
            ("metadata[quantity]", quantity),
            ("payment_intent_data[metadata][org_id]", "acme"),
            ("payment_intent_data[metadata][plan]", plan),
            ("payment_intent_data[metadata][quantity]", quantity),
            ("line_items[0][price]", price),
            ("line_items[0][quantity]", quantity),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
    };
    for (form, wanted) in sessions.iter().zip([
        expected("pass", "price_pass_30d", "3"),
        expected("lifetime", "price_lifetime", "1"),
    ]) {
        for pair in &wanted {
            assert!(form.contains(pair), "{pair:?} missing from {form:?}");
        }
        assert!(
            !form.iter().any(|(k, _)| k.starts_with("subscription_data")),
            "{form:?}"
        );
    }

    let (status, body) = app
        .post_checkout(
            &json!({"org_id": "acme", "plan": "lifetime", "trial_days": 7}),
            Some(CHECKOUT_TOKEN),
        )
        .await;
    assert_error(status, &body, 400, "invalid_request");
    assert!(
        body["message"].as_str().unwrap().starts_with("trial_days"),
        "{body}"
    );
}

on_both_backends!(
    a_checkout_creates_one_customer_and_a_tagged_session,
    a_server_error_creating_the_customer_moves_to_a_new_idempotency_key,
    first_checkouts_with_different_emails_share_one_customer,
    invalid_checkout_requests_name_the_problem,
    an_organization_already_subscribed_gets_409,
    a_stripe_refusal_is_a_502_carrying_the_request_id,
    without_a_stripe_key_checkout_is_unavailable,
    a_portal_session_opens_for_an_organization_with_a_customer,
    a_payment_plan_checks_out_in_payment_mode
);
