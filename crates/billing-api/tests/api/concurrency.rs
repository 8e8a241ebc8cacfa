//! Simultaneous deliveries of different events for one organization.

use serde_json::Value;

use crate::helpers::{ADMIN_TOKEN, Backend, TestApp, json_of, now};
use crate::on_both_backends;

/// Eight `customer.subscription.created` events of one organization, for
/// subscriptions with 1 to 8 seats, all created at `t`.
fn eight_subscriptions(app: &TestApp, t: i64) -> Vec<Value> {
    (1..=8)
        .map(|seats| {
            app.build_event("customer.subscription.created", "acme")
                .at(t)
                .subscription(&format!("sub_{seats}"))
                .quantity(seats)
                .build()
        })
        .collect()
}

/// Delivers `events` all at once; each must be applied.
async fn deliver_applied(app: &TestApp, events: &[Value]) {
    let answers = futures_util::future::join_all(events.iter().map(|e| app.deliver(e))).await;
    assert!(
        answers.iter().all(|(_, body)| body["outcome"] == "applied"),
        "{answers:?}"
    );
}

/// Every entry of acme's history, newest first, read `limit` at a time.
async fn whole_history(app: &TestApp, limit: usize) -> Vec<Value> {
    let mut entries = Vec::new();
    let mut query = format!("?limit={limit}");
    loop {
        let (status, page) = app.history("acme", &query).await;
        assert_eq!(status, 200, "{page}");
        entries.extend(page["entries"].as_array().unwrap().iter().cloned());
        match page["next"].as_str() {
            Some(next) => query = format!("?limit={limit}&before={next}"),
            None => return entries,
        }
    }
}

fn unix(entry: &Value) -> i64 {
    chrono::DateTime::parse_from_rfc3339(entry["at"].as_str().unwrap())
        .unwrap()
        .timestamp()
}

