//! `POST /webhooks/stripe`.

use serde_json::{Value, json};

use crate::helpers::{Backend, TestApp, assert_error, now};
use crate::on_both_backends;

async fn plan_of(app: &TestApp, org: &str) -> (String, i64) {
    let (status, body) = app.get_entitlements(org).await;
    assert_eq!(status, 200, "{body}");
    (
        body["plan"].as_str().unwrap_or_default().to_owned(),
        body["version"].as_i64().unwrap_or(-1),
    )
}

async fn a_subscription_grants_and_its_deletion_revokes(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let t = now();
    let (status, body) = app
        .deliver(&app.event("checkout.session.completed", "acme", t))
        .await;
    assert_eq!(
        (status, &body),
        (200, &json!({"received": true, "outcome": "applied"}))
    );
    let created = app
        .build_event("customer.subscription.created", "acme")
        .at(t)
        .quantity(10)
        .build();
    assert_eq!(app.deliver(&created).await.0, 200);

    let (_, granted) = app.get_entitlements("acme").await;
    assert_eq!(granted["plan"], "pro");
    assert_eq!(granted["status"], "active");
    assert_eq!(
        granted["features"],
        json!({"projects": 100, "seats": 10, "sso": true})
    );
    assert_eq!(granted["subscription_id"], "sub_trigger_acme");
    assert_eq!(granted["version"], 1);
    assert!(granted["valid_until"].is_string());

    assert_eq!(
        app.deliver(&app.event("customer.subscription.deleted", "acme", t + 1))
            .await
            .0,
        200
    );
    let (_, revoked) = app.get_entitlements("acme").await;
    assert_eq!(revoked["plan"], "free");
    assert_eq!(revoked["status"], "none");
    assert_eq!(revoked["features"]["sso"], false);
    assert_eq!(revoked["version"], 2);
}

async fn a_duplicate_delivery_changes_nothing(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let event = app.event("customer.subscription.created", "acme", now());
    assert_eq!(app.deliver(&event).await.1["outcome"], "applied");
    let (status, body) = app.deliver(&event).await;
    assert_eq!(
        (status, body),
        (200, json!({"received": true, "duplicate": true}))
    );
    assert_eq!(plan_of(&app, "acme").await, ("pro".into(), 1));
}

async fn concurrent_deliveries_of_one_event_apply_it_once(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let event = app.event("customer.subscription.created", "acme", now());
    let deliveries = (0..8).map(|_| app.deliver(&event));
    let answers = futures_util::future::join_all(deliveries).await;
    assert!(
        answers.iter().all(|(status, _)| *status == 200),
        "{answers:?}"
    );
    let applied = answers
        .iter()
        .filter(|(_, body)| body["outcome"] == "applied")
        .count();
    let duplicates = answers
        .iter()
        .filter(|(_, body)| body["duplicate"] == true)
        .count();
    assert_eq!((applied, duplicates), (1, 7), "{answers:?}");
    assert_eq!(plan_of(&app, "acme").await, ("pro".into(), 1));
}

async fn bad_signatures_are_refused_and_store_nothing(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let event = app.event("customer.subscription.created", "acme", now());
    let body = event.to_string();
    let stale = billing_api::stripe::signature::sign(
        "whsec_development_only_do_not_use_in_production",
        now() - 301,
        body.as_bytes(),
    );
    let forged = billing_api::stripe::signature::sign("whsec_someone_else", now(), body.as_bytes());
    let cases = [
        (None, "missing_signature"),
        (Some("t=abc"), "malformed_signature"),
        (Some(forged.as_str()), "invalid_signature"),
        (Some(stale.as_str()), "signature_expired"),
    ];
    for (signature, code) in cases {
        let response = app.post_webhook(&body, signature).await;
        let (status, answer) = crate::helpers::json_of(response).await;
        assert_error(status, &answer, 400, code);
    }
    // Nothing was recorded: the same event now applies, not a duplicate.
    assert_eq!(app.deliver(&event).await.1["outcome"], "applied");
}

