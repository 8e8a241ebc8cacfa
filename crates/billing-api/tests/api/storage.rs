//! Migrations and database outages.

use crate::helpers::{Backend, TestApp, assert_error, now};
use crate::on_both_backends;

async fn every_migration_runs_up_down_and_up_again(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let database = app.settings.engine().unwrap().database().clone();
    assert_eq!(database.pending_migrations().await.unwrap(), 0);
    let reverted = database.revert_all_migrations().await.unwrap();
    assert!(reverted >= 1);
    assert_eq!(database.pending_migrations().await.unwrap(), reverted);
    assert_eq!(database.migrate().await.unwrap(), reverted);
    database.ping().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_runs_in_wal_mode_in_a_folder_it_creates() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    app.deliver(&app.event("customer.subscription.created", "acme", now()))
        .await;
    let path = app.db.url.trim_start_matches("sqlite://").to_owned();
    assert!(std::path::Path::new(&path).is_file(), "{path}");
    assert!(
        std::path::Path::new(&format!("{path}-wal")).is_file(),
        "no write-ahead log next to {path}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_locked_sqlite_database_answers_503_and_a_redelivery_applies() {
    use diesel::Connection;
    use diesel::connection::SimpleConnection;

    let app = TestApp::spawn_with(Backend::Sqlite, |s| s.database.acquire_timeout_secs = 1).await;
    let event = app.event("customer.subscription.created", "acme", now());
    let path = app.db.url.trim_start_matches("sqlite://").to_owned();
    let mut holder = diesel::SqliteConnection::establish(&path).unwrap();
    holder.batch_execute("BEGIN EXCLUSIVE").unwrap();
    let (status, body) = app.deliver(&event).await;
    assert_error(status, &body, 503, "storage_unavailable");
    holder.batch_execute("COMMIT").unwrap();
    assert_eq!(app.deliver(&event).await.1["outcome"], "applied");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_outage_answers_503_and_a_redelivery_applies() {
    if !crate::helpers::postgres_or_skip() {
        return;
    }
    let app = TestApp::spawn_with(Backend::Postgres, |s| s.database.acquire_timeout_secs = 2).await;
    let event = app.event("customer.subscription.created", "acme", now());
    app.db.set_connections_allowed(false).await;
    let (status, body) = app.deliver(&event).await;
    assert_error(status, &body, 503, "storage_unavailable");
    app.db.set_connections_allowed(true).await;
    assert_eq!(app.deliver(&event).await.1["outcome"], "applied");
    assert_eq!(app.get_entitlements("acme").await.1["plan"], "pro");
}

async fn a_held_row_lock_answers_503_in_bounded_time_and_a_redelivery_applies(backend: Backend) {
    let app = TestApp::spawn_with(backend, |s| {
        s.database.acquire_timeout_secs = 1;
        s.database.lock_timeout_ms = 300;
        s.database.statement_timeout_ms = 2_000;
    })
    .await;
    let event = app.event("customer.subscription.created", "acme", now());
    // A session of its own (psql, a long import) holds acme's row.
    let holder = app.db.hold_org_lock("acme").await;
    let answered = tokio::time::timeout(std::time::Duration::from_secs(20), app.deliver(&event))
        .await
        .expect("the delivery is answered while the lock is held");
    assert_error(answered.0, &answered.1, 503, "storage_unavailable");
    holder.release().await;
    assert_eq!(app.deliver(&event).await.1["outcome"], "applied");
    assert_eq!(app.get_entitlements("acme").await.1["plan"], "pro");
}

on_both_backends!(
    every_migration_runs_up_down_and_up_again,
    a_held_row_lock_answers_503_in_bounded_time_and_a_redelivery_applies
);
