//! The test harness: the real app on a random port over a fresh database.

use std::path::PathBuf;

use billing_api::settings::{Settings, Sources};
use billing_api::signature::sign;
use billing_api::startup::Application;
use billing_api::trigger::{TriggerSpec, build_event};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;

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
/// makes `name::sqlite` and `name::postgres`. The PostgreSQL run needs
/// `TEST_DATABASE_URL`; without it, it says so and passes (CI always sets
/// it, and fails when the server is missing).
#[macro_export]
macro_rules! on_both_backends {
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
    /// Kept last so it is dropped after the app's pool.
    pub db: TestDb,
}

impl TestApp {
    /// The app with development settings.
    pub async fn spawn(backend: Backend) -> TestApp {
        Self::spawn_with(backend, |_| {}).await
    }

    /// The app with settings changed by `configure`.
    pub async fn spawn_with(backend: Backend, configure: impl FnOnce(&mut Settings)) -> TestApp {
        Self::spawn_on(TestDb::create(backend).await, configure).await
    }

    /// Another instance on this app's database, as after a restart with
    /// the development settings changed by `configure` (this one keeps
    /// serving, unused).
    pub async fn restart_with(self, configure: impl FnOnce(&mut Settings)) -> TestApp {
        Self::spawn_on(self.db, configure).await
    }

