//! The app under test, in-process on a random port, and its settings.

use std::path::PathBuf;

use billing_api::settings::{Settings, Sources};
use billing_api::startup::Application;
use billing_api::stripe::signature::sign;
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;
use wiremock::MockServer;

use super::{EventBuilder, TestDb, json_of};

/// The variable naming the PostgreSQL server tests may create databases on.
pub const PG_VAR: &str = "TEST_DATABASE_URL";
pub const READ_TOKEN: &str = "dev-read-token";
pub const CHECKOUT_TOKEN: &str = "dev-checkout-token";
pub const ADMIN_TOKEN: &str = "dev-admin-token";

/// Which database a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Runs each named test, a plain `async fn name(backend: Backend)`, once
/// on SQLite and once on PostgreSQL: `on_both_backends!(name, other);`
/// makes `name::sqlite` and `name::postgres`; `on_both_backends!(blocking:
/// name)` does the same for a `fn name(backend: Backend)` that runs its
/// own runtime. The PostgreSQL run needs `TEST_DATABASE_URL`; without it,
/// it says so and passes (CI always sets it, and fails when the server is
/// missing).
#[macro_export]
macro_rules! on_both_backends {
    (blocking: $($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[test]
                fn sqlite() {
                    super::$name($crate::helpers::Backend::Sqlite)
                }

                #[test]
                fn postgres() {
                    if $crate::helpers::postgres_configured() {
                        super::$name($crate::helpers::Backend::Postgres)
                    } else {
                        eprintln!("{} is not set: PostgreSQL run skipped", $crate::helpers::PG_VAR);
                    }
                }
            }
        )*
    };
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    super::$name($crate::helpers::Backend::Sqlite).await
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    if $crate::helpers::postgres_configured() {
                        super::$name($crate::helpers::Backend::Postgres).await
                    } else {
                        eprintln!("{} is not set: PostgreSQL run skipped", $crate::helpers::PG_VAR);
                    }
                }
            }
        )*
    };
}

pub fn postgres_configured() -> bool {
    std::env::var(PG_VAR).is_ok_and(|v| !v.is_empty())
}

/// Whether PostgreSQL is configured; when not, says that the test calling
/// it is skipped.
pub fn postgres_or_skip() -> bool {
    let configured = postgres_configured();
    if !configured {
        eprintln!("{PG_VAR} is not set: skipped");
    }
    configured
}

/// The development settings, as `cargo run` would load them.
pub fn default_settings() -> Settings {
    Settings::load(&Sources {
        config_dir: PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../config")),
        environment: "development".into(),
        config_file: None,
        vars: Default::default(),
    })
    .expect("the default configuration is valid")
}

/// A running app and what it talks to.
pub struct TestApp {
    pub address: String,
    pub client: reqwest::Client,
    pub settings: Settings,
    /// The running app's engine (shares its counters).
    pub engine: entitlements::Engine,
    /// Stops the app.
    server: actix_web::dev::ServerHandle,
    /// Kept last so it is dropped after the app's pool (shared with the
    /// instances started [`TestApp::beside`] it).
    pub db: std::sync::Arc<TestDb>,
}

impl TestApp {
    /// The app with development settings.
    pub async fn spawn(backend: Backend) -> TestApp {
        Self::spawn_with(backend, |_| {}).await
    }

    /// The app with settings changed by `configure`.
    pub async fn spawn_with(backend: Backend, configure: impl FnOnce(&mut Settings)) -> TestApp {
        Self::spawn_on(TestDb::create(backend).await.into(), configure).await
    }

    /// Another instance on this app's database, running beside it (a
    /// second replica), with the development settings changed by
    /// `configure`.
    pub async fn beside(&self, configure: impl FnOnce(&mut Settings)) -> TestApp {
        Self::spawn_on(self.db.clone(), configure).await
    }

    /// The app talking to `stripe` (a fake Stripe) with a test-mode key,
    /// its settings further changed by `configure`.
    pub async fn spawn_against(
        backend: Backend,
        stripe: &MockServer,
        configure: impl FnOnce(&mut Settings),
    ) -> TestApp {
        let uri = stripe.uri();
        Self::spawn_with(backend, |s| {
            s.stripe.secret_key = "sk_test_fake".to_owned().into();
            s.stripe.api_base = uri;
            configure(s);
        })
        .await
    }

    /// The app talking to a new fake Stripe, returned beside it.
    pub async fn spawn_with_stripe(
        backend: Backend,
        configure: impl FnOnce(&mut Settings),
    ) -> (TestApp, MockServer) {
        let stripe = MockServer::start().await;
        (
            Self::spawn_against(backend, &stripe, configure).await,
            stripe,
        )
    }

    /// Another instance on this app's database, as after a restart with
    /// the development settings changed by `configure`: this one stops at
    /// once, as if killed, and its background tasks with it.
    pub async fn restart_with(self, configure: impl FnOnce(&mut Settings)) -> TestApp {
        self.server.stop(false).await;
        Self::spawn_on(self.db, configure).await
    }

    async fn spawn_on(
        db: std::sync::Arc<TestDb>,
        configure: impl FnOnce(&mut Settings),
    ) -> TestApp {
        let mut settings = default_settings();
        settings.server.host = "127.0.0.1".into();
        settings.server.port = 0;
        settings.server.workers = Some(2);
        settings.database.url = SecretString::from(db.url.clone());
        settings.database.max_connections = 4;
        configure(&mut settings);
        let app = Application::build(settings.clone())
            .await
            .expect("the app starts");
        let address = format!("http://127.0.0.1:{}", app.port());
        let (engine, server) = (app.engine().clone(), app.handle());
        tokio::spawn(app.run_until_stopped());
        TestApp {
            address,
            client: reqwest::Client::new(),
            settings,
            engine,
            server,
            db,
        }
    }

