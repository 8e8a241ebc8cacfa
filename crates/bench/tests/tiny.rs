//! `billing-bench --tiny` runs end to end against the service binary, so
//! that the benchmark cannot rot.

use std::process::Command;

#[path = "../../../tests/support/service_binary.rs"]
mod support;

use support::service_binary;

#[test]
fn the_tiny_benchmark_measures_and_checks_every_figure() {
    let mut command = Command::new(env!("CARGO_BIN_EXE_billing-bench"));
    command
        .arg("--tiny")
        .arg("--binary")
        .arg(service_binary())
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
        .env_remove("BENCH_DATABASE_URL");
    let postgres = std::env::var("TEST_DATABASE_URL")
        .ok()
        .filter(|u| !u.is_empty());
    if let Some(url) = &postgres {
        command.args(["--postgres", url]);
    }
    let output = command.output().expect("the benchmark runs");
    let text = String::from_utf8_lossy(&output.stdout);
    let errors = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{text}{errors}");
    let stores: &[&str] = if postgres.is_some() {
        &["SQLite", "PostgreSQL"]
    } else {
        &["SQLite"]
    };
    for store in stores {
        assert!(text.contains(&format!("### {store}")), "{text}");
    }
    for figure in [
        "`/healthz`, 4 connections",
        "`GET /v1/entitlements/{org}`, 8 connections",
        "webhook ingest, 8 concurrent",
        "webhook ingest, 32 concurrent, a notification endpoint down",
        "notifications failed and were recorded meanwhile",
        "service RSS after the load",
        "`reconcile`, 300 subscriptions in 3 pages, no rate limit",
        "`reconcile`, 300 subscriptions in 3 pages, test key",
    ] {
        assert!(text.contains(figure), "{figure} missing from:\n{text}");
    }
    assert_eq!(
        text.matches("all accounted for").count(),
        // Ingest at 1, 8 and 32, then at 8 and 32 with an endpoint down.
        5 * stores.len(),
        "{text}"
    );
    if postgres.is_some() {
        assert!(text.contains("`pgbench` one-row upsert"), "{text}");
    }
}
