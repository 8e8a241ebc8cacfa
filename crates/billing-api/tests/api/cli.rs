//! The `billing-api` binary's subcommands.

use std::process::{Command, Output};

use crate::helpers::Backend;
use crate::helpers::TestApp;
use crate::on_both_backends;

fn billing_api(args: &[&str], vars: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_billing-api"));
    command
        .args(args)
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
        .env_remove("BILLING_ENV");
    for (name, value) in vars {
        command.env(name, value);
    }
    command.output().expect("the binary runs")
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[test]
fn check_config_accepts_the_defaults_and_names_a_bad_key() {
    let ok = billing_api(&["check-config"], &[]);
    assert!(ok.status.success(), "{}", text(&ok));
    let bad = billing_api(
        &["check-config"],
        &[("BILLING__STRIPE__API_BASE", "not a url")],
    );
    assert_eq!(bad.status.code(), Some(2));
    assert!(text(&bad).contains("stripe.api_base"), "{}", text(&bad));
    let production = billing_api(&["check-config"], &[("BILLING_ENV", "production")]);
    assert_eq!(production.status.code(), Some(2));
    assert!(
        text(&production).contains("required in production"),
        "{}",
        text(&production)
    );
}

/// The `ENV` settings of the Docker image, with its config folder pointing
/// at the repository's.
fn docker_image_environment() -> Vec<(String, String)> {
    let dockerfile = include_str!("../../../../Dockerfile");
    let runtime_stage = dockerfile.rsplit("\nFROM ").next().unwrap();
    let env_block = runtime_stage
        .split("\nENV ")
        .nth(1)
        .expect("the runtime stage sets ENV");
    let mut vars = Vec::new();
    for line in env_block.lines() {
        let continued = line.trim_end().ends_with('\\');
        let pair = line.trim().trim_end_matches('\\').trim();
        if let Some((name, value)) = pair.split_once('=') {
            let value = match name {
                "BILLING_CONFIG_DIR" => {
                    concat!(env!("CARGO_MANIFEST_DIR"), "/../../config").to_owned()
                }
                _ => value.to_owned(),
            };
            vars.push((name.to_owned(), value));
        }
        if !continued {
            break;
        }
    }
    vars
}

#[test]
fn the_docker_image_refuses_the_development_tokens() {
    let vars = docker_image_environment();
    assert!(
        vars.iter().any(|(name, _)| name == "BILLING_ENV"),
        "{vars:?}"
    );
    let vars: Vec<(&str, &str)> = vars.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
    let output = billing_api(&["check-config"], &vars);
    assert_eq!(output.status.code(), Some(2), "{}", text(&output));
    assert!(text(&output).contains("production"), "{}", text(&output));
}

#[test]
fn migrate_applies_the_schema_once() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/billing.db", dir.path().display());
    let migrations = std::fs::read_dir(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../migrations/sqlite"
    ))
    .unwrap()
    .count();
    let first = billing_api(&["migrate"], &[("DATABASE_URL", &url)]);
    assert!(
        text(&first).contains(&format!("{migrations} migration(s) applied")),
        "{}",
        text(&first)
    );
    let second = billing_api(&["migrate"], &[("DATABASE_URL", &url)]);
    assert!(
        text(&second).contains("0 migration(s) applied"),
        "{}",
        text(&second)
    );
}

async fn trigger_grants_and_revokes_on_a_running_instance(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let url = format!("{}/webhooks/stripe", app.address);
    let run = |args: Vec<&str>| {
        let mut full = vec!["trigger"];
        full.extend(args);
        full.extend(["--org", "acme", "--url", url.as_str()]);
        let output = billing_api(&full, &[]);
        assert!(output.status.success(), "{}", text(&output));
    };
    run(vec!["checkout.session.completed"]);
    run(vec!["customer.subscription.created", "--quantity", "5"]);
    let granted = app.get_entitlements("acme").await.1;
    assert_eq!(
        (
            granted["plan"].as_str(),
            granted["features"]["seats"].as_i64()
        ),
        (Some("pro"), Some(5))
    );
    run(vec![
        "customer.subscription.updated",
        "--cancel-at-period-end",
        "--period-days",
        "-1",
    ]);
    assert_eq!(
        app.get_entitlements("acme").await.1["plan"],
        "free",
        "canceled and its period ended"
    );
    run(vec![
        "customer.subscription.updated",
        "--cancel-at-period-end",
        "--period-days",
        "3",
    ]);
    let ending = app.get_entitlements("acme").await.1;
    assert_eq!(
        (
            ending["plan"].as_str(),
            ending["cancel_at_period_end"].as_bool()
        ),
        (Some("pro"), Some(true))
    );
    run(vec!["customer.subscription.deleted"]);
    assert_eq!(app.get_entitlements("acme").await.1["plan"], "free");
    // A new subscription grants again after a cancellation.
    run(vec![
        "customer.subscription.created",
        "--subscription",
        "sub_second",
    ]);
    let regranted = app.get_entitlements("acme").await.1;
    assert_eq!(regranted["plan"], "pro", "{regranted}");
}

