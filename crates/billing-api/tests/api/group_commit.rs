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

async fn events_refused_in_a_shared_transaction_leave_the_others_applied(backend: Backend) {
    let app = TestApp::spawn_with(backend, |s| s.database.max_connections = 2).await;
    let mut bad_org = created(&app, "badorg");
    bad_org["data"]["object"]["metadata"]["org_id"] = json!("acme/../<b>");
    let unlisted = app
        .build_event("customer.subscription.created", "org2")
        .price("price_unlisted")
        .at(now() - 10)
        .build();
    // The same organization twice: applied in arrival order.
    let ended = app.event("customer.subscription.deleted", "org0", now() - 5);
    let others = [
        created(&app, "org0"),
        bad_org,
        unlisted,
        ended,
        created(&app, "org3"),
    ];
    let (first, answers) = deliver_behind_a_held_lock(&app, &created(&app, "acme"), &others).await;
    assert_eq!(first.1["outcome"], "applied");
    let outcomes: Vec<(u16, &str)> = answers
        .iter()
        .map(|(status, body)| (*status, body["outcome"].as_str().unwrap_or_default()))
        .collect();
    assert_eq!(
        outcomes,
        [
            (200, "applied"),
            (200, "invalid"),
            (200, "applied"),
            (200, "applied"),
            (200, "applied")
        ],
        "{answers:?}"
    );
    let (transactions, deliveries) = app.engine.counters().batches();
    assert_eq!(deliveries, 6);
    // None of them made the shared transaction fall back to one each.
    assert!(transactions <= 3, "{transactions} transactions for 6");
    let org0 = app.get_entitlements("org0").await.1;
    assert_eq!(
        (&org0["plan"], &org0["version"]),
        (&json!("free"), &json!(2))
    );
    let org2 = app.get_entitlements("org2").await.1;
    assert_eq!(
        (&org2["plan"], &org2["version"]),
        (&json!("free"), &json!(0))
    );
    assert_eq!(app.get_entitlements("org3").await.1["plan"], "pro");
    let history = app.history("org2", "").await.1;
    assert!(
        history["entries"][0]["detail"]
            .as_str()
            .is_some_and(|d| d.contains("price_unlisted")),
        "{history}"
    );
    assert_eq!(app.engine.counters().unknown_price_events(), 1);
    assert_eq!(app.db.count_rows("webhook_events").await, 6);
}

/// Delivers `events` to `app` in their order, 100 ms apart.
async fn deliver_in_order(app: &TestApp, events: &[Value]) -> Vec<(u16, Value)> {
    let sent = events.iter().enumerate().map(|(i, event)| async move {
        tokio::time::sleep(Duration::from_millis(100) * u32::try_from(i).unwrap()).await;
        app.deliver(event).await
    });
    futures_util::future::join_all(sent).await
}

async fn batches_touching_the_same_organizations_in_opposite_orders_both_commit(backend: Backend) {
    // Two instances on one database, one committer each.
    let one = TestApp::spawn_with(backend, |s| s.database.max_connections = 2).await;
    let two = one.beside(|s| s.database.max_connections = 2).await;
    let subscription = |app: &TestApp, id: &str, org: &str| {
        app.build_event("customer.subscription.created", org)
            .subscription(id)
            .at(now() - 10)
            .build()
    };
    // Each instance's committer waits behind a gate's lock with a delivery
    // of its own while two more queue into its next batch: alpha then beta
    // on one, beta then alpha on the other. On PostgreSQL each instance
    // has a gate of its own, opened one after the other, and alpha's lock
    // is held past both: were organizations locked in arrival order, the
    // first batch would wait for alpha, the second take beta and wait for
    // alpha behind it, and once alpha is free the first would wait for
    // beta: a deadlock, rolled back into one transaction each.
    let gates = match backend {
        Backend::Postgres => ["gate1", "gate2"],
        // One writer: a held transaction holds every organization.
        Backend::Sqlite => ["gate", "gate"],
    };
    let mut held = vec![one.db.hold_org_lock(gates[0]).await];
    let mut alpha = None;
    if backend == Backend::Postgres {
        held.push(one.db.hold_org_lock(gates[1]).await);
        // Stored and only locked, so that whoever waits first for alpha's
        // row lock gets it first.
        one.db
            .execute(
                "INSERT INTO organizations (id, created_at, updated_at) \
                 VALUES ('alpha', 0, 0), ('beta', 0, 0)",
            )
            .await;
        let lock = "SELECT id FROM organizations WHERE id = 'alpha' FOR UPDATE";
        alpha = Some(one.db.begin(lock).await);
    }
    let first = [
        subscription(&one, "sub_gate1", gates[0]),
        subscription(&one, "sub_a1", "alpha"),
        subscription(&one, "sub_b1", "beta"),
    ];
    let second = [
        subscription(&two, "sub_gate2", gates[1]),
        subscription(&two, "sub_b2", "beta"),
        subscription(&two, "sub_a2", "alpha"),
    ];
    let release = async {
        for holder in held {
            tokio::time::sleep(Duration::from_millis(400)).await;
            holder.release().await;
        }
        if let Some(alpha) = alpha {
            tokio::time::sleep(Duration::from_millis(400)).await;
            alpha.commit().await;
        }
    };
    let (first, second, ()) = tokio::join!(
        deliver_in_order(&one, &first),
        deliver_in_order(&two, &second),
        release
    );
    for (status, body) in first.iter().chain(&second) {
        assert_eq!(
            (*status, &body["outcome"]),
            (200, &json!("applied")),
            "{body}"
        );
    }
    // Each instance: the gate's transaction, then one shared by the two
    // that queued behind it.
    for app in [&one, &two] {
        assert_eq!(app.engine.counters().batches(), (2, 3));
    }
    for org in ["alpha", "beta"] {
        let answer = one.get_entitlements(org).await.1;
        let sources = answer["sources"].as_array().map_or(0, Vec::len);
        assert_eq!((&answer["plan"], sources), (&json!("pro"), 2), "{answer}");
    }
}

on_both_backends!(
    deliveries_that_arrive_together_share_a_transaction,
    a_delivery_that_fails_does_not_fail_those_beside_it,
    events_refused_in_a_shared_transaction_leave_the_others_applied,
    batches_touching_the_same_organizations_in_opposite_orders_both_commit
);