async fn a_body_signed_with_a_rotated_secret_verifies(backend: Backend) {
    let app = TestApp::spawn_with(backend, |s| {
        s.stripe.webhook_secrets =
            vec!["whsec_new".to_owned().into(), "whsec_old".to_owned().into()];
    })
    .await;
    let body = app
        .event("customer.subscription.created", "acme", now())
        .to_string();
    let signature = billing_api::stripe::signature::sign("whsec_old", now(), body.as_bytes());
    assert_eq!(
        app.post_webhook(&body, Some(&signature)).await.status(),
        200
    );
}

async fn malformed_events_are_refused(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    for body in [
        "{not json",
        r#"{"type": "customer.created"}"#,
        r#"{"id": "evt_1"}"#,
        "[]",
    ] {
        let response = app.post_webhook(body, Some(&app.signature_for(body))).await;
        let (status, answer) = crate::helpers::json_of(response).await;
        assert_error(status, &answer, 400, "malformed_event");
    }
}

async fn bodies_over_one_mebibyte_are_refused(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let body = format!(
        r#"{{"id": "evt_big", "type": "x", "pad": "{}"}}"#,
        "a".repeat(1024 * 1024)
    );
    let response = app
        .post_webhook(&body, Some(&app.signature_for(&body)))
        .await;
    assert_eq!(response.status(), 413);
}

async fn unhandled_types_are_recorded_as_ignored(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let event = json!({"id": "evt_other", "type": "customer.created", "created": now(), "livemode": false,
                       "data": {"object": {"id": "cus_1", "object": "customer"}}});
    assert_eq!(
        app.deliver(&event).await.1,
        json!({"received": true, "outcome": "ignored"})
    );
    assert_eq!(app.deliver(&event).await.1["duplicate"], true);
}

async fn events_from_the_other_mode_are_rejected(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut event = app.event("customer.subscription.created", "acme", now());
    event["livemode"] = json!(true);
    assert_eq!(app.deliver(&event).await.1["outcome"], "rejected");
    assert_eq!(plan_of(&app, "acme").await, ("free".into(), 0));
}

async fn a_subscription_before_its_checkout_is_linked_later(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let t = now();
    let mut created = app.event("customer.subscription.created", "acme", t);
    created["data"]["object"]["metadata"] = json!({});
    assert_eq!(app.deliver(&created).await.1["outcome"], "unlinked");
    assert_eq!(plan_of(&app, "acme").await, ("free".into(), 0));

    let mut checkout = app.event("checkout.session.completed", "acme", t);
    checkout["data"]["object"]["metadata"] = json!({});
    assert_eq!(app.deliver(&checkout).await.1["outcome"], "applied");
    assert_eq!(plan_of(&app, "acme").await, ("pro".into(), 1));

    // Later events resolve the organization from the stored link.
    let mut updated = app.event("customer.subscription.updated", "acme", t + 1);
    updated["data"]["object"]["metadata"] = json!({});
    updated["data"]["object"]["items"]["data"][0]["quantity"] = json!(4);
    assert_eq!(app.deliver(&updated).await.1["outcome"], "applied");
    assert_eq!(app.get_entitlements("acme").await.1["features"]["seats"], 4);
}

async fn an_older_event_does_not_undo_a_newer_one(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let t = now();
    assert_eq!(
        app.deliver(&app.event("customer.subscription.deleted", "acme", t))
            .await
            .1["outcome"],
        "applied"
    );
    let answer = app
        .deliver(&app.event("customer.subscription.created", "acme", t - 5))
        .await
        .1;
    assert_eq!(answer["outcome"], "stale");
    // A canceled subscription is not revived by a same-second update either.
    let answer = app
        .deliver(&app.event("customer.subscription.updated", "acme", t))
        .await
        .1;
    assert_eq!(answer["outcome"], "stale");
    assert_eq!(plan_of(&app, "acme").await.0, "free");
}

async fn a_checkout_naming_no_organization_is_recorded_as_invalid(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut checkout = app.event("checkout.session.completed", "acme", now());
    checkout["data"]["object"]["metadata"] = json!({});
    checkout["data"]["object"]["client_reference_id"] = Value::Null;
    assert_eq!(app.deliver(&checkout).await.1["outcome"], "invalid");
    assert_eq!(app.deliver(&checkout).await.1["duplicate"], true);
}