async fn trigger_sends_a_purchase_its_refund_and_its_dispute(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let url = format!("{}/webhooks/stripe", app.address);
    let run = |args: &[&str]| {
        let mut full = vec!["trigger"];
        full.extend(args);
        full.extend(["--org", "acme", "--url", url.as_str()]);
        let output = billing_api(&full, &[]);
        assert!(output.status.success(), "{}", text(&output));
        text(&output)
    };
    let plan_status = |body: serde_json::Value| {
        (
            body["plan"].as_str().unwrap().to_owned(),
            body["status"].as_str().unwrap().to_owned(),
        )
    };
    let lifetime = ["--plan", "lifetime", "--mode", "payment"];
    run(&[&["checkout.session.completed"][..], &lifetime[..]].concat());
    let purchased = ("lifetime".to_owned(), "purchased".to_owned());
    assert_eq!(plan_status(app.get_entitlements("acme").await.1), purchased);
    run(&["charge.refunded", "--partial"]);
    assert_eq!(plan_status(app.get_entitlements("acme").await.1), purchased);
    run(&["charge.dispute.created"]);
    assert_eq!(app.get_entitlements("acme").await.1["plan"], "free");
    run(&["charge.dispute.closed", "--status", "won"]);
    assert_eq!(plan_status(app.get_entitlements("acme").await.1), purchased);
    run(&["charge.refunded"]);
    assert_eq!(app.get_entitlements("acme").await.1["plan"], "free");

    // A delayed payment: pending until it succeeds.
    let pass = ["--plan", "pass", "--purchase", "pass1", "--quantity", "3"];
    run(&[
        &["checkout.session.completed", "--status", "unpaid"][..],
        &pass[..],
    ]
    .concat());
    assert_eq!(app.get_entitlements("acme").await.1["plan"], "free");
    run(&[&["checkout.session.async_payment_succeeded"][..], &pass[..]].concat());
    let body = app.get_entitlements("acme").await.1;
    assert_eq!(
        (body["plan"].as_str(), body["features"]["seats"].as_i64()),
        (Some("pass"), Some(3))
    );
}

/// Runs `billing-api grant <args>` on `app`'s database.
fn grant(app: &TestApp, args: &[&str]) -> Output {
    let mut full = vec!["grant"];
    full.extend(args);
    billing_api(
        &full,
        &[("DATABASE_URL", app.db.url.as_str()), ("USER", "ops")],
    )
}

async fn grant_adds_lists_and_revokes_from_a_shell(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let added = grant(
        &app,
        &[
            "add",
            "acme",
            "--feature",
            "sso=true",
            "--feature",
            "seats=40",
            "--days",
            "7",
            "--reason",
            "pilot",
        ],
    );
    assert!(added.status.success(), "{}", text(&added));
    let grant_body: serde_json::Value = serde_json::from_slice(&added.stdout).unwrap();
    let id = grant_body["id"].as_str().unwrap().to_owned();
    assert_eq!(
        (
            grant_body["created_by"].as_str(),
            grant_body["reason"].as_str()
        ),
        (Some("cli:ops"), Some("pilot"))
    );
    let expires = chrono::DateTime::parse_from_rfc3339(grant_body["expires_at"].as_str().unwrap())
        .unwrap()
        .timestamp();
    assert!(
        (expires - crate::helpers::now() - 7 * 86_400).abs() < 60,
        "{grant_body}"
    );

    // The running service sees it.
    let body = app
        .entitlements_once("acme", |b| b["status"] == "granted")
        .await;
    assert_eq!(
        (body["status"].as_str(), body["features"]["seats"].as_i64()),
        (Some("granted"), Some(40))
    );

    let listed = grant(&app, &["list", "acme"]);
    let list: serde_json::Value = serde_json::from_slice(&listed.stdout).unwrap();
    assert_eq!(list["grants"][0]["id"], id.as_str());

    let revoked = grant(&app, &["revoke", "acme", &id, "--by", "alice"]);
    assert!(
        text(&revoked).contains(&format!("revoked {id} of acme")),
        "{}",
        text(&revoked)
    );
    let body = app
        .entitlements_once("acme", |b| b["status"] == "none")
        .await;
    assert_eq!(body["status"], "none");
    let list: serde_json::Value =
        serde_json::from_slice(&grant(&app, &["list", "acme"]).stdout).unwrap();
    assert_eq!(
        (
            list["grants"][0]["active"].as_bool(),
            list["grants"][0]["revoked_by"].as_str()
        ),
        (Some(false), Some("alice"))
    );

    // Refusals name the problem and exit non-zero.
    for (args, says) in [
        (vec!["add", "acme", "--plan", "gold"], "plan"),
        (vec!["add", "acme", "--feature", "sso"], "name=value"),
        (vec!["add", "acme", "--feature", "seats=many"], "seats"),
        (vec!["add", "not an org", "--plan", "pro"], "org"),
        (vec!["revoke", "acme", &id], "already revoked"),
        (vec!["revoke", "acme", "grant_nope"], "grant_nope"),
    ] {
        let output = grant(&app, &args);
        assert!(!output.status.success(), "{args:?}: {}", text(&output));
        assert!(text(&output).contains(says), "{args:?}: {}", text(&output));
    }
}

on_both_backends!(
    trigger_grants_and_revokes_on_a_running_instance,
    trigger_sends_a_purchase_its_refund_and_its_dispute,
    grant_adds_lists_and_revokes_from_a_shell
);
