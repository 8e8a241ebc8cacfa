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

/// Where the service keeps its data: a SQLite file, or a PostgreSQL
/// database of its own, dropped when done.
enum Store {
    Sqlite(tempfile::TempDir),
    Postgres { admin_url: String, name: String },
}

impl Store {
    async fn sqlite() -> Self {
        Store::Sqlite(tempfile::tempdir().unwrap())
    }

    /// A new database on the server `TEST_DATABASE_URL` names, if set.
    async fn postgres() -> Option<Self> {
        let admin_url = std::env::var("TEST_DATABASE_URL")
            .ok()
            .filter(|u| !u.is_empty())?;
        let name = format!("client_{}", std::process::id());
        run_sql(&admin_url, &format!("CREATE DATABASE {name}")).await;
        Some(Store::Postgres { admin_url, name })
    }

    fn url(&self) -> String {
        match self {
            Store::Sqlite(dir) => format!("sqlite://{}/billing.db", dir.path().display()),
            Store::Postgres { admin_url, name } => {
                let mut url = reqwest::Url::parse(admin_url).unwrap();
                url.set_path(name);
                url.to_string()
            }
        }
    }

    async fn drop_database(&self) {
        if let Store::Postgres { admin_url, name } = self {
            run_sql(admin_url, &format!("DROP DATABASE {name} WITH (FORCE)")).await;
        }
    }
}

async fn run_sql(url: &str, sql: &str) {
    use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
    let mut conn = AsyncPgConnection::establish(url).await.unwrap();
    diesel::sql_query(sql).execute(&mut conn).await.unwrap();
}

/// The service on `store`, with development settings.
struct Service {
    child: Child,
    base: String,
}

impl Service {
    async fn start(store: &Store) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(service_binary())
            .env("PORT", port.to_string())
            .env("DATABASE_URL", store.url())
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
        Self { child, base }
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
async fn on_sqlite() {
    let store = Store::sqlite().await;
    the_cache_follows_changes_and_answers_while_the_service_is_down(&store).await;
}

#[tokio::test]
async fn on_postgres() {
    let Some(store) = Store::postgres().await else {
        eprintln!("TEST_DATABASE_URL is not set: PostgreSQL run skipped");
        return;
    };
    the_cache_follows_changes_and_answers_while_the_service_is_down(&store).await;
    store.drop_database().await;
}

async fn the_cache_follows_changes_and_answers_while_the_service_is_down(store: &Store) {
    let mut service = Service::start(store).await;
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
