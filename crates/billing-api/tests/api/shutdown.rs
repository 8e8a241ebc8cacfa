//! SIGTERM lets requests in flight finish, then the process exits.

use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};
use wiremock::{MockServer, ResponseTemplate};

use crate::helpers::{CHECKOUT_TOKEN, answer, stripe_call};

const CUSTOMER: &str = include_str!("../../fixtures/stripe/customer.json");
const SESSION: &str = include_str!("../../fixtures/stripe/checkout_session.json");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_finishes_the_request_in_flight_and_exits() {
    let stripe = MockServer::start().await;
    let customer: Value = serde_json::from_str(CUSTOMER).unwrap();
    let mut session: Value = serde_json::from_str(SESSION).unwrap();
    session["url"] = json!("https://checkout.stripe.com/c/pay/cs_slow");
    stripe_call("POST", "/v1/customers")
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(customer)
                .set_delay(Duration::from_millis(1500)),
        )
        .mount(&stripe)
        .await;
    stripe_call("POST", "/v1/checkout/sessions")
        .respond_with(answer(200, session))
        .mount(&stripe)
        .await;

    let dir = tempfile::tempdir().unwrap();
    let mut command =
        crate::helpers::service_command(dir.path(), &crate::helpers::sqlite_in(dir.path()));
    command
        .env("STRIPE_SECRET_KEY", "sk_test_fake")
        .env("BILLING__STRIPE__API_BASE", stripe.uri())
        .env("BILLING__SERVER__SHUTDOWN_TIMEOUT_SECS", "10")
        // A periodic reconciliation runs too; stopping stops it.
        .env("BILLING__STRIPE__RECONCILE_EVERY_SECS", "1")
        .env_remove("RUST_LOG");
    let (mut child, lines, port) = crate::helpers::spawn_service(command);

    let address = format!("http://127.0.0.1:{port}");
    let request = tokio::spawn({
        let address = address.clone();
        async move {
            reqwest::Client::new()
                .post(format!("{address}/v1/checkout/sessions"))
                .bearer_auth(CHECKOUT_TOKEN)
                .json(&json!({"org_id": "acme", "plan": "pro"}))
                .send()
                .await
                .map(|r| r.status().as_u16())
        }
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());

    assert_eq!(
        request.await.unwrap().unwrap(),
        201,
        "the request in flight completes"
    );
    let status = tokio::task::spawn_blocking(move || child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "{status:?}");
    assert!(
        reqwest::get(format!("{address}/healthz")).await.is_err(),
        "no longer listening"
    );
    let rest: Vec<String> = lines.try_iter().collect();
    assert!(rest.iter().any(|l| l.contains("SIGTERM")), "{rest:?}");
    assert!(rest.iter().any(|l| l.contains("\"stopped\"")), "{rest:?}");
}
