//! The client against the real service binary: its cache follows a change
//! with no call, and it keeps answering while the service is down, until
//! the answer's `valid_until`, then the caller's default.
#![expect(
    clippy::unwrap_used,
    reason = "a test should stop at the first surprise"
)]

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use entitlements_client::{Client, Entitlements};

#[path = "../../../tests/support/service_binary.rs"]
mod support;

use support::service_binary;

/// The service on a SQLite file of its own, with development settings.
struct Service {
    child: Child,
    base: String,
    _dir: tempfile::TempDir,
}

impl Service {
    async fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(service_binary())
            .env("PORT", port.to_string())
            .env(
                "DATABASE_URL",
                format!("sqlite://{}/billing.db", dir.path().display()),
            )
            .env("BILLING__LOG__LEVEL", "warn")
            .env_remove("BILLING_ENV")
            .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        let base = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(30);
        while reqwest::get(format!("{base}/readyz")).await.is_err() {
            assert!(Instant::now() < deadline, "the service did not start");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Self {
            child,
            base,
            _dir: dir,
        }
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits (5 s at most) until `done` holds.
async fn eventually(what: &str, mut done: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !done().await {
        assert!(Instant::now() < deadline, "{what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn the_cache_follows_changes_and_answers_while_the_service_is_down() {
    let mut service = Service::start().await;
    let client = Client::new(&service.base, "dev-read-token").unwrap();
    let before = client.entitlements("acme").await.unwrap();
    assert_eq!(
        (before.plan.as_str(), before.enabled("sso")),
        ("free", false)
    );
    eventually("the client follows the feed", async || client.following()).await;
    let calls = client.calls();

    // An operator grants SSO until a few seconds from now.
    let expires = chrono::Utc::now() + chrono::Duration::seconds(4);
    let granted = reqwest::Client::new()
        .post(format!("{}/v1/orgs/acme/grants", service.base))
        .bearer_auth("dev-admin-token")
        .json(&serde_json::json!({"features": {"sso": true}, "expires_at": expires.to_rfc3339()}))
        .send()
        .await
        .unwrap();
    assert_eq!(granted.status().as_u16(), 201);
    eventually("the grant reaches the cache", async || {
        client.entitlements("acme").await.unwrap().enabled("sso")
    })
    .await;
    assert_eq!(client.calls(), calls, "the change came with no call");

    // The service goes away: the answer in hand serves until it lapses.
    let _ = service.child.kill();
    let _ = service.child.wait();
    let held = client.entitlements("acme").await.unwrap();
    assert!(held.enabled("sso"));
    let default = Entitlements {
        plan: "fallback".into(),
        ..held.clone()
    };
    assert_eq!(
        client.entitlements_or("acme", default.clone()).await.plan,
        held.plan
    );
    tokio::time::sleep_until((Instant::now() + Duration::from_secs(5)).into()).await;
    assert!(client.entitlements("acme").await.is_err());
    assert_eq!(
        client.entitlements_or("acme", default).await.plan,
        "fallback"
    );
}
