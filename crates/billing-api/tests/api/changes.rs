//! `GET /v1/changes`: the change feed, its cursor and its long poll.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::helpers::{Backend, READ_TOKEN, TestApp, assert_error, now};
use crate::on_both_backends;

/// `GET /v1/changes` with `query`, as a service with the read scope.
async fn feed(app: &TestApp, query: &str) -> (u16, Value) {
    let response = app
        .get(&format!("/v1/changes{query}"), Some(READ_TOKEN))
        .await;
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

/// Each change's organization and version, in feed order.
fn versions(page: &Value) -> Vec<(String, i64)> {
    page["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["org_id"].as_str().unwrap().to_owned(),
                c["version"].as_i64().unwrap(),
            )
        })
        .collect()
}

async fn the_feed_lists_changes_in_order_with_their_answer(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (status, empty) = feed(&app, "").await;
    assert_eq!(
        (status, &empty["changes"], &empty["next"]),
        (200, &json!([]), &json!("0"))
    );

    app.post_grant("acme", &json!({"features": {"sso": true}}))
        .await;
    let created = app
        .build_event("customer.subscription.created", "beta")
        .quantity(3)
        .build();
    app.deliver(&created).await;
    app.post_grant("acme", &json!({"features": {"projects": 7}}))
        .await;

    let (_, page) = feed(&app, "").await;
    assert_eq!(
        versions(&page),
        [("acme".into(), 1), ("beta".into(), 1), ("acme".into(), 2)]
    );
    let beta = &page["changes"][1];
    assert_eq!(beta["entitlements"]["plan"], "pro");
    assert_eq!(beta["entitlements"]["features"]["seats"], 3);
    assert_eq!(beta["entitlements"]["version"], 1);
    assert_eq!(beta["entitlements"]["sources"][0]["kind"], "subscription");
    assert!(beta["changed_at"].as_str().is_some(), "{beta}");
    let acme = &page["changes"][2]["entitlements"];
    assert_eq!(
        (&acme["features"]["sso"], &acme["features"]["projects"]),
        (&json!(true), &json!(7))
    );
    assert_eq!(page["next"], page["changes"][2]["cursor"]);

    // A page at a time: each page's `next` leads to the following change.
    let (_, first) = feed(&app, "?limit=1").await;
    let (_, second) = feed(
        &app,
        &format!("?limit=1&after={}", first["next"].as_str().unwrap()),
    )
    .await;
    assert_eq!(versions(&second), [("beta".into(), 1)]);

    assert_nothing_follows(&app, &page, "").await;
}

async fn a_waiting_request_answers_with_the_next_change(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.post_grant("acme", &json!({"features": {"sso": true}}))
        .await;
    let (_, page) = feed(&app, "").await;
    let next = page["next"].as_str().unwrap().to_owned();
    let later = async {
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        app.post_grant("beta", &json!({"features": {"sso": true}}))
            .await
    };
    let query = format!("?after={next}&wait=10");
    let ((status, waited), _) = tokio::join!(feed(&app, &query), later);
    assert_eq!(status, 200, "{waited}");
    assert_eq!(versions(&waited), [("beta".into(), 1)]);

    // Nothing follows: the wait ends empty, with the same cursor.
    assert_nothing_follows(&app, &waited, "&wait=1").await;
}

async fn bad_cursors_limits_and_waits_are_refused(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.post_grant("acme", &json!({"features": {"sso": true}}))
        .await;
    app.post_grant("acme", &json!({"features": {"projects": 9}}))
        .await;
    for query in [
        "?limit=0",
        "?limit=501",
        "?wait=31",
        "?after=x1",
        "?after=01",
        "?after=-1",
        "?after=12345",
    ] {
        let (status, body) = feed(&app, query).await;
        assert_error(status, &body, 400, "invalid_request");
    }
    assert_eq!(app.get("/v1/changes", None).await.status().as_u16(), 401);
}

/// Writers on every connection at once, a reader following `next` all the
/// while: every version of every organization arrives exactly once, and
/// each organization's in order.
async fn concurrent_writers_never_make_a_reader_skip_or_repeat(backend: Backend) {
    const ORGS: usize = 6;
    const CHANGES: i64 = 8;
    let app = TestApp::spawn(backend).await;
    let writers = (0..ORGS).map(|o| {
        let app = &app;
        async move {
            for n in 1..=CHANGES {
                let (status, body) = app
                    .post_grant(&format!("org-{o}"), &json!({"features": {"projects": n}}))
                    .await;
                assert_eq!(status, 201, "{body}");
            }
        }
    });
    let reader = async {
        let mut seen: Vec<(String, i64)> = Vec::new();
        let mut next = "0".to_owned();
        while seen.len() < ORGS * CHANGES as usize {
            let (status, page) = feed(&app, &format!("?after={next}&limit=5&wait=5")).await;
            assert_eq!(status, 200, "{page}");
            assert!(
                !page["changes"].as_array().unwrap().is_empty(),
                "no change within 5 s after {seen:?}"
            );
            seen.extend(versions(&page));
            next = page["next"].as_str().unwrap().to_owned();
        }
        seen
    };
    let (_, seen) = tokio::join!(futures_util::future::join_all(writers), reader);
    let mut by_org: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    for (org, version) in seen {
        by_org.entry(org).or_default().push(version);
    }
    assert_eq!(by_org.len(), ORGS);
    for (org, versions) in by_org {
        assert_eq!(versions, (1..=CHANGES).collect::<Vec<_>>(), "{org}");
    }
    let (_, rest) = feed(&app, "?limit=500").await;
    assert_eq!(
        rest["changes"].as_array().unwrap().len(),
        ORGS * CHANGES as usize
    );
}

/// PostgreSQL only (SQLite has one writer, so nothing commits late): a
/// change whose transaction began first but commits last is still read,
/// after the ones that committed before it. A cursor taken from the ids
/// would pass it for good.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_that_commits_late_is_not_skipped() {
    if !crate::helpers::postgres_or_skip() {
        return;
    }
    let app = TestApp::spawn(Backend::Postgres).await;
    app.db
        .execute("INSERT INTO organizations (id, created_at, updated_at) VALUES ('late', 0, 0)")
        .await;
    // A writer takes its change's id now and commits at the end.
    let late = app
        .db
        .begin(&format!(
            "INSERT INTO entitlement_changes (org_id, version, plan, status, features, changed_at, position) \
             VALUES ('late', 1, 'free', 'none', '{{}}', {}, 1)",
            now()
        ))
        .await;
    app.post_grant("early", &json!({"features": {"sso": true}}))
        .await;
    let (_, page) = feed(&app, "").await;
    assert_eq!(versions(&page), [("early".into(), 1)]);
    late.commit().await;
    let next = page["next"].as_str().unwrap();
    let (_, page) = feed(&app, &format!("?after={next}")).await;
    assert_eq!(versions(&page), [("late".into(), 1)]);
}

on_both_backends!(
    the_feed_lists_changes_in_order_with_their_answer,
    a_waiting_request_answers_with_the_next_change,
    bad_cursors_limits_and_waits_are_refused,
    concurrent_writers_never_make_a_reader_skip_or_repeat
);

/// Reading on from `page` (with `extra` in the query) finds no change and
/// the same cursor.
async fn assert_nothing_follows(app: &TestApp, page: &Value, extra: &str) {
    let next = page["next"].as_str().unwrap().to_owned();
    let (_, after) = feed(app, &format!("?after={next}{extra}")).await;
    assert_eq!(
        (&after["changes"], &after["next"]),
        (&json!([]), &json!(next))
    );
}
