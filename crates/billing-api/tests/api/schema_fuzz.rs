//! Schemathesis, an OpenAPI-driven fuzzer, against the service binary with
//! every check: no server error, every status and body as documented, every
//! request valid by the schema accepted and every other one refused.
//!
//! It needs the `schemathesis` command: `SCHEMATHESIS` names it (CI installs
//! it into a virtual environment, see `.ci/run`). Without it the test says
//! so and passes, unless `REQUIRE_SCHEMATHESIS` is set, as CI sets it.
//! The run is repeatable (a fixed seed); `SCHEMATHESIS_SEED` and
//! `SCHEMATHESIS_EXAMPLES` (per operation, 40) explore further.

use std::path::PathBuf;
use std::process::Command;

use serde_json::{Value, json};
use wiremock::matchers::{method, path_regex};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

use crate::helpers::TestDb;
use crate::helpers::{Backend, answer};
use crate::on_both_backends;

const CUSTOMER: &str = include_str!("../../fixtures/stripe/customer.json");
const SESSION: &str = include_str!("../../fixtures/stripe/checkout_session.json");
const PORTAL: &str = include_str!("../../fixtures/stripe/billing_portal_session.json");
const TOKEN: &str = "fuzz-token-with-every-scope";

/// The `schemathesis` command, if given (see the module's note).
pub(crate) fn schemathesis() -> Option<PathBuf> {
    let found = std::env::var_os("SCHEMATHESIS").map(PathBuf::from);
    if found.is_none() && std::env::var_os("REQUIRE_SCHEMATHESIS").is_some() {
        panic!("REQUIRE_SCHEMATHESIS is set but SCHEMATHESIS names no command");
    }
    found
}

/// Creates a customer of its own for each organization, as Stripe does.
struct Customers;

impl Respond for Customers {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let mut customer: Value = serde_json::from_str(CUSTOMER).unwrap();
        let id = match request.url.path().rsplit_once("/v1/customers/") {
            Some((_, id)) => id.to_owned(),
            None => format!("cus_fuzz_{}", customers_made()),
        };
        customer["id"] = json!(id);
        answer(200, customer)
    }
}

fn customers_made() -> usize {
    static MADE: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    MADE.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

/// A Stripe API that creates whatever it is asked to.
async fn fake_stripe() -> MockServer {
    let stripe = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path_regex("^/v1/customers(/[^/]+)?$"))
        .respond_with(Customers)
        .mount(&stripe)
        .await;
    let mut session: Value = serde_json::from_str(SESSION).unwrap();
    session["url"] = json!("https://checkout.stripe.com/c/pay/cs_fuzz");
    let answers = [
        ("^/v1/checkout/sessions$", session.to_string()),
        ("^/v1/billing_portal/sessions$", PORTAL.to_owned()),
    ];
    for (route, body) in answers {
        Mock::given(method("POST"))
            .and(path_regex(route))
            .respond_with(ResponseTemplate::new(200).set_body_raw(body, "application/json"))
            .mount(&stripe)
            .await;
    }
    stripe
}

async fn schemathesis_finds_no_failure_with_every_check(backend: Backend) {
    let Some(schemathesis) = schemathesis() else {
        eprintln!("SCHEMATHESIS is not set: fuzzing skipped");
        return;
    };
    let db = TestDb::create(backend).await;
    let stripe = fake_stripe().await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("fuzz.toml");
    std::fs::write(&config, format!(
        "[[auth.tokens]]\nname = \"fuzzer\"\ntoken = \"{TOKEN}\"\nscopes = [\"checkout\", \"entitlements:read\", \"admin\"]\n"
    )).unwrap();
    let mut command = crate::helpers::service_command(dir.path(), &db.url);
    command
        .args(["--config", config.to_str().unwrap()])
        .env("STRIPE_SECRET_KEY", "sk_test_fake")
        .env("BILLING__STRIPE__API_BASE", stripe.uri())
        // A generated `wait` stays well within the request timeout.
        .env("BILLING__NOTIFY__MAX_WAIT_SECS", "1")
        .env_remove("RUST_LOG");
    let (mut service, _logs, port) = crate::helpers::spawn_service(command);

    let settings = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/schemathesis.toml");
    let seed = std::env::var("SCHEMATHESIS_SEED").unwrap_or_else(|_| "20261123".into());
    let examples = std::env::var("SCHEMATHESIS_EXAMPLES").unwrap_or_else(|_| "40".into());
    let run = tokio::task::spawn_blocking(move || {
        Command::new(schemathesis)
            .args(["--config-file", settings, "run"])
            .arg(format!("http://127.0.0.1:{port}/openapi.json"))
            .args([
                "--checks",
                "all",
                "--workers",
                "1",
                "--max-examples",
                &examples,
            ])
            .args(["--seed", &seed, "--request-timeout", "10"])
            .args(["--header", &format!("Authorization: Bearer {TOKEN}")])
            .current_dir(std::env::temp_dir())
            .output()
    })
    .await
    .unwrap()
    .expect("schemathesis runs");
    let _ = service.kill();
    let _ = service.wait();
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(run.status.success(), "{report}");
    if let Some(summary) = report.lines().find(|l| l.contains("generated")) {
        eprintln!("schemathesis: {}", summary.trim());
    }
    assert!(
        report.contains("Tested: 14"),
        "every operation was tested:\n{report}"
    );
}

on_both_backends!(schemathesis_finds_no_failure_with_every_check);