    /// Posts a raw webhook body with the given signature header.
    pub async fn post_webhook(&self, body: &str, signature: Option<&str>) -> reqwest::Response {
        let mut request = self
            .client
            .post(format!("{}/webhooks/stripe", self.address))
            .header("Content-Type", "application/json")
            .body(body.to_owned());
        if let Some(signature) = signature {
            request = request.header("Stripe-Signature", signature);
        }
        request.send().await.expect("request sent")
    }

    /// Signs `event` with the first configured secret, as Stripe would now.
    pub fn signature_for(&self, body: &str) -> String {
        let secret = self.settings.stripe.webhook_secrets[0].expose_secret();
        sign(secret, chrono::Utc::now().timestamp(), body.as_bytes())
    }

    /// Delivers `event` signed; returns the status and the JSON answer.
    pub async fn deliver(&self, event: &Value) -> (u16, Value) {
        let body = event.to_string();
        let response = self
            .post_webhook(&body, Some(&self.signature_for(&body)))
            .await;
        json_of(response).await
    }

    /// `GET /v1/entitlements/{org}` with the read token.
    pub async fn get_entitlements(&self, org: &str) -> (u16, Value) {
        json_of(
            self.get(&format!("/v1/entitlements/{org}"), Some(READ_TOKEN))
                .await,
        )
        .await
    }

    /// The organization's entitlements once `done` holds of them (or the
    /// last answer after five seconds): another process's write reaches
    /// the app's memory shortly after it commits.
    pub async fn entitlements_once(&self, org: &str, done: impl Fn(&Value) -> bool) -> Value {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        loop {
            let body = self.get_entitlements(org).await.1;
            if done(&body) || std::time::Instant::now() > deadline {
                return body;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }

    /// `GET /readyz` once `done` holds of its body (or after five seconds).
    pub async fn readyz_once(&self, done: impl Fn(&Value) -> bool) -> (u16, Value) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        loop {
            let answer = json_of(self.get("/readyz", None).await).await;
            if done(&answer.1) || std::time::Instant::now() > deadline {
                return answer;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }

    /// A GET with an optional bearer token.
    pub async fn get(&self, path: &str, token: Option<&str>) -> reqwest::Response {
        let authorization = token.map(|token| format!("Bearer {token}"));
        let headers: Vec<(&str, &str)> = authorization
            .iter()
            .map(|value| ("Authorization", value.as_str()))
            .collect();
        self.get_with_headers(path, &headers).await
    }

    /// A GET with the given headers and nothing else.
    pub async fn get_with_headers(
        &self,
        path: &str,
        headers: &[(&str, &str)],
    ) -> reqwest::Response {
        let mut request = self.client.get(format!("{}{path}", self.address));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        request.send().await.expect("request sent")
    }

    /// `POST /v1/checkout/sessions`.
    pub async fn post_checkout(&self, body: &Value, token: Option<&str>) -> (u16, Value) {
        self.post_json("/v1/checkout/sessions", body, token).await
    }

    /// Posts `body` as JSON to `route`.
    pub async fn post_json(&self, route: &str, body: &Value, token: Option<&str>) -> (u16, Value) {
        let mut request = self
            .client
            .post(format!("{}{route}", self.address))
            .json(body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        json_of(request.send().await.expect("request sent")).await
    }

    /// `POST /v1/orgs/{org}/grants` with the admin token.
    pub async fn post_grant(&self, org: &str, body: &Value) -> (u16, Value) {
        let route = format!("/v1/orgs/{org}/grants");
        self.post_json(&route, body, Some(ADMIN_TOKEN)).await
    }

    /// `DELETE /v1/orgs/{org}/grants/{id}` with the admin token.
    pub async fn revoke_grant(&self, org: &str, id: &str) -> (u16, Value) {
        let url = format!("{}/v1/orgs/{org}/grants/{id}", self.address);
        let request = self.client.delete(url).bearer_auth(ADMIN_TOKEN);
        let response = request.send().await.expect("request sent");
        let status = response.status().as_u16();
        let body = response.json().await.unwrap_or(Value::Null);
        (status, body)
    }

    /// `POST /v1/portal/sessions`.
    pub async fn post_portal(&self, body: &Value, token: Option<&str>) -> (u16, Value) {
        self.post_json("/v1/portal/sessions", body, token).await
    }

    /// A realistic event of `kind` for `org` on plan `pro`, as `trigger`
    /// builds it, created at `created`.
    pub fn event(&self, kind: &str, org: &str, created: i64) -> Value {
        self.build_event(kind, org).at(created).build()
    }

    /// An event of `kind` for `org` to shape further (see [`EventBuilder`]).
    pub fn build_event(&self, kind: &str, org: &str) -> EventBuilder<'_> {
        EventBuilder::new(&self.settings, kind, org)
    }

    /// Delivers a `customer.subscription.created` for `org` on `price`,
    /// created now; returns the event's id and the answer.
    pub async fn subscribe_on_price(&self, org: &str, price: &str) -> (String, Value) {
        let created = self
            .build_event("customer.subscription.created", org)
            .at(super::now())
            .price(price)
            .build();
        let (status, answer) = self.deliver(&created).await;
        assert_eq!(status, 200, "{answer}");
        (created["id"].as_str().expect("an id").to_owned(), answer)
    }

    /// `GET /v1/orgs/{org}/history{query}` with the admin token.
    pub async fn history(&self, org: &str, query: &str) -> (u16, Value) {
        let path = format!("/v1/orgs/{org}/history{query}");
        json_of(self.get(&path, Some(ADMIN_TOKEN)).await).await
    }
}