async fn an_organization_id_the_api_would_refuse_makes_the_event_invalid(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let bad = "acme/../<b>";
    for kind in [
        "checkout.session.completed",
        "customer.subscription.created",
        "charge.refunded",
    ] {
        let mut event = app.event(kind, "acme", now());
        event["data"]["object"]["metadata"]["org_id"] = json!(bad);
        let answer = app.deliver(&event).await.1;
        assert_eq!(answer["outcome"], "invalid", "{kind}: {answer}");
    }
    let mut event = app.event("checkout.session.completed", "acme", now());
    event["data"]["object"]["metadata"] = json!({});
    event["data"]["object"]["client_reference_id"] = json!("x".repeat(129));
    assert_eq!(app.deliver(&event).await.1["outcome"], "invalid");
    assert_eq!(plan_of(&app, "acme").await, ("free".into(), 0));
}

async fn prices_in_no_plan_grant_nothing(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (_, answer) = app.subscribe_on_price("acme", "price_unlisted").await;
    assert_eq!(answer["outcome"], "applied");
    assert_eq!(plan_of(&app, "acme").await, ("free".into(), 0));
}

/// The outcome of event `id` as `org`'s history shows it, if it does.
async fn outcome_in_history(app: &TestApp, org: &str, id: &str) -> Option<String> {
    let (_, history) = app.history(org, "").await;
    history["entries"]
        .as_array()?
        .iter()
        .find(|e| e["kind"] == "event" && e["event_id"] == id)
        .map(|e| e["outcome"].as_str().unwrap_or_default().to_owned())
}

/// A dispute of a subscription's invoice payment: the charge named by id
/// only, as Stripe sends it, and no purchase of its payment intent.
fn invoice_dispute(kind: &str, id: &str) -> Value {
    let mut dispute = crate::helpers::fixture(kind);
    dispute["id"] = json!(id);
    dispute["data"]["object"]["charge"] = json!("ch_Invoice1");
    dispute["data"]["object"]["payment_intent"] = json!("pi_Invoice1");
    dispute
}

async fn a_dispute_finds_its_organization_through_its_charge(backend: Backend) {
    let (app, stripe) = TestApp::spawn_with_stripe(backend, |_| {}).await;
    let mut charge: Value =
        serde_json::from_str(include_str!("../../fixtures/stripe/charge.json")).unwrap();
    charge["id"] = json!("ch_Invoice1");
    charge["customer"] = json!("cus_trigger_acme");
    crate::helpers::stripe_call("GET", "/v1/charges/ch_Invoice1")
        .and(wiremock::matchers::header(
            "authorization",
            "Bearer sk_test_fake",
        ))
        .respond_with(crate::helpers::answer(200, charge))
        .expect(2)
        .mount(&stripe)
        .await;

    // Before acme's checkout links its customer, the dispute waits...
    let created = invoice_dispute("charge.dispute.created", "evt_dispute_1");
    assert_eq!(app.deliver(&created).await.1["outcome"], "unlinked");
    // ...and linking the customer applies it against acme.
    let (status, body) = app
        .post_json(
            "/v1/orgs/acme/customer",
            &json!({"customer_id": "cus_trigger_acme"}),
            Some(crate::helpers::ADMIN_TOKEN),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["events_applied"], json!(["evt_dispute_1"]), "{body}");
    assert_eq!(
        outcome_in_history(&app, "acme", "evt_dispute_1")
            .await
            .as_deref(),
        Some("applied")
    );
    // Once linked, a dispute applies at once.
    let closed = invoice_dispute("charge.dispute.closed", "evt_dispute_2");
    let (status, body) = app.deliver(&closed).await;
    assert_eq!(
        (status, &body["outcome"]),
        (200, &json!("applied")),
        "{body}"
    );
    assert_eq!(
        outcome_in_history(&app, "acme", "evt_dispute_2")
            .await
            .as_deref(),
        Some("applied")
    );
}

