//! Group commit: webhook deliveries that arrive while a transaction is
//! being written share the next one, each keeps its own outcome, and one
//! that fails does not fail those beside it.

use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::{Backend, TestApp, now};
use crate::on_both_backends;

/// Delivers `first`, whose organization's lock is held, then `others`
/// while it waits; releases the lock once they are all queued behind it.
async fn deliver_behind_a_held_lock(
    app: &TestApp,
    first: &Value,
    others: &[Value],
) -> ((u16, Value), Vec<(u16, Value)>) {
    let holder = app.db.hold_org_lock("acme").await;
    let later = async {
        tokio::time::sleep(Duration::from_millis(200)).await;
        futures_util::future::join_all(others.iter().map(|e| app.deliver(e))).await
    };
    let release = async {
        tokio::time::sleep(Duration::from_millis(800)).await;
        holder.release().await;
    };
    let (first, others, ()) = tokio::join!(app.deliver(first), later, release);
    (first, others)
}

fn created(app: &TestApp, org: &str) -> Value {
    app.event("customer.subscription.created", org, now() - 10)
}

async fn deliveries_that_arrive_together_share_a_transaction(backend: Backend) {
    // Two connections: one committer on PostgreSQL too, so that every
    // delivery queues behind the first.
    let app = TestApp::spawn_with(backend, |s| s.database.max_connections = 2).await;
    let others: Vec<Value> = (0..10).map(|i| created(&app, &format!("org{i}"))).collect();
    let (first, answers) = deliver_behind_a_held_lock(&app, &created(&app, "acme"), &others).await;
    assert_eq!(first.1["outcome"], "applied");
    for (status, body) in &answers {
        assert_eq!(
            (*status, &body["outcome"]),
            (200, &json!("applied")),
            "{body}"
        );
    }
    // The first waited alone; the ten that queued behind it shared one.
    let (transactions, deliveries) = app.engine.counters().batches();
    assert_eq!(deliveries, 11);
    assert!(
        transactions <= 3,
        "{transactions} transactions for 11 deliveries"
    );
    let metrics = app.get("/metrics", None).await.text().await.unwrap();
    assert!(
        metrics.contains(&format!(
            "billing_ingest_transactions_total {transactions}\n"
        )),
        "{metrics}"
    );
    for i in 0..10 {
        assert_eq!(
            app.get_entitlements(&format!("org{i}")).await.1["plan"],
            "pro"
        );
    }
}

async fn a_delivery_that_fails_does_not_fail_those_beside_it(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    // The database refuses to record one event, as a full disk or a
    // broken row would refuse it.
    app.db
        .execute(match backend {
            Backend::Postgres => {
                "CREATE FUNCTION poison() RETURNS trigger AS $$ BEGIN RAISE EXCEPTION 'poisoned'; END $$ LANGUAGE plpgsql; \
                 CREATE TRIGGER poison BEFORE INSERT ON webhook_events FOR EACH ROW WHEN (NEW.id = 'evt_poison') EXECUTE FUNCTION poison();"
            }
            Backend::Sqlite => {
                "CREATE TRIGGER poison BEFORE INSERT ON webhook_events WHEN NEW.id = 'evt_poison' \
                 BEGIN SELECT RAISE(ABORT, 'poisoned'); END;"
            }
        })
        .await;
    let mut poison = created(&app, "poisoned");
    poison["id"] = json!("evt_poison");
    let mut others: Vec<Value> = (0..4).map(|i| created(&app, &format!("org{i}"))).collect();
    others.insert(2, poison);
    let (first, answers) = deliver_behind_a_held_lock(&app, &created(&app, "acme"), &others).await;
    assert_eq!(first.0, 200);
    let statuses: Vec<u16> = answers.iter().map(|(status, _)| *status).collect();
    // An unexpected database error is a 500: Stripe retries it like a 503.
    assert_eq!(statuses, [200, 200, 500, 200, 200], "{answers:?}");
    for i in 0..4 {
        assert_eq!(
            app.get_entitlements(&format!("org{i}")).await.1["plan"],
            "pro"
        );
    }
    // Nothing of the refused one was kept: Stripe delivers it again.
    assert_eq!(app.get_entitlements("poisoned").await.1["version"], 0);
}

on_both_backends!(
    deliveries_that_arrive_together_share_a_transaction,
    a_delivery_that_fails_does_not_fail_those_beside_it
);
