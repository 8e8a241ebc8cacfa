//! A database of its own for each test, and ways to make it misbehave.

use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};

use super::{Backend, PG_VAR, now};

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

impl TestDb {
    /// Runs `sql` (several statements allowed) on the test's database.
    pub async fn execute(&self, sql: &str) {
        use diesel::Connection;
        use diesel::connection::SimpleConnection;
        use diesel_async::SimpleAsyncConnection;
        match &self.cleanup {
            Cleanup::Postgres { .. } => {
                let mut conn = AsyncPgConnection::establish(&self.url).await.unwrap();
                conn.batch_execute(sql).await.unwrap();
            }
            Cleanup::Sqlite(_) => {
                let path = self.url.trim_start_matches("sqlite://");
                let mut conn = diesel::SqliteConnection::establish(path).unwrap();
                conn.batch_execute(sql).unwrap();
            }
        }
    }
}

/// A PostgreSQL transaction left open, to commit when the test says.
pub struct OpenTransaction(Box<AsyncPgConnection>);

impl TestDb {
    /// Runs `sql` in a PostgreSQL transaction that stays open.
    pub async fn begin(&self, sql: &str) -> OpenTransaction {
        use diesel_async::SimpleAsyncConnection;
        let mut conn = AsyncPgConnection::establish(&self.url).await.unwrap();
        conn.batch_execute(&format!("BEGIN; {sql}")).await.unwrap();
        OpenTransaction(Box::new(conn))
    }
}

impl OpenTransaction {
    pub async fn commit(mut self) {
        use diesel_async::SimpleAsyncConnection;
        self.0.batch_execute("COMMIT").await.unwrap();
    }
}

/// A count, as `SELECT count(*) AS n` answers it.
#[derive(diesel::QueryableByName)]
struct Count {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    n: i64,
}

impl TestDb {
    /// How many rows `table` holds, read on a connection of the test's own.
    pub async fn count_rows(&self, table: &str) -> i64 {
        let query = diesel::sql_query(format!("SELECT count(*) AS n FROM {table}"));
        let counted: Count = match &self.cleanup {
            Cleanup::Postgres { .. } => {
                let mut conn = AsyncPgConnection::establish(&self.url).await.unwrap();
                query.get_result(&mut conn).await.unwrap()
            }
            Cleanup::Sqlite(_) => {
                use diesel::Connection;
                let path = self.url.trim_start_matches("sqlite://");
                let mut conn = diesel::SqliteConnection::establish(path).unwrap();
                diesel::RunQueryDsl::get_result(query, &mut conn).unwrap()
            }
        };
        counted.n
    }
}