async fn a_dispute_whose_charge_cannot_be_read_is_refused_for_a_retry(backend: Backend) {
    let (app, stripe) = TestApp::spawn_with_stripe(backend, |_| {}).await;
    crate::helpers::stripe_call("GET", "/v1/charges/ch_Invoice1")
        .respond_with(wiremock::ResponseTemplate::new(500))
        .mount(&stripe)
        .await;
    let created = invoice_dispute("charge.dispute.created", "evt_dispute_1");
    let (status, body) = app.deliver(&created).await;
    assert_error(status, &body, 503, "stripe_unavailable");
    assert_eq!(
        app.db.count_rows("webhook_events").await,
        0,
        "nothing stored"
    );
}

on_both_backends!(
    a_dispute_finds_its_organization_through_its_charge,
    a_dispute_whose_charge_cannot_be_read_is_refused_for_a_retry,
    a_subscription_grants_and_its_deletion_revokes,
    a_duplicate_delivery_changes_nothing,
    concurrent_deliveries_of_one_event_apply_it_once,
    bad_signatures_are_refused_and_store_nothing,
    a_body_signed_with_a_rotated_secret_verifies,
    malformed_events_are_refused,
    bodies_over_one_mebibyte_are_refused,
    unhandled_types_are_recorded_as_ignored,
    events_from_the_other_mode_are_rejected,
    a_subscription_before_its_checkout_is_linked_later,
    an_older_event_does_not_undo_a_newer_one,
    a_checkout_naming_no_organization_is_recorded_as_invalid,
    an_organization_id_the_api_would_refuse_makes_the_event_invalid,
    prices_in_no_plan_grant_nothing
);

/// The process's virtual memory in KiB: `VmSize` now and `VmPeak`, the
/// most it ever had (set-aside buffers count even if never touched).
fn virtual_memory(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |name: &str| -> u64 {
        let line = status.lines().find(|l| l.starts_with(name)).unwrap();
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    };
    (field("VmSize:"), field("VmPeak:"))
}

/// 2,000 clients each declare a 1,000,000-byte webhook, send 1 KiB of it
/// and hold on: the service sets aside little for each (its buffers grow
/// as bytes come) and answers each 408 once the body deadline passes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn held_connections_cost_little_and_are_answered_408() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    const HELD: usize = 2_000;
    let dir = tempfile::tempdir().unwrap();
    let mut command =
        crate::helpers::service_command(dir.path(), &crate::helpers::sqlite_in(dir.path()));
    command
        .env("BILLING__SERVER__BODY_TIMEOUT_MS", "3000")
        .env_remove("RUST_LOG");
    let (mut child, _lines, port) = crate::helpers::spawn_service(command);
    let address = format!("127.0.0.1:{port}");
    let (before, _) = virtual_memory(child.id());

    let head = format!(
        "POST /webhooks/stripe HTTP/1.1\r\nHost: {address}\r\n\
         Content-Type: application/json\r\nStripe-Signature: t=1,v1=00\r\n\
         Content-Length: 1000000\r\n\r\n{}",
        " ".repeat(1024)
    );
    let mut held = Vec::with_capacity(HELD);
    for _ in 0..HELD {
        let mut stream = tokio::net::TcpStream::connect(&address).await.unwrap();
        stream.write_all(head.as_bytes()).await.unwrap();
        held.push(stream);
    }
    let answers = futures_util::future::join_all(held.into_iter().map(|mut stream| async move {
        let mut answer = vec![0; 12];
        let read = tokio::time::timeout(
            std::time::Duration::from_secs(30),
            stream.read_exact(&mut answer),
        )
        .await;
        match read {
            Ok(Ok(_)) => String::from_utf8_lossy(&answer).into_owned(),
            Ok(Err(e)) => format!("read failed: {e}"),
            Err(_) => "no answer in 30 s".to_owned(),
        }
    }))
    .await;
    let (_, peak) = virtual_memory(child.id());
    child.kill().unwrap();
    child.wait().unwrap();
    let timed_out = answers.iter().filter(|a| *a == "HTTP/1.1 408").count();
    assert_eq!(
        timed_out,
        HELD,
        "{:?}",
        answers.iter().find(|a| *a != "HTTP/1.1 408")
    );
    // 1 MiB set aside for each grows it by about 2,100 MiB; the service's
    // buffers as they are (actix's per connection, 16 KiB for the body)
    // by about 260 MiB.
    let grown_mib = (peak - before) / 1024;
    assert!(grown_mib < 512, "virtual memory grew by {grown_mib} MiB");
}
