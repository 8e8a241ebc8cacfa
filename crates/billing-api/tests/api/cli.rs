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

on_both_backends!(trigger_grants_and_revokes_on_a_running_instance);