async fn concurrent_events_of_one_organization_lose_no_update(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    deliver_applied(&app, &eight_subscriptions(&app, now())).await;

    let body = app.get_entitlements("acme").await.1;
    assert_eq!(body["features"]["seats"], 8);
    let history = json_of(
        app.get("/v1/orgs/acme/history?limit=200", Some(ADMIN_TOKEN))
            .await,
    )
    .await
    .1;
    let mut versions: Vec<i64> = history["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["version"].as_i64())
        .collect();
    versions.reverse();
    let expected: Vec<i64> = (1..=body["version"].as_i64().unwrap()).collect();
    assert_eq!(
        versions, expected,
        "every change has its own version and history row"
    );
}

async fn concurrent_updates_of_one_subscription_end_in_the_newest(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let t = now();
    let events: Vec<Value> = (1..=8)
        .map(|seats| {
            app.build_event("customer.subscription.updated", "acme")
                .at(t + seats)
                .quantity(seats)
                .build()
        })
        .collect();
    let answers = futures_util::future::join_all(events.iter().rev().map(|e| app.deliver(e))).await;
    assert!(
        answers.iter().all(|(status, _)| *status == 200),
        "{answers:?}"
    );
    assert_eq!(app.get_entitlements("acme").await.1["features"]["seats"], 8);
}

async fn a_writer_that_waited_for_the_organization_stamps_the_time_it_got_the_lock(
    backend: Backend,
) {
    let app = TestApp::spawn(backend).await;
    let event = app.event("customer.subscription.created", "acme", now());
    let holder = app.db.hold_org_lock("acme").await;
    let started = now();
    // The delivery reads the clock and waits for the lock; the lock is
    // released only once the clock has moved past that second.
    let release = async {
        while now() <= started {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        let released = now();
        holder.release().await;
        released
    };
    let ((status, body), released) = tokio::join!(app.deliver(&event), release);
    assert_eq!(
        (status, body["outcome"].as_str()),
        (200, Some("applied")),
        "{body}"
    );

    let history = whole_history(&app, 50).await;
    assert_eq!(history.len(), 2, "{history:?}");
    for entry in &history {
        assert!(
            unix(entry) >= released,
            "stamped before it held the lock: {entry} (released at {released})"
        );
    }
}

async fn pages_through_a_burst_of_same_second_changes_never_skip_or_repeat(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    deliver_applied(&app, &eight_subscriptions(&app, now())).await;
    let version = app.get_entitlements("acme").await.1["version"]
        .as_i64()
        .unwrap();

    for limit in [1, 2, 3, 16] {
        let entries = whole_history(&app, limit).await;
        let event_ids: Vec<&str> = entries
            .iter()
            .filter(|e| e["kind"] == "event")
            .map(|e| e["event_id"].as_str().unwrap())
            .collect();
        let mut unique = event_ids.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(
            (event_ids.len(), unique.len()),
            (8, 8),
            "limit {limit}: {entries:?}"
        );

        let versions: Vec<i64> = entries
            .iter()
            .filter_map(|e| e["version"].as_i64())
            .collect();
        assert_eq!(
            versions,
            (1..=version).rev().collect::<Vec<_>>(),
            "limit {limit}"
        );
        let times: Vec<i64> = entries.iter().map(unix).collect();
        assert!(
            times.windows(2).all(|w| w[0] >= w[1]),
            "limit {limit}: {times:?}"
        );
        // Each change is listed below (before) the event that caused it.
        for (at, change) in entries
            .iter()
            .enumerate()
            .filter(|(_, e)| e["kind"] == "entitlement_change")
        {
            let cause = entries
                .iter()
                .position(|e| e["kind"] == "event" && e["event_id"] == change["event_id"]);
            assert!(
                cause.is_some_and(|cause| cause < at),
                "limit {limit}: {change}"
            );
        }
    }
}

/// Two replicas (two engines on one database) receive each of twenty
/// events at the same moment: each event is recorded and applied by one of
/// them, and the other answers it as a redelivery, never an error.
async fn one_event_on_two_replicas_at_once_is_recorded_once(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let other = app
        .settings
        .engine()
        .expect("a second engine on the same database");
    let t = now() - 60;
    let events: Vec<Value> = (0..20)
        .map(|i| {
            app.build_event("customer.subscription.created", &format!("twice-{i}"))
                .at(t)
                .quantity(i + 1)
                .build()
        })
        .collect();
    let both = events.iter().map(|event| {
        let body = event.to_string();
        let parse = || entitlements::Event::parse(body.as_bytes()).expect("a valid event");
        let (here, there) = (parse(), parse());
        let (app, other) = (&app, &other);
        async move {
            let (here, there) = tokio::join!(
                app.engine.receive(here, body.clone()),
                other.receive(there, body.clone())
            );
            (
                here.expect("one replica answers"),
                there.expect("the other answers"),
            )
        }
    });
    for (i, (here, there)) in futures_util::future::join_all(both)
        .await
        .into_iter()
        .enumerate()
    {
        let recorded =
            |d: &entitlements::Delivery| matches!(d, entitlements::Delivery::Recorded(_));
        assert!(
            recorded(&here) != recorded(&there),
            "event {i}: {here:?} / {there:?}"
        );
        let org = format!("twice-{i}");
        let answer = app.entitlements_once(&org, |b| b["plan"] == "pro").await;
        assert_eq!(answer["features"]["seats"], i + 1, "{answer}");
        let (_, history) = app.history(&org, "").await;
        let recorded = history["entries"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["kind"] == "event")
            .count();
        assert_eq!(recorded, 1, "{history}");
    }
}

on_both_backends!(
    one_event_on_two_replicas_at_once_is_recorded_once,
    concurrent_events_of_one_organization_lose_no_update,
    concurrent_updates_of_one_subscription_end_in_the_newest,
    a_writer_that_waited_for_the_organization_stamps_the_time_it_got_the_lock,
    pages_through_a_burst_of_same_second_changes_never_skip_or_repeat
);
