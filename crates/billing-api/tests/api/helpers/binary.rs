//! The service binary as a process of its own.

use serde_json::Value;

/// Starts the binary built by `command` (its environment set, `PORT=0` and
/// JSON logs among it), and returns the process, its log lines as they
/// come, and the port it listens on.
pub fn spawn_service(
    mut command: std::process::Command,
) -> (std::process::Child, std::sync::mpsc::Receiver<String>, u64) {
    use std::io::BufRead;
    let mut child = command
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("the binary starts");
    let stderr = child.stderr.take().expect("stderr is piped");
    let (tx, lines) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            let _ = tx.send(line);
        }
    });
    let port = loop {
        let line = lines
            .recv_timeout(std::time::Duration::from_secs(30))
            .expect("the service logs its port");
        if let Some(port) = serde_json::from_str::<Value>(&line)
            .ok()
            .and_then(|l| l["port"].as_u64())
        {
            break port;
        }
    };
    (child, lines, port)
}

/// The service binary to start in `dir` on `database_url`, listening on a
/// port of its choosing and logging JSON (as [`spawn_service`] reads it).
pub fn service_command(dir: &std::path::Path, database_url: &str) -> std::process::Command {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_billing-api"));
    command
        .current_dir(dir)
        .env("PORT", "0")
        .env("DATABASE_URL", database_url)
        .env("BILLING__LOG__FORMAT", "json");
    command
}

/// A SQLite database file in `dir`.
pub fn sqlite_in(dir: &std::path::Path) -> String {
    format!("sqlite://{}/billing.db", dir.display())
}

/// Runs `billing-api <args>` on `db_url` with `catalog` (TOML) layered over
/// the development configuration.
pub fn run_with_catalog(db_url: &str, catalog: &str, args: &[&str]) -> std::process::Output {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let config = dir.path().join("catalog.toml");
    std::fs::write(&config, catalog).expect("the catalog is written");
    let config = config.to_str().expect("a UTF-8 path");
    std::process::Command::new(env!("CARGO_BIN_EXE_billing-api"))
        .args(["--config", config])
        .args(args)
        .env("DATABASE_URL", db_url)
        .current_dir(dir.path())
        .output()
        .expect("the binary runs")
}

/// Runs a command of the service binary on `database_url` and returns what
/// it printed, once it succeeded.
pub fn run_command(args: &[&str], database_url: &str) -> String {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_billing-api"))
        .args(args)
        .env("DATABASE_URL", database_url)
        .current_dir(std::env::temp_dir())
        .output()
        .expect("the binary runs");
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    text
}

/// Runs a command of the service binary that reads from the fake Stripe at
/// `stripe_uri`, on `database_url`; returns what it printed on standard
/// output and error, once it succeeded.
pub fn run_against_stripe(args: &[&str], database_url: &str, stripe_uri: &str) -> String {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_billing-api"))
        .args(args)
        .env("DATABASE_URL", database_url)
        .env("STRIPE_SECRET_KEY", "sk_test_fake")
        .env("BILLING__STRIPE__API_BASE", stripe_uri)
        .current_dir(std::env::temp_dir())
        .output()
        .expect("the binary runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "{text}");
    text
}
