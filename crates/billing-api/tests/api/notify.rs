//! Notifications to internal services: signed per Standard Webhooks, in
//! each organization's version order, retried, given up, kept across a
//! restart.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use billing_api::settings::SigningKey;
use billing_api::settings::{EndpointSettings, Settings};
use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

use crate::helpers::{ADMIN_TOKEN, Backend, TestApp, TestDb};
use crate::on_both_backends;

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// Sends every change to `receiver` (a URL), retried for `give_up` s.
fn endpoint(settings: &mut Settings, url: String, give_up: u64) {
    settings.notify.timeout_secs = 2;
    settings.notify.give_up_after_secs = give_up;
    settings.notify.endpoints = vec![EndpointSettings {
        name: "app".into(),
        url,
        secret: SECRET.to_owned().into(),
    }];
}

/// A receiver answering `first` to the first `n` posts, then 200.
async fn receiver(first: u16, n: u64) -> MockServer {
    let server = MockServer::start().await;
    if n > 0 {
        Mock::given(method("POST"))
            .and(path("/hooks"))
            .respond_with(ResponseTemplate::new(first))
            .up_to_n_times(n)
            .with_priority(1)
            .mount(&server)
            .await;
    }
    Mock::given(method("POST"))
        .and(path("/hooks"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&server)
        .await;
    server
}

/// The posts received, as (organization, version, body, request), once
/// `count` have come (within 15 s).
async fn posts(server: &MockServer, count: usize) -> Vec<(String, i64, Value, Request)> {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let requests = server.received_requests().await.unwrap_or_default();
        if requests.len() >= count || Instant::now() > deadline {
            return requests
                .into_iter()
                .map(|request| {
                    let body: Value = serde_json::from_slice(&request.body).unwrap();
                    let org = body["data"]["org_id"].as_str().unwrap().to_owned();
                    let version = body["data"]["version"].as_i64().unwrap();
                    (org, version, body, request)
                })
                .collect();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Python's `standardwebhooks`, the specification's own library, checks
/// each delivery's signature, and refuses each with its body altered. It
/// lives beside schemathesis in the virtual environment CI makes (see
/// `.ci/schemathesis`); without one, as there, the check is skipped.
fn verified_by_standardwebhooks(requests: &[&Request]) {
    let Some(python) = crate::schema_fuzz::schemathesis().map(|s| s.with_file_name("python"))
    else {
        eprintln!("SCHEMATHESIS is not set: the check by standardwebhooks is skipped");
        return;
    };
    let deliveries: Vec<Value> = requests
        .iter()
        .map(|request| {
            let headers: serde_json::Map<String, Value> =
                ["webhook-id", "webhook-timestamp", "webhook-signature"]
                    .into_iter()
                    .map(|name| {
                        (
                            name.to_owned(),
                            json!(request.headers[name].to_str().unwrap()),
                        )
                    })
                    .collect();
            json!({"body": String::from_utf8(request.body.clone()).unwrap(), "headers": headers})
        })
        .collect();
    let script = r#"
import json, sys
from standardwebhooks import Webhook
hook = Webhook(sys.argv[1])
for delivery in json.load(sys.stdin):
    hook.verify(delivery["body"], delivery["headers"])
    try:
        hook.verify(delivery["body"].replace("version", "versiom"), delivery["headers"])
        print("accepted altered", delivery["headers"]["webhook-id"])
    except Exception:
        print("verified", delivery["headers"]["webhook-id"])
"#;
    let mut child = std::process::Command::new(&python)
        .args(["-c", script, SECRET])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{}: {e}", python.display()));
    let input = serde_json::to_vec(&deliveries).unwrap();
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), &input).unwrap();
    let output = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let expected: Vec<String> = requests
        .iter()
        .map(|r| format!("verified {}", r.headers["webhook-id"].to_str().unwrap()))
        .collect();
    assert_eq!(stdout.lines().collect::<Vec<_>>(), expected);
}

async fn grant(app: &TestApp, org: &str, projects: i64) {
    let (status, body) = app
        .post_grant(org, &json!({"features": {"projects": projects}}))
        .await;
    assert_eq!(status, 201, "{body}");
}

/// The detail of acme's newest `notify_failed` history note, if any.
async fn failure_note(app: &TestApp) -> Option<String> {
    let (_, history) = app.history("acme", "").await;
    history["entries"]
        .as_array()?
        .iter()
        .find(|e| e["action"] == "notify_failed")
        .and_then(|n| n["detail"].as_str().map(str::to_owned))
}

async fn changes_reach_the_endpoint_signed_and_in_order(backend: Backend) {
    let server = receiver(200, 0).await;
    let url = format!("{}/hooks", server.uri());
    let app = TestApp::spawn_with(backend, |s| endpoint(s, url, 3600)).await;
    grant(&app, "acme", 7).await;
    grant(&app, "acme", 9).await;
    grant(&app, "beta", 4).await;
    let posts = posts(&server, 3).await;
    assert_eq!(posts.len(), 3);
    let key = SigningKey::parse(SECRET).unwrap();
    for (_, _, body, request) in &posts {
        let header = |name: &str| {
            request
                .headers
                .get(name)
                .unwrap()
                .to_str()
                .unwrap()
                .to_owned()
        };
        let (id, timestamp) = (header("webhook-id"), header("webhook-timestamp"));
        let expected = key.sign(&id, timestamp.parse().unwrap(), &request.body);
        assert_eq!(header("webhook-signature"), expected);
        assert!(id.starts_with("msg_"), "{id}");
        assert_eq!(body["type"], "entitlements.changed");
        assert!(body["timestamp"].as_str().is_some(), "{body}");
    }
    verified_by_standardwebhooks(&posts.iter().map(|(.., r)| r).collect::<Vec<_>>());
    let acme: Vec<(i64, &Value)> = posts
        .iter()
        .filter(|(org, ..)| org == "acme")
        .map(|(_, version, body, _)| (*version, &body["data"]))
        .collect();
    assert_eq!(acme.iter().map(|(v, _)| *v).collect::<Vec<_>>(), [1, 2]);
    assert_eq!(acme[1].1["previous_version"], 1);
    assert_eq!(acme[1].1["entitlements"]["features"]["projects"], 9);
    assert_eq!(acme[1].1["entitlements"]["version"], 2);
    let metrics = app.get("/metrics", None).await.text().await.unwrap();
    assert!(
        metrics.contains(r#"billing_notify_messages_total{endpoint="app",result="sent"} 3"#),
        "{metrics}"
    );
}

/// A database rebuilt from nothing numbers its feed from 1 again; its
/// messages still carry ids a receiver has never seen.
async fn message_ids_differ_between_databases(backend: Backend) {
    let server = receiver(200, 0).await;
    let url = format!("{}/hooks", server.uri());
    let mut apps = Vec::new();
    for _ in 0..2 {
        let app = TestApp::spawn_with(backend, |s| endpoint(s, url.clone(), 3600)).await;
        grant(&app, "acme", 7).await;
        apps.push(app);
    }
    let posts = posts(&server, 2).await;
    let ids: Vec<&str> = posts
        .iter()
        .map(|(.., request)| request.headers["webhook-id"].to_str().unwrap())
        .collect();
    assert_eq!(
        posts.iter().map(|(_, v, ..)| *v).collect::<Vec<_>>(),
        [1, 1]
    );
    assert_ne!(ids[0], ids[1]);
}

/// A sender whose hold on a message ran out reports too late: another one
/// took the message since and sent it and the next. The late report
/// changes nothing: no version is sent twice, no failure is noted.
async fn a_report_after_the_lease_passed_on_changes_nothing(backend: Backend) {
    use entitlements::notify::Outcome as Sent;
    let app = TestApp::spawn(backend).await;
    let engine = app.settings.engine().unwrap();
    engine.notify_start("app").await.unwrap();
    grant(&app, "acme", 7).await;
    grant(&app, "acme", 9).await;
    engine.notify_take_in("app").await.unwrap();
    let late = engine.notify_due("app", 10, 1).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    for version in [1, 2] {
        let due = engine.notify_due("app", 10, 60_000).await.unwrap();
        assert_eq!(due.len(), 1);
        assert_eq!(due[0].change.entitlements.version, version);
        let reports: Vec<_> = due.into_iter().map(|o| (o, Sent::Sent)).collect();
        engine.notify_report("app", &reports).await.unwrap();
    }
    let error = "timed out".to_owned();
    let reports: Vec<_> = late
        .into_iter()
        .map(|o| {
            (
                o,
                Sent::GiveUp {
                    error: error.clone(),
                },
            )
        })
        .collect();
    assert_eq!(reports.len(), 1);
    engine.notify_report("app", &reports).await.unwrap();
    assert!(
        engine
            .notify_due("app", 10, 60_000)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(engine.notify_backlog("app").await.unwrap(), 0);
    assert_eq!(failure_note(&app).await, None);
}

async fn a_grant_expiring_is_announced_with_no_read(backend: Backend) {
    let server = receiver(200, 0).await;
    let url = format!("{}/hooks", server.uri());
    let app = TestApp::spawn_with(backend, |s| {
        endpoint(s, url, 3600);
        s.sweep.every_ms = 200;
    })
    .await;
    let expires = chrono::DateTime::from_timestamp(crate::helpers::now() + 2, 0).unwrap();
    let (status, body) = app
        .post_grant(
            "acme",
            &json!({"plan": "pro", "expires_at": expires.to_rfc3339()}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    // No read of acme's entitlements: time alone makes version 2.
    let posts = posts(&server, 2).await;
    let versions: Vec<(i64, &Value)> = posts
        .iter()
        .map(|(_, version, body, _)| (*version, &body["data"]["entitlements"]["plan"]))
        .collect();
    assert_eq!(versions, [(1, &json!("pro")), (2, &json!("free"))]);
    let feed: Value = app
        .get("/v1/changes", Some(crate::helpers::READ_TOKEN))
        .await
        .json()
        .await
        .unwrap();
    let feed: Vec<(&Value, &Value)> = feed["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (&c["version"], &c["entitlements"]["plan"]))
        .collect();
    assert_eq!(
        feed,
        [(&json!(1), &json!("pro")), (&json!(2), &json!("free"))]
    );
    let (_, history) = app.history("acme", "").await;
    assert!(
        history["entries"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["action"] == "grant_expired"),
        "{history}"
    );
}

async fn a_redirect_is_a_failure_and_is_not_followed(backend: Backend) {
    for status in [302_u16, 307] {
        let server = MockServer::start().await;
        Mock::given(path("/hooks"))
            .respond_with(
                ResponseTemplate::new(status).insert_header("location", "/elsewhere?token=abc"),
            )
            .mount(&server)
            .await;
        Mock::given(path("/elsewhere"))
            .respond_with(ResponseTemplate::new(200))
            .mount(&server)
            .await;
        let url = format!("{}/hooks", server.uri());
        let app = TestApp::spawn_with(backend, |s| endpoint(s, url, 0)).await;
        grant(&app, "acme", 1).await;
        let deadline = Instant::now() + Duration::from_secs(15);
        let detail = loop {
            match failure_note(&app).await {
                Some(detail) => break detail,
                None if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                None => panic!("no notify_failed note in acme's history"),
            }
        };
        assert!(
            detail.contains(&format!("answered {status}"))
                && detail.contains("redirect to http://127.0.0.1:")
                && detail.contains("/elsewhere, which is not followed"),
            "{detail}"
        );
        assert!(!detail.contains("token=abc"), "{detail}");
        let requests = server.received_requests().await.unwrap();
        let paths: Vec<(String, &str)> = requests
            .iter()
            .map(|r| (r.method.to_string(), r.url.path()))
            .collect();
        assert_eq!(paths, [("POST".to_owned(), "/hooks")], "status {status}");
    }
}

async fn an_organization_always_refused_holds_up_no_other(backend: Backend) {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(wiremock::matchers::body_string_contains(
            r#""org_id":"bad""#,
        ))
        .respond_with(ResponseTemplate::new(503))
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&server)
        .await;
    let url = format!("{}/hooks", server.uri());
    let app = TestApp::spawn_with(backend, |s| endpoint(s, url, 3600)).await;
    grant(&app, "bad", 1).await;
    // bad is refused at once and after 1, 2 and 4 s of backoff.
    tokio::time::sleep(Duration::from_millis(7_500)).await;
    let granted = Instant::now();
    grant(&app, "good", 1).await;
    let posts = posts(&server, 5).await;
    let delay = granted.elapsed();
    let orgs: Vec<&str> = posts.iter().map(|(org, ..)| org.as_str()).collect();
    assert_eq!(orgs, ["bad", "bad", "bad", "bad", "good"]);
    assert!(delay < Duration::from_secs(3), "good waited {delay:?}");
}

async fn a_failing_endpoint_gets_each_version_only_after_the_one_before(backend: Backend) {
    let server = receiver(500, 2).await;
    let url = format!("{}/hooks", server.uri());
    let app = TestApp::spawn_with(backend, |s| endpoint(s, url, 3600)).await;
    for projects in 1..=3 {
        grant(&app, "acme", projects).await;
    }
    let posts = posts(&server, 5).await;
    let versions: Vec<i64> = posts.iter().map(|(_, version, ..)| *version).collect();
    // Version 1 fails twice and is retried; 2 and 3 wait for it.
    assert_eq!(versions, [1, 1, 1, 2, 3]);
    let ids: Vec<&str> = posts
        .iter()
        .map(|(.., r)| r.headers.get("webhook-id").unwrap().to_str().unwrap())
        .collect();
    assert!(
        ids[0] == ids[1] && ids[1] == ids[2] && ids[2] != ids[3],
        "{ids:?}"
    );
}

async fn a_version_given_up_is_in_the_history_and_the_next_goes(backend: Backend) {
    let server = receiver(503, 1).await;
    let url = format!("{}/hooks", server.uri());
    let app = TestApp::spawn_with(backend, |s| endpoint(s, url, 0)).await;
    grant(&app, "acme", 1).await;
    grant(&app, "acme", 2).await;
    let first = posts(&server, 2).await;
    let versions: Vec<i64> = first.iter().map(|(_, version, ..)| *version).collect();
    assert_eq!(versions, [1, 2]);
    let detail = failure_note(&app).await.unwrap_or_default();
    assert!(detail.contains("not delivered to app"), "{detail}");
    let metrics = app.get("/metrics", None).await.text().await.unwrap();
    assert!(
        metrics.contains(r#"billing_notify_messages_total{endpoint="app",result="given_up"} 1"#),
        "{metrics}"
    );

    // The operator sends it again by hand, under the id the note names.
    let id = detail
        .split(['(', ')'])
        .nth(1)
        .expect("the note names the message")
        .to_owned();
    let config = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        config.path(),
        format!(
            "[[notify.endpoints]]\nname = \"app\"\nurl = \"{}/hooks\"\nsecret = \"{SECRET}\"\n",
            server.uri()
        ),
    )
    .unwrap();
    let config = config.path().to_str().unwrap();
    let args = ["--config", config, "notify", "retry", &id];
    let text = crate::helpers::run_command(&args, &app.db.url);
    assert!(text.contains(&format!("{id} sent to app")), "{text}");
    let again = posts(&server, 3).await;
    let (_, version, _, request) = &again[2];
    assert_eq!(*version, 1);
    assert_eq!(
        request.headers.get("webhook-id").unwrap().to_str().unwrap(),
        id
    );
}

/// Answers 503 until `up` is set, then 200; notes when each post came and
/// what it was answered.
#[derive(Clone, Default)]
struct Flaky {
    up: Arc<AtomicBool>,
    posts: Arc<Mutex<Vec<(Instant, String, u16)>>>,
}

impl Respond for Flaky {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let body: Value = serde_json::from_slice(&request.body).unwrap();
        let org = body["data"]["org_id"].as_str().unwrap().to_owned();
        let status = if self.up.load(Ordering::SeqCst) {
            200
        } else {
            503
        };
        self.posts
            .lock()
            .unwrap()
            .push((Instant::now(), org, status));
        ResponseTemplate::new(status)
    }
}

async fn metric_line(app: &TestApp, prefix: &str) -> String {
    let metrics = app.get("/metrics", None).await.text().await.unwrap();
    metrics
        .lines()
        .find(|l| l.starts_with(prefix))
        .unwrap_or_default()
        .to_owned()
}

async fn an_endpoint_refusing_everything_is_paused_then_caught_up(backend: Backend) {
    const ORGS: usize = 60;
    let server = MockServer::start().await;
    let flaky = Flaky::default();
    Mock::given(method("POST"))
        .respond_with(flaky.clone())
        .mount(&server)
        .await;
    let url = format!("{}/hooks", server.uri());
    let app = TestApp::spawn_with(backend, |s| endpoint(s, url, 3600)).await;
    for org in 0..ORGS {
        grant(&app, &format!("org-{org}"), 1).await;
    }
    let down = r#"billing_notify_endpoint_down{endpoint="app"}"#;
    let deadline = Instant::now() + Duration::from_secs(15);
    while metric_line(&app, down).await != format!("{down} 1") {
        assert!(
            Instant::now() < deadline,
            "the endpoint never counted as down"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(2600)).await;
    let early = {
        let posts = flaky.posts.lock().unwrap();
        let first = posts[0].0;
        let early = Duration::from_millis(2500);
        posts.iter().filter(|(at, ..)| *at - first < early).count()
    };
    // A round of at most 32, a pause of 1 s, another, a pause of 2 s: had
    // each organization been tried and retried after 1 s, there would be
    // at least two attempts for each of the 60.
    assert!(early <= 64, "{early} attempts in the first 2.5 s");

    flaky.up.store(true, Ordering::SeqCst);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let sent: std::collections::BTreeSet<String> = flaky
            .posts
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, _, status)| *status == 200)
            .map(|(_, org, _)| org.clone())
            .collect();
        if sent.len() == ORGS {
            break;
        }
        assert!(Instant::now() < deadline, "{} of {ORGS} sent", sent.len());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(metric_line(&app, down).await, format!("{down} 0"));
}

async fn a_backlog_waits_through_a_restart(backend: Backend) {
    // Nothing listens here: every attempt fails.
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead_url = format!("http://{}/hooks", dead.local_addr().unwrap());
    drop(dead);
    let app = TestApp::spawn_with(backend, |s| endpoint(s, dead_url, 3600)).await;
    for projects in 1..=3 {
        grant(&app, "acme", projects).await;
    }
    let backlog = r#"billing_notify_backlog{endpoint="app"} 1"#;
    let deadline = Instant::now() + Duration::from_secs(10);
    while !app
        .get("/metrics", None)
        .await
        .text()
        .await
        .unwrap()
        .contains(backlog)
    {
        assert!(Instant::now() < deadline, "no backlog shown");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let server = receiver(200, 0).await;
    let url = format!("{}/hooks", server.uri());
    let app = app.restart_with(|s| endpoint(s, url, 3600)).await;
    let posts = posts(&server, 3).await;
    let versions: Vec<i64> = posts.iter().map(|(_, version, ..)| *version).collect();
    assert_eq!(versions, [1, 2, 3]);
    drop(app);
}

/// The service as a process of its own on `db_url`, sending to `url`;
/// its port.
fn process(db_url: &str, url: &str, dir: &std::path::Path) -> (std::process::Child, u64) {
    let config = dir.join(format!("notify-{}.toml", url.len()));
    std::fs::write(
        &config,
        format!(
            "[notify]\ntimeout_secs = 2\n[[notify.endpoints]]\nname = \"app\"\nurl = \"{url}\"\nsecret = \"{SECRET}\"\n"
        ),
    )
    .unwrap();
    let mut command = crate::helpers::service_command(dir, db_url);
    command.args(["--config", config.to_str().unwrap()]);
    let (child, _logs, port) = crate::helpers::spawn_service(command);
    (child, port)
}

/// A process with a backlog is killed (SIGKILL); the next one sends it,
/// in order.
async fn a_backlog_survives_kill_9(backend: Backend) {
    let db = TestDb::create(backend).await;
    let dir = tempfile::tempdir().unwrap();
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead_url = format!("http://{}/hooks", dead.local_addr().unwrap());
    drop(dead);
    let (mut first, port) = process(&db.url, &dead_url, dir.path());
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    for projects in 1..=3 {
        let answer = client
            .post(format!("{base}/v1/orgs/acme/grants"))
            .bearer_auth(ADMIN_TOKEN)
            .json(&json!({"features": {"projects": projects}}))
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status().as_u16(), 201);
    }
    let backlog = r#"billing_notify_backlog{endpoint="app"} 1"#;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let metrics = client.get(format!("{base}/metrics")).send().await.unwrap();
        if metrics.text().await.unwrap().contains(backlog) {
            break;
        }
        assert!(Instant::now() < deadline, "no backlog shown");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    first.kill().unwrap();
    first.wait().unwrap();

    let server = receiver(200, 0).await;
    let (mut second, _) = process(&db.url, &format!("{}/hooks", server.uri()), dir.path());
    let posts = posts(&server, 3).await;
    let versions: Vec<i64> = posts.iter().map(|(_, version, ..)| *version).collect();
    second.kill().unwrap();
    second.wait().unwrap();
    assert_eq!(versions, [1, 2, 3]);
}

/// Two replicas send to one endpoint: each message arrives once.
async fn two_replicas_send_each_message_once(backend: Backend) {
    let server = receiver(200, 0).await;
    let url = format!("{}/hooks", server.uri());
    let app = TestApp::spawn_with(backend, |s| endpoint(s, url, 3600)).await;
    let other = billing_api::startup::Application::build(app.settings.clone())
        .await
        .expect("a second replica starts");
    let other_server = other.handle();
    tokio::spawn(other.run_until_stopped());
    for org in 0..10 {
        for projects in 1..=3 {
            grant(&app, &format!("org-{org}"), projects).await;
        }
    }
    let posts = posts(&server, 30).await;
    // Nothing more arrives after a while either.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let all = server.received_requests().await.unwrap_or_default();
    assert_eq!((posts.len(), all.len()), (30, 30));
    let mut ids: Vec<String> = all
        .iter()
        .map(|r| {
            r.headers
                .get("webhook-id")
                .unwrap()
                .to_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 30);
    other_server.stop(false).await;
}

on_both_backends!(
    message_ids_differ_between_databases,
    a_report_after_the_lease_passed_on_changes_nothing,
    a_backlog_survives_kill_9,
    two_replicas_send_each_message_once,
    changes_reach_the_endpoint_signed_and_in_order,
    a_grant_expiring_is_announced_with_no_read,
    a_redirect_is_a_failure_and_is_not_followed,
    an_organization_always_refused_holds_up_no_other,
    a_failing_endpoint_gets_each_version_only_after_the_one_before,
    a_version_given_up_is_in_the_history_and_the_next_goes,
    a_backlog_waits_through_a_restart,
    an_endpoint_refusing_everything_is_paused_then_caught_up
);
