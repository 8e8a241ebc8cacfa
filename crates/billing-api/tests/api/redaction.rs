//! No secret, token or signing secret reaches a log line or an error body.

use std::process::Command;

use crate::helpers::answer;
use serde_json::json;
use wiremock::matchers::method;
use wiremock::{Mock, MockServer};

const API_KEY: &str = "sk_test_SeCrEtApiKey4242";
const SIGNING_SECRET: &str = "whsec_SeCrEtSigning4242";
const TOKEN: &str = "tok_SeCrEtBearer4242";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_and_error_bodies_never_show_secrets() {
    let stripe = MockServer::start().await;
    let refusal =
        json!({"error": {"type": "invalid_request_error", "message": "Invalid API Key provided"}});
    Mock::given(method("POST"))
        .respond_with(answer(401, refusal))
        .mount(&stripe)
        .await;

    // An endpoint with credentials in its URL, on a port nothing listens on.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("secrets.toml");
    std::fs::write(
        &config,
        format!(
            "[[auth.tokens]]\nname = \"backend\"\ntoken = \"{TOKEN}\"\nscopes = [\"checkout\", \"entitlements:read\", \"admin\"]\n\
             [notify]\ngive_up_after_secs = 0\n\
             [[notify.endpoints]]\nname = \"app\"\nurl = \"http://user:s3cret@127.0.0.1:{closed}/hooks?token=abc\"\n\
             secret = \"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\"\n"
        ),
    )
    .unwrap();
    let mut command =
        crate::helpers::service_command(dir.path(), &crate::helpers::sqlite_in(dir.path()));
    command
        .args(["--config", config.to_str().unwrap()])
        .env("STRIPE_SECRET_KEY", API_KEY)
        .env("STRIPE_WEBHOOK_SECRET", SIGNING_SECRET)
        .env("BILLING__STRIPE__API_BASE", stripe.uri())
        .env("RUST_LOG", "debug");
    let (mut child, lines, port) = crate::helpers::spawn_service(command);
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let mut bodies = Vec::new();
    // A Stripe refusal, a valid and a wrong token, and webhooks that fail
    // and pass verification.
    for (path, token) in [
        ("/v1/checkout/sessions", TOKEN),
        ("/v1/checkout/sessions", "tok_wrong"),
    ] {
        let response = client
            .post(format!("{base}{path}"))
            .bearer_auth(token)
            .json(&json!({"org_id": "acme", "plan": "pro"}))
            .send()
            .await
            .unwrap();
        bodies.push(response.text().await.unwrap());
    }
    let response = client
        .get(format!("{base}/v1/entitlements/acme"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    bodies.push(response.text().await.unwrap());
    let event =
        json!({"id": "evt_1", "type": "customer.created", "created": 1, "data": {"object": {}}})
            .to_string();
    let signed = billing_api::stripe::signature::sign(
        SIGNING_SECRET,
        chrono::Utc::now().timestamp(),
        event.as_bytes(),
    );
    for signature in [signed.as_str(), "t=1,v1=00"] {
        let response = client
            .post(format!("{base}/webhooks/stripe"))
            .header("Stripe-Signature", signature)
            .body(event.clone())
            .send()
            .await
            .unwrap();
        bodies.push(response.text().await.unwrap());
    }
    // A grant is notified to the endpoint, fails and is given up.
    let response = client
        .post(format!("{base}/v1/orgs/acme/grants"))
        .bearer_auth(TOKEN)
        .json(&json!({"features": {"sso": true}}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    let history = loop {
        let history = client
            .get(format!("{base}/v1/orgs/acme/history"))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        if history.contains("notify_failed") || std::time::Instant::now() > deadline {
            break history;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    assert!(history.contains("notify_failed"), "{history}");
    bodies.push(history);
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let _ = tokio::task::spawn_blocking(move || child.wait()).await;
    let logs: Vec<String> = lines.try_iter().collect();

    assert!(
        bodies[0].contains("stripe_error") && logs.len() > 5,
        "{bodies:?}"
    );
    assert!(
        logs.iter().any(|l| l.contains("notification given up")),
        "{logs:?}"
    );
    for secret in [
        API_KEY,
        SIGNING_SECRET,
        TOKEN,
        "SeCrEt",
        "s3cret",
        "token=abc",
    ] {
        for text in logs.iter().chain(&bodies) {
            assert!(!text.contains(secret), "{secret} leaked in: {text}");
        }
    }
}
