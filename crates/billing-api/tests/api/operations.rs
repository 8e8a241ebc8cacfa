//! `GET /healthz`, `GET /readyz` and `GET /metrics`.

use serde_json::json;

use crate::helpers::{Backend, READ_TOKEN, TestApp, assert_error, json_of, now};
use crate::on_both_backends;

async fn health_and_readiness_answer(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    assert_eq!(
        json_of(app.get("/healthz", None).await).await,
        (200, json!({"status": "ok"}))
    );
    let ready = app.readyz_once(|b| b["answers"] == "from memory").await;
    assert_eq!(
        ready,
        (
            200,
            json!({"status": "ready", "answers": "from memory", "rules": "in force"})
        )
    );
    app.engine.database().revert_all_migrations().await.unwrap();
    let (status, body) = json_of(app.get("/readyz", None).await).await;
    assert_error(status, &body, 503, "not_ready");
}

async fn metrics_count_requests_webhooks_and_changes(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let event = app.event("customer.subscription.created", "acme", now());
    app.deliver(&event).await;
    app.deliver(&event).await;
    app.get_entitlements("acme").await;
    app.get("/v1/entitlements/acme", Some("wrong")).await;
    let response = app.get("/metrics", None).await;
    assert_eq!(response.status(), 200);
    let text = response.text().await.unwrap();
    for line in [
        r#"billing_webhook_events_total{type="customer.subscription.created",outcome="applied"} 1"#,
        r#"billing_webhook_events_total{type="customer.subscription.created",outcome="duplicate"} 1"#,
        r#"billing_http_request_duration_seconds_count{method="GET",route="/v1/entitlements/{org_id}",status="200"} 1"#,
        r#"billing_http_request_duration_seconds_count{method="GET",route="/v1/entitlements/{org_id}",status="401"} 1"#,
        r#"billing_http_request_duration_seconds_count{method="POST",route="/webhooks/stripe",status="200"} 2"#,
        "billing_entitlement_changes_total{source=\"subscription\"} 1",
        r#"billing_events_recorded_total{outcome="applied"} 1"#,
        "billing_duplicate_events_total 1",
    ] {
        assert!(text.lines().any(|l| l == line), "missing {line}\n{text}");
    }
    assert!(!text.contains("acme"), "organization ids are not labels");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_stripe_calls_and_their_failures() {
    use wiremock::matchers::method;
    use wiremock::{Mock, MockServer, ResponseTemplate};

    let stripe = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(400)
                .set_body_json(json!({"error": {"type": "invalid_request_error"}})),
        )
        .mount(&stripe)
        .await;
    let app = TestApp::spawn_against(Backend::Sqlite, &stripe, |_| {}).await;
    let token = Some(crate::helpers::CHECKOUT_TOKEN);
    assert_eq!(
        app.post_checkout(&json!({"org_id": "acme", "plan": "pro"}), token)
            .await
            .0,
        502
    );
    let text = app
        .get("/metrics", Some(READ_TOKEN))
        .await
        .text()
        .await
        .unwrap();
    let line = r#"billing_stripe_requests_total{operation="create_customer",result="error"} 1"#;
    assert!(text.lines().any(|l| l == line), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn made_up_methods_and_paths_do_not_grow_the_metrics() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    for i in 0..200 {
        let method =
            reqwest::Method::from_bytes(format!("M{i}{}", "X".repeat(500)).as_bytes()).unwrap();
        app.client
            .request(method, format!("{}/v1/entitlements/acme", app.address))
            .send()
            .await
            .unwrap();
        app.client
            .get(format!("{}/no/such/route/{i}", app.address))
            .send()
            .await
            .unwrap();
    }
    let text = app.get("/metrics", None).await.text().await.unwrap();
    let series: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("billing_http_request_duration_seconds_count"))
        .collect();
    assert!(series.len() <= 4, "{series:#?}");
    assert!(
        !text.contains("XXXX") && !text.contains("/no/such"),
        "{text}"
    );
    assert!(
        series
            .iter()
            .any(|l| l.contains(r#"method="other""#) && l.ends_with(" 200")),
        "{series:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_probes_reuse_pooled_connections() {
    use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
    if !crate::helpers::postgres_or_skip() {
        return;
    }
    #[derive(diesel::QueryableByName)]
    struct Sessions {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        sessions: i64,
    }
    let app = TestApp::spawn(Backend::Postgres).await;
    let mut observer = AsyncPgConnection::establish(&app.db.url).await.unwrap();
    let sessions = async |conn: &mut AsyncPgConnection| {
        diesel::sql_query(
            "SELECT sessions FROM pg_stat_database WHERE datname = current_database()",
        )
        .get_result::<Sessions>(conn)
        .await
        .unwrap()
        .sessions
    };
    let before = sessions(&mut observer).await;
    for _ in 0..30 {
        assert_eq!(app.get("/readyz", None).await.status(), 200);
    }
    let opened = sessions(&mut observer).await - before;
    let pool = i64::try_from(app.settings.database.max_connections).unwrap();
    assert!(opened <= pool, "30 probes opened {opened} sessions");
}

on_both_backends!(
    health_and_readiness_answer,
    metrics_count_requests_webhooks_and_changes
);