    async fn spawn_on(db: TestDb, configure: impl FnOnce(&mut Settings)) -> TestApp {
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
        let engine = app.engine().clone();
        tokio::spawn(app.run_until_stopped());
        TestApp {
            address,
            client: reqwest::Client::new(),
            settings,
            engine,
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

    /// A GET with an optional bearer token.
    pub async fn get(&self, path: &str, token: Option<&str>) -> reqwest::Response {
        let mut request = self.client.get(format!("{}{path}", self.address));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send().await.expect("request sent")
    }

    /// `POST /v1/checkout/sessions`.
    pub async fn post_checkout(&self, body: &Value, token: Option<&str>) -> (u16, Value) {
        self.post_json("/v1/checkout/sessions", body, token).await
    }

    async fn post_json(&self, route: &str, body: &Value, token: Option<&str>) -> (u16, Value) {
        let mut request = self
            .client
            .post(format!("{}{route}", self.address))
            .json(body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        json_of(request.send().await.expect("request sent")).await
    }

    /// `POST /v1/portal/sessions`.
    pub async fn post_portal(&self, body: &Value, token: Option<&str>) -> (u16, Value) {
        self.post_json("/v1/portal/sessions", body, token).await
    }

    /// A realistic event of `kind` for `org` on plan `pro`, as `trigger`
    /// builds it, created at `created`.
    pub fn event(&self, kind: &str, org: &str, created: i64) -> Value {
        event_for(&self.settings, kind, org, "pro", 1, created)
    }
}

/// A realistic event built the way `billing-api trigger` builds it.
pub fn event_for(
    settings: &Settings,
    kind: &str,
    org: &str,
    plan: &str,
    quantity: u64,
    created: i64,
) -> Value {
    let spec = TriggerSpec {
        event_type: kind.into(),
        org_id: org.into(),
        plan: plan.into(),
        quantity,
        status: None,
        cancel_at_period_end: false,
        period_days: 30,
        subscription_id: None,
        now: created,
    };
    build_event(settings, &spec).expect("event builds")
}

/// A complete subscription as Stripe's API returns it, from Stripe's own
/// example object.
pub fn stripe_subscription(id: &str, org: &str, status: &str, price: &str, quantity: u64) -> Value {
    let mut sub: Value =
        serde_json::from_str(include_str!("../../fixtures/stripe/subscription.json"))
            .expect("fixture");
    sub["id"] = serde_json::json!(id);
    sub["customer"] = serde_json::json!(format!("cus_trigger_{org}"));
    sub["status"] = serde_json::json!(status);
    sub["cancel_at_period_end"] = serde_json::json!(false);
    sub["metadata"] = serde_json::json!({"org_id": org, "plan": "pro"});
    let item = &mut sub["items"]["data"][0];
    item["id"] = serde_json::json!(format!("si_{id}"));
    item["price"]["id"] = serde_json::json!(price);
    item["quantity"] = serde_json::json!(quantity);
    item["current_period_start"] = serde_json::json!(now());
    item["current_period_end"] = serde_json::json!(now() + 30 * 86_400);
    sub
}

pub fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

pub async fn json_of(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    let text = response.text().await.expect("body read");
    let json = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, json)
}

/// A database of its own for one test, removed when dropped.
pub struct TestDb {
    pub url: String,
    cleanup: Cleanup,
}

enum Cleanup {
    Sqlite(#[allow(dead_code)] tempfile::TempDir),
    Postgres { admin_url: String, name: String },
}

impl TestDb {
    pub async fn create(backend: Backend) -> TestDb {
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().expect("temp dir");
                // A folder that does not exist yet: the service creates it.
                let url = format!("sqlite://{}/data/billing.db", dir.path().display());
                TestDb {
                    url,
                    cleanup: Cleanup::Sqlite(dir),
                }
            }
            Backend::Postgres => {
                let admin_url = std::env::var(PG_VAR).expect("TEST_DATABASE_URL is set");
                let mut admin = AsyncPgConnection::establish(&admin_url)
                    .await
                    .unwrap_or_else(|e| {
                        panic!("{PG_VAR} names a server that cannot be reached: {e}")
                    });
                sweep_stale(&mut admin).await;
                let name = format!(
                    "billing_test_{}_{}",
                    now(),
                    &uuid::Uuid::new_v4().simple().to_string()[..12]
                );
                diesel::sql_query(format!("CREATE DATABASE {name}"))
                    .execute(&mut admin)
                    .await
                    .expect("test database created");
                let url = replace_db_name(&admin_url, &name);
                TestDb {
                    url,
                    cleanup: Cleanup::Postgres { admin_url, name },
                }
            }
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Cleanup::Postgres { admin_url, name } = &self.cleanup {
            let (admin_url, name) = (admin_url.clone(), name.clone());
            // Drop runs inside the test's runtime; use a thread of our own.
            let _ = std::thread::spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .ok()?;
                runtime.block_on(async {
                    let mut admin = AsyncPgConnection::establish(&admin_url).await.ok()?;
                    diesel::sql_query(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                        .execute(&mut admin)
                        .await
                        .ok()
                })
            })
            .join();
        }
    }
}

/// Removes test databases that crashed runs left behind over an hour ago.
async fn sweep_stale(admin: &mut AsyncPgConnection) {
    #[derive(diesel::QueryableByName)]
    struct Name {
        #[diesel(sql_type = diesel::sql_types::Text)]
        datname: String,
    }
    let names: Vec<Name> =
        diesel::sql_query("SELECT datname FROM pg_database WHERE datname LIKE 'billing_test_%'")
            .load(admin)
            .await
            .unwrap_or_default();
    let cutoff = now() - 3600;
    for Name { datname } in names {
        let created: Option<i64> = datname.split('_').nth(2).and_then(|t| t.parse().ok());
        if created.is_some_and(|t| t < cutoff) {
            let _ = diesel::sql_query(format!("DROP DATABASE IF EXISTS {datname} WITH (FORCE)"))
                .execute(admin)
                .await;
        }
    }
}

fn replace_db_name(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let path_start = base[scheme_end..]
        .find('/')
        .map_or(base.len(), |i| scheme_end + i);
    let mut out = format!("{}/{name}", &base[..path_start]);
    if let Some(query) = query {
        out.push('?');
        out.push_str(query);
    }
    out
}

impl TestDb {
    /// Cuts (and ends every session of) or restores access to the test's
    /// PostgreSQL database: a real outage as the service sees it.
    pub async fn set_connections_allowed(&self, allowed: bool) {
        let Cleanup::Postgres { admin_url, name } = &self.cleanup else {
            panic!("only PostgreSQL databases can be cut off");
        };
        let mut admin = AsyncPgConnection::establish(admin_url)
            .await
            .expect("admin connection");
        diesel::sql_query(format!(
            "ALTER DATABASE {name} WITH ALLOW_CONNECTIONS {allowed}"
        ))
        .execute(&mut admin)
        .await
        .expect("database altered");
        if !allowed {
            diesel::sql_query(format!(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'"
            ))
            .execute(&mut admin)
            .await
            .expect("sessions ended");
        }
    }
}

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

/// A transaction of the test's own that holds an organization's row lock
/// (on SQLite, the database's write lock) until it is released: another
/// writer of that organization waits for it as for a concurrent event.
pub enum LockHolder {
    Postgres(Box<AsyncPgConnection>),
    Sqlite(diesel::SqliteConnection),
}

impl TestDb {
    pub async fn hold_org_lock(&self, org: &str) -> LockHolder {
        use diesel::Connection;
        use diesel::connection::SimpleConnection;
        use diesel_async::SimpleAsyncConnection;
        match &self.cleanup {
            Cleanup::Postgres { .. } => {
                let mut conn = AsyncPgConnection::establish(&self.url).await.unwrap();
                conn.batch_execute(&format!(
                    "BEGIN; INSERT INTO organizations (id, created_at, updated_at) \
                     VALUES ('{org}', 0, 0) ON CONFLICT (id) DO UPDATE SET updated_at = 0"
                ))
                .await
                .unwrap();
                LockHolder::Postgres(Box::new(conn))
            }
            Cleanup::Sqlite(_) => {
                let path = self.url.trim_start_matches("sqlite://");
                let mut conn = diesel::SqliteConnection::establish(path).unwrap();
                conn.batch_execute("BEGIN IMMEDIATE").unwrap();
                LockHolder::Sqlite(conn)
            }
        }
    }
}

impl LockHolder {
    pub async fn release(self) {
        use diesel::connection::SimpleConnection;
        use diesel_async::SimpleAsyncConnection;
        match self {
            LockHolder::Postgres(mut conn) => conn.batch_execute("COMMIT").await.unwrap(),
            LockHolder::Sqlite(mut conn) => conn.batch_execute("COMMIT").unwrap(),
        }
    }
}

impl TestDb {
    /// Reverts the newest migration and applies it again, as an upgrade
    /// from the schema before it would, over whatever data is stored.
    pub async fn reapply_newest_migration(&self) {
        use diesel::Connection;
        use diesel_async::async_connection_wrapper::AsyncConnectionWrapper;
        use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};
        const POSTGRES: EmbeddedMigrations = embed_migrations!("../../migrations/postgres");
        const SQLITE: EmbeddedMigrations = embed_migrations!("../../migrations/sqlite");

        fn redo<H: MigrationHarness<DB>, DB: diesel::backend::Backend>(
            harness: &mut H,
            migrations: fn() -> EmbeddedMigrations,
        ) {
            harness.revert_last_migration(migrations()).unwrap();
            assert_eq!(
                harness.run_pending_migrations(migrations()).unwrap().len(),
                1
            );
        }

        let url = self.url.clone();
        let postgres = matches!(self.cleanup, Cleanup::Postgres { .. });
        tokio::task::spawn_blocking(move || {
            if postgres {
                let mut conn =
                    <AsyncConnectionWrapper<AsyncPgConnection> as Connection>::establish(&url)
                        .unwrap();
                redo(&mut conn, || POSTGRES);
            } else {
                let path = url.trim_start_matches("sqlite://");
                redo(
                    &mut diesel::SqliteConnection::establish(path).unwrap(),
                    || SQLITE,
                );
            }
        })
        .await
        .unwrap();
    }
}
