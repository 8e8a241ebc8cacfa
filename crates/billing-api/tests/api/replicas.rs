//! Two replicas on one database, each keeping answers in memory: a write
//! on one reaches the other within a second, an answer never outlives its
//! recheck time, and a replica that cannot follow changes reads from the
//! database until it can again.

use std::process::Child;
use std::time::{Duration, Instant};

use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use serde_json::{Value, json};

use crate::helpers::{Backend, PgProxy, READ_TOKEN, TestApp, json_of, now};
use crate::on_both_backends;

/// The second replica: the service binary on the test app's database.
struct Replica {
    child: Child,
    base: String,
    client: reqwest::Client,
    /// Holds the configuration file it was started with.
    _config: Option<tempfile::TempDir>,
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Replica {
    fn start(app: &TestApp) -> Replica {
        Replica::start_on(&app.db.url)
    }

    /// A replica reaching the database at `url`.
    fn start_on(url: &str) -> Replica {
        Replica::start_configured(url, None)
    }

    /// A replica reaching the database at `url`, with `config` (TOML)
    /// layered over the development configuration.
    fn start_configured(url: &str, config: Option<&str>) -> Replica {
        let mut command = crate::helpers::service_command(&std::env::temp_dir(), url);
        let dir = config.map(|config| {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("replica.toml");
            std::fs::write(&path, config).unwrap();
            command.arg("--config").arg(path);
            dir
        });
        let (child, _logs, port) = crate::helpers::spawn_service(command);
        Replica {
            child,
            base: format!("http://127.0.0.1:{port}"),
            client: reqwest::Client::new(),
            _config: dir,
        }
    }

    async fn get(&self, path: &str) -> Value {
        let response = self
            .client
            .get(format!("{}{path}", self.base))
            .bearer_auth(READ_TOKEN)
            .send()
            .await
            .unwrap();
        json_of(response).await.1
    }

    async fn metrics(&self) -> String {
        let url = format!("{}/metrics", self.base);
        let response = self.client.get(url).send().await.unwrap();
        response.text().await.unwrap()
    }

    /// Polls `path` until `done` holds of its body; returns the body and
    /// how long that took (at most five seconds).
    async fn once(&self, path: &str, done: impl Fn(&Value) -> bool) -> (Value, Duration) {
        let start = Instant::now();
        loop {
            let body = self.get(path).await;
            if done(&body) || start.elapsed() > Duration::from_secs(5) {
                return (body, start.elapsed());
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

/// Ends the PostgreSQL sessions that listen for changes, as a network cut
/// would.
async fn cut_listeners(app: &TestApp) {
    let mut conn = AsyncPgConnection::establish(&app.db.url).await.unwrap();
    diesel::sql_query(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE datname = current_database() AND query LIKE 'LISTEN%'",
    )
    .execute(&mut conn)
    .await
    .unwrap();
}

async fn a_change_on_one_replica_reaches_the_others_memory(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let replica = Replica::start(&app);
    let ready = replica
        .once("/readyz", |b| b["answers"] == "from memory")
        .await
        .0;
    assert_eq!(ready["answers"], "from memory", "{ready}");

    // Read twice (kept in memory), then written through the other replica.
    let path = "/v1/entitlements/acme";
    assert_eq!(replica.get(path).await["plan"], "free");
    assert_eq!(replica.get(path).await["plan"], "free");
    let metrics = replica.metrics().await;
    assert!(
        metrics.contains("billing_cache_hits_total 1\n"),
        "{metrics}"
    );
    app.deliver(&app.event("customer.subscription.created", "acme", now() - 10))
        .await;
    let (body, took) = replica.once(path, |b| b["plan"] == "pro").await;
    assert_eq!(body["plan"], "pro");
    assert!(took < Duration::from_secs(1), "seen after {took:?}");

    // The period ends in two seconds and nothing says so: the replica
    // holding the answer in memory still stops granting on time.
    let mut ending = app
        .build_event("customer.subscription.updated", "acme")
        .at(now() - 5)
        .build();
    let ends = now() + 2;
    ending["data"]["object"]["cancel_at_period_end"] = json!(true);
    ending["data"]["object"]["items"]["data"][0]["current_period_end"] = json!(ends);
    app.deliver(&ending).await;
    let (body, _) = replica
        .once(path, |b| b["cancel_at_period_end"] == true)
        .await;
    assert_eq!(body["plan"], "pro", "{body}");
    tokio::time::sleep(Duration::from_secs(
        u64::try_from(ends + 1 - now()).unwrap_or(0),
    ))
    .await;
    assert_eq!(replica.get(path).await["plan"], "free");
}

/// PostgreSQL only: SQLite is followed by reading its history, with
/// nothing to cut.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_that_cannot_follow_reads_from_the_database() {
    if !crate::helpers::postgres_or_skip() {
        return;
    }
    let app = TestApp::spawn(Backend::Postgres).await;
    let replica = Replica::start(&app);
    replica
        .once("/readyz", |b| b["answers"] == "from memory")
        .await;
    let path = "/v1/entitlements/beta";
    assert_eq!(replica.get(path).await["version"], 0);

    cut_listeners(&app).await;
    let (ready, _) = replica
        .once("/readyz", |b| b["answers"] != "from memory")
        .await;
    assert_eq!(
        ready["answers"],
        "from the database: other processes' changes are not followed now"
    );
    assert!(
        replica
            .metrics()
            .await
            .contains("billing_cache_following 0\n")
    );
    // Meanwhile a change elsewhere is seen at once, from the database.
    app.deliver(&app.event("customer.subscription.created", "beta", now() - 10))
        .await;
    assert_eq!(replica.get(path).await["plan"], "pro");

    // It follows again after a second, and answers from memory.
    let (ready, _) = replica
        .once("/readyz", |b| b["answers"] == "from memory")
        .await;
    assert_eq!(ready["answers"], "from memory");
    assert_eq!(replica.get(path).await["plan"], "pro");
}

/// PostgreSQL only. Behind a pooler that does not pass notifications on
/// (or over a half-open connection) every query still works: the replica
/// notices within a second that its own heartbeat does not come back, and
/// answers from the database.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_that_hears_no_notifications_reads_from_the_database() {
    if !crate::helpers::postgres_or_skip() {
        return;
    }
    let app = TestApp::spawn(Backend::Postgres).await;
    let proxy = PgProxy::start(&app.db.url).await;
    let replica = Replica::start_on(&proxy.url);
    replica
        .once("/readyz", |b| b["answers"] == "from memory")
        .await;
    let path = "/v1/entitlements/gamma";
    assert_eq!(replica.get(path).await["plan"], "free");

    proxy.drop_notifications();
    let (ready, took) = replica
        .once("/readyz", |b| b["answers"] != "from memory")
        .await;
    assert_eq!(
        ready["answers"],
        "from the database: other processes' changes are not followed now"
    );
    assert!(took < Duration::from_secs(2), "noticed after {took:?}");
    app.deliver(&app.event("customer.subscription.created", "gamma", now() - 10))
        .await;
    assert_eq!(replica.get(path).await["plan"], "pro");
}

/// The answer's version and its `projects` and `seats`, from `base`.
async fn version_projects_seats(
    client: &reqwest::Client,
    base: &str,
    org: &str,
) -> (i64, i64, i64) {
    let response = client
        .get(format!("{base}/v1/entitlements/{org}"))
        .bearer_auth(READ_TOKEN)
        .send()
        .await
        .unwrap();
    let body = json_of(response).await.1;
    (
        body["version"].as_i64().unwrap(),
        body["features"]["projects"].as_i64().unwrap(),
        body["features"]["seats"].as_i64().unwrap(),
    )
}

/// What `base` answers for `org` once it is `want`, or after five seconds.
async fn settled(
    client: &reqwest::Client,
    base: &str,
    org: &str,
    want: (i64, i64, i64),
) -> (i64, i64, i64) {
    let start = Instant::now();
    loop {
        let got = version_projects_seats(client, base, org).await;
        if got == want || start.elapsed() > Duration::from_secs(5) {
            return got;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Reads `acme` five times through each side in turns; each read is `want`.
async fn in_turns(sides: [(&reqwest::Client, &String); 2], want: (i64, i64, i64)) {
    for _ in 0..5 {
        for (client, base) in sides {
            assert_eq!(
                version_projects_seats(client, base, "acme").await,
                want,
                "{base}"
            );
        }
    }
}

/// A rolling deploy that changes the catalog: the replica started last
/// puts its catalog in force; the older one serves what is stored and
/// computes nothing, so reads through either never flip the answer, and
/// an event the older one receives is computed under the rules in force.
async fn a_rolling_deploy_with_another_catalog_does_not_flip_answers(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let subscribed = app.event("customer.subscription.created", "acme", now() - 20);
    app.deliver(&subscribed).await;
    let old = (app.address.clone(), app.client.clone());
    assert_eq!(
        version_projects_seats(&old.1, &old.0, "acme").await,
        (1, 100, 1)
    );

    let newer = Replica::start_configured(
        &app.db.url,
        Some("[plans.pro]\nfeatures = { seats = { per_unit = 1 }, sso = true, projects = 77 }\n"),
    );
    newer.once("/readyz", |b| b["status"] == "ready").await;
    let (_, ready) = app.readyz_once(|b| b["rules"] != "in force").await;
    assert_eq!(
        ready["rules"],
        "outdated: another replica's catalog is in force; stored answers are served, none is computed here"
    );
    assert_eq!(newer.get("/readyz").await["rules"], "in force");
    let metrics = app.get("/metrics", None).await.text().await.unwrap();
    assert!(metrics.contains("billing_rules_in_force 0\n"), "{metrics}");
    assert!(newer.metrics().await.contains("billing_rules_in_force 1\n"));

    // Reads through both, in turns: one answer, under the newer catalog.
    let (newer_base, newer_client) = (newer.base.clone(), newer.client.clone());
    assert_eq!(
        settled(&old.1, &old.0, "acme", (2, 77, 1)).await,
        (2, 77, 1)
    );
    in_turns([(&newer_client, &newer_base), (&old.1, &old.0)], (2, 77, 1)).await;

    // An event through the older replica is recorded there and computed
    // by the newer one.
    let mut updated = app
        .build_event("customer.subscription.updated", "acme")
        .at(now() - 10)
        .quantity(3)
        .build();
    updated["id"] = json!("evt_rolling_update");
    let (status, receipt) = app.deliver(&updated).await;
    assert_eq!(
        (status, receipt["outcome"].as_str()),
        (200, Some("applied")),
        "{receipt}"
    );
    assert_eq!(
        settled(&old.1, &old.0, "acme", (3, 77, 3)).await,
        (3, 77, 3)
    );
    in_turns([(&newer_client, &newer_base), (&old.1, &old.0)], (3, 77, 3)).await;
}

on_both_backends!(
    a_change_on_one_replica_reaches_the_others_memory,
    a_rolling_deploy_with_another_catalog_does_not_flip_answers
);
