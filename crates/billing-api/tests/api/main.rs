//! HTTP-level tests of the whole service, each on SQLite and PostgreSQL.
#![expect(
    clippy::unwrap_used,
    reason = "a test should stop at the first surprise"
)]

mod adoption;
mod architecture;
mod auth;
mod changes;
mod checkout;
mod cli;
mod concurrency;
mod console;
mod contract;
mod entitlements;
mod grants;
mod group_commit;
mod helpers;
mod history;
mod import;
mod lifecycle;
mod notify;
mod openapi;
mod operations;
mod properties;
mod purchases;
mod reconcile;
mod redaction;
mod refetch;
mod replicas;
mod retention;
mod schema_fuzz;
mod shutdown;
mod snapshots;
mod storage;
mod webhooks;
