//! Embedded migrations, one set per backend, applied at start-up.

use diesel::connection::SimpleConnection;
use diesel::{Connection, SqliteConnection};
use diesel_async::AsyncPgConnection;
use diesel_async::async_connection_wrapper::AsyncConnectionWrapper;
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};

use super::{Backend, Database, parse_url};
use crate::Error;

const POSTGRES: EmbeddedMigrations = embed_migrations!("../../migrations/postgres");
const SQLITE: EmbeddedMigrations = embed_migrations!("../../migrations/sqlite");

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// What to do with the embedded migrations.
#[derive(Debug, Clone, Copy)]
enum Op {
    Apply,
    CountPending,
    RevertAll,
}

impl Database {
    /// Applies every pending migration and returns how many ran.
    pub async fn migrate(&self) -> Result<usize, Error> {
        self.migrations(Op::Apply).await
    }

    /// How many migrations compiled into this binary are not applied yet.
    pub async fn pending_migrations(&self) -> Result<usize, Error> {
        self.migrations(Op::CountPending).await
    }

    /// Reverts every applied migration, newest first, and returns how many.
    pub async fn revert_all_migrations(&self) -> Result<usize, Error> {
        self.migrations(Op::RevertAll).await
    }

    /// Diesel's migration harness is synchronous, so it runs on the blocking
    /// pool with a connection of its own.
    async fn migrations(&self, op: Op) -> Result<usize, Error> {
        let (backend, target) = parse_url(self.url())?;
        let sqlite_setup = self.sqlite_setup();
        tokio::task::spawn_blocking(move || {
            let done = match backend {
                Backend::Postgres => {
                    let mut conn = AsyncConnectionWrapper::<AsyncPgConnection>::establish(&target)
                        .map_err(|e| Error::Unavailable(e.to_string()))?;
                    perform(&mut conn, POSTGRES, op)
                }
                Backend::Sqlite => {
                    let mut conn = SqliteConnection::establish(&target)
                        .map_err(|e| Error::Unavailable(e.to_string()))?;
                    conn.batch_execute(&sqlite_setup)
                        .map_err(|e| Error::Unavailable(e.to_string()))?;
                    perform(&mut conn, SQLITE, op)
                }
            };
            done.map_err(|e| Error::Migration(e.to_string()))
        })
        .await
        .map_err(|e| Error::Migration(e.to_string()))?
    }
}

fn perform<H, DB>(
    harness: &mut H,
    migrations: EmbeddedMigrations,
    op: Op,
) -> Result<usize, BoxError>
where
    H: MigrationHarness<DB>,
    DB: diesel::backend::Backend,
{
    Ok(match op {
        Op::Apply => harness.run_pending_migrations(migrations)?.len(),
        Op::CountPending => harness.pending_migrations(migrations)?.len(),
        Op::RevertAll => harness.revert_all_migrations(migrations)?.len(),
    })
}
